/**
 * socket.io-mqtt-bridge: join an MQTT broker to Socket.IO rooms.
 * The public surface only: named re-exports, no logic.
 */
export { mqttBridge } from "./bridge";
export type { BridgeEvents, MqttBridge, PublishOptions, RequestOptions } from "./bridge";
export { DEFAULT_DELIVERY } from "./delivery/options";
export type { DeliveryOptions, SlowPolicy } from "./delivery/options";
export { MqttBridgeError } from "./errors";
export { METRICS_CONTENT_TYPE } from "./metrics";
export { BROKER_TO_SOCKET_BUCKETS } from "./metrics-histogram";
export {
  DEFAULT_ACK_TIMEOUT_MS,
  DEFAULT_CLUSTER,
  DEFAULT_LIMITS,
  DEFAULT_RECONNECT,
} from "./options";
export type {
  AllowOptions,
  ClusterOptions,
  Decoder,
  Limits,
  MqttBridgeOptions,
  MqttConnectOptions,
  PublishRule,
  ReconnectOptions,
  SubscribeRule,
  Topology,
} from "./options";
export { DEFAULT_EVENTS, ERROR_CODES } from "./protocol";
export type {
  AckError,
  AckFailure,
  BridgeClientToServerEvents,
  BridgeMessage,
  BridgeServerToClientEvents,
  DeliveryAck,
  DeliveryRequest,
  ErrorCode,
  EventNames,
  MessageProperties,
  PublishAck,
  PublishRequest,
  QoS,
  RequestAck,
  RequestMessage,
  SinceRequest,
  StreamPosition,
  SubscribeAck,
  SubscribeRequest,
  UnsubscribeAck,
  UnsubscribedNotice,
} from "./protocol";
export { DEFAULT_RECOVERY } from "./routing/recovery-options";
export type { RecoveryOptions } from "./routing/recovery-options";
export type { ReauthorizeTarget, RevokedSubscription } from "./sockets/reauthorize";
export type { BridgeStats } from "./stats";
export { checkTopicFilter, checkTopicName, covers, matches } from "./topic";
