import { randomBytes } from "node:crypto";
import createDebug from "debug";
import type { IPublishPacket } from "mqtt";
import type { Session, SessionPublishOptions } from "../broker/session";
import { RESPONSE_SUBSCRIPTION_ID } from "../broker/subscriptions";
import { MqttBridgeError, closedError, rateLimited } from "../errors";
import type { Limits } from "../options";
import type { BridgeMessage } from "../protocol";
import type { ValidPublish } from "../sockets/validate";
import type { BridgeStats } from "../stats";
import type { PayloadDecoder } from "./codec";
import { socketProperties } from "./router";

const debug = createDebug("socket.io-mqtt-bridge:request");

/**
 * The prefix of every bridge's response topic: `socket.io-mqtt-bridge/replies/<16 hex digits>`,
 * the digits drawn at random when the bridge starts, so that two bridges (the nodes of a cluster)
 * never take each other's replies. A broker ACL can grant responders publishing under it.
 */
export const RESPONSE_TOPIC_PREFIX = "socket.io-mqtt-bridge/replies/";

/** How long close() waits for the UNSUBACK of the response topic. */
const CLOSE_UNSUBSCRIBE_MS = 1000;

/** A request waiting for its reply, by its correlation data (hex). */
interface Pending {
  readonly topic: string;
  readonly timer: NodeJS.Timeout;
  readonly signal: AbortSignal | undefined;
  readonly onAbort: () => void;
  resolve(reply: BridgeMessage): void;
  reject(err: unknown): void;
}

/** Why `signal` aborted, as an Error (an `AbortSignal`'s reason may be anything). */
export function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error
    ? reason
    : new MqttBridgeError("BROKER_UNAVAILABLE", "the request was given up");
}

/** True when `ids` (one subscription identifier or several) holds `id`. */
function holds(ids: number | number[], id: number): boolean {
  return typeof ids === "number" ? ids === id : ids.includes(id);
}

/**
 * MQTT 5 request / response for the bridge's broker session, after the Azure IoT Operations
 * SDK's command invoker: each request is published with the bridge's response topic, a random
 * correlation data and a message expiry interval of its timeout (rounded up to whole seconds, at
 * least 1), so a request nobody picks up in time expires at the broker too. The first message on
 * the response topic with that correlation data answers it; anything else arriving there (no or
 * an unknown correlation data: spoofed, late, or a second reply) is ignored, counted in
 * `stats().requests.ignored` and logged.
 *
 * The response topic is subscribed at the first request (QoS 1), then again first thing on every
 * (re)connect; requests wait for its SUBACK on the current connection before they are sent. Its
 * messages never reach rooms: a reply is for the requester only. Over MQTT 5 the subscription
 * carries {@link RESPONSE_SUBSCRIPTION_ID}, so a copy the broker sends for a room's filter that
 * matches the response topic (`#`) is told apart and dropped as a duplicate.
 */
export class Requester {
  /** This bridge's response topic. */
  readonly topic = RESPONSE_TOPIC_PREFIX + randomBytes(8).toString("hex");
  private readonly pending = new Map<string, Pending>();
  /** The SUBSCRIBE of the response topic on the current connection, once asked. */
  private subscribing: Promise<void> | undefined;
  /** A request was made: the response topic is subscribed on every connect from now on. */
  private wanted = false;
  private closed = false;

  constructor(
    private readonly limits: Limits,
    private readonly session: Session,
    private readonly stats: BridgeStats,
    private readonly decode: PayloadDecoder,
  ) {
    // before the subscription table restores its filters: the response topic is not queued
    // behind thousands of them
    session.prependListener("connect", this.onConnect);
    session.on("offline", this.onOffline);
  }

  /** Requests waiting for their reply. */
  get size(): number {
    return this.pending.size;
  }

  private readonly onConnect = () => {
    this.subscribing = undefined;
    if (this.wanted && !this.closed) {
      this.subscribe().catch((err: Error) => debug("subscribing %s: %s", this.topic, err.message));
    }
  };

  private readonly onOffline = () => {
    this.subscribing = undefined;
  };

  /** Subscribes the response topic on this connection, once; a failure is retried next time. */
  private subscribe(): Promise<void> {
    this.wanted = true;
    if (this.subscribing) return this.subscribing;
    const attempt: Promise<void> = this.session
      .subscribe(this.topic, 1, RESPONSE_SUBSCRIPTION_ID)
      .then(
        () => {
          debug("subscribed %s", this.topic);
          this.stats.requests.responseTopic = this.topic;
        },
        (err: unknown) => {
          if (this.subscribing === attempt) this.subscribing = undefined;
          throw err;
        },
      );
    this.subscribing = attempt;
    return attempt;
  }

  /**
   * Publishes `msg` as a request and resolves with its first reply; rejects with `TIMEOUT` after
   * `timeoutMs`, with `signal`'s reason when it aborts first, `MQTT5_REQUIRED` over MQTT 3.1.1,
   * `RATE_LIMITED` past `limits.requestsInFlight`, or the publish's error.
   */
  request(msg: ValidPublish, timeoutMs: number, signal?: AbortSignal): Promise<BridgeMessage> {
    if (this.closed) return Promise.reject(closedError());
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    if (!this.session.connected) return Promise.reject(new MqttBridgeError("BROKER_UNAVAILABLE"));
    if (!this.session.mqtt5) return Promise.reject(new MqttBridgeError("MQTT5_REQUIRED"));
    if (this.pending.size >= this.limits.requestsInFlight) {
      return Promise.reject(
        rateLimited(`at most ${this.limits.requestsInFlight} requests in flight`, 0x97),
      );
    }
    const correlation = randomBytes(16);
    const key = correlation.toString("hex");
    const deadline = Date.now() + timeoutMs;
    return new Promise<BridgeMessage>((resolve, reject) => {
      const onAbort = () => {
        if (signal && this.settle(key, abortReason(signal))) {
          this.stats.requests.cancelled++;
          debug("request %s to %s cancelled", key, msg.topic);
        }
      };
      const timer = setTimeout(() => {
        const err = new MqttBridgeError(
          "TIMEOUT",
          `no reply to the request to "${msg.topic}" within ${timeoutMs} ms`,
        );
        if (this.settle(key, err)) this.stats.requests.timedOut++;
      }, timeoutMs);
      this.pending.set(key, { topic: msg.topic, timer, signal, onAbort, resolve, reject });
      this.stats.requests.inFlight++;
      signal?.addEventListener("abort", onAbort, { once: true });
      void this.send(msg, correlation, key, deadline);
    });
  }

  private async send(msg: ValidPublish, correlation: Buffer, key: string, deadline: number) {
    try {
      await this.subscribe();
      if (!this.pending.has(key)) return; // timed out or cancelled while subscribing
      const o: SessionPublishOptions = {
        qos: msg.qos,
        retain: false,
        properties: {
          ...msg.properties,
          responseTopic: this.topic,
          correlationData: correlation,
          // the broker drops a request nobody took before the requester gives up [§3.3.2.3.3]
          messageExpiryInterval: Math.max(1, Math.ceil((deadline - Date.now()) / 1000)),
        },
      };
      await this.session.publish(msg.topic, msg.payload, o);
      this.stats.requests.sent++;
      debug("request %s sent to %s", key, msg.topic);
    } catch (err) {
      this.settle(key, err);
    }
  }

  /** A message on the response topic (called for that topic only). */
  handle(payload: Buffer, packet: IPublishPacket): void {
    const props = packet.properties;
    const ids = props?.subscriptionIdentifier;
    if (ids !== undefined && !holds(ids, RESPONSE_SUBSCRIPTION_ID)) {
      // a copy for a room's filter that matches the response topic; ours comes on its own
      this.stats.messages.in++;
      this.stats.messages.duplicates++;
      debug("a copy of a reply for subscription %o: dropped", ids);
      return;
    }
    const correlation = props?.correlationData;
    const key = Buffer.isBuffer(correlation) ? correlation.toString("hex") : undefined;
    const entry = key === undefined ? undefined : this.pending.get(key);
    if (key === undefined || !entry) {
      this.stats.requests.ignored++;
      debug(
        "ignored a message on %s: %s",
        this.topic,
        key === undefined
          ? "no correlation data"
          : `correlation data ${key} answers no request waiting (late, repeated or spoofed)`,
      );
      return;
    }
    const decoded = this.decode(payload, packet);
    if (decoded.fallback) this.stats.messages.decodeFallbacks++;
    const reply: BridgeMessage = {
      topic: packet.topic,
      payload: decoded.value,
      qos: packet.qos,
      retain: packet.retain,
    };
    const properties = socketProperties(props);
    if (properties) {
      delete properties.correlationData; // the bridge's own, not the requester's
      if (Object.keys(properties).length > 0) reply.properties = properties;
    }
    this.settle(key, undefined, reply);
    this.stats.requests.answered++;
    debug("request %s to %s answered", key, entry.topic);
  }

  /** Ends a waiting request with `err` or `reply`; false when it had ended already. */
  private settle(key: string, err: unknown, reply?: BridgeMessage): boolean {
    const entry = this.pending.get(key);
    if (!entry) return false;
    this.pending.delete(key);
    this.stats.requests.inFlight--;
    clearTimeout(entry.timer);
    entry.signal?.removeEventListener("abort", entry.onAbort);
    if (reply) entry.resolve(reply);
    else entry.reject(err);
    return true;
  }

  /** Refuses every waiting request (the bridge is closing) and unsubscribes the response topic. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.session.off("connect", this.onConnect);
    this.session.off("offline", this.onOffline);
    for (const key of [...this.pending.keys()]) this.settle(key, closedError());
    if (!this.wanted || !this.session.connected) return;
    // a borrowed client stays connected: its session must not go on holding our topic
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.session.unsubscribe(this.topic),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_UNSUBSCRIBE_MS))),
    ]);
    clearTimeout(timer);
  }
}
