/** Turns the results of a run into RESULTS.md, results.svg and the console tables. */
import type { BatchingResult } from "../batching";
import type { RecoveryResult } from "../recovery";
import type { ClusterResult } from "../cluster";
import type { StallResult } from "../stalled";
import type { PublishResult } from "../publish";
import type { ParseResult } from "../parse";
import type { RoutingResult } from "../routing";
import type { Config } from "./config";
import { MATCHED_LOAD } from "./config";
import type { CellResult, System } from "./fanout";
import { SYSTEMS, SYSTEM_NAMES } from "./fanout";
import type { PhaseResult } from "./rounds";
import type { MachineInfo } from "./proc";
import { fmt, fmtMicros, markdownTable, textTable } from "./stats";
import { deliveryConsole, deliverySections } from "./report-delivery";
import { recoveryConsole, recoverySections } from "./report-recovery";
import { chart } from "./svg";
import type { Target } from "./targets";
import { ratio, ratioTarget, verdict } from "./targets";

export interface RunResults {
  cfg: Config;
  machine: MachineInfo;
  cells: CellResult[];
  routing?: RoutingResult[];
  /** MQTT.js's parser on the workload's PUBLISH, 3.1.1 against 5 (bench/parse.ts). */
  parse?: ParseResult;
  publish?: PublishResult[];
  profiles: { title: string; summary: string }[];
  /** The cluster bench's results, or why it did not run. */
  cluster: ClusterResult[] | string;
  /** The delivery benches of issue 12 (bench/batching.ts, bench/stalled.ts). */
  batching?: BatchingResult;
  stalled?: StallResult;
  /** The recovery bench of issue 13 (bench/recovery.ts). */
  recovery?: RecoveryResult;
  seconds: number;
}

const COLORS: Record<System, string> = {
  bridge: "#d62728",
  raw: "#7f7f7f",
  handwritten: "#1f77b4",
  direct: "#2ca02c",
};

const mib = (kib: number) => (kib ? fmt(kib / 1024, 0) : "–");

function cellOf(r: RunResults, system: System, n: number): CellResult | undefined {
  return r.cells.find((c) => c.system === system && c.n === n);
}

export function targets(r: RunResults): Target[] {
  const cpu = (s: System, n: number) => cellOf(r, s, n)?.matched?.cpuPerDelivery;
  const p99 = (s: System, n: number) => cellOf(r, s, n)?.latency?.p99;
  const out: Target[] = [];
  for (const n of [100, 1000]) {
    out.push(
      ratioTarget(
        `server CPU/delivery at matched load, N=${n}: bridge ÷ raw Socket.IO`,
        ratio(cpu("bridge", n), cpu("raw", n)),
        1.1,
        true,
      ),
    );
  }
  out.push(
    ratioTarget(
      "server CPU/delivery at matched load, N=1: bridge ÷ hand-written",
      ratio(cpu("bridge", 1), cpu("handwritten", 1)),
      1.0,
      true,
    ),
  );
  for (const n of r.cfg.ns) {
    out.push(
      ratioTarget(
        `p99 latency, N=${n}: bridge ÷ hand-written`,
        ratio(p99("bridge", n), p99("handwritten", n)),
        1.2,
        true,
      ),
    );
  }
  const routing = (f: number) => r.routing?.find((x) => x.filters === f);
  const [r10, r100k] = [routing(10), routing(100_000)];
  out.push(
    ratioTarget(
      "routing cost, the same 8 topics (only the filter count differs): 100,000 ÷ 10 filters",
      ratio(r100k?.sameNs, r10?.sameNs),
      1.5,
      true,
    ),
  );
  const spread = ratioTarget(
    "routing cost, every filter's topic in turn (100,000 distinct topics): 100,000 ÷ 10 filters",
    ratio(r100k?.routedNs, r10?.routedNs),
    1.5,
    true,
  );
  const hw = ratio(r100k?.handwrittenNs, r10?.handwrittenNs);
  if (hw !== undefined) spread.measured += ` (hand-written handler: ${hw.toFixed(2)}×)`;
  out.push(spread);
  const pub = (s: "bridge" | "direct") => r.publish?.find((x) => x.system === s)?.perSec;
  out.push(
    ratioTarget(
      "QoS 1 publishes/s: bridge ÷ MQTT.js direct",
      ratio(pub("bridge"), pub("direct")),
      0.8,
      false,
    ),
  );
  const rss = (s: System) => cellOf(r, s, 1000)?.serverRssKiB;
  const b = rss("bridge");
  const h = rss("handwritten");
  const diff = b !== undefined && h !== undefined ? (b - h) / 1024 : undefined;
  out.push({
    target: "peak RSS, N=1000: bridge − hand-written (server process)",
    measured: diff === undefined ? "n/a" : `${diff >= 0 ? "+" : ""}${diff.toFixed(1)} MiB`,
    limit: "≤ +20 MiB",
    pass: diff === undefined ? undefined : diff <= 20,
  });
  return out;
}

/** "total (server + broker)" CPU µs per delivery of a phase. */
function cpuSplit(p: PhaseResult): string {
  const perDelivery = (us: number) => us / Math.max(1, p.delivered);
  return `${fmt(p.cpuPerDelivery, 2)} (${fmt(perDelivery(p.serverCpu), 2)} + ${fmt(perDelivery(p.brokerCpu), 2)})`;
}

function fanoutTable(r: RunResults): { head: string[]; rows: string[][] } {
  const head = [
    "N",
    "system",
    "deliveries/s",
    "server CPU µs/delivery (server + broker)",
    "rounds (min–max)",
    "matched load, deliveries/s",
    "server CPU µs/delivery at matched load (server + broker)",
    "write syscalls/delivery",
    "latency at",
    "p50",
    "p99",
    "max",
    "server RSS MiB",
    "broker RSS MiB",
    "lost",
  ];
  const rows: string[][] = [];
  for (const n of r.cfg.ns) {
    for (const s of SYSTEMS) {
      const c = cellOf(r, s, n);
      if (!c) continue;
      const t = c.throughput;
      const l = c.latency;
      const m = c.matched;
      const flags = [
        t.stalled ? "stalled" : "",
        l?.unsustained || m?.unsustained ? "unsustained" : "",
      ].filter(Boolean);
      rows.push([
        fmt(n),
        SYSTEM_NAMES[s],
        fmt(t.deliveriesPerSec),
        cpuSplit(t),
        rangeOf(t),
        m ? fmt(m.rate * n) : "–",
        m ? cpuSplit(m) : "–",
        m && s !== "direct" ? fmt(m.writesPerDelivery, 3) : "–",
        l ? `${fmt(l.rate)} msg/s` : "–",
        fmtMicros(l?.p50),
        fmtMicros(l?.p99),
        fmtMicros(l?.max),
        mib(c.serverRssKiB),
        mib(c.brokerRssKiB),
        fmt(t.lost + (l?.lost ?? 0) + (m?.lost ?? 0)) +
          (flags.length ? ` (${flags.join(", ")})` : ""),
      ]);
    }
  }
  return { head, rows };
}

/**
 * What the run says about the targets, in sentences built from its own figures: the CPU ratios at
 * each system's own throughput, and, for a target not met, the measurement that explains it.
 */
/** "min–max" of a phase's per-round CPU µs per delivery. */
function rangeOf(p: PhaseResult | undefined): string {
  if (!p) return "n/a";
  const v = p.roundsCpuPerDelivery;
  return `${fmt(Math.min(...v), 2)}–${fmt(Math.max(...v), 2)}`;
}

function readingNotes(r: RunResults): string[] {
  const notes: string[] = [];
  const own = (s: System, n: number) => cellOf(r, s, n)?.throughput;
  const x = (v: number | undefined) => (v === undefined ? "n/a" : `${v.toFixed(2)}×`);
  const ownRatio = (a: System, b: System, n: number) =>
    x(ratio(own(a, n)?.cpuPerDelivery, own(b, n)?.cpuPerDelivery));
  if (r.cells.length) {
    notes.push(
      "At each system's own throughput, where the loads differ, the same CPU ratios are " +
        `${ownRatio("bridge", "raw", 100)} (N = 100, bridge ÷ raw), ` +
        `${ownRatio("bridge", "raw", 1000)} (N = 1,000) and ` +
        `${ownRatio("bridge", "handwritten", 1)} (N = 1, bridge ÷ hand-written); the hand-written ` +
        `bridge ÷ raw is ${ownRatio("handwritten", "raw", 100)} at N = 100. The per-delivery work ` +
        "of every Socket.IO system is the same (one encode per message, one write per socket: " +
        "see *write syscalls/delivery*); what differs is the cost of a write at a different rate.",
    );
  }
  const matched = (s: System, n: number) => cellOf(r, s, n)?.matched;
  const [b1, h1] = [matched("bridge", 1), matched("handwritten", 1)];
  if (b1 && h1 && b1.cpuPerDelivery > h1.cpuPerDelivery) {
    const profile = r.profiles.find((p) => p.title === "fan-out, N = 1")?.summary;
    const libShare = profile?.match(/lib\/ self time ([\d.]+%)/)?.[1];
    const decodeShare = profile?.match(/\| parseJson \([^)]*\)\s*\|\s*\d+\s*\|\s*([\d.]+%)/)?.[1];
    const us = (p: PhaseResult, cpu: number) => fmt(cpu / Math.max(1, p.delivered), 2);
    notes.push(
      "At N = 1 and matched load, per message: the bridge's server process " +
        `${us(b1, b1.serverCpu)} µs and its Mosquitto ${us(b1, b1.brokerCpu)} µs; the ` +
        `hand-written bridge's ${us(h1, h1.serverCpu)} and ${us(h1, h1.brokerCpu)} µs. Two things ` +
        "the bridge does more per message are measured here. It speaks MQTT 5, which its " +
        "exactly-once delivery (subscription identifiers), `echo: false` (no-local) and retained " +
        "state (retain-as-published) need, where the hand-written bridge speaks MQTT.js's " +
        "default, 3.1.1" +
        (r.parse
          ? `: MQTT.js's parser takes ${fmt(r.parse.v5Ns)} ns for this PUBLISH with its ` +
            `subscription identifier against ${fmt(r.parse.v311Ns)} ns (bench/parse.ts)`
          : "") +
        "." +
        (libShare
          ? ` And its own code, ${libShare} of busy time in the N = 1 profile below` +
            (decodeShare
              ? `, most of it the lossless JSON decode (parseJson, ${decodeShare}, which includes ` +
                "the `JSON.parse` the hand-written bridge makes too)"
              : "") +
            "."
          : "") +
        " Most of either server's time is the one socket write per message (`writev` in the " +
        "profile), whose cost moves with the machine's load: the per-round ranges at each " +
        `system's own throughput are ${rangeOf(own("bridge", 1))} µs (bridge) and ` +
        `${rangeOf(own("handwritten", 1))} µs (hand-written).`,
    );
  }
  const routing = (f: number) => r.routing?.find((v) => v.filters === f);
  const [r10, r100k] = [routing(10), routing(100_000)];
  if (r10 && r100k && r100k.routedNs / r10.routedNs > 1.5) {
    notes.push(
      "Routing over every filter's topic in turn grows " +
        `${x(r100k.routedNs / r10.routedNs)} from 10 to 100,000 filters, while the same 8 topics ` +
        `cost ${x(r100k.sameNs / r10.sameNs)}: the code path per message does not change with the ` +
        "number of filters (an exact filter is one Map lookup; the wildcard trie is walked by " +
        "topic level). What grows is memory latency: at 100,000 filters every message touches a " +
        "topic, a filter entry and a room that no CPU cache holds. The lookup of a topic alone " +
        `(*unmatched*) grows from ${fmt(r10.unmatchedNs)} to ${fmt(r100k.unmatchedNs)} ns, and ` +
        "the hand-written handler, which makes only Socket.IO's own room lookup on the same " +
        `messages, grows ${x(r100k.handwrittenNs / r10.handwrittenNs)}.`,
    );
  }
  const pub = (p: "bridge" | "direct") => r.publish?.find((v) => v.system === p);
  const [pb, pd] = [pub("bridge"), pub("direct")];
  if (pb && pd && pb.perSec / pd.perSec < 0.8) {
    const libShare = r.profiles
      .find((p) => p.title.startsWith("socket → broker"))
      ?.summary.match(/lib\/ self time ([\d.]+%)/)?.[1];
    notes.push(
      `Socket → broker QoS 1 publishes reach ${x(pb.perSec / pd.perSec)} of MQTT.js publishing ` +
        `directly. Both paths cost Mosquitto the same (${fmt(pb.brokerSyscallsPerPublish, 2)} ` +
        "system calls per publish each); the bridge path adds a whole Socket.IO hop: " +
        `${fmt(pb.cpuPerPublish - pd.cpuPerPublish, 1)} µs of server CPU per publish to receive ` +
        "the event, publish over MQTT.js, take the PUBACK and send the acknowledgement" +
        (libShare
          ? `; this package's own code is ${libShare} of the bridge process's busy time (profile below)`
          : "") +
        ". On 2 cores shared with the clients, Socket.IO clients also cost more than MQTT.js " +
        "clients. One acknowledgement per emit is the socket protocol; only batching them could " +
        "close the gap.",
    );
  }
  return notes;
}

function targetRows(r: RunResults): string[][] {
  return targets(r).map((t) => [t.target, t.measured, t.limit, verdict(t.pass)]);
}
const TARGET_HEAD = ["target", "measured", "limit", "result"];

/** The tables printed at the end of a run. */
export function consoleReport(r: RunResults): string {
  const f = fanoutTable(r);
  const parts: string[] = [];
  if (f.rows.length) parts.push(textTable(f.head, f.rows));
  // the issue-5 targets, unless a partial run measured none of them
  if (targets(r).some((t) => t.pass !== undefined))
    parts.push(textTable(TARGET_HEAD, targetRows(r)));
  if (r.routing) parts.push(textTable(...routingTable(r.routing)));
  if (r.publish) parts.push(textTable(...publishTable(r.publish)));
  if (typeof r.cluster !== "string") parts.push(textTable(...clusterTable(r.cluster)));
  const delivery = deliveryConsole(r);
  if (delivery) parts.push(delivery);
  const recovery = recoveryConsole(r.recovery);
  if (recovery) parts.push(recovery);
  return parts.join("\n\n");
}

function routingTable(results: RoutingResult[]): [string[], string[][]] {
  const first = results[0];
  const vs = (v: number, base: number | undefined) => `${(v / (base ?? v)).toFixed(2)}×`;
  return [
    [
      "active filters",
      "same 8 topics: bridge ns/message",
      "vs 10",
      "hand-written ns",
      "every filter's topic: bridge ns/message",
      "vs 10",
      "hand-written ns",
      "vs 10",
      "bridge − hand-written ns",
      "unmatched (match only) ns",
    ],
    results.map((x) => [
      fmt(x.filters),
      fmt(x.sameNs),
      vs(x.sameNs, first?.sameNs),
      fmt(x.handwrittenSameNs),
      fmt(x.routedNs),
      vs(x.routedNs, first?.routedNs),
      fmt(x.handwrittenNs),
      vs(x.handwrittenNs, first?.handwrittenNs),
      fmt(x.routedNs - x.handwrittenNs),
      fmt(x.unmatchedNs),
    ]),
  ];
}

/** The cluster bench: 3 nodes (both topologies) against 1. */
export function clusterTable(results: ClusterResult[]): [string[], string[][]] {
  const base = results.find((x) => x.setup === "single")?.throughput;
  return [
    [
      "N",
      "setup",
      "sockets per node",
      "deliveries/s",
      "vs 1 node",
      "server CPU µs/delivery (Node processes + Mosquitto, Redis)",
      "vs 1 node",
      "rounds (min–max)",
      "latency at",
      "p50",
      "p99",
      "Node processes' peak RSS MiB",
      "lost",
    ],
    results.map((x) => {
      const t = x.throughput;
      const l = x.latency;
      const flags = [t.stalled ? "stalled" : "", l?.unsustained ? "unsustained" : ""].filter(
        Boolean,
      );
      return [
        fmt(x.n),
        x.name,
        x.spread.join(" / "),
        fmt(t.deliveriesPerSec),
        base ? `${(t.deliveriesPerSec / base.deliveriesPerSec).toFixed(2)}×` : "–",
        cpuSplit(t),
        base ? `${(t.cpuPerDelivery / base.cpuPerDelivery).toFixed(2)}×` : "–",
        rangeOf(t),
        l ? `${fmt(l.rate)} msg/s` : "–",
        fmtMicros(l?.p50),
        fmtMicros(l?.p99),
        x.rssKiB.map(mib).join(" / "),
        fmt(t.lost + (l?.lost ?? 0)) + (flags.length ? ` (${flags.join(", ")})` : ""),
      ];
    }),
  ];
}

function publishTable(results: PublishResult[]): [string[], string[][]] {
  return [
    [
      "path",
      "clients × window",
      "acked publishes/s",
      "server CPU µs/publish",
      "system calls/publish: bridge process",
      "system calls/publish: Mosquitto",
      "refused",
    ],
    results.map((x) => [
      x.system === "bridge" ? "socket → bridge → Mosquitto" : "MQTT.js → Mosquitto (direct)",
      `${x.clients} × ${x.window}`,
      fmt(x.perSec),
      fmt(x.cpuPerPublish, 1),
      x.system === "bridge" ? fmt(x.serverSyscallsPerPublish, 2) : "–",
      fmt(x.brokerSyscallsPerPublish, 2),
      fmt(x.refused),
    ]),
  ];
}

export function resultsSvg(r: RunResults): string {
  const groups = r.cfg.ns.map((n) => `N=${fmt(n)}`);
  const series = (value: (c: CellResult) => number | undefined) =>
    SYSTEMS.map((s) => ({
      name: SYSTEM_NAMES[s],
      color: COLORS[s],
      values: r.cfg.ns.map((n) => {
        const c = cellOf(r, s, n);
        return c ? value(c) : undefined;
      }),
    }));
  const m = r.machine;
  return chart(
    "socket.io-mqtt-bridge: fan-out to one room of N sockets",
    `${m.cpu}, ${m.nproc} cores · Node ${m.node} · Mosquitto ${m.mosquitto} · ${m.date} · ${r.cfg.mode} mode`,
    [
      {
        title: "server CPU µs per delivery, all at one rate (lower is better)",
        label: (v) => v.toFixed(1),
        groups,
        series: series((c) => (c.matched ?? c.throughput).cpuPerDelivery),
      },
      {
        title: "deliveries/s, thousands (client-bound)",
        label: (v) => (v / 1000).toFixed(0),
        groups,
        series: series((c) => c.throughput.deliveriesPerSec),
      },
      {
        title: "p99 latency, ms, at a fixed rate",
        log: true,
        label: (v) => (v / 1000).toFixed(1),
        groups,
        series: series((c) => c.latency?.p99),
      },
    ],
  );
}

export function resultsMarkdown(r: RunResults): string {
  const m = r.machine;
  const f = fanoutTable(r);
  const noDelay = [
    ...new Set(
      r.cells.map(
        (c) =>
          `${c.system}: publisher ${c.noDelay.publisher ? "yes" : "NO"}` +
          (c.noDelay.server === undefined
            ? ""
            : `, server's MQTT client ${c.noDelay.server ? "yes" : "NO"}`),
      ),
    ),
  ];
  const bridgeCounters = r.cells
    .filter((c) => c.system === "bridge" && c.bridgeMessages !== undefined)
    .map((c) => `N=${c.n}: \`${JSON.stringify(c.bridgeMessages)}\``);
  const lines = [
    "# Benchmark results",
    "",
    `Written by \`npm run bench${r.cfg.mode === "full" ? " -- --full" : ""}\` (${r.cfg.mode} mode, ` +
      `${fmt(r.seconds)} s) — do not edit by hand; run it again. See [bench/](.) for the code.`,
    "",
    "![fan-out chart](results.svg)",
    "",
    "## Machine",
    "",
    "Other work on the machine shows in the load average; the systems are interleaved so that it " +
      "hits them alike, but a loaded machine widens the spread of every figure.",
    "",
    markdownTable(
      [
        "nproc",
        "CPU",
        "memory",
        "kernel",
        "Node.js",
        "Mosquitto",
        "socket.io",
        "mqtt (MQTT.js)",
        "date",
        "load avg (start → end)",
        "lib/ at",
      ],
      [
        [
          String(m.nproc),
          m.cpu,
          `${m.memGiB} GiB`,
          m.kernel,
          m.node,
          m.mosquitto,
          m.socketio,
          m.mqtt,
          m.date,
          `${m.loadStart} → ${m.loadEnd ?? "?"}`,
          m.lib ?? "?",
        ],
      ],
    ),
    "",
    "## Fan-out: one room of N sockets, one QoS 0 publisher",
    "",
    "- **Systems.** *our bridge*: the tsc build of lib/ (bench/.dist, as `npm run build`), default " +
      "options (MQTT 5, decode `auto`), sockets join with `mqtt.subscribe`; *raw Socket.IO*: no MQTT — " +
      "the publisher writes the same payloads one per line to a plain TCP socket and the server emits " +
      "each to the room (the ceiling); *hand-written*: one MQTT.js client (3.1.1), " +
      "`io.to(topic).emit(...)` per message with `JSON.parse`; *browser-direct*: MQTT.js clients on " +
      "Mosquitto's WebSocket listener. Every Socket.IO message has the bridge's shape " +
      "`{ topic, payload, qos, retain }`; clients use the WebSocket transport.",
    "- **Processes.** Per room size, the 4 systems are up at once: each server in its own process with " +
      "its own fresh Mosquitto (so each broker's peak RSS is its own); the N clients of each system are " +
      `spread over ${r.cfg.receivers} receiver processes; one publisher process. All on 127.0.0.1. ` +
      `The systems are measured in turn, in ${r.cfg.rounds} rounds with a rotating order (ABCD, BCDA, …), ` +
      "so that drift on the shared machine hits them alike; figures are summed over the rounds and " +
      "the per-round spread of the CPU figure is shown.",
    `- **Throughput** (${r.cfg.throughputMs / 1000} s per system in all, after a ` +
      `${r.cfg.warmupMs / 1000} s warm-up): the publisher keeps at most W = clamp(⌈4000 / N⌉, 4, 64) ` +
      "messages not yet received by every socket (each receiver process acks the highest sequence " +
      "number all its sockets have), so the figure is throughput, not buffering. 100-byte JSON payload, " +
      "QoS 0, TCP_NODELAY on every MQTT socket (MQTT.js over TCP: a socket built with `noDelay`, " +
      "checked; Mosquitto: `set_tcp_nodelay true`; WebSockets: `ws` sets it).",
    "- **Server CPU µs/delivery** = user + system CPU of the server process (`process.cpuUsage()`) and " +
      "of every other server-side process such as Mosquitto (the scheduler's run time of each thread, `/proc/<pid>/task/*/schedstat`, in ns) during a phase, ÷ deliveries. With 2 cores the " +
      "client processes saturate a core, so deliveries/s is client-bound; CPU per delivery is the " +
      "figure that compares systems. It is given twice: at each system's own throughput, and at " +
      `**matched load** (${r.cfg.matchedMs / 1000} s per system in all): every system of a room size ` +
      `at one rate, ${MATCHED_LOAD * 100} % of the lowest throughput among them. The targets use ` +
      "matched load, because CPU per delivery depends on the rate: every Socket.IO system makes one " +
      "write system call per socket per message (*write syscalls/delivery*, from `/proc/<pid>/io`), " +
      "and a loopback write costs less when its receiver is already busy, so at its own throughput " +
      "the system with the shorter pipeline (raw Socket.IO has no broker hop) pays less per write for " +
      "the same work.",
    `- **Latency** (${r.cfg.latencyMs / 1000} s per system in all): a fixed rate every system sustains ` +
      "(5,000 deliveries/s at N = 1, 10,000 deliveries/s above), send time (monotonic clock, µs) in " +
      "the payload, hdr-histogram-js over every delivery. **Peak RSS** = VmHWM of the server process " +
      "and of its broker. **Lost** = sent × N − received, both phases.",
    "",
    markdownTable(f.head, f.rows),
    "",
    "## Targets",
    "",
    "Ratios measured in this run.",
    "",
    markdownTable(TARGET_HEAD, targetRows(r)),
    "",
    ...readingNotes(r).map((line) => `- ${line}`),
    "",
    "## Routing cost per message",
    "",
    "In one process, through the public API: a bridge on a fake MQTT.js client that grants every " +
      "SUBSCRIBE; the bench emits the client's `message` event as MQTT.js does after parsing a PUBLISH. " +
      "Per message: MQTT.js event → session → router: trie match, exactly-once check (MQTT 5 " +
      "subscription identifier), JSON decode of the 100-byte payload, and the Socket.IO emit to the " +
      "matched room (encoded once; its one member is a socket id with no socket, so nothing is " +
      "written). Each size holds F − 2 exact filters `bench/<i>/value` and 2 wildcard filters the " +
      "topics never match. Two message streams: *same 8 topics* = the topics of filters 0–7, which " +
      "every size has, so only the number of filters held differs; *every filter's topic* = each " +
      "exact filter's topic in a shuffled order, so at 100,000 filters 100,000 distinct topics and no " +
      "CPU cache keeps up. *Unmatched* = topics no filter matches (the lookup alone); " +
      '*hand-written* = `io.to(topic).emit("mqtt.message", ' +
      "{ topic, payload: JSON.parse(payload.toString()), qos, retain })` on the same rooms and messages, " +
      "so *bridge − hand-written* is what the bridge adds per message, measured without " +
      "network noise. The bridges of the three sizes live side by side, timed in rotating rounds; median of " +
      `${r.cfg.routingRounds} rounds of ${fmt(r.cfg.routingMessages)} messages (bench/routing.ts).`,
    "",
    r.routing ? markdownTable(...routingTable(r.routing)) : "_not run_",
    "",
    r.parse
      ? "Before routing, MQTT.js parses each PUBLISH: the fan-out's packet takes " +
        `${fmt(r.parse.v311Ns)} ns over MQTT 3.1.1 and ${fmt(r.parse.v5Ns)} ns over MQTT 5 with ` +
        "a subscription identifier (mqtt-packet, the parser MQTT.js uses; bench/parse.ts)."
      : "",
    "",
    "## Socket → broker publishes (QoS 1)",
    "",
    "Sockets emit `mqtt.publish` at QoS 1 (acked after Mosquitto's PUBACK) against MQTT.js clients " +
      "publishing QoS 1 directly (TCP_NODELAY); same client count, window of unacknowledged publishes " +
      "per client and 100-byte payload; nobody subscribes. Server CPU = bridge + Mosquitto (direct: " +
      "Mosquitto).",
    "",
    r.publish ? markdownTable(...publishTable(r.publish)) : "_not run_",
    "",
    "## 3 nodes vs 1 (Redis adapter)",
    "",
    "The fan-out workload (one room, one QoS 0 publisher, window W, 100-byte JSON payload) on " +
      "three setups, each with its own fresh Mosquitto and redis-server, all up at once and measured " +
      `in turn in ${r.cfg.rounds} rotating rounds (throughput ${Math.max(2 * r.cfg.throughputMs, 5000) / 1000} s per setup in all, ` +
      `after a ${Math.max(r.cfg.warmupMs, 3000) / 1000} s warm-up; bench/cluster.ts): *1 node*: the bench bridge ` +
      "server above (in-memory adapter); *embedded*: 3 Socket.IO nodes with " +
      "`@socket.io/redis-adapter`, each with its own bridge and broker connection (TCP_NODELAY), " +
      "emitting broker messages to its local sockets; *forward*: 3 web nodes " +
      '`mqttBridge({ topology: "forward" })` and one `socket.io-mqtt-bridge worker` process (the ' +
      "tsc build's `cli.js`, MQTT.js's own TCP socket) holding the only broker connection, which " +
      "emits each message through the Redis adapter to every node. The sockets join with " +
      "`mqtt.subscribe` and are spread over the nodes. **Server CPU** = user + system CPU of every " +
      "server-side process (nodes and worker; Mosquitto and Redis), ÷ deliveries. On 2 cores, " +
      "3 nodes do not add CPU: they share the cores with the clients, so deliveries/s shows what " +
      "the extra hops cost, not how a cluster scales on more machines. Latency at a fixed rate as " +
      "above; **lost** = sent × N − received, both phases.",
    "",
    typeof r.cluster === "string"
      ? r.cluster
      : markdownTable(...clusterTable(r.cluster)) +
        "\n\nTCP_NODELAY verified on the publisher's socket: " +
        r.cluster.map((x) => `${x.setup} ${x.noDelay.publisher ? "yes" : "NO"}`).join(", ") +
        "; on the bridges' own MQTT sockets (not the worker's): " +
        r.cluster
          .filter((x) => x.noDelay.nodes.length)
          .map((x) => `${x.setup} ${x.noDelay.nodes.every(Boolean) ? "yes" : "NO"}`)
          .join(", ") +
        ".",
    "",
    ...deliverySections(r, r.cfg),
    ...recoverySections(r.recovery, r.cfg),
    "## Profiles of the bridge server",
    "",
    "`node --cpu-prof` on the bridge's server process during a throughput phase of the fan-out " +
      "(N = 100 and N = 1) and of the publish bench (separate runs, not the measured ones); only the samples of that phase are counted (bench/profile-summary.ts; the " +
      ".cpuprofile files are in bench/profiles/, git-ignored).",
    "",
    ...r.profiles.flatMap((p) => [`### ${p.title}`, "", p.summary, ""]),
    r.profiles.length ? "" : "_not run_\n",
    "## Checks",
    "",
    `- TCP_NODELAY verified on the MQTT.js TCP sockets: ${noDelay.join("; ") || "–"}.`,
    `- The bridge's counters after each cell: ${bridgeCounters.join("; ") || "–"}.`,
    "",
  ];
  return lines.join("\n");
}
