/**
 * The public types of the browser helper (lib/client.ts): its options, the subscription and the
 * helper it returns, and the error every promise of it rejects with. No Node APIs: part of the
 * browser bundle.
 */
import type { MessageHandler } from "./client-delivery";
import type { BridgeMessage, ErrorCode, MessageProperties, QoS, RequestMessage } from "./protocol";
import type { EventNames } from "./protocol";

/**
 * Options of `mqttClient`.
 * @example
 * mqttClient(socket, { timeoutMs: 5000, onError: (err, filter) => console.warn(filter, err.code) });
 */
export interface MqttClientOptions {
  /** Event names, when the server renamed them with its `events` option. */
  events?: Partial<EventNames>;
  /** How long to wait for each acknowledgement before failing with `TIMEOUT`; default 10 000. */
  timeoutMs?: number;
  /**
   * Called when restoring a subscription after a reconnect fails while that connection is still
   * up (each failed attempt: one a retry can fix is retried with backoff, see `retry`; otherwise
   * the local subscription is kept and restored again on the next reconnect), and when the server
   * takes the socket out of a subscription (`mqtt.unsubscribed`: `FORBIDDEN` drops the local
   * subscription, `BROKER_REJECTED` is retried). Without it the error is rethrown asynchronously.
   */
  onError?: (error: MqttBridgeClientError, filter: string) => void;
  /**
   * Called after each subscription is restored on a reconnect. `recovered` is true when the
   * handlers got every message of the filter missed while disconnected (in order, once, before the
   * live ones; or Socket.IO recovered the connection); false when the bridge could not tell what
   * was missed (another bridge epoch, history no longer complete, recovery off): the handlers got
   * the retained state as on any subscribe, and the app should reload what it shows for `filter`.
   */
  onRestore?: (filter: string, recovered: boolean) => void;
  /**
   * Backoff of the helper's own retries: a restore that failed with a code a retry can fix
   * (`BROKER_UNAVAILABLE`, `BROKER_REJECTED`, `TIMEOUT`, `RATE_LIMITED`), and a subscription the
   * server dropped with `mqtt.unsubscribed` and `BROKER_REJECTED`. The delay doubles from
   * `minDelayMs` (default 1 000) up to `maxDelayMs` (default 30 000), with ±20 % jitter.
   */
  retry?: { minDelayMs?: number; maxDelayMs?: number };
  /**
   * Asks the server on every connect for several messages per frame (`mqtt.options`), which the
   * helper unpacks: handlers see the same messages, in the same order. Turn it off when other
   * code listens to `mqtt.message` on the same socket. A server that does not know the request
   * (older) is not waited for. Default `true`.
   */
  batch?: boolean;
}

/**
 * A local subscription, resolved once the server has acknowledged the filter.
 * @example
 * const sub = await mqtt.subscribe("sensors/#", render);
 * console.log(sub.room, sub.qos);
 * await sub.unsubscribe();
 */
export interface Subscription {
  /** The topic filter. */
  readonly filter: string;
  /** The Socket.IO room the server put the socket in for this filter. */
  readonly room: string;
  /** The QoS the server granted for this filter. */
  readonly qos: QoS;
  /**
   * After a restore (a reconnect), whether it recovered every missed message (see `onRestore`);
   * `undefined` before the first restore.
   */
  readonly recovered: boolean | undefined;
  /** Stops this handler; the server is told when no local subscription of the filter is left. Idempotent. */
  unsubscribe(): Promise<void>;
}

/**
 * The helper returned by `mqttClient`.
 * @example
 * const mqtt: MqttClient = mqttClient(io());
 * const sub = await mqtt.subscribe("sensors/+/temp", (msg) => render(msg), { qos: 1 });
 * await mqtt.publish("chat/lobby", { text: "hi" }, { qos: 1, retain: false });
 * mqtt.filters(); // ["sensors/+/temp"]
 * mqtt.close();
 */
export interface MqttClient {
  /**
   * Subscribes `handler` to `filter`. Subscriptions of one filter share one server subscription;
   * a filter already subscribed resolves at once (its handler gets later messages only).
   */
  subscribe<P = unknown>(
    filter: string,
    handler: MessageHandler<P>,
    options?: { qos?: QoS },
  ): Promise<Subscription>;
  /** Publishes through the bridge; resolves once the broker has acknowledged it at its QoS. */
  publish(
    topic: string,
    payload: unknown,
    options?: { qos?: QoS; retain?: boolean; properties?: MessageProperties },
  ): Promise<void>;
  /**
   * Sends an MQTT 5 request through the bridge and resolves with the first reply (the server's
   * `allow.request` decides who may). Rejects with `TIMEOUT` when no reply came within
   * `timeoutMs` (default 10 000; the helper itself waits its own `timeoutMs` longer for the ack),
   * `MQTT5_REQUIRED` when the bridge speaks MQTT 3.1.1 to its broker.
   * @example
   * const reply = await mqtt.request("devices/42/reboot", { delay: 0 }, { timeoutMs: 5000 });
   */
  request<P = unknown>(
    topic: string,
    payload: unknown,
    options?: Omit<RequestMessage, "topic" | "payload">,
  ): Promise<BridgeMessage<P>>;
  /** The filters with an acknowledged subscription, in subscription order. */
  filters(): string[];
  /**
   * Removes the helper's socket listeners and drops every handler; when the socket is connected
   * it also sends `mqtt.unsubscribe` (without ack) for each filter, and `mqtt.options { batch:
   * false }` when it had asked for batching. Later calls reject.
   */
  close(): void;
}

/**
 * Rejection reason of every promise of the helper. `code` is the server's error code, or
 * `TIMEOUT` when no valid acknowledgement arrived (ack timeout, disconnection, or an ack that is
 * not `{ ok: true, … }` / `{ ok: false, error: { code } }`): the outcome is then unknown.
 * @example
 * try { await mqtt.publish("chat/x", "hi"); } catch (e) {
 *   if (e instanceof MqttBridgeClientError && e.code === "FORBIDDEN") alert("not allowed");
 * }
 */
export class MqttBridgeClientError extends Error {
  /** A stable error code (see `ErrorCode`). */
  readonly code: ErrorCode;
  /** The MQTT 5 reason code, when the broker gave one. */
  readonly reasonCode?: number;
  constructor(code: ErrorCode, message: string, reasonCode?: number) {
    super(message);
    this.name = "MqttBridgeClientError";
    this.code = code;
    this.reasonCode = reasonCode; // undefined when the broker gave none (as the field declares)
  }
}
