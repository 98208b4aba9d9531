import type { IClientOptions, IPublishPacket, MqttClient } from "mqtt";
import type { Socket } from "socket.io";
import { optionError } from "./errors";
import type { KnownKeys } from "./option-keys";
import { checkKnownKeys } from "./option-keys";
import type { EventNames, PublishRequest } from "./protocol";
import { DEFAULT_EVENTS } from "./protocol";
import type { DeliveryOptions } from "./delivery/options";
import { DEFAULT_DELIVERY, resolveDelivery } from "./delivery/options";
import type { RecoveryOptions } from "./routing/recovery-options";
import { DEFAULT_RECOVERY, resolveRecovery } from "./routing/recovery-options";
import type { Limits } from "./limits";
import { DEFAULT_LIMITS } from "./limits";

export type { Limits } from "./limits";
export { DEFAULT_LIMITS } from "./limits";

/**
 * Who may subscribe to what: a list of topic filters (each may hold `{placeholders}` filled from the
 * socket, e.g. `"users/{data.userId}/#"`), or a function. A requested filter is allowed only when a
 * rule covers every topic the filter can match.
 */
export type SubscribeRule =
  readonly string[] | ((socket: Socket, filter: string) => boolean | Promise<boolean>);

/**
 * Who may publish to what: a list of topic filters (with optional `{placeholders}`), or a function
 * called on every publish with the validated request.
 */
export type PublishRule =
  | readonly string[]
  | ((socket: Socket, topic: string, message: PublishRequest) => boolean | Promise<boolean>);

/** Authorization rules. Anything not allowed is refused with `FORBIDDEN` (deny by default). */
export interface AllowOptions {
  /** Filters a socket may subscribe to. @default none */
  subscribe?: SubscribeRule;
  /** Topics a socket may publish to (also checked for an MQTT 5 `responseTopic`). @default none */
  publish?: PublishRule;
  /**
   * Topics a socket may publish to with `retain: true` (retained state outlives the publisher and
   * an empty retained payload deletes it, so this is a permission of its own). @default none
   */
  retain?: PublishRule;
  /**
   * Topics a socket may send MQTT 5 requests to with `mqtt.request` (the function form is called
   * with the validated request, as for `publish`). @default none
   */
  request?: PublishRule;
}

/** Custom payload decoder for messages from the broker. */
export type Decoder = (payload: Buffer, packet: IPublishPacket) => unknown;

/** Reconnect backoff: the delay doubles from `minDelayMs` up to `maxDelayMs`, with ±`jitter`. */
export interface ReconnectOptions {
  /** @default 1000 */
  minDelayMs: number;
  /** @default 30000 */
  maxDelayMs: number;
  /** Random spread as a fraction of the delay (0 … 1). @default 0.2 */
  jitter: number;
}

/** Timing of the worker topology (see README, "Clusters"). */
export interface ClusterOptions {
  /** How often the worker tells the nodes it is alive. @default 1000 */
  heartbeatMs: number;
  /** A node takes the worker for gone after this long without a heartbeat. @default 3500 */
  workerTimeoutMs: number;
  /** How often the worker asks every node for its bridged rooms (repairs lost reports). @default 5000 */
  syncIntervalMs: number;
}

/** The default cluster timing. */
export const DEFAULT_CLUSTER: Readonly<ClusterOptions> = Object.freeze({
  heartbeatMs: 1000,
  workerTimeoutMs: 3500,
  syncIntervalMs: 5000,
});

/** Where the broker connection lives; see README, "Clusters". */
export type Topology = "embedded" | "forward" | "worker";

/** MQTT.js connection options with the broker URL. */
export type MqttConnectOptions = IClientOptions & { url?: string };

/** Options of {@link mqttBridge}. Every field is optional. */
export interface MqttBridgeOptions {
  /**
   * The broker: a URL (`"mqtt://broker:1883"`), MQTT.js options (with `url`), or an existing
   * `MqttClient` (which `close()` leaves open unless `closeClient` is set).
   * @default "mqtt://localhost:1883"
   */
  mqtt?: string | MqttConnectOptions | MqttClient;
  /** Close a client passed in `mqtt` on `close()`. @default false */
  closeClient?: boolean;
  /** Authorization rules; deny by default. */
  allow?: AllowOptions;
  /**
   * How broker payloads are decoded for sockets: `"auto"` (JSON when it parses, else UTF-8 text
   * when valid, else bytes), `"json"`, `"text"`, `"binary"`, or a function.
   * @default "auto"
   */
  decode?: "auto" | "json" | "text" | "binary" | Decoder;
  /** A socket receives its own publishes back (exact over MQTT 5). @default true */
  echo?: boolean;
  /** Replay retained (last-known state) messages to each joining socket. @default true */
  retained?: boolean;
  /** Rename the socket events. */
  events?: Partial<EventNames>;
  /** Prefix of the rooms that client subscriptions use: room = prefix + filter. @default "mqtt:" */
  roomPrefix?: string;
  /** Time to wait for the broker's acknowledgement of a publish or subscribe. @default 10000 */
  ackTimeoutMs?: number;
  /** Limits per socket and per message. */
  limits?: Partial<Limits>;
  /** Reconnect backoff. */
  reconnect?: Partial<ReconnectOptions>;
  /**
   * `"embedded"`: this process holds its own broker connection and serves its own sockets.
   * `"forward"`: a web node of the worker topology (no `mqtt` option): it authorizes locally and
   * forwards subscriptions and publishes to the worker through the adapter. `"worker"`: the one
   * bridge of the cluster that holds the broker connection (see the `worker` command).
   * @default "embedded"
   */
  topology?: Topology;
  /** Timing of the worker topology. */
  cluster?: Partial<ClusterOptions>;
  /** Slow sockets and batched frames (README, "Slow sockets and batched frames"). */
  delivery?: Partial<DeliveryOptions>;
  /**
   * Missed-message recovery across reconnects (README, "Recovery: missed messages across
   * reconnects"); `false` turns it off (no offsets, no history, no lingering subscriptions).
   */
  recovery?: Partial<RecoveryOptions> | boolean;
}

/** Options with every default applied; internal code only sees this. */
export interface ResolvedOptions {
  mqtt: { kind: "client"; client: MqttClient } | { kind: "options"; options: MqttConnectOptions };
  closeClient: boolean;
  allow: AllowOptions;
  decode: "auto" | "json" | "text" | "binary" | Decoder;
  echo: boolean;
  retained: boolean;
  events: EventNames;
  roomPrefix: string;
  ackTimeoutMs: number;
  limits: Limits;
  reconnect: ReconnectOptions;
  topology: Topology;
  cluster: ClusterOptions;
  delivery: DeliveryOptions;
  recovery: RecoveryOptions | false;
}

/** The default reconnect backoff. */
export const DEFAULT_RECONNECT: Readonly<ReconnectOptions> = Object.freeze({
  minDelayMs: 1000,
  maxDelayMs: 30_000,
  jitter: 0.2,
});

/** The default publish/subscribe acknowledgement timeout. */
export const DEFAULT_ACK_TIMEOUT_MS = 10_000;

const DECODERS = ["auto", "json", "text", "binary"] as const;

/**
 * The options `mqttBridge()` knows: an unknown key is refused (a typo would otherwise be ignored).
 * A new top-level option is one line here (the type makes it required); keys of the nested
 * objects come from their default tables. `mqtt` is not checked: MQTT.js options are open-ended.
 */
const TOP_LEVEL: Record<keyof MqttBridgeOptions, true> = {
  mqtt: true,
  closeClient: true,
  allow: true,
  decode: true,
  echo: true,
  retained: true,
  events: true,
  roomPrefix: true,
  ackTimeoutMs: true,
  limits: true,
  reconnect: true,
  topology: true,
  cluster: true,
  delivery: true,
  recovery: true,
};
const ALLOW: Record<keyof AllowOptions, true> = {
  subscribe: true,
  publish: true,
  retain: true,
  request: true,
};
const KNOWN_KEYS: KnownKeys = {
  keys: Object.keys(TOP_LEVEL),
  nested: {
    allow: Object.keys(ALLOW),
    events: Object.keys(DEFAULT_EVENTS),
    limits: Object.keys(DEFAULT_LIMITS),
    reconnect: Object.keys(DEFAULT_RECONNECT),
    cluster: Object.keys(DEFAULT_CLUSTER),
    delivery: Object.keys(DEFAULT_DELIVERY),
    recovery: Object.keys(DEFAULT_RECOVERY),
  },
};

/** Event names Socket.IO reserves: emitting one throws. */
const RESERVED_EVENTS = new Set([
  "connect",
  "connect_error",
  "disconnect",
  "disconnecting",
  "newListener",
  "removeListener",
]);

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isMqttClient(v: unknown): v is MqttClient {
  return (
    isObject(v) &&
    typeof v.publish === "function" &&
    typeof v.subscribe === "function" &&
    typeof v.end === "function" &&
    typeof v.on === "function"
  );
}

/** `obj[key]` when it is the object's own property (never one inherited, e.g. `__proto__`). */
export function own<T extends object, K extends keyof T>(obj: T, key: K): T[K] | undefined {
  return Object.prototype.hasOwnProperty.call(obj, key) ? obj[key] : undefined;
}

function bool(name: string, v: unknown, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (typeof v !== "boolean") throw optionError(name, "a boolean", v);
  return v;
}

/** The longest delay `setTimeout` honours; a larger one fires after 1 ms. */
const MAX_TIMER_MS = 2_147_483_647;

function integer(name: string, v: unknown, dflt: number, min: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > MAX_TIMER_MS) {
    throw optionError(name, `an integer from ${min} to ${MAX_TIMER_MS}`, v);
  }
  return v;
}

function rule(name: string, v: unknown): void {
  if (v === undefined || typeof v === "function") return;
  if (!Array.isArray(v) || !Array.from(v).every((f) => typeof f === "string" && f.length > 0)) {
    throw optionError(name, "an array of topic filters or a function", v);
  }
}

function resolveMqtt(v: unknown): ResolvedOptions["mqtt"] {
  if (v === undefined) return { kind: "options", options: { url: "mqtt://localhost:1883" } };
  if (typeof v === "string") {
    if (!/^(mqtts?|wss?|tcp|tls|ssl|wxs?|alis):\/\//.test(v)) {
      throw optionError("mqtt", "a broker URL such as mqtt://host:1883", v);
    }
    return { kind: "options", options: { url: v } };
  }
  if (isMqttClient(v)) return { kind: "client", client: v };
  if (isObject(v)) return { kind: "options", options: { ...v } };
  throw optionError("mqtt", "a broker URL, MQTT.js options or an MqttClient", v);
}

/**
 * Validates the user's options and applies the defaults, once. Throws a `TypeError` naming the
 * option for any programmer error.
 */
export function resolveOptions(opts: MqttBridgeOptions = {}): ResolvedOptions {
  if (!isObject(opts)) throw optionError("options", "an object", opts);
  checkKnownKeys(opts, KNOWN_KEYS);
  const allow = own(opts, "allow") ?? {};
  if (!isObject(allow)) throw optionError("allow", "an object", allow);
  const allowResolved: AllowOptions = {};
  for (const key of Object.keys(ALLOW) as (keyof AllowOptions)[]) {
    const r = own(allow as AllowOptions, key);
    rule(`allow.${key}`, r);
    if (r !== undefined) (allowResolved as Record<string, unknown>)[key] = r;
  }

  const decode = own(opts, "decode") ?? "auto";
  if (typeof decode !== "function" && !(DECODERS as readonly unknown[]).includes(decode)) {
    throw optionError("decode", `one of ${DECODERS.join(", ")} or a function`, decode);
  }

  const eventsIn = own(opts, "events") ?? {};
  if (!isObject(eventsIn)) throw optionError("events", "an object", eventsIn);
  const events: EventNames = { ...DEFAULT_EVENTS };
  for (const key of Object.keys(DEFAULT_EVENTS) as (keyof EventNames)[]) {
    const name = own(eventsIn as Partial<EventNames>, key);
    if (name === undefined) continue;
    if (typeof name !== "string" || name.length === 0 || RESERVED_EVENTS.has(name)) {
      throw optionError(
        `events.${key}`,
        "a non-empty string that Socket.IO does not reserve",
        name,
      );
    }
    events[key] = name;
  }
  if (new Set(Object.values(events)).size !== Object.keys(DEFAULT_EVENTS).length) {
    throw optionError("events", "distinct event names", events);
  }

  const roomPrefix = own(opts, "roomPrefix") ?? "mqtt:";
  if (typeof roomPrefix !== "string" || roomPrefix.length === 0) {
    throw optionError("roomPrefix", "a non-empty string", roomPrefix);
  }

  const limitsIn = own(opts, "limits") ?? {};
  if (!isObject(limitsIn)) throw optionError("limits", "an object", limitsIn);
  const limits = { ...DEFAULT_LIMITS };
  for (const key of Object.keys(DEFAULT_LIMITS) as (keyof Limits)[]) {
    const min = key === "offlineQueue" || key === "publishQueue" || key === "subscribeQos" ? 0 : 1;
    limits[key] = integer(`limits.${key}`, own(limitsIn as Partial<Limits>, key), limits[key], min);
  }
  if (limits.subscribeQos > 2)
    throw optionError("limits.subscribeQos", "0, 1 or 2", limits.subscribeQos);
  if (limits.topicBytes > 65_535)
    throw optionError("limits.topicBytes", "<= 65535", limits.topicBytes);

  const reconnectIn = own(opts, "reconnect") ?? {};
  if (!isObject(reconnectIn)) throw optionError("reconnect", "an object", reconnectIn);
  const r = reconnectIn as Partial<ReconnectOptions>;
  const reconnect: ReconnectOptions = {
    minDelayMs: integer(
      "reconnect.minDelayMs",
      own(r, "minDelayMs"),
      DEFAULT_RECONNECT.minDelayMs,
      1,
    ),
    maxDelayMs: integer(
      "reconnect.maxDelayMs",
      own(r, "maxDelayMs"),
      DEFAULT_RECONNECT.maxDelayMs,
      1,
    ),
    jitter: DEFAULT_RECONNECT.jitter,
  };
  const jitter = own(r, "jitter");
  if (jitter !== undefined) {
    if (typeof jitter !== "number" || !(jitter >= 0 && jitter <= 1)) {
      throw optionError("reconnect.jitter", "a number between 0 and 1", jitter);
    }
    reconnect.jitter = jitter;
  }
  if (reconnect.maxDelayMs < reconnect.minDelayMs) {
    throw optionError("reconnect.maxDelayMs", ">= reconnect.minDelayMs", reconnect.maxDelayMs);
  }

  const topology = own(opts, "topology") ?? "embedded";
  if (topology !== "embedded" && topology !== "forward" && topology !== "worker") {
    throw optionError("topology", '"embedded", "forward" or "worker"', topology);
  }
  if (topology === "forward" && own(opts, "mqtt") !== undefined) {
    throw optionError(
      "mqtt",
      'absent with topology "forward" (the worker holds the connection)',
      "set",
    );
  }
  const clusterIn = own(opts, "cluster") ?? {};
  if (!isObject(clusterIn)) throw optionError("cluster", "an object", clusterIn);
  const cluster = { ...DEFAULT_CLUSTER };
  for (const key of Object.keys(DEFAULT_CLUSTER) as (keyof ClusterOptions)[]) {
    cluster[key] = integer(
      `cluster.${key}`,
      own(clusterIn as Partial<ClusterOptions>, key),
      cluster[key],
      1,
    );
  }

  return {
    topology,
    cluster,
    delivery: resolveDelivery(own(opts, "delivery")),
    recovery: resolveRecovery(own(opts, "recovery")),
    mqtt: resolveMqtt(own(opts, "mqtt")),
    closeClient: bool("closeClient", own(opts, "closeClient"), false),
    allow: allowResolved,
    decode: decode as ResolvedOptions["decode"],
    echo: bool("echo", own(opts, "echo"), true),
    retained: bool("retained", own(opts, "retained"), true),
    events,
    roomPrefix,
    ackTimeoutMs: integer("ackTimeoutMs", own(opts, "ackTimeoutMs"), DEFAULT_ACK_TIMEOUT_MS, 1),
    limits,
    reconnect,
  };
}
