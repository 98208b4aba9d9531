/** Turns the results of a run into RESULTS.md, results.svg and the console tables. */
import type { ClusterResult } from "../cluster";
import type { PublishResult } from "../publish";
import type { RoutingResult } from "../routing";
import type { Config } from "./config";
import type { CellResult, System } from "./fanout";
import { SYSTEMS, SYSTEM_NAMES } from "./fanout";
import type { MachineInfo } from "./proc";
import { fmt, fmtMicros, markdownTable, textTable } from "./stats";
import { chart } from "./svg";

export interface RunResults {
  cfg: Config;
  machine: MachineInfo;
  cells: CellResult[];
  routing?: RoutingResult[];
  publish?: PublishResult[];
  profiles: { title: string; summary: string }[];
  /** The cluster bench's results, or why it did not run. */
  cluster: ClusterResult[] | string;
  seconds: number;
}

export interface Target {
  target: string;
  measured: string;
  limit: string;
  pass: boolean | undefined;
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

function ratio(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined || b === undefined || b === 0 ? undefined : a / b;
}

function ratioTarget(
  name: string,
  value: number | undefined,
  limit: number,
  atMost: boolean,
): Target {
  return {
    target: name,
    measured: value === undefined ? "n/a" : `${value.toFixed(2)}×`,
    limit: `${atMost ? "≤" : "≥"} ${limit}×`,
    pass: value === undefined ? undefined : atMost ? value <= limit : value >= limit,
  };
}

export function targets(r: RunResults): Target[] {
  const cpu = (s: System, n: number) => cellOf(r, s, n)?.throughput.cpuPerDelivery;
  const p99 = (s: System, n: number) => cellOf(r, s, n)?.latency?.p99;
  const out: Target[] = [];
  for (const n of [100, 1000]) {
    out.push(
      ratioTarget(
        `server CPU/delivery, N=${n}: bridge ÷ raw Socket.IO`,
        ratio(cpu("bridge", n), cpu("raw", n)),
        1.1,
        true,
      ),
    );
  }
  out.push(
    ratioTarget(
      "server CPU/delivery, N=1: bridge ÷ hand-written",
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
  const routing = (f: number) => r.routing?.find((x) => x.filters === f)?.routedNs;
  out.push(
    ratioTarget(
      "routing cost: 100,000 ÷ 10 filters",
      ratio(routing(100_000), routing(10)),
      1.5,
      true,
    ),
  );
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

const verdict = (p: boolean | undefined) => (p === undefined ? "n/a" : p ? "pass" : "FAIL");

function fanoutTable(r: RunResults): { head: string[]; rows: string[][] } {
  const head = [
    "N",
    "system",
    "deliveries/s",
    "server CPU µs/delivery (server + broker)",
    "rounds (min–max)",
    "latency at",
    "CPU µs/delivery at that rate",
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
      const flags = [t.stalled ? "stalled" : "", l?.unsustained ? "unsustained" : ""].filter(
        Boolean,
      );
      const perDelivery = (us: number) => us / Math.max(1, t.delivered);
      const rounds = t.roundsCpuPerDelivery;
      rows.push([
        fmt(n),
        SYSTEM_NAMES[s],
        fmt(t.deliveriesPerSec),
        `${fmt(t.cpuPerDelivery, 2)} (${fmt(perDelivery(t.serverCpu), 2)} + ${fmt(perDelivery(t.brokerCpu), 2)})`,
        `${fmt(Math.min(...rounds), 2)}–${fmt(Math.max(...rounds), 2)}`,
        l ? `${fmt(l.rate)} msg/s` : "–",
        fmt(l?.cpuPerDelivery, 2),
        fmtMicros(l?.p50),
        fmtMicros(l?.p99),
        fmtMicros(l?.max),
        mib(c.serverRssKiB),
        mib(c.brokerRssKiB),
        fmt(t.lost + (l?.lost ?? 0)) + (flags.length ? ` (${flags.join(", ")})` : ""),
      ]);
    }
  }
  return { head, rows };
}

function targetRows(r: RunResults): string[][] {
  return targets(r).map((t) => [t.target, t.measured, t.limit, verdict(t.pass)]);
}
const TARGET_HEAD = ["target", "measured", "limit", "result"];

/** The tables printed at the end of a run. */
export function consoleReport(r: RunResults): string {
  const f = fanoutTable(r);
  const parts = [textTable(f.head, f.rows), "", textTable(TARGET_HEAD, targetRows(r))];
  if (r.routing) parts.push("", textTable(...routingTable(r.routing)));
  if (r.publish) parts.push("", textTable(...publishTable(r.publish)));
  if (typeof r.cluster !== "string") parts.push("", textTable(...clusterTable(r.cluster)));
  return parts.join("\n");
}

function routingTable(results: RoutingResult[]): [string[], string[][]] {
  const base = results[0]?.routedNs ?? 1;
  return [
    [
      "active filters",
      "routed ns/message",
      "vs 10",
      "one hot topic ns",
      "unmatched (match only) ns",
      "hand-written handler ns",
      "hand-written vs 10",
      "bridge − hand-written ns",
    ],
    results.map((x) => [
      fmt(x.filters),
      fmt(x.routedNs),
      `${(x.routedNs / base).toFixed(2)}×`,
      fmt(x.hotNs),
      fmt(x.unmatchedNs),
      fmt(x.handwrittenNs),
      `${(x.handwrittenNs / (results[0]?.handwrittenNs ?? 1)).toFixed(2)}×`,
      fmt(x.routedNs - x.handwrittenNs),
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
      const per = (us: number) => fmt(us / Math.max(1, t.delivered), 2);
      const rounds = t.roundsCpuPerDelivery;
      const flags = [t.stalled ? "stalled" : "", l?.unsustained ? "unsustained" : ""].filter(
        Boolean,
      );
      return [
        fmt(x.n),
        x.name,
        x.spread.join(" / "),
        fmt(t.deliveriesPerSec),
        base ? `${(t.deliveriesPerSec / base.deliveriesPerSec).toFixed(2)}×` : "–",
        `${fmt(t.cpuPerDelivery, 2)} (${per(t.serverCpu)} + ${per(t.brokerCpu)})`,
        base ? `${(t.cpuPerDelivery / base.cpuPerDelivery).toFixed(2)}×` : "–",
        `${fmt(Math.min(...rounds), 2)}–${fmt(Math.max(...rounds), 2)}`,
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
    ["path", "clients × window", "acked publishes/s", "server CPU µs/publish", "refused"],
    results.map((x) => [
      x.system === "bridge" ? "socket → bridge → Mosquitto" : "MQTT.js → Mosquitto (direct)",
      `${x.clients} × ${x.window}`,
      fmt(x.perSec),
      fmt(x.cpuPerPublish, 1),
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
        title: "server CPU µs per delivery (lower is better)",
        label: (v) => v.toFixed(1),
        groups,
        series: series((c) => c.throughput.cpuPerDelivery),
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
      "of Mosquitto (`/proc/<pid>/stat`, 10 ms ticks) during the phase, ÷ deliveries. With 2 cores the " +
      "client processes saturate a core, so deliveries/s is client-bound; CPU per delivery is the fair " +
      "comparison. It is also given at the fixed rate of the latency phase (same load for every " +
      "system; the broker's 10 ms ticks make it coarse at N = 1 in quick mode).",
    `- **Latency** (${r.cfg.latencyMs / 1000} s per system in all): a fixed rate every system sustains ` +
      "(2,000 deliveries/s at N = 1, 10,000 deliveries/s above), send time (monotonic clock, µs) in " +
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
    "## Routing cost per message",
    "",
    "In one process, through the public API: a bridge on a fake MQTT.js client that grants every " +
      "SUBSCRIBE; the bench emits the client's `message` event as MQTT.js does after parsing a PUBLISH. " +
      "*Routed* = MQTT.js event → session → router: trie match, exactly-once check (MQTT 5 " +
      "subscription identifier), JSON decode of the 100-byte payload, and the Socket.IO emit to the " +
      "matched room (encoded once; its one member is a socket id with no socket, so nothing is " +
      "written). Every exact filter's topic `bench/<i>/value` in a shuffled order, so at 100,000 " +
      "filters 100,000 distinct topics (plus 2 wildcard filters never matched); *one hot topic* " +
      "repeats one topic (caches warm); *unmatched* = topics no filter matches (the lookup alone); " +
      '*hand-written handler* = `io.to(topic).emit("mqtt.message", ' +
      "{ topic, payload: JSON.parse(payload.toString()), qos, retain })` on the same rooms and topics, " +
      "so *bridge − hand-written* is what the bridge adds per message, measured without " +
      "network noise. The bridges of the three sizes live side by side, timed in rotating rounds; median of " +
      `${r.cfg.routingRounds} rounds of ${fmt(r.cfg.routingMessages)} messages (bench/routing.ts).`,
    "",
    r.routing ? markdownTable(...routingTable(r.routing)) : "_not run_",
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
