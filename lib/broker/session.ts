import { EventEmitter } from "node:events";
import createDebug from "debug";
import mqtt from "mqtt";
import type { IConnackPacket, IPublishPacket, ISubscriptionGrant, MqttClient } from "mqtt";
import { brokerError, estimatePacketSize, subackResult } from "./broker-answers";
import { backoffDelay, endClient, ownClientOptions, refusesMqtt5 } from "./connect-options";
import { Deadlines } from "./deadlines";
import { MqttBridgeError, closedError } from "../errors";
import type { ResolvedOptions } from "../options";
import type { SessionPublishOptions } from "./outbox";
import { Outbox } from "./outbox";
import { HeldFilters } from "./held-filters";
import type { QoS } from "../protocol";
import { Redeliveries } from "./redelivery";
import { RequestWindow } from "./requests";
import type { BridgeStats } from "../stats";

export type { SessionPublishOptions } from "./outbox";
export { backoffDelay, uniqueClientId } from "./connect-options";

const debug = createDebug("socket.io-mqtt-bridge:session");

/** Events of the broker session. */
export interface SessionEvents {
  /** Connected: every subscription wanted must be subscribed again from this event's listeners. */
  connect: [packet: IConnackPacket];
  offline: [];
  reconnect: [];
  error: [err: Error];
}

/**
 * QoS 1/2 publishes in flight at most, whatever the broker's Receive Maximum (none over 3.1.1):
 * with the SUBSCRIBE window, the packet ids in use stay far below MQTT's 65,535, and what MQTT.js
 * replays one by one after a reconnect (the publishes in flight when the connection dropped) stays
 * small. At 1 ms per round trip it still allows 1,000,000 QoS 1 publishes a second.
 */
export const MAX_PUBLISHES_IN_FLIGHT = 1000;

/** MQTT.js's record of the subscriptions it restores itself (`resubscribe: true`). */
type Resubscribed = { _resubscribeTopics?: Record<string, unknown> };

/**
 * The only part of the bridge that talks to MQTT.js: owns or borrows the client, turns its
 * callbacks into promises with our error codes and a timeout, falls back from MQTT 5 to 3.1.1 when
 * the broker refuses 5, and spaces reconnects with a capped, jittered exponential backoff.
 *
 * SUBSCRIBE / UNSUBSCRIBE packets go through a {@link RequestWindow} (at most 1,000 in flight) and
 * publishes through an {@link Outbox} (the broker's Receive Maximum, the offline queue), so that
 * MQTT.js never holds more than the broker allows, nor anything while offline.
 *
 * Persistent sessions (`clean: false` on a client of ours): the first connection of the process
 * starts clean, so the subscriptions a previous process left in the session (with subscription
 * identifiers that this process hands out again from 1) are dropped, and ends at once with a
 * DISCONNECT; every later connection resumes the session. The one extra connection is needed over
 * 3.1.1, where a clean session ends with its connection, and over MQTT 5 with Mosquitto 2.0, which
 * does not save a session across its own restart while the Clean Start connection that created
 * it is still up (measured). On a resumed session, the filters the broker may still hold that
 * nobody subscribed again on connect are unsubscribed.
 */
export class Session extends EventEmitter<SessionEvents> {
  /** The MQTT.js client (owned, or the user's). */
  readonly client: MqttClient;
  private readonly owned: boolean;
  private readonly autoVersion: boolean;
  private attempts = 0;
  private everConnected = false;
  private closed = false;
  /** Connected, from our `connect` until the connection drops. */
  private up = false;
  private offlineSent = false;
  /** The next connection is the process's first on a persistent session: it starts clean. */
  private freshStart = false;
  private readonly attached: [string, () => void][] = [];
  /** Receives every PUBLISH from the broker (set by the owner of the session). */
  onMessage: (topic: string, payload: Buffer, packet: IPublishPacket) => void = () => undefined;
  /** Operations waiting for the broker: timed out together, settled at once by close(). */
  private readonly deadlines: Deadlines;
  private readonly requests: RequestWindow;
  private readonly outbox: Outbox;
  private readonly held = new HeldFilters();
  /** On a persistent session: recognises the broker's redeliveries of messages handed on. */
  private readonly redeliveries: Redeliveries | undefined;

  /**
   * @param stats when given, redeliveries dropped on a resumed session are counted in
   *   `messages.in` and `messages.duplicates`.
   */
  constructor(
    private readonly opts: ResolvedOptions,
    stats?: BridgeStats,
  ) {
    super();
    this.deadlines = new Deadlines(opts.ackTimeoutMs);
    this.requests = new RequestWindow(this.deadlines, (what) => this.expired(what));
    this.outbox = new Outbox(
      {
        connected: () => this.connected,
        window: () => this.receiveMaximum,
        closed: () => this.closed,
        send: (topic, payload, o, done) => this.send(topic, payload, o, done),
      },
      this.deadlines,
      { offline: opts.limits.offlineQueue, window: opts.limits.publishQueue },
      opts.ackTimeoutMs,
    );
    if (opts.mqtt.kind === "client") {
      this.client = opts.mqtt.client;
      this.owned = false;
      this.autoVersion = false;
      this.everConnected = this.client.connected;
    } else {
      const own = ownClientOptions(opts.mqtt.options, opts.reconnect);
      this.freshStart = own.persistent;
      this.autoVersion = own.autoVersion;
      this.owned = true;
      this.client = own.url ? mqtt.connect(own.url, own.options) : mqtt.connect(own.options);
    }
    if (this.owned ? this.freshStart : this.client.options.clean === false) {
      this.redeliveries = new Redeliveries();
    }
    this.listen("connect", (packet: IConnackPacket) => this.onConnect(packet));
    this.listen("reconnect", () => this.onReconnect());
    // MQTT.js emits `offline` once per outage, and not at all without reconnects: `close` too
    this.listen("offline", () => this.down());
    this.listen("close", () => {
      this.redeliveries?.disconnected();
      if (this.up) this.down();
    });
    this.listen("error", (err: Error) => this.onError(err));
    // the hot path: a plain call to the router, not another event emit per message
    const redeliveries = this.redeliveries;
    this.listen("message", (topic: string, payload: Buffer, packet: IPublishPacket) => {
      if (redeliveries?.redelivered(topic, payload, packet)) {
        debug("%s: redelivered (DUP, packet id %d), handed on already", topic, packet.messageId);
        if (stats) {
          stats.messages.in++;
          stats.messages.duplicates++;
        }
      } else {
        this.onMessage(topic, payload, packet);
      }
    });
    if (this.client.connected) {
      // a borrowed client that is connected already: no `connect` event will come for it
      queueMicrotask(() => {
        if (!this.closed && !this.up && this.client.connected) {
          const connack = (this.client as unknown as { connackPacket?: IConnackPacket })
            .connackPacket;
          this.onConnect(connack ?? { cmd: "connack", sessionPresent: false });
        }
      });
    }
  }

  private listen(event: string, fn: (...args: never[]) => void): void {
    // MQTT.js types each event's listener; ours are checked at the call sites above
    const listener: () => void = fn;
    this.client.on(event as "end", listener);
    this.attached.push([event, listener]);
  }

  /** True while the broker connection is up. */
  get connected(): boolean {
    return this.up && !this.closed;
  }

  /** True when the connection speaks MQTT 5. */
  get mqtt5(): boolean {
    return this.client.options.protocolVersion === 5;
  }

  private get serverProperties(): IConnackPacket["properties"] {
    return this.mqtt5 ? this.client.serverProperties : undefined;
  }

  /** True when the broker supports MQTT 5 subscription identifiers (used to deliver exactly once). */
  get subscriptionIdentifiers(): boolean {
    return this.mqtt5 && this.serverProperties?.subscriptionIdentifiersAvailable !== false;
  }

  /** The broker's Maximum Packet Size from CONNACK, if it set one. */
  get maximumPacketSize(): number | undefined {
    return this.serverProperties?.maximumPacketSize;
  }

  /** The broker's Maximum QoS from CONNACK (2 when it set none). */
  get maximumQoS(): QoS {
    const max = this.serverProperties?.maximumQoS;
    return max === 0 || max === 1 ? max : 2;
  }

  /** QoS 1/2 publishes the broker accepts in flight: its Receive Maximum (MQTT 5), within bounds. */
  get receiveMaximum(): number {
    return Math.min(
      this.serverProperties?.receiveMaximum ?? MAX_PUBLISHES_IN_FLIGHT,
      MAX_PUBLISHES_IN_FLIGHT,
    );
  }

  private onConnect(packet: IConnackPacket): void {
    if (this.closed) return;
    this.attempts = 0;
    // MQTT.js leaves Nagle on: a lone publish or ack would wait for the peer's delayed ACK
    (this.client.stream as { setNoDelay?: (on: boolean) => void } | undefined)?.setNoDelay?.(true);
    this.everConnected = true;
    if (this.owned) this.client.options.reconnectPeriod = backoffDelay(0, this.opts.reconnect);
    if (this.freshStart) {
      // what a previous process left in the session is gone: resume the empty session at once
      this.freshStart = false;
      this.client.options.clean = false;
      debug("clean start done; reconnecting on the persistent session (clean: false)");
      this.client.end(false, () => {
        if (!this.closed) this.client.connect();
      });
      return;
    }
    const resumed = packet.sessionPresent === true;
    debug("connected (MQTT %d, session present %s)", this.client.options.protocolVersion, resumed);
    this.up = true;
    this.offlineSent = false;
    if (!resumed) this.redeliveries?.forget();
    this.held.connected(resumed);
    this.requests.opened();
    let leftOver: string[];
    try {
      this.emit("connect", packet); // the owners subscribe again what they need
    } finally {
      leftOver = this.held.leftOver();
    }
    for (const filter of leftOver) {
      debug("the resumed session still holds %s: unsubscribing", filter);
      void this.unsubscribe(filter);
    }
    // after the subscriptions: publishes that waited for the connection
    this.outbox.flush();
  }

  private down(): void {
    if (this.up) {
      this.up = false;
      this.requests.closed();
    }
    if (!this.offlineSent) {
      this.offlineSent = true;
      this.emit("offline");
    }
  }

  private onReconnect(): void {
    this.attempts++;
    // MQTT.js reads reconnectPeriod each time it schedules the next attempt
    if (this.owned) {
      this.client.options.reconnectPeriod = backoffDelay(this.attempts, this.opts.reconnect);
    }
    debug("reconnecting (attempt %d)", this.attempts);
    this.emit("reconnect");
  }

  private onError(err: Error): void {
    const code: unknown = (err as { code?: unknown }).code;
    if (
      this.owned &&
      this.autoVersion &&
      !this.everConnected &&
      this.client.options.protocolVersion === 5 &&
      refusesMqtt5(code)
    ) {
      debug("broker refused MQTT 5 (%s); falling back to 3.1.1", err.message);
      this.client.options.protocolVersion = 4;
      this.client.options.reconnectPeriod = 1; // retry at once, over 3.1.1
      return;
    }
    debug("error: %s", err.message);
    this.emit("error", err);
  }

  /**
   * MQTT.js's `resubscribe` (on a borrowed client) records every subscription to restore it with
   * its old options, and skips a later SUBSCRIBE of a filter it holds: our filters are ours to
   * restore (with their subscription identifiers), so they are kept out of its record.
   */
  private forget(filter: string): void {
    if (this.client.options.resubscribe === false) return;
    const record = (this.client as unknown as Resubscribed)._resubscribeTopics;
    if (record && Object.prototype.hasOwnProperty.call(record, filter)) delete record[filter];
  }

  /** The error for an operation whose deadline passed. */
  private expired(what: string): MqttBridgeError {
    return this.closed
      ? closedError()
      : new MqttBridgeError("TIMEOUT", `no ${what} within ${this.opts.ackTimeoutMs} ms`);
  }

  /**
   * Subscribes `filter`; resolves with the granted QoS, rejects with a coded error. The answer's
   * deadline (`ackTimeoutMs`) starts when the SUBSCRIBE is sent (`on.sending` hears of that). A
   * SUBACK that grants the filter after the promise gave up (`TIMEOUT`) is reported to `on.late`.
   */
  subscribe(
    filter: string,
    qos: QoS,
    id: number | undefined,
    on: { late?: (granted: QoS) => void; sending?: () => void } = {},
  ): Promise<QoS> {
    if (!this.connected) return Promise.reject(new MqttBridgeError("BROKER_UNAVAILABLE"));
    this.held.wanted(filter);
    const options: Parameters<MqttClient["subscribe"]>[1] = { qos };
    if (this.mqtt5) {
      // retain-as-published keeps the retained flag on live messages: the cache stays current
      options.rap = true;
      if (id !== undefined && this.subscriptionIdentifiers) {
        options.properties = { subscriptionIdentifier: id };
      }
    }
    return this.requests.request<QoS>(`SUBACK for "${filter}"`, (finish) => {
      this.held.subscribing(filter);
      this.forget(filter);
      on.sending?.();
      try {
        this.client.subscribe(filter, options, (err, granted?: ISubscriptionGrant[]) => {
          this.forget(filter);
          const [error, qos] = subackResult(err, granted);
          if (!finish(error, qos) && !error) on.late?.(qos as QoS);
        });
      } finally {
        this.forget(filter);
      }
    });
  }

  /**
   * Unsubscribes `filter` (best effort: errors are logged, never thrown; given up after
   * `ackTimeoutMs`, waiting for its turn included). While offline there is nothing to do: a new
   * session holds nothing, and a resumed one drops what it still holds on connect.
   */
  unsubscribe(filter: string): Promise<void> {
    if (!this.connected) return Promise.resolve();
    return this.requests
      .request<void>(
        `UNSUBACK for "${filter}"`,
        (finish) => {
          const mark = this.held.unsubscribing(filter);
          this.forget(filter);
          this.client.unsubscribe(filter, (err?: Error) => {
            if (!err) this.held.unsubscribed(filter, mark);
            void finish(err ? brokerError(err, "unsubscribe") : null);
          });
        },
        true,
      )
      .catch((err: Error) => debug("unsubscribe %s: %s", filter, err.message));
  }

  /**
   * Publishes; resolves once the broker acknowledged at the message's QoS (QoS 0: once written).
   * `queue` lets a publish wait in the bridge while the broker is offline (`limits.offlineQueue`).
   */
  publish(topic: string, payload: Buffer, o: SessionPublishOptions, queue = false): Promise<void> {
    if (this.closed) return Promise.reject(new MqttBridgeError("BROKER_UNAVAILABLE"));
    return this.outbox.publish(topic, payload, o, queue);
  }

  /** Hands one publish of the outbox to MQTT.js, checked against the broker's limits. */
  private send(
    topic: string,
    payload: Buffer,
    o: SessionPublishOptions,
    done: (err?: Error) => void,
  ): void {
    if (o.qos > this.maximumQoS) {
      return done(
        new MqttBridgeError(
          "BROKER_REJECTED",
          `the broker accepts QoS ${this.maximumQoS} at most`,
          {
            reasonCode: 0x9b,
          },
        ),
      );
    }
    const max = this.maximumPacketSize;
    if (max !== undefined && estimatePacketSize(topic, payload, o.properties) > max) {
      return done(
        new MqttBridgeError("PAYLOAD_TOO_LARGE", `the broker accepts packets up to ${max} bytes`, {
          reasonCode: 0x95,
        }),
      );
    }
    const opts: Parameters<MqttClient["publish"]>[2] = { qos: o.qos, retain: o.retain };
    if (o.properties && this.mqtt5) opts.properties = o.properties;
    try {
      this.client.publish(topic, payload, opts, (err) =>
        done(err ? brokerError(err, "publish") : undefined),
      );
    } catch (err) {
      // MQTT.js throws synchronously on some inputs: never let that escape (MQTT-RULES.md §0.2)
      done(brokerError(err, `a publish to "${topic}"`));
    }
  }

  /**
   * Ends the session: removes our listeners; ends an owned client (a DISCONNECT when connected,
   * at once otherwise, so a dead broker never delays close). A borrowed client stays open unless
   * `closeClient` is set.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.outbox.close();
    this.requests.closed();
    for (const [event, fn] of this.attached) this.client.off(event as "end", fn);
    if (this.owned || this.opts.closeClient) {
      // an 'error' while ending must not crash the process (a borrowed client keeps its owner's)
      this.client.on("error", (err) => debug("error after close: %s", err.message));
      await endClient(this.client, 1000);
    }
    this.deadlines.expireAll();
  }
}
