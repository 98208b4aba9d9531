/**
 * The socket protocol shared by the server side and the browser helper: event names, message and
 * acknowledgement shapes, error codes. Types and constants only, no Node APIs: the browser helper
 * imports this file too.
 */

/** The stable error codes of API.md, sent in `{ ok: false, error: { code } }` acks. */
export const ERROR_CODES = [
  "INVALID_ARGUMENT",
  "INVALID_TOPIC",
  "INVALID_FILTER",
  "FORBIDDEN",
  "PAYLOAD_TOO_LARGE",
  "TOO_MANY_SUBSCRIPTIONS",
  "RATE_LIMITED",
  "BROKER_UNAVAILABLE",
  "BROKER_REJECTED",
  "TIMEOUT",
  "MQTT5_REQUIRED",
] as const;

/** One of {@link ERROR_CODES}. */
export type ErrorCode = (typeof ERROR_CODES)[number];

/** The error part of a failed acknowledgement. */
export interface AckError {
  /** A stable code from {@link ERROR_CODES}. */
  code: ErrorCode;
  /** A human-readable explanation; not stable, do not match on it. */
  message: string;
  /** The MQTT 5 reason code, when the broker gave one (e.g. 0x87 Not authorized). */
  reasonCode?: number;
}

/** A failed acknowledgement. */
export interface AckFailure {
  ok: false;
  error: AckError;
}

/**
 * A place in a bridge's stream of messages: `epoch` names the stream (new whenever the bridge
 * starts), `offset` is the number of its last message counted.
 */
export interface StreamPosition {
  epoch: string;
  offset: number;
}

/** Acknowledgement of `mqtt.subscribe`. */
export type SubscribeAck =
  | {
      ok: true;
      room: string;
      qos: QoS;
      /** Where the stream was when the socket joined (absent with `recovery: false`). */
      position?: StreamPosition;
      /**
       * Only when the request had `since`: true when the socket got every message on the filter
       * it missed since then (before any live one); false when the bridge could not tell what it
       * missed (it got the retained state instead, as on any join: reload).
       */
      recovered?: boolean;
    }
  | AckFailure;
/** Acknowledgement of `mqtt.unsubscribe`. */
export type UnsubscribeAck = { ok: true } | AckFailure;
/** Acknowledgement of `mqtt.publish`. */
export type PublishAck = { ok: true } | AckFailure;
/** Acknowledgement of `mqtt.request`: the first reply to the request, or why there is none. */
export type RequestAck = { ok: true; reply: BridgeMessage } | AckFailure;

/** MQTT quality of service. */
export type QoS = 0 | 1 | 2;

/**
 * MQTT 5 publish properties that travel between browsers and the broker, both ways.
 * Topic aliases and subscription identifiers are the bridge's own business and are refused.
 */
export interface MessageProperties {
  /** MIME type of the payload, e.g. `"application/json"`. */
  contentType?: string;
  /** User properties; a repeated name carries an array of values, in order. */
  userProperties?: Record<string, string | string[]>;
  /** Lifetime of the message in seconds (0 … 4294967295). */
  messageExpiryInterval?: number;
  /** Topic a responder should publish its answer to (request/response). */
  responseTopic?: string;
  /** Binary data that correlates a response with its request. */
  correlationData?: Uint8Array | ArrayBuffer;
  /** `true` when the payload is UTF-8 text (MQTT payload format indicator 1). */
  payloadFormatIndicator?: boolean;
}

/** What the server emits to sockets as `mqtt.message`. */
export interface BridgeMessage<P = unknown> {
  /** The MQTT topic name the message was published to. */
  topic: string;
  /** The decoded payload (see the `decode` option). */
  payload: P;
  /** The QoS the message was delivered to the bridge with. */
  qos: QoS;
  /** `true` for last-known state (a retained message), replayed to joiners or updated live. */
  retain: boolean;
  /** MQTT 5 properties, present only when the message carried some. */
  properties?: MessageProperties;
  /**
   * Messages of this topic the socket will never see: it was slow, and they were replaced by this
   * one (`delivery.slow: "conflate"`) or dropped (`"drop"`). Absent when none.
   */
  skipped?: number;
  /** Its place in the bridge's stream (absent with `recovery: false`, and on retained replays). */
  offset?: number;
  /**
   * The stream `offset` counts in (present with `offset`). It can change while a socket stays
   * connected: in the worker topology a new worker is a new stream, whose offsets start again at
   * 1. The position a socket reached is the `epoch` and `offset` of the last message it got.
   */
  epoch?: string;
}

/** What a socket sends with `mqtt.subscribe`: a filter or an object. */
export type SubscribeRequest = string | { filter: string; qos?: QoS; since?: SinceRequest };

/**
 * The position a socket had reached (the `epoch` and `offset` of the last message it got, or the
 * `position` of its subscribe ack when that came later), to recover what it missed since.
 */
export interface SinceRequest extends StreamPosition {
  /**
   * The ids the socket had on its earlier connections (at most 16): with `echo: false`, what it
   * published then is left out of the replay too.
   */
  ids?: string[];
}

/** What a socket sends with `mqtt.publish`. */
export interface PublishRequest {
  topic: string;
  payload: unknown;
  qos?: QoS;
  retain?: boolean;
  properties?: MessageProperties;
}

/**
 * What a socket sends with `mqtt.request` (MQTT 5 request / response). The bridge sets the
 * response topic, the correlation data and the message expiry interval itself: `properties` may
 * not carry them.
 */
export interface RequestMessage {
  topic: string;
  payload: unknown;
  /** How long to wait for the reply, in ms (also the request's message expiry). @default 10000 */
  timeoutMs?: number;
  /** @default 1 */
  qos?: QoS;
  properties?: Pick<MessageProperties, "contentType" | "userProperties" | "payloadFormatIndicator">;
}

/** Names of the socket events; each can be renamed with the `events` option. */
export interface EventNames {
  /** server → client, default `"mqtt.message"` */
  message: string;
  /**
   * server → client, default `"mqtt.unsubscribed"`: the server took the socket out of a
   * subscription it did not ask to leave ({@link UnsubscribedNotice}).
   */
  unsubscribed: string;
  /** client → server, default `"mqtt.publish"` */
  publish: string;
  /** client → server, default `"mqtt.subscribe"` */
  subscribe: string;
  /** client → server, default `"mqtt.unsubscribe"` */
  unsubscribe: string;
  /** server → client, default `"mqtt.messages"`: several messages in one frame, in order. */
  messages: string;
  /** client → server, default `"mqtt.options"`: how the socket wants to be delivered to. */
  options: string;
  /** client → server, default `"mqtt.request"`: an MQTT 5 request answered by its reply. */
  request: string;
}

/** The default event names of API.md. */
export const DEFAULT_EVENTS: Readonly<EventNames> = Object.freeze({
  message: "mqtt.message",
  unsubscribed: "mqtt.unsubscribed",
  publish: "mqtt.publish",
  subscribe: "mqtt.subscribe",
  unsubscribe: "mqtt.unsubscribe",
  messages: "mqtt.messages",
  options: "mqtt.options",
  request: "mqtt.request",
});

/** What a socket sends with `mqtt.options` (unknown keys are ignored). */
export interface DeliveryRequest {
  /** Receive the messages of one event-loop turn as one `mqtt.messages` array. */
  batch?: boolean;
}

/** The acknowledgement of `mqtt.options`: what the server will do. */
export type DeliveryAck = { ok: true; batch: boolean } | AckFailure;

/** Socket.IO event map of what clients send to the server (default event names). */
export interface BridgeClientToServerEvents {
  "mqtt.subscribe": (request: SubscribeRequest, ack?: (res: SubscribeAck) => void) => void;
  "mqtt.unsubscribe": (filter: string, ack?: (res: UnsubscribeAck) => void) => void;
  "mqtt.publish": (request: PublishRequest, ack?: (res: PublishAck) => void) => void;
  "mqtt.options": (request: DeliveryRequest, ack?: (res: DeliveryAck) => void) => void;
  "mqtt.request": (request: RequestMessage, ack?: (res: RequestAck) => void) => void;
}

/**
 * What the server sends with `mqtt.unsubscribed` when it takes a socket out of a subscription
 * the socket did not ask to leave: its rights were withdrawn (`FORBIDDEN`), or the broker refused
 * the subscription (`BROKER_REJECTED`). The socket no longer receives messages of `filter`.
 */
export interface UnsubscribedNotice {
  /** The topic filter of the subscription. */
  filter: string;
  /** The room the socket was taken out of. */
  room: string;
  /** Why, as in a failed acknowledgement. */
  error: AckError;
}

/** Socket.IO event map of what the server sends to clients (default event names). */
export interface BridgeServerToClientEvents {
  "mqtt.message": (message: BridgeMessage) => void;
  "mqtt.unsubscribed": (notice: UnsubscribedNotice) => void;
  "mqtt.messages": (messages: BridgeMessage[]) => void;
}
