import type { Histogram } from "./metrics-histogram";
import type { ErrorCode } from "./protocol";
import type { BridgeStats } from "./stats";

/**
 * The content type of {@link renderMetrics}' text: the Prometheus text exposition format, version
 * 0.0.4 (what a `/metrics` route answers with; prom-client's `register.contentType` by default).
 * @see https://prometheus.io/docs/instrumenting/exposition_formats/
 */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** The prefix of every metric name of the bridge. */
export const METRICS_PREFIX = "socketio_mqtt_bridge_";

type Scalar = number | boolean | string | undefined;

/**
 * The paths (`"messages.in"`) of the fields of `T` that become metrics: every scalar, and each
 * field keyed by error code as a whole (one sample per code, the code as a label).
 */
export type StatsPath<T = BridgeStats, P extends string = ""> = {
  [K in keyof T & string]: T[K] extends Scalar
    ? `${P}${K}`
    : T[K] extends Record<ErrorCode, number>
      ? `${P}${K}`
      : StatsPath<T[K], `${P}${K}.`>;
}[keyof T & string];

/** A metric family: one name, one type, one help text (the name without {@link METRICS_PREFIX}). */
export interface MetricFamily {
  name: string;
  type: "counter" | "gauge";
  help: string;
}

/** How one field of `stats()` is exported. */
export type MetricMapping =
  /** A number (or a boolean, as 1 / 0) as one sample of `family`, with `labels`; none while undefined. */
  | { family: MetricFamily; labels?: Readonly<Record<string, string>> }
  /** A record of numbers: one sample per key, the key as the label `byKey`. */
  | { family: MetricFamily; byKey: string }
  /** A string as the label `info` of a sample of value 1 (an info metric); none while undefined. */
  | { family: MetricFamily; info: string }
  /** Not exported, and why. */
  | { skip: string };

const family = (type: MetricFamily["type"], name: string, help: string): MetricFamily => ({
  type,
  name,
  help,
});
const counter = (name: string, help: string) => family("counter", name, help);
const gauge = (name: string, help: string) => family("gauge", name, help);

// families with several fields of stats(), told apart by a label
const messagesSkipped = counter(
  "messages_skipped_total",
  "Broker messages not emitted, by reason: another copy of one already delivered (overlapping subscriptions), no live room wanted the topic, a retained replay identical to the cached state.",
);
const recoveredMessages = counter(
  "recovered_messages_total",
  "Missed messages of sockets restored by Socket.IO's connection state recovery: replayed (their room is still allowed) or withheld (it is not).",
);
const publishes = counter(
  "publishes_total",
  "Publishes received: mqtt.publish events of sockets, and server-side bridge.publish calls.",
);
const requests = counter("requests_total", "MQTT 5 requests received, by where they came from.");
const requestOutcomes = counter(
  "request_outcomes_total",
  "MQTT 5 requests ended: answered by a reply, timed out, or given up (socket gone, aborted).",
);
const slowSkipped = counter(
  "slow_socket_messages_skipped_total",
  "Messages a slow socket will never see, by policy: conflate (a newer message of the topic replaced it), drop (not sent while slow).",
);
const recoverySubscribes = counter(
  "recovery_subscribes_total",
  "Subscribes with since: recovered (the missed messages were sent) or failed (the socket got the retained state instead).",
);

/**
 * Every field of `stats()` and its metric, or why it has none. The type lists every field, so a
 * new field of `BridgeStats` does not compile until it is given a metric here (or a reason not
 * to). Families are written in the order of their first field.
 */
export const METRIC_TABLE: { readonly [P in StatsPath]: MetricMapping } = {
  connected: {
    family: gauge(
      "broker_connected",
      "1 while the broker connection is up (on a web node of the worker topology: while a worker reports one), else 0.",
    ),
  },
  protocolVersion: {
    family: gauge(
      "broker_protocol_version",
      "The MQTT protocol version in use: 5, or 4 for 3.1.1 (no sample before the first connection).",
    ),
  },
  clientId: {
    family: gauge("broker_info", "The MQTT client id of this process's broker connection."),
    info: "client_id",
  },
  connects: {
    family: counter("broker_connects_total", "Successful broker connections, the first included."),
  },
  disconnects: {
    family: counter("broker_disconnects_total", "Times the broker connection went offline."),
  },
  brokerSubscriptions: {
    family: gauge("broker_subscriptions", "Broker subscriptions confirmed by SUBACK now."),
  },
  rooms: { family: gauge("rooms", "Live bridged rooms (rooms routed to at least one filter).") },
  inFlight: {
    family: gauge(
      "publishes_in_flight",
      "Socket publishes waiting for the broker's acknowledgement.",
    ),
  },
  "messages.in": {
    family: counter(
      "broker_messages_total",
      "PUBLISH packets received from the broker (every copy).",
    ),
  },
  "messages.delivered": {
    family: counter("messages_delivered_total", "Broker messages emitted to at least one room."),
  },
  "messages.duplicates": { family: messagesSkipped, labels: { reason: "duplicate" } },
  "messages.unrouted": { family: messagesSkipped, labels: { reason: "unrouted" } },
  "messages.retainedUnchanged": {
    family: messagesSkipped,
    labels: { reason: "retained_unchanged" },
  },
  "messages.decodeFallbacks": {
    family: counter(
      "messages_decode_fallbacks_total",
      "Payloads that did not fit the decode format and were passed on as bytes.",
    ),
  },
  "retained.cached": {
    family: gauge("retained_topics", "Topics in the last-known-state (retained) cache."),
  },
  "retained.replayed": {
    family: counter(
      "retained_messages_replayed_total",
      "Cached retained messages sent to joining sockets.",
    ),
  },
  "retained.evicted": {
    family: counter(
      "retained_messages_evicted_total",
      "Retained cache entries dropped because the cache was full (limits.retainedMessages, limits.retainedBytes).",
    ),
  },
  "recovered.sockets": {
    family: counter(
      "recovered_sockets_total",
      "Sockets restored by Socket.IO's connection state recovery.",
    ),
  },
  "recovered.replayed": { family: recoveredMessages, labels: { outcome: "replayed" } },
  "recovered.withheld": { family: recoveredMessages, labels: { outcome: "withheld" } },
  "recovered.revoked": {
    family: counter(
      "recovered_rooms_revoked_total",
      "Rooms recovered sockets had to leave because allow.subscribe no longer allows them.",
    ),
  },
  "publishes.received": { family: publishes, labels: { source: "socket" } },
  "publishes.acked": {
    family: counter(
      "publishes_acked_total",
      "Socket publishes acknowledged by the broker (QoS 0: written).",
    ),
  },
  "publishes.server": { family: publishes, labels: { source: "server" } },
  "subscribes.ok": {
    family: counter("subscribes_total", "mqtt.subscribe requests of sockets that succeeded."),
  },
  "subscribes.unsubscribes": {
    family: counter("unsubscribes_total", "mqtt.unsubscribe requests of sockets."),
  },
  "subscribes.refused": {
    family: counter(
      "broker_subscribes_refused_total",
      "Broker SUBSCRIBEs the broker refused (first ones, restores after a reconnect, retries).",
    ),
  },
  "subscribes.retried": {
    family: counter(
      "broker_subscribes_retried_total",
      "Broker SUBSCRIBEs sent again, with backoff, after a timeout or a refusal.",
    ),
  },
  "subscribes.revoked": {
    family: counter(
      "subscription_revocations_total",
      "Client subscriptions bridge.reauthorize() took away (allow.subscribe no longer allows them).",
    ),
  },
  "subscribes.evicted": {
    family: counter(
      "subscription_evictions_total",
      "Sockets taken out of a client-subscription room because the broker refused its filter.",
    ),
  },
  rejected: {
    family: counter("refusals_total", "Socket requests refused, by error code."),
    byKey: "code",
  },
  noAckCallback: {
    family: counter(
      "acks_without_callback_total",
      "Acknowledgements the bridge could not send because the client gave no callback.",
    ),
  },
  "delivery.slow": { family: gauge("slow_sockets", "Sockets of this process that are slow now.") },
  "delivery.conflated": { family: slowSkipped, labels: { policy: "conflate" } },
  "delivery.dropped": { family: slowSkipped, labels: { policy: "drop" } },
  "delivery.disconnected": {
    family: counter(
      "slow_sockets_disconnected_total",
      "Sockets disconnected for being slow (the disconnect policy, or past a bound on what waits).",
    ),
  },
  "delivery.frames": {
    family: counter(
      "delivery_frames_total",
      "Frames handed to Socket.IO for live messages (each encoded once for all its sockets).",
    ),
  },
  "delivery.messages": {
    family: counter("delivery_frame_messages_total", "Messages those frames carried."),
  },
  "delivery.messagesPerFrame": {
    skip: "a ratio of two counters: rate(delivery_frame_messages_total) / rate(delivery_frames_total)",
  },
  "requests.received": { family: requests, labels: { source: "socket" } },
  "requests.server": { family: requests, labels: { source: "server" } },
  "requests.sent": {
    family: counter("requests_sent_total", "MQTT 5 requests published to the broker."),
  },
  "requests.answered": { family: requestOutcomes, labels: { outcome: "answered" } },
  "requests.timedOut": { family: requestOutcomes, labels: { outcome: "timed_out" } },
  "requests.cancelled": { family: requestOutcomes, labels: { outcome: "cancelled" } },
  "requests.ignored": {
    family: counter(
      "request_replies_ignored_total",
      "Messages on the response topic that answered no request (unknown, late, repeated or spoofed correlation data).",
    ),
  },
  "requests.inFlight": {
    family: gauge("requests_in_flight", "MQTT 5 requests waiting for their reply now."),
  },
  "requests.responseTopic": {
    family: gauge("request_info", "The response topic of this bridge (once it sent a request)."),
    info: "response_topic",
  },
  "recovery.epoch": {
    family: gauge(
      "recovery_info",
      "The epoch of the missed-message stream this process numbers (none with recovery off, and on web nodes of the worker topology).",
    ),
    info: "epoch",
  },
  "recovery.offset": {
    family: gauge("recovery_offset", "The offset of the last message numbered in the stream."),
  },
  "recovery.messages": {
    family: gauge("recovery_messages", "Messages kept for missed-message recovery now."),
  },
  "recovery.bytes": {
    family: gauge(
      "recovery_bytes",
      "Bytes the kept messages count (topic + raw payload + 240 each).",
    ),
  },
  "recovery.expired": {
    family: counter(
      "recovery_messages_expired_total",
      "Kept messages let go by the history's bounds (maxMessages, maxBytes, windowMs).",
    ),
  },
  "recovery.recovered": { family: recoverySubscribes, labels: { result: "recovered" } },
  "recovery.failed": { family: recoverySubscribes, labels: { result: "failed" } },
  "recovery.replayed": {
    family: counter("recovery_messages_replayed_total", "Messages sent to recovering sockets."),
  },
  "recovery.lingering": {
    family: gauge(
      "recovery_lingering_subscriptions",
      "Broker subscriptions held now after their last socket disconnected.",
    ),
  },
  "recovery.lingerRefused": {
    family: counter(
      "recovery_linger_refused_total",
      "Broker subscriptions let go at once because maxLingering were held already.",
    ),
  },
  "cluster.invalid": {
    family: counter(
      "cluster_messages_invalid_total",
      "Malformed cluster messages (or parts of them) dropped unread.",
    ),
  },
  "cluster.repaired": {
    family: counter(
      "cluster_pairs_repaired_total",
      "Worker: room/filter pairs a node's snapshot added or removed that its reports had missed.",
    ),
  },
};

/** The broker-to-socket histogram's family (name without {@link METRICS_PREFIX}). */
export const BROKER_TO_SOCKET = {
  name: "broker_to_socket_seconds",
  help: "Time from a broker message reaching the bridge to its frame being handed to Socket.IO (live messages; on a worker of the worker topology, to the frame for the web nodes; nothing on a web node).",
} as const;

/** A HELP text: backslash and line feed escaped. */
function escapeHelp(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

/** A label value: backslash, double quote and line feed escaped. */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** A sample value as the format writes it (Go's ParseFloat syntax). */
function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

function sample(name: string, labels: Readonly<Record<string, string>> | undefined, v: number) {
  let text = METRICS_PREFIX + name;
  if (labels) {
    const parts = Object.entries(labels).map(([k, val]) => `${k}="${escapeLabelValue(val)}"`);
    if (parts.length > 0) text += `{${parts.join(",")}}`;
  }
  return `${text} ${formatValue(v)}`;
}

/** The value of `stats` at `path` (`"messages.in"`). */
function read(stats: BridgeStats, path: string): unknown {
  let v: unknown = stats;
  for (const key of path.split(".")) v = (v as Record<string, unknown> | undefined)?.[key];
  return v;
}

/** The samples of one field, by its mapping. */
function samplesOf(m: Exclude<MetricMapping, { skip: string }>, value: unknown): string[] {
  const name = m.family.name;
  if ("byKey" in m) {
    const record = (value ?? {}) as Record<string, number>;
    return Object.keys(record).map((key) => sample(name, { [m.byKey]: key }, record[key]));
  }
  if ("info" in m) {
    return typeof value === "string" ? [sample(name, { [m.info]: value }, 1)] : [];
  }
  if (typeof value === "boolean") return [sample(name, m.labels, value ? 1 : 0)];
  return typeof value === "number" ? [sample(name, m.labels, value)] : [];
}

/**
 * `stats` and the broker-to-socket `histogram` in the Prometheus text exposition format 0.0.4:
 * each family once, its `# HELP` and `# TYPE` before its samples, the text ending in a line feed.
 */
export function renderMetrics(stats: BridgeStats, histogram: Histogram): string {
  const families = new Map<MetricFamily, string[]>();
  for (const [path, m] of Object.entries(METRIC_TABLE)) {
    if ("skip" in m) continue;
    let lines = families.get(m.family);
    if (!lines) families.set(m.family, (lines = []));
    lines.push(...samplesOf(m, read(stats, path)));
  }
  const out: string[] = [];
  for (const [f, lines] of families) {
    out.push(`# HELP ${METRICS_PREFIX}${f.name} ${escapeHelp(f.help)}`);
    out.push(`# TYPE ${METRICS_PREFIX}${f.name} ${f.type}`);
    out.push(...lines);
  }
  const h = BROKER_TO_SOCKET.name;
  out.push(`# HELP ${METRICS_PREFIX}${h} ${escapeHelp(BROKER_TO_SOCKET.help)}`);
  out.push(`# TYPE ${METRICS_PREFIX}${h} histogram`);
  const cumulative = histogram.cumulative();
  histogram.bounds.forEach((le, i) => {
    out.push(sample(`${h}_bucket`, { le: formatValue(le) }, cumulative[i]));
  });
  out.push(sample(`${h}_bucket`, { le: "+Inf" }, cumulative[cumulative.length - 1]));
  out.push(sample(`${h}_sum`, undefined, histogram.sum));
  out.push(sample(`${h}_count`, undefined, histogram.count));
  return `${out.join("\n")}\n`;
}
