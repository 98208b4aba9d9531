/** Limits that protect the broker connection, the server and other sockets; see README, Options. */
export interface Limits {
  /** Largest payload a socket may publish, in bytes. @default 65536 */
  payloadBytes: number;
  /** Bridged rooms a socket may be in at once through `mqtt.subscribe`. @default 100 */
  subscriptionsPerSocket: number;
  /** Publishes per second a socket may make (token bucket refill rate). @default 100 */
  publishRate: number;
  /** Publishes a socket may make in a burst (token bucket size). @default 200 */
  publishBurst: number;
  /** Longest topic name or filter, in UTF-8 bytes. @default 1024 */
  topicBytes: number;
  /** Most levels in a topic name or filter. @default 32 */
  topicLevels: number;
  /** Most MQTT 5 user properties on one publish. @default 32 */
  userProperties: number;
  /** Most bytes of MQTT 5 user properties (names and values) on one publish. @default 8192 */
  userPropertyBytes: number;
  /** Most retained (last-known state) messages kept for joiners; beyond it the oldest go. @default 10000 */
  retainedMessages: number;
  /** Most bytes (topics and payloads) of retained messages kept; beyond it the oldest go. @default 16777216 */
  retainedBytes: number;
  /**
   * The highest QoS a socket's subscription gets from the broker (a socket asking for more is
   * granted this, as an MQTT broker grants less than asked). QoS 2 costs a round trip per message,
   * and MQTT.js hands a QoS 2 message over only at its PUBREL, after QoS 0/1 messages of the same
   * topic sent later: allow it only where that reordering is acceptable. @default 1
   */
  subscribeQos: number;
  /**
   * `mqtt.subscribe` / `mqtt.unsubscribe` requests per second a socket may make (token bucket
   * refill rate); beyond it `RATE_LIMITED`. @default 20
   */
  subscribeRate: number;
  /** Subscribe / unsubscribe requests a socket may make in a burst (bucket size). @default 200 */
  subscribeBurst: number;
  /**
   * Distinct broker subscriptions (topic filters) this bridge holds at most for client
   * subscriptions; a socket subscribing a new filter beyond it gets `TOO_MANY_SUBSCRIPTIONS`.
   * Routes of the app (`bridge.subscribe`, joins made by server code) are not refused. @default 100000
   */
  brokerSubscriptions: number;
  /**
   * Socket publishes queued while the broker is offline (sent after reconnecting, acked then).
   * 0 refuses them at once with `BROKER_UNAVAILABLE`. @default 0
   */
  offlineQueue: number;
  /**
   * Publishes allowed to wait in the bridge while the broker's Receive Maximum (its quota of QoS 1
   * and 2 publishes in flight) is used up; past it they are refused with `RATE_LIMITED`. 0 refuses
   * them at once. @default 1000
   */
  publishQueue: number;
  /**
   * `mqtt.request`s a socket may have waiting for their reply at once; past it `RATE_LIMITED`.
   * @default 16
   */
  requestsPerSocket: number;
  /**
   * Requests this bridge may have waiting for their reply at once, sockets' and server code's
   * together (a web node: its own; the worker: the whole cluster's); past it `RATE_LIMITED`.
   * @default 1000
   */
  requestsInFlight: number;
  /**
   * The longest `timeoutMs` a request may ask for, in ms; more is refused with `INVALID_ARGUMENT`.
   * A request without `timeoutMs` waits 10 000 ms, or this when it is shorter. @default 60000
   */
  requestTimeoutMs: number;
}

/** The default limits. */
export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  payloadBytes: 65_536,
  subscriptionsPerSocket: 100,
  publishRate: 100,
  publishBurst: 200,
  topicBytes: 1024,
  topicLevels: 32,
  userProperties: 32,
  userPropertyBytes: 8192,
  retainedMessages: 10_000,
  retainedBytes: 16 * 1024 * 1024,
  subscribeQos: 1,
  subscribeRate: 20,
  subscribeBurst: 200,
  brokerSubscriptions: 100_000,
  offlineQueue: 0,
  publishQueue: 1000,
  requestsPerSocket: 16,
  requestsInFlight: 1000,
  requestTimeoutMs: 60_000,
});
