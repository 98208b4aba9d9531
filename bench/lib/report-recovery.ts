/**
 * The recovery bench of issue 13 in the report: its tables, its targets (met or not) and its
 * RESULTS.md section (bench/recovery.ts).
 */
import type { RecoveryPart, RecoveryResult } from "../recovery";
import type { CpuCell } from "../recovery-cpu";
import { CPU_NS } from "../recovery-cpu";
import type { MemoryPoint, MemoryRun } from "../recovery-memory";
import { MEMORY } from "../recovery-memory";
import type { StormRun } from "../recovery-storm";
import { STORM } from "../recovery-storm";
import type { Config } from "./config";
import { MATCHED_LOAD } from "./config";
import type { RecoveryMode } from "./recovery-bridge";
import { RECOVERY_MODES } from "./recovery-bridge";
import type { PhaseResult } from "./rounds";
import { fmt, fmtMicros, markdownTable, median, textTable } from "./stats";
import type { Target } from "./targets";
import { ratio, ratioTarget, verdict } from "./targets";

type Table = [string[], string[][]];

/** Goals of issue 13. */
export const RECOVERY_GOALS = { stormSeconds: 5, cpuRatio: 1.05 } as const;

const MODE_NAMES: Record<RecoveryMode, string> = {
  on: "on (defaults)",
  off: "`recovery: false`",
};
const x = (v: number | undefined) => (v === undefined ? "n/a" : `${v.toFixed(2)}×`);
const secs = (v: number | undefined) => (v === undefined ? "–" : `${fmt(v, 2)} s`);
const mib = (bytes: number) => fmt(bytes / 1_048_576, 1);
const sumOf = <T>(xs: T[], f: (t: T) => number) => xs.reduce((t, v) => t + f(v), 0);

const stormRuns = (r: RecoveryResult, mode: RecoveryMode) =>
  r.storm.runs.filter((s) => s.mode === mode);

/** The slowest round's settle time (undefined when a round never settled). */
function slowest(runs: StormRun[]): number | undefined {
  if (runs.length === 0 || runs.some((s) => s.doneSeconds === undefined)) return undefined;
  return Math.max(...runs.map((s) => s.doneSeconds!));
}

const range = (vs: number[], f: (v: number) => string) =>
  vs.length ? `${f(Math.min(...vs))}–${f(Math.max(...vs))}` : "–";

/** One row per mode, summed (counts) or the worst / median (times) over the rounds. */
export function stormTable(r: RecoveryResult): Table {
  const head = [
    "recovery",
    "sockets × missed messages",
    "all settled after (slowest round)",
    "rounds (min–max)",
    "median socket (median round)",
    "all connected after",
    "all restored after",
    "restores: recovered / not",
    "missed messages got per socket",
    "missed messages not got",
    "duplicated",
    "out of order",
    "sockets live after",
    "bridge's replays: missed / retained messages",
    "server CPU ms, median round (bridge + Mosquitto)",
    "client CPU ms, median round",
    "bridge RSS at start (median) → peak (max), MiB",
    "bridge VmHWM MiB",
    "helper errors",
  ];
  const rows = RECOVERY_MODES.flatMap((mode) => {
    const runs = stormRuns(r, mode);
    if (runs.length === 0) return [];
    const sockets = sumOf(runs, (s) => s.sockets);
    const got = sumOf(runs, (s) => s.got);
    const times = runs.flatMap((s) => (s.doneSeconds === undefined ? [] : [s.doneSeconds]));
    const worst = (f: (s: StormRun) => number | undefined) => {
      const vs = runs.map(f);
      return vs.some((v) => v === undefined) ? "–" : secs(Math.max(...vs.map((v) => v!)));
    };
    const server = median(runs.map((s) => s.serverCpuMs));
    const broker = median(runs.map((s) => s.brokerCpuMs));
    const errors: Record<string, number> = {};
    for (const s of runs)
      for (const [k, v] of Object.entries(s.errors)) errors[k] = (errors[k] ?? 0) + v;
    return [
      [
        MODE_NAMES[mode],
        `${fmt(r.storm.sockets)} × ${fmt(r.storm.missed)}`,
        slowest(runs) === undefined ? `not within ${STORM.settleMs / 1000} s` : secs(slowest(runs)),
        range(times, (v) => fmt(v, 2)),
        secs(median(runs.map((s) => s.medianDoneSeconds ?? NaN))),
        worst((s) => s.connectedSeconds),
        worst((s) => s.restoredSeconds),
        `${fmt(sumOf(runs, (s) => s.recovered))} / ${fmt(sumOf(runs, (s) => s.notRecovered))}`,
        `${fmt(Math.min(...runs.map((s) => s.gotMin)))}–${fmt(Math.max(...runs.map((s) => s.gotMax)))}`,
        fmt(sockets * r.storm.missed - got),
        fmt(sumOf(runs, (s) => s.duplicates)),
        fmt(sumOf(runs, (s) => s.disordered)),
        `${fmt(sumOf(runs, (s) => s.liveComplete))} of ${fmt(sockets)}`,
        `${fmt(sumOf(runs, (s) => s.bridge.replayed))} / ${fmt(sumOf(runs, (s) => s.bridge.retainedReplayed))}`,
        `${fmt(server + broker)} (${fmt(server)} + ${fmt(broker)})`,
        fmt(median(runs.map((s) => s.clientCpuMs))),
        `${fmt(median(runs.map((s) => s.rssStartMiB)), 0)} → ${fmt(Math.max(...runs.map((s) => s.rssPeakMiB)), 0)}`,
        fmt(Math.max(...runs.map((s) => s.hwmMiB)), 0),
        Object.keys(errors).length
          ? Object.entries(errors)
              .map(([k, v]) => `${k} ${v}`)
              .join(", ")
          : "0",
      ],
    ];
  });
  return [head, rows];
}

const runOf = (r: RecoveryResult, mode: RecoveryMode): MemoryRun | undefined =>
  r.memory.runs.find((m) => m.mode === mode);
const growth = (run: MemoryRun | undefined, i: number, k: "heapUsed" | "rss") =>
  run && run.points[i] ? run.points[i][k] - run.points[0][k] : undefined;

/** The history's cost after each step: growth with recovery on − growth with it off. */
function historyCost(r: RecoveryResult, i: number, k: "heapUsed" | "rss"): number | undefined {
  const on = growth(runOf(r, "on"), i, k);
  const off = growth(runOf(r, "off"), i, k);
  return on === undefined || off === undefined ? undefined : on - off;
}

/** Both modes: memory at each step, after full GCs. */
export function memoryTable(r: RecoveryResult): Table {
  const steps = Array.from({ length: MEMORY.steps + 1 }, (_, i) => fmt(i * MEMORY.messages));
  const head = [
    "recovery",
    `heap used, MiB, after ${steps.join(" / ")} messages`,
    `RSS, MiB, after ${steps.join(" / ")}`,
    "messages kept (bytes counted, MiB) at the end",
  ];
  const rows = RECOVERY_MODES.flatMap((mode) => {
    const run = runOf(r, mode);
    if (!run) return [];
    const series = (k: keyof MemoryPoint) => run.points.map((p) => mib(p[k])).join(" / ");
    const last = run.points[run.points.length - 1];
    return [
      [
        MODE_NAMES[mode] + (run.collected ? "" : " (no GC: --expose-gc missing)"),
        series("heapUsed"),
        series("rss"),
        `${fmt(last.kept)} (${mib(last.keptBytes)})`,
      ],
    ];
  });
  return [head, rows];
}

/** The history's cost: recovery on − off, per step. */
export function historyTable(r: RecoveryResult): Table {
  const head = ["recovery on − off", "heap used", "per message kept", "RSS", "bytes counted"];
  const rows: string[][] = [];
  const on = runOf(r, "on");
  for (let i = 1; i <= MEMORY.steps; i++) {
    const heap = historyCost(r, i, "heapUsed");
    const rss = historyCost(r, i, "rss");
    const kept = on?.points[i]?.kept ?? 0;
    rows.push([
      `after ${fmt(i * MEMORY.messages)} messages (${fmt(kept)} kept)`,
      heap === undefined ? "–" : `${mib(heap)} MiB`,
      heap === undefined || kept === 0 ? "–" : `${fmt(heap / kept)} bytes`,
      rss === undefined ? "–" : `${mib(rss)} MiB`,
      on?.points[i] ? `${mib(on.points[i].keptBytes)} MiB` : "–",
    ]);
  }
  return [head, rows];
}

const cellOf = (r: RecoveryResult, mode: RecoveryMode, n: number): CpuCell | undefined =>
  r.cpu.cells.find((c) => c.mode === mode && c.n === n);

function cpuSplit(p: PhaseResult): string {
  const per = (us: number) => fmt(us / Math.max(1, p.delivered), 2);
  return `${fmt(p.cpuPerDelivery, 2)} (${per(p.serverCpu)} + ${per(p.brokerCpu)})`;
}

const rounds = (p: PhaseResult) => range(p.roundsCpuPerDelivery, (v) => fmt(v, 2));

/** N × mode: throughput, matched load, fixed rate. */
export function cpuTable(r: RecoveryResult): Table {
  const head = [
    "N",
    "recovery",
    "deliveries/s",
    "server CPU µs/delivery (server + broker)",
    "matched load, deliveries/s",
    "server CPU µs/delivery at matched load (server + broker)",
    "rounds (min–max)",
    "on ÷ off at matched load",
    "fixed rate",
    "server CPU µs/delivery at fixed rate",
    "p50",
    "p99",
    "lost",
  ];
  const rows: string[][] = [];
  for (const n of CPU_NS) {
    const off = cellOf(r, "off", n);
    for (const mode of RECOVERY_MODES) {
      const c = cellOf(r, mode, n);
      if (!c) continue;
      const { throughput: t, matched: m, latency: l } = c;
      const flags = [t.stalled && "stalled", (m.unsustained || l.unsustained) && "unsustained"];
      const f = flags.filter(Boolean);
      rows.push([
        fmt(n),
        MODE_NAMES[mode],
        fmt(t.deliveriesPerSec),
        cpuSplit(t),
        fmt(m.rate * n),
        cpuSplit(m),
        rounds(m),
        mode === "on" ? x(ratio(m.cpuPerDelivery, off?.matched.cpuPerDelivery)) : "1.00×",
        `${fmt(l.rate)} msg/s`,
        cpuSplit(l),
        fmtMicros(l.p50),
        fmtMicros(l.p99),
        fmt(t.lost + m.lost + l.lost) + (f.length ? ` (${f.join(", ")})` : ""),
      ]);
    }
  }
  return [head, rows];
}

/** The targets of issue 13. */
export function recoveryTargets(r: RecoveryResult | undefined): Target[] {
  const on = r ? stormRuns(r, "on") : [];
  const time = slowest(on);
  const sockets = sumOf(on, (s) => s.sockets);
  const size = r ? `${fmt(r.storm.sockets)} sockets × ${fmt(r.storm.missed)} missed messages` : "";
  const lost = r ? sockets * r.storm.missed - sumOf(on, (s) => s.got) : 0;
  const dups = sumOf(on, (s) => s.duplicates);
  const notRecovered = sockets - sumOf(on, (s) => s.recovered);
  const out: Target[] = [
    {
      target: `reconnect storm, ${size}, recovery on: until every socket recovered and is live (slowest of ${on.length} round(s))`,
      measured: on.length ? (time === undefined ? "not all settled" : secs(time)) : "n/a",
      limit: `≤ ${RECOVERY_GOALS.stormSeconds} s`,
      pass: on.length ? time !== undefined && time <= RECOVERY_GOALS.stormSeconds : undefined,
    },
    {
      target:
        "reconnect storm, recovery on: missed messages not got / duplicated / sockets not recovered",
      measured: on.length ? `${fmt(lost)} / ${fmt(dups)} / ${fmt(notRecovered)}` : "n/a",
      limit: "0 / 0 / 0",
      pass: on.length ? lost === 0 && dups === 0 && notRecovered === 0 : undefined,
    },
  ];
  for (const n of CPU_NS) {
    const [a, b] = r ? [cellOf(r, "on", n), cellOf(r, "off", n)] : [];
    const t = ratioTarget(
      `server CPU/delivery at matched load, N=${n}: recovery on ÷ off`,
      ratio(a?.matched.cpuPerDelivery, b?.matched.cpuPerDelivery),
      RECOVERY_GOALS.cpuRatio,
      true,
    );
    if (a && b) {
      t.measured +=
        ` (own throughput: ${x(ratio(a.throughput.cpuPerDelivery, b.throughput.cpuPerDelivery))}; ` +
        `fixed rate: ${x(ratio(a.latency.cpuPerDelivery, b.latency.cpuPerDelivery))})`;
    }
    out.push(t);
  }
  return out;
}

const TARGET_HEAD = ["target", "measured", "limit", "result"];
const targetRows = (r: RecoveryResult) =>
  recoveryTargets(r).map((t) => [t.target, t.measured, t.limit, verdict(t.pass)]);

/** What the run's figures say, in sentences. */
function notes(r: RecoveryResult): string[] {
  const out: string[] = [];
  const [on, off] = [stormRuns(r, "on"), stormRuns(r, "off")];
  if (on.length && off.length) {
    const cpu = (runs: StormRun[]) => median(runs.map((s) => s.serverCpuMs + s.brokerCpuMs));
    const peak = (runs: StormRun[]) => Math.max(...runs.map((s) => s.rssPeakMiB - s.rssStartMiB));
    out.push(
      `In the storm, the bridge and Mosquitto spent ${fmt(cpu(on))} ms of CPU with recovery ` +
        `(${fmt(sumOf(on, (s) => s.bridge.replayed))} messages replayed to ` +
        `${fmt(sumOf(on, (s) => s.bridge.recovered))} recovering sockets) against ` +
        `${fmt(cpu(off))} ms without (${fmt(sumOf(off, (s) => s.bridge.retainedReplayed))} ` +
        `retained messages replayed): ${x(ratio(cpu(on), cpu(off)))}; the bridge's RSS rose at ` +
        `most ${fmt(peak(on), 1)} MiB above its start with recovery and ${fmt(peak(off), 1)} MiB ` +
        `without. Without recovery every socket got the retained state (the last message of each ` +
        `of the ${STORM.topics} topics) and lost the rest of what was published while it was away.`,
    );
  }
  const heap = historyCost(r, 1, "heapUsed");
  const kept = runOf(r, "on")?.points[1];
  if (heap !== undefined && kept && kept.kept > 0) {
    out.push(
      `The history of ${fmt(kept.kept)} messages of ${MEMORY.bytes} bytes costs ` +
        `${mib(heap)} MiB of heap (${fmt(heap / kept.kept)} bytes per message, decoded as sockets ` +
        `get them), ${x(heap / Math.max(1, kept.keptBytes))} the ${mib(kept.keptBytes)} MiB ` +
        "that `recovery.maxBytes` counts for them (topic + raw payload + 240 bytes each).",
    );
  }
  return out;
}

/** The console tables of the recovery bench ("" when it did not run). */
export function recoveryConsole(r: RecoveryResult | undefined): string {
  if (!r) return "";
  return [
    textTable(...memoryTable(r)),
    textTable(...historyTable(r)),
    textTable(...stormTable(r)),
    textTable(...cpuTable(r)),
    textTable(TARGET_HEAD, targetRows(r)),
    ...Object.entries(r.failed).map(([part, why]) => `recovery bench, ${part}: FAILED: ${why}`),
  ].join("\n\n");
}

/** `lines`, or why the part failed. */
const orFailed = (r: RecoveryResult, part: RecoveryPart, lines: string[]) =>
  r.failed[part] === undefined ? lines : [`_failed: ${r.failed[part]}_`];

/** The RESULTS.md section of the recovery bench (nothing when it did not run). */
export function recoverySections(r: RecoveryResult | undefined, cfg: Config): string[] {
  if (!r) return [];
  return [
    "## Recovery: missed messages across reconnects (issue 13)",
    "",
    "Every part runs the bridge with recovery on (the defaults: 120 s, 10,000 messages, 32 MiB) " +
      "and with `recovery: false`, each on a fresh bridge process and Mosquitto (bench/recovery.ts).",
    "",
    "### History memory",
    "",
    `- One socket on the browser helper subscribed to \`bench/recovery/#\`; ` +
      `${fmt(MEMORY.messages)} messages of ${MEMORY.bytes} bytes (JSON, ${MEMORY.topics} topics, ` +
      `QoS 1 to Mosquitto), then ${fmt(MEMORY.messages)} more: the history keeps at most ` +
      `${fmt(MEMORY.messages)} (its default bound), so the second step shows that it stays bounded. ` +
      "The bridge process is started with `--expose-gc` and reports its own " +
      "`process.memoryUsage()` after two full garbage collections at each step. What the history " +
      "costs = growth with recovery on − growth with `recovery: false` (the same messages through " +
      "the same code, not kept) (bench/recovery-memory.ts).",
    "",
    ...orFailed(r, "memory", [
      markdownTable(...memoryTable(r)),
      "",
      markdownTable(...historyTable(r)),
    ]),
    "",
    "### Reconnect storm",
    "",
    `- ${fmt(r.storm.sockets)} sockets (socket.io-client, WebSocket transport) on the browser ` +
      `helper (the tsc build of lib/client.ts, \`batch: true\`) in ${cfg.receivers} client ` +
      "processes (bench/clients/storm.ts), subscribed to `bench/recovery/#`. All drop at once " +
      "(their transport closed, as a network cut); meanwhile " +
      `${fmt(r.storm.missed)} messages of ${STORM.bytes} bytes are published (QoS 1, retained, ` +
      `round-robin over ${STORM.topics} topics) and reach the bridge through its lingering ` +
      "subscription (recovery on) or nobody (off: the subscription went with the last socket); " +
      "then all reconnect in one turn of each client process, and the helper restores each " +
      "subscription with the position its handler reached (`since`). *Settled*: the socket's " +
      "restore was acknowledged and it holds what it should: recovery on, the " +
      `${fmt(r.storm.missed)} missed messages (replayed before the acknowledgement); off, the ` +
      `retained state (the last message of each of the ${STORM.topics} topics). Times count from ` +
      "the reconnect order, on the monotonic clock every process shares; *all … after* are the " +
      "slowest round's. Then " +
      `${STORM.live} live messages: *live after* = sockets that got every one.`,
    "- Per socket the client counts each message of the storm's sequence numbers: *not got*, " +
      "*duplicated* (any second copy) and *out of order* (an `offset` not above the one before, " +
      "across the reconnect). *Bridge's replays*: `stats().recovery.replayed` and " +
      "`stats().retained.replayed` over the storm. **Server CPU** = the bridge process " +
      "(`process.cpuUsage()`) + " +
      "Mosquitto (/proc) from the reconnect order until every socket settled; **client CPU** = the " +
      "client processes' over the same time. **RSS** sampled every 20 ms by the bridge process from " +
      "the reconnect order on; **VmHWM** = its peak over its life (the sockets' first connections " +
      "included). Each round: a fresh bridge per mode, the sockets connect and subscribe, one storm " +
      `unmeasured (warm-up), then the measured one; ${r.storm.rounds} round(s), alternating which ` +
      "mode goes first (bench/recovery-storm.ts).",
    "",
    ...orFailed(r, "storm", [markdownTable(...stormTable(r))]),
    "",
    "### Server CPU per delivery",
    "",
    `- The fan-out workload (one room of N sockets joined with \`mqtt.subscribe\`, one QoS 0 ` +
      "publisher, 100-byte payload) on both bridges, up at once and measured in turn in rounds " +
      `that alternate their order: ${cfg.rounds} round(s); throughput ${cfg.throughputMs / 1000} s ` +
      `per bridge in all (window W), matched load ${cfg.matchedMs / 1000} s (both at ` +
      `${MATCHED_LOAD * 100} % of the slower one's throughput), a fixed rate ` +
      `${cfg.latencyMs / 1000} s. First warm-up rounds on both until the bridge with recovery keeps ` +
      `10,000 messages (${CPU_NS.map((n) => `N = ${n}: ${fmt(r.cpu.kept[n] ?? 0)}`).join(", ")}), ` +
      "so that each measured message is also numbered, kept and pushes the oldest one out. " +
      "Server CPU = bridge process + Mosquitto, as in the fan-out (bench/recovery-cpu.ts).",
    "",
    ...orFailed(r, "cpu", [markdownTable(...cpuTable(r))]),
    "",
    "### Targets of recovery (issue 13)",
    "",
    markdownTable(TARGET_HEAD, targetRows(r)),
    "",
    ...notes(r).map((n) => `- ${n}`),
    "",
  ];
}
