/**
 * The delivery benches of issue 12 in the report: their tables, their targets (met or not) and
 * their RESULTS.md sections (bench/batching.ts, bench/stalled.ts).
 */
import type { BatchSystem, BatchingResult, BurstCell, DeliveryPhase } from "../batching";
import { BATCH_SYSTEMS, BATCH_SYSTEM_NAMES, BATCH_WINDOW, BURSTS } from "../batching";
import type { StallResult, StallRun } from "../stalled";
import { STALL } from "../stalled";
import type { Config } from "./config";
import { MATCHED_LOAD } from "./config";
import { fmt, fmtMicros, markdownTable, textTable } from "./stats";
import type { Target } from "./targets";
import { ratio, ratioTarget, verdict } from "./targets";

/** The delivery benches' results of a run (either may be missing). */
export interface DeliveryResults {
  batching?: BatchingResult;
  stalled?: StallResult;
}

type Table = [string[], string[][]];

const x = (v: number | undefined) => (v === undefined ? "n/a" : `${v.toFixed(2)}×`);
const perFrame = (p: DeliveryPhase | undefined) =>
  p?.messagesPerFrame === undefined ? "–" : fmt(p.messagesPerFrame, 2);
const flags = (...phases: (DeliveryPhase | undefined)[]) => {
  const f = [
    phases.some((p) => p?.stalled) ? "stalled" : "",
    phases.some((p) => p?.unsustained) ? "unsustained" : "",
  ].filter(Boolean);
  return f.length ? ` (${f.join(", ")})` : "";
};

function cellOf(b: BatchingResult, system: BatchSystem, burst: number): BurstCell | undefined {
  return b.cells.find((c) => c.system === system && c.burst === burst);
}

const latencyOf = (b: BatchingResult, system: BatchSystem) =>
  b.latency.find((l) => l.system === system);

/** "total (server + broker)" CPU µs per delivery. */
function cpuSplit(p: DeliveryPhase): string {
  const per = (us: number) => fmt(us / Math.max(1, p.delivered), 2);
  return `${fmt(p.cpuPerDelivery, 2)} (${per(p.serverCpu)} + ${per(p.brokerCpu)})`;
}

function range(p: DeliveryPhase): string {
  const v = p.roundsCpuPerDelivery;
  return `${fmt(Math.min(...v), 2)}–${fmt(Math.max(...v), 2)}`;
}

/** Bursts × systems: throughput and matched load. */
export function batchingTable(b: BatchingResult): Table {
  const head = [
    "burst",
    "system",
    "deliveries/s",
    "server CPU µs/delivery (server + broker)",
    "rounds (min–max)",
    "messages/frame",
    "matched load, deliveries/s",
    "server CPU µs/delivery at matched load (server + broker)",
    "÷ raw Socket.IO",
    "messages/frame at matched load",
    "write syscalls/delivery at matched load",
    "client CPU µs/delivery at matched load",
    "lost",
  ];
  const rows: string[][] = [];
  for (const burst of BURSTS) {
    const raw = cellOf(b, "raw", burst);
    for (const system of BATCH_SYSTEMS) {
      const c = cellOf(b, system, burst);
      if (!c) continue;
      const t = c.throughput;
      const m = c.matched;
      rows.push([
        fmt(burst),
        BATCH_SYSTEM_NAMES[system],
        fmt(t.deliveriesPerSec),
        cpuSplit(t),
        range(t),
        perFrame(t),
        fmt(m.rate * b.n),
        cpuSplit(m),
        x(ratio(m.cpuPerDelivery, raw?.matched.cpuPerDelivery)),
        perFrame(m),
        fmt(m.writesPerDelivery, 3),
        fmt(m.clientCpuPerDelivery, 2),
        fmt(t.lost + m.lost) + flags(t, m),
      ]);
    }
  }
  return [head, rows];
}

/** One message at a time at a fixed rate: CPU per delivery and latency. */
export function batchingLatencyTable(b: BatchingResult): Table {
  const off = latencyOf(b, "bridge-nobatch");
  const head = [
    "system",
    "rate",
    "server CPU µs/delivery (server + broker)",
    "÷ bridge, batching off",
    "client CPU µs/delivery",
    "messages/frame",
    "p50",
    "p99",
    "max",
    "lost",
  ];
  const rows = BATCH_SYSTEMS.flatMap((system) => {
    const l = latencyOf(b, system);
    if (!l) return [];
    return [
      [
        BATCH_SYSTEM_NAMES[system],
        `${fmt(l.rate)} msg/s × ${fmt(b.n)}`,
        cpuSplit(l),
        x(ratio(l.cpuPerDelivery, off?.cpuPerDelivery)),
        fmt(l.clientCpuPerDelivery, 2),
        perFrame(l),
        fmtMicros(l.p50),
        fmtMicros(l.p99),
        fmtMicros(l.max),
        fmt(l.lost) + flags(l),
      ],
    ];
  });
  return [head, rows];
}

const mib = (v: number) => fmt(v, 1);

/** All reading against 10 stalled. */
export function stalledTable(s: StallResult): Table {
  const head = [
    "sockets not reading",
    "deliveries/s to the readers",
    "server CPU µs/delivery (server + broker)",
    "client CPU µs/delivery",
    "readers' p50",
    "readers' p99",
    "readers' max",
    "lost by readers",
    "bridge RSS at start, MiB",
    "RSS growth, MiB",
    "slow at the end",
    "conflated",
    "disconnected",
    "messages/frame",
    "caught up after",
    "stalled sockets that accounted for every message",
  ];
  const rows = s.runs.map((r) => {
    const p = r.phase;
    return [
      `${fmt(r.stalled)} of ${fmt(STALL.n)}`,
      fmt(p.deliveriesPerSec),
      `${fmt(p.cpuPerDelivery, 2)} (${fmt(p.serverCpu / Math.max(1, p.delivered), 2)} + ${fmt(p.brokerCpu / Math.max(1, p.delivered), 2)})`,
      fmt(p.clientCpuPerDelivery, 2),
      fmtMicros(p.p50),
      fmtMicros(p.p99),
      fmtMicros(p.max),
      fmt(p.lost) + flags(p),
      mib(r.rssStartMiB),
      mib(r.rssGrowthMiB),
      fmt(r.delivery.slow),
      fmt(r.delivery.conflated),
      fmt(r.delivery.disconnected),
      fmt(r.delivery.messagesPerFrame, 2),
      r.stalled === 0
        ? "–"
        : r.catchUpSeconds === undefined
          ? "not within 30 s"
          : `${fmt(r.catchUpSeconds, 1)} s`,
      r.stalled === 0 ? "–" : `${fmt(r.accounted)} of ${fmt(r.stalledSockets)}`,
    ];
  });
  return [head, rows];
}

const runOf = (s: StallResult | undefined, stalled: number): StallRun | undefined =>
  s?.runs.find((r) => r.stalled === stalled);

/** The targets of issue 12, from whatever of the two benches ran. */
export function deliveryTargets(d: DeliveryResults): Target[] {
  const out: Target[] = [];
  const b = d.batching;
  for (const burst of [4, 16]) {
    const bridge = b && cellOf(b, "bridge", burst);
    const raw = b && cellOf(b, "raw", burst);
    const t = ratioTarget(
      `server CPU/delivery, bursts of ${burst}, matched load: bridge (batching) ÷ raw Socket.IO`,
      ratio(bridge?.matched.cpuPerDelivery, raw?.matched.cpuPerDelivery),
      0.5,
      true,
    );
    if (bridge && raw) {
      t.measured +=
        ` (own throughput: ${x(ratio(bridge.throughput.cpuPerDelivery, raw.throughput.cpuPerDelivery))}; ` +
        `${perFrame(bridge.matched)} messages/frame)`;
    }
    out.push(t);
  }
  const lat = (system: BatchSystem) => (b ? latencyOf(b, system) : undefined);
  out.push(
    ratioTarget(
      "server CPU/delivery, one message per event-loop turn (fixed rate): bridge (batching) ÷ bridge (batching off)",
      ratio(lat("bridge")?.cpuPerDelivery, lat("bridge-nobatch")?.cpuPerDelivery),
      1.1,
      true,
    ),
    ratioTarget(
      "p99 latency at a fixed rate, N=100: bridge (batching) ÷ hand-written",
      ratio(lat("bridge")?.p99, lat("handwritten")?.p99),
      1.2,
      true,
    ),
  );
  const [calm, stalled] = [runOf(d.stalled, 0), runOf(d.stalled, STALL.stalled)];
  // a run the machine did not carry (the publisher stopped early) measured something else
  const notCarried = (t: Target, runs = [calm, stalled]): Target => {
    const short = runs.filter((r) => r?.phase.unsustained).map((r) => r!.stalled);
    if (short.length === 0) return t;
    const which = short.map((k) => (k ? `${k} not reading` : "all reading")).join(", ");
    return { ...t, measured: `${t.measured} (rate not sustained: ${which})`, pass: undefined };
  };
  out.push(
    notCarried(
      {
        target: `bridge RSS growth over the run, ${STALL.stalled} of ${STALL.n} sockets not reading`,
        measured: stalled
          ? `${mib(stalled.rssGrowthMiB)} MiB` +
            (calm ? ` (all reading: ${mib(calm.rssGrowthMiB)} MiB)` : "")
          : "n/a",
        limit: "≤ 64 MiB",
        pass: stalled ? stalled.rssGrowthMiB <= 64 : undefined,
      },
      [stalled],
    ),
  );
  out.push(
    notCarried(
      ratioTarget(
        `readers' p99 latency: ${STALL.stalled} sockets not reading ÷ all reading`,
        ratio(stalled?.phase.p99, calm?.phase.p99),
        1.2,
        true,
      ),
    ),
  );
  out.push(
    notCarried({
      target: `messages lost by the reading sockets, ${STALL.stalled} not reading`,
      measured: stalled ? fmt(stalled.phase.lost) : "n/a",
      limit: "0",
      pass: stalled ? stalled.phase.lost === 0 : undefined,
    }),
  );
  return out;
}

const TARGET_HEAD = ["target", "measured", "limit", "result"];
const targetRows = (d: DeliveryResults) =>
  deliveryTargets(d).map((t) => [t.target, t.measured, t.limit, verdict(t.pass)]);

/** The console tables of the delivery benches ("" when neither ran). */
export function deliveryConsole(d: DeliveryResults): string {
  if (!d.batching && !d.stalled) return "";
  const parts: string[] = [];
  if (d.batching) {
    parts.push(textTable(...batchingTable(d.batching)), "");
    parts.push(textTable(...batchingLatencyTable(d.batching)), "");
  }
  if (d.stalled) parts.push(textTable(...stalledTable(d.stalled)), "");
  parts.push(textTable(TARGET_HEAD, targetRows(d)));
  return parts.join("\n");
}

function helperNote(b: BatchingResult): string {
  const s = b.sockets;
  return (
    "The bridge's sockets use the browser helper (the tsc build of lib/client.ts, `batch: true`: " +
    "it asks for `mqtt.messages` frames on every connect and hands their messages to its " +
    `handlers one by one); the server batched for ${s.bridge.batching} of ${s.bridge.of} ` +
    `sockets of *bridge, batching* and ${s["bridge-nobatch"].batching} of ` +
    `${s["bridge-nobatch"].of} of *bridge, batching off* (\`delivery.batch: false\`: the helper ` +
    "asks, the server says no). The raw Socket.IO and hand-written servers' sockets listen to " +
    "`mqtt.message` directly (no helper)"
  );
}

function batchingNotes(b: BatchingResult): string[] {
  const at = (burst: number) => cellOf(b, "bridge", burst)?.matched.messagesPerFrame;
  const [m4, m16] = [at(4), at(16)];
  if (m4 === undefined || m16 === undefined) return [];
  return [
    "What the bridge batches is what reached it in one event-loop turn: at matched load its " +
      `frames carried ${fmt(m4, 2)} messages on average for bursts of 4 and ${fmt(m16, 2)} for ` +
      "bursts of 16. A burst leaves the publisher in one TCP write, but Mosquitto forwards each " +
      "PUBLISH in a write of its own (seen with strace), so a burst reaches an idle bridge in " +
      "pieces, and a busy one whole. In the throughput rounds, where up to " +
      `${BATCH_WINDOW} messages are in flight, they carried ` +
      `${perFrame(cellOf(b, "bridge", 1)?.throughput)} even when the publisher sends one message ` +
      "per turn.",
  ];
}

/** The RESULTS.md sections of the delivery benches (nothing when neither ran). */
export function deliverySections(d: DeliveryResults, cfg: Config): string[] {
  if (!d.batching && !d.stalled) return [];
  const b = d.batching;
  const s = d.stalled;
  const lines: string[] = [
    "## Batched frames: one room of 100 sockets, bursts of 1, 4 and 16",
    "",
    "- **Systems** (bench/batching.ts), each with its own server process and fresh Mosquitto, " +
      "up at once and measured in turn in rotating rounds as above: *raw Socket.IO* (one room " +
      "broadcast per message, no MQTT), *bridge, batching* (the default options), *bridge, " +
      "batching off* (`delivery.batch: false`) and the *hand-written bridge*. " +
      (b ? `${helperNote(b)}.` : ""),
    `- **Bursts.** The publisher writes B = 1, 4 or 16 messages back to back in one TCP write, ` +
      "each burst in an event-loop turn of its own. *Throughput*: at most " +
      `${BATCH_WINDOW} messages unacknowledged (${cfg.throughputMs / 1000} s per system and burst ` +
      `in all, after a ${cfg.warmupMs / 1000} s warm-up); *matched load*: every system in bursts ` +
      `of B at ${MATCHED_LOAD * 100} % of the slowest one's throughput (${cfg.matchedMs / 1000} s). ` +
      "*Fixed rate*: one message every 10 ms (10,000 deliveries/s; one message per event-loop " +
      `turn), ${cfg.latencyMs / 1000} s per system, latency over every delivery.`,
    "- **Server CPU µs/delivery** as above (server process + Mosquitto). **Client CPU " +
      "µs/delivery**: the receiver processes' CPU (all their threads, from /proc) ÷ deliveries — " +
      "what the socket.io-client sockets and the helper spend per message. **Messages/frame**: " +
      "the bridge's `stats().delivery` over the phase (messages ÷ frames handed to Socket.IO). " +
      "**Write syscalls/delivery**: the server process's, from /proc/<pid>/io.",
    "",
    b ? markdownTable(...batchingTable(b)) : "_not run_",
    "",
    b ? markdownTable(...batchingLatencyTable(b)) : "",
    "",
    ...(b ? batchingNotes(b).map((n) => `- ${n}`) : []),
    "",
    `## Stalled sockets: ${STALL.stalled} of ${STALL.n} stop reading`,
    "",
    `- **Workload** (bench/stalled.ts): the bridge with its default options (batching, ` +
      '`delivery.slow: "conflate"`, 1 MiB high-water mark), one room of ' +
      `${STALL.n} sockets on the helper with batching, ${fmt(STALL.bytes)}-byte messages at ` +
      `${fmt(STALL.rate)} msg/s over ${STALL.topics} topics (filter \`${STALL.filter}\`), ` +
      `${s ? s.seconds : "–"} s per run after a ${STALL.warmupMs / 1000} s warm-up. Two runs, ` +
      "each on a fresh bridge and Mosquitto: every socket reading, and " +
      `${STALL.stalled} sockets no longer reading (their TCP socket paused after the warm-up).`,
    "- **RSS growth** = peak − start of the bridge process's resident set during the run, " +
      "sampled by the process every 20 ms. **Readers' latency** over every delivery to the " +
      "reading sockets; **lost** = sent × readers − received. *Slow at the end*, *conflated*, " +
      "*disconnected*, *messages/frame*: the bridge's `stats().delivery` over the run. Then the " +
      "stalled sockets read again: *caught up after* = until the bridge counts no slow socket; a " +
      "stalled socket *accounted for every message* when the messages it received plus their " +
      "`skipped` counts equal the messages sent.",
    "- Socket.IO's heartbeat closes a socket that reads nothing after 45 s (25 s ping interval " +
      "+ 20 s timeout); the bench raises the server's `pingTimeout` past the run so that the " +
      "stalled sockets stay connected throughout (the worst case for the bridge's memory).",
    "",
    s ? markdownTable(...stalledTable(s)) : "_not run_",
    "",
    "## Targets of the delivery stage (issue 12)",
    "",
    markdownTable(TARGET_HEAD, targetRows(d)),
    "",
  ];
  return lines;
}
