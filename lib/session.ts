import { EventEmitter } from "node:events";
import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import createDebug from "debug";
import mqtt from "mqtt";
import type {
  IClientOptions,
  IConnackPacket,
  IPublishPacket,
  ISubscriptionGrant,
  MqttClient,
} from "mqtt";
import { Deadlines } from "./deadlines";
import { MqttBridgeError } from "./errors";
import type { ReconnectOptions, ResolvedOptions } from "./options";
import type { QoS } from "./protocol";

const debug = createDebug("socket.io-mqtt-bridge:session");

/** Events of the broker session. */
export interface SessionEvents {
  connect: [packet: IConnackPacket];
  offline: [];
  reconnect: [];
  error: [err: Error];
}

/** Reason codes with which a broker refuses a protocol version it does not speak. */
const UNSUPPORTED_PROTOCOL = new Set([1, 0x84]);

/** Options of a publish through the session. */
export interface SessionPublishOptions {
  qos: QoS;
  retain: boolean;
  properties?: IPublishPacket["properties"];
}

/** A unique MQTT client id: two nodes sharing one would take over each other's session in a loop. */
export function uniqueClientId(): string {
  return `sio-mqtt-bridge-${hostname().slice(0, 20)}-${process.pid}-${randomBytes(4).toString("hex")}`;
}

/** The delay before reconnect attempt `attempt` (0-based): capped exponential with jitter. */
export function backoffDelay(attempt: number, r: ReconnectOptions, random = Math.random): number {
  const base = Math.min(r.maxDelayMs, r.minDelayMs * 2 ** Math.min(attempt, 30));
  const spread = base * r.jitter * (random() * 2 - 1);
  return Math.max(1, Math.round(base + spread));
}

/**
 * The only part of the bridge that talks to MQTT.js: owns or borrows the client, turns its
 * callbacks into promises with our error codes and a timeout, falls back from MQTT 5 to 3.1.1 when
 * the broker refuses 5, and spaces reconnects with a capped, jittered exponential backoff.
 */
export class Session extends EventEmitter<SessionEvents> {
  /** The MQTT.js client (owned, or the user's). */
  readonly client: MqttClient;
  private readonly owned: boolean;
  private readonly autoVersion: boolean;
  private attempts = 0;
  private everConnected = false;
  private closed = false;
  private readonly attached: [string, () => void][] = [];
  /** Receives every PUBLISH from the broker (set by the owner of the session). */
  onMessage: (topic: string, payload: Buffer, packet: IPublishPacket) => void = () => undefined;
  /** Operations waiting for the broker: timed out together, settled at once by close(). */
  private readonly deadlines: Deadlines;

  constructor(private readonly opts: ResolvedOptions) {
    super();
    this.deadlines = new Deadlines(opts.ackTimeoutMs);
    if (opts.mqtt.kind === "client") {
      this.client = opts.mqtt.client;
      this.owned = false;
      this.autoVersion = false;
      this.everConnected = this.client.connected;
    } else {
      const { url, ...rest } = opts.mqtt.options;
      const options: IClientOptions = {
        clientId: uniqueClientId(),
        protocolVersion: 5,
        ...rest,
        // the registry restores subscriptions itself (with subscription identifiers) on every connect
        resubscribe: false,
        reconnectOnConnackError: true,
        queueQoSZero: false,
        reconnectPeriod: backoffDelay(0, opts.reconnect),
      };
      this.autoVersion = rest.protocolVersion === undefined;
      this.owned = true;
      this.client = url ? mqtt.connect(url, options) : mqtt.connect(options);
    }
    this.listen("connect", (packet: IConnackPacket) => this.onConnect(packet));
    this.listen("reconnect", () => this.onReconnect());
    this.listen("offline", () => this.emit("offline"));
    this.listen("error", (err: Error) => this.onError(err));
    // the hot path: a plain call to the router, not another event emit per message
    this.listen("message", (topic: string, payload: Buffer, packet: IPublishPacket) =>
      this.onMessage(topic, payload, packet),
    );
    if (this.client.connected) {
      // a borrowed client that is connected already: no `connect` event will come for it
      queueMicrotask(() => {
        if (!this.closed && this.client.connected) {
          this.onConnect({ cmd: "connack", sessionPresent: false });
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
    return this.client.connected;
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

  private onConnect(packet: IConnackPacket): void {
    this.attempts = 0;
    // MQTT.js leaves Nagle on: a lone publish or ack would wait for the peer's delayed ACK
    (this.client.stream as { setNoDelay?: (on: boolean) => void } | undefined)?.setNoDelay?.(true);
    this.everConnected = true;
    if (this.owned) this.client.options.reconnectPeriod = backoffDelay(0, this.opts.reconnect);
    debug(
      "connected (MQTT %d, session present %s)",
      this.client.options.protocolVersion,
      packet.sessionPresent,
    );
    this.emit("connect", packet);
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
    const code = (err as { code?: unknown }).code;
    if (
      this.owned &&
      this.autoVersion &&
      !this.everConnected &&
      this.client.options.protocolVersion === 5 &&
      typeof code === "number" &&
      UNSUPPORTED_PROTOCOL.has(code)
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
   * Subscribes `filter`; resolves with the granted QoS, rejects with a coded error. A SUBACK that
   * grants the filter after the promise gave up (`TIMEOUT`) is reported to `late`.
   */
  subscribe(
    filter: string,
    qos: QoS,
    id: number | undefined,
    late?: (granted: QoS) => void,
  ): Promise<QoS> {
    if (!this.connected) return Promise.reject(new MqttBridgeError("BROKER_UNAVAILABLE"));
    const options: Parameters<MqttClient["subscribe"]>[1] = { qos };
    if (this.mqtt5) {
      // retain-as-published keeps the retained flag on live messages: the cache stays current
      options.rap = true;
      if (id !== undefined && this.subscriptionIdentifiers) {
        options.properties = { subscriptionIdentifier: id };
      }
    }
    return this.withTimeout(`SUBACK for "${filter}"`, (done) => {
      this.client.subscribe(filter, options, (err, granted?: ISubscriptionGrant[]) => {
        // a refused SUBACK comes as an error carrying the packet, its reason code in `granted`;
        // otherwise the grant's QoS is the reason code
        const code = err
          ? (err as { packet?: { granted?: unknown[] } }).packet?.granted?.[0]
          : granted?.[0]?.qos;
        if (typeof code === "number" && code >= 0x80) {
          done(
            new MqttBridgeError("BROKER_REJECTED", "subscription refused", { reasonCode: code }),
          );
        } else if (err) {
          done(brokerError(err, "subscribe"));
        } else if (!done(null, (code ?? qos) as QoS)) {
          late?.((code ?? qos) as QoS);
        }
      });
    });
  }

  /** Unsubscribes `filter` (best effort: errors are logged, never thrown). */
  unsubscribe(filter: string): Promise<void> {
    if (!this.connected) return Promise.resolve();
    return this.withTimeout<void>(`UNSUBACK for "${filter}"`, (done) => {
      this.client.unsubscribe(filter, (err) => {
        if (err) debug("unsubscribe %s failed: %s", filter, err.message);
        done(null, undefined);
      });
    }).catch((err: unknown) => debug("unsubscribe %s: %O", filter, err));
  }

  /**
   * Publishes; resolves once the broker acknowledged at the message's QoS (QoS 0: once written).
   * `queue` lets a publish wait in MQTT.js's queue while the broker is offline.
   */
  publish(topic: string, payload: Buffer, o: SessionPublishOptions, queue = false): Promise<void> {
    if (this.closed || (!this.connected && !queue)) {
      return Promise.reject(new MqttBridgeError("BROKER_UNAVAILABLE"));
    }
    if (o.qos > this.maximumQoS) {
      return Promise.reject(
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
      return Promise.reject(
        new MqttBridgeError("PAYLOAD_TOO_LARGE", `the broker accepts packets up to ${max} bytes`, {
          reasonCode: 0x95,
        }),
      );
    }
    const opts: Parameters<MqttClient["publish"]>[2] = { qos: o.qos, retain: o.retain };
    if (o.properties && this.mqtt5) opts.properties = o.properties;
    return this.withTimeout<void>(`acknowledgement of a publish to "${topic}"`, (done) => {
      this.client.publish(topic, payload, opts, (err) =>
        done(err ? brokerError(err, "publish") : null),
      );
    });
  }

  /** `start` gets `done`, which answers false when the operation was settled already. */
  private withTimeout<T>(
    what: string,
    start: (done: (err: Error | null, value?: T) => boolean) => void,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const finish = (err: Error | null, value?: T): boolean => {
        if (!this.deadlines.delete(entry)) return false; // settled already
        if (err) reject(err);
        else resolve(value as T);
        return true;
      };
      const entry = this.deadlines.add(() => {
        if (this.closed) finish(new MqttBridgeError("BROKER_UNAVAILABLE", "the bridge is closed"));
        else
          finish(new MqttBridgeError("TIMEOUT", `no ${what} within ${this.opts.ackTimeoutMs} ms`));
      });
      try {
        start(finish);
      } catch (err) {
        // MQTT.js throws synchronously on some inputs: never let that escape (MQTT-RULES.md §0.2)
        finish(brokerError(err, what));
      }
    });
  }

  /**
   * Ends the session: removes our listeners; ends an owned client (a DISCONNECT when connected,
   * at once otherwise, so a dead broker never delays close). A borrowed client stays open unless
   * `closeClient` is set.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const [event, fn] of this.attached) this.client.off(event as "end", fn);
    if (this.owned || this.opts.closeClient) {
      const client = this.client;
      // an 'error' while ending must not crash the process (a borrowed client keeps its owner's)
      client.on("error", (err) => debug("error after close: %s", err.message));
      await new Promise<void>((resolve) => {
        // a graceful end waits for in-flight publishes; a dead or slow broker gets 2 s at most
        const force = setTimeout(() => client.end(true, () => resolve()), 2000);
        client.end(!client.connected, () => {
          clearTimeout(force);
          resolve();
        });
      });
    }
    this.deadlines.expireAll();
  }
}

/** Maps an MQTT.js error to ours, keeping the reason code and cause. */
function brokerError(err: unknown, what: string): MqttBridgeError {
  if (err instanceof MqttBridgeError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  const message = err instanceof Error ? err.message : String(err);
  if (typeof code === "number" && code >= 0x80) {
    return new MqttBridgeError("BROKER_REJECTED", `${what}: ${message}`, {
      reasonCode: code,
      cause: err,
    });
  }
  return new MqttBridgeError("BROKER_UNAVAILABLE", `${what}: ${message}`, { cause: err });
}

/** An upper bound of a PUBLISH packet's size, to honour the broker's Maximum Packet Size. */
function estimatePacketSize(
  topic: string,
  payload: Buffer,
  properties: IPublishPacket["properties"],
): number {
  let size = 5 + 2 + Buffer.byteLength(topic) + 2 + payload.length + 4;
  if (properties) {
    for (const [key, value] of Object.entries(properties)) {
      if (key === "userProperties" && value) {
        for (const [k, v] of Object.entries(value as Record<string, string | string[]>)) {
          for (const item of Array.isArray(v) ? v : [v])
            size += 5 + Buffer.byteLength(k) + Buffer.byteLength(item);
        }
      } else if (typeof value === "string") size += 3 + Buffer.byteLength(value);
      else if (Buffer.isBuffer(value)) size += 3 + value.length;
      else size += 5;
    }
  }
  return size;
}
