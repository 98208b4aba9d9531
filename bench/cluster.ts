/**
 * The cluster bench of issue 5: 3 Socket.IO nodes joined by @socket.io/redis-adapter against 1
 * node, on the fan-out workload (one room of N sockets, N = 100 quick / 1000 with --full, one QoS 0
 * publisher with a bounded window, 100-byte JSON payload), in both cluster topologies:
 * - `single`: 1 node, embedded bridge, in-memory adapter (bench/servers/bridge.ts);
 * - `embedded`: 3 nodes (bench/servers/cluster-node.ts), each with its own bridge and broker
 *   connection, Redis adapter; the sockets spread over the nodes;
 * - `forward`: 3 web nodes in forward topology + 1 worker process (the built `cli.js worker`,
 *   bench/.dist), Redis adapter; the worker holds the one broker connection.
 * Each setup has its own fresh Mosquitto (and its own redis-server, test/support/redis.ts, on an
 * ephemeral loopback port), all up at once; they are measured in turn with the fan-out bench's
 * rounds (bench/lib/fanout.ts): warm-up, throughput rounds in rotating order, latency rounds at
 * a fixed rate (warm-up of at least 3 s, throughput at least 5 s per setup). Server CPU = every server-side process: nodes, worker, Mosquitto, Redis.
 *
 * Part of `npm run bench` (bench/run.ts writes the table into RESULTS.md); alone:
 * `node --import tsx bench/cluster.ts [--full] [--n=100]` prints the table.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import path from "node:path";
import type { MosquittoHandle } from "../test/support/mosquitto";
import { startMosquitto } from "../test/support/mosquitto";
import type { RedisHandle } from "../test/support/redis";
import { startRedis } from "../test/support/redis";
import { BUILD_DIR, ensureBuild } from "./lib/build";
import type { Config } from "./lib/config";
import { config, latencyRate, windowFor } from "./lib/config";
import { fmtRate } from "./lib/fanout";
import type { PhaseResult, Pool, Round, Run, Subject } from "./lib/rounds";
import { round, split, startPool, stopPool, sum } from "./lib/rounds";
import type { Child } from "./lib/ipc";
import { ROOT, startChild } from "./lib/ipc";
import { peakRssKiB } from "./lib/proc";
import type { ServerInfo } from "./servers/common";
import type { Latency } from "./lib/stats";
import { mergeLatency, textTable } from "./lib/stats";
import { clusterTable } from "./lib/report";

export const SETUPS = ["single", "embedded", "forward"] as const;
export type Setup = (typeof SETUPS)[number];

export const SETUP_NAMES: Record<Setup, string> = {
  single: "1 node (embedded, in-memory adapter)",
  embedded: "3 nodes, embedded topology (Redis adapter)",
  forward: "3 web nodes, forward topology + 1 worker (Redis adapter)",
};

/** Nodes per cluster. */
const NODES = 3;

export interface ClusterResult {
  setup: Setup;
  /** {@link SETUP_NAMES} of `setup`. */
  name: string;
  n: number;
  window: number;
  /** Sockets per node. */
  spread: number[];
  throughput: PhaseResult;
  latency?: PhaseResult & Latency & { rate: number };
  /** Peak RSS (KiB) of the Node processes: each node, then the worker. */
  rssKiB: number[];
  noDelay: { publisher: boolean; nodes: boolean[] };
}

/** A setup up and running: the fan-out bench's subject plus what to stop. */
interface Up {
  subject: Subject<Setup>;
  urls: string[];
  nodes: Child[];
  infos: ServerInfo[];
  worker?: ChildProcess;
  redis?: RedisHandle;
  broker: MosquittoHandle;
}

const workers = new Set<ChildProcess>();
process.on("exit", () => {
  for (const w of workers) w.kill("SIGKILL");
});

/** `cli.js worker` of the tsc build (bench/.dist), as `npx socket.io-mqtt-bridge worker` runs. */
function startWorker(mqtt: string, redis: string, key: string): ChildProcess {
  const cli = path.join(BUILD_DIR, "cli.js");
  const w = spawn(
    process.execPath,
    [cli, "worker", "--mqtt", mqtt, "--redis", redis, "--key", key],
    { cwd: ROOT, stdio: ["ignore", "ignore", "inherit"] },
  );
  workers.add(w);
  w.once("exit", () => workers.delete(w));
  return w;
}

async function stopWorker(w: ChildProcess): Promise<void> {
  if (w.exitCode !== null || w.signalCode !== null) return;
  const exited = new Promise((resolve) => w.once("exit", resolve));
  w.kill("SIGTERM");
  const timer = setTimeout(() => w.kill("SIGKILL"), 3000);
  await exited;
  clearTimeout(timer);
}

async function startSetup(setup: Setup, pool: Pool): Promise<Up> {
  const broker = await startMosquitto({ extraConfig: ["set_tcp_nodelay true"] });
  const up: Up = {
    subject: { system: setup, broker, noDelay: false },
    urls: [],
    nodes: [],
    infos: [],
    broker,
  };
  try {
    if (setup === "single") {
      up.nodes.push(await startChild("single node", "bench/servers/bridge.ts", [broker.url]));
    } else {
      up.redis = await startRedis();
      const key = `bench-${setup}`;
      if (setup === "forward") up.worker = startWorker(broker.url, up.redis.url, key);
      const args = [setup, up.redis.url, key, ...(setup === "embedded" ? [broker.url] : [])];
      up.nodes.push(
        ...(await Promise.all(
          Array.from({ length: NODES }, (_, i) =>
            startChild(`${setup} node ${i}`, "bench/servers/cluster-node.ts", args),
          ),
        )),
      );
      up.subject.brokerPids = [up.redis.pid];
      if (up.worker?.pid) up.subject.serverPids = [up.worker.pid];
    }
    up.subject.servers = up.nodes;
    up.infos = await Promise.all(up.nodes.map((c) => c.call<ServerInfo>("info")));
    up.urls = up.infos.map((i) => `http://127.0.0.1:${i.port}`);
    const sink = { id: setup, kind: "mqtt", url: broker.url };
    up.subject.noDelay = (await pool.publisher.call<{ noDelay: boolean }>("sink", sink)).noDelay;
    return up;
  } catch (err) {
    await stopSetup(up);
    throw err;
  }
}

async function stopSetup(up: Up): Promise<void> {
  await Promise.all(up.nodes.map((c) => c.stop(10_000)));
  if (up.worker) await stopWorker(up.worker);
  await up.redis?.stop();
  await up.broker.stop();
}

/** Runs the cluster bench at room size `n` with its own client processes. */
export async function runClusterBench(
  cfg: Config,
  log: (line: string) => void,
  n = cfg.mode === "full" ? 1000 : 100,
): Promise<ClusterResult[]> {
  const pool = await startPool(cfg.receivers);
  const ups: Up[] = [];
  try {
    const counts = split(n, pool.receivers.length);
    for (const setup of SETUPS) {
      const t = performance.now();
      const up = await startSetup(setup, pool);
      ups.push(up);
      await Promise.all(
        pool.receivers.map((r, i) =>
          r.call(
            "connect",
            { group: setup, kind: "socketio", url: up.urls, count: counts[i], join: "bridge" },
            120_000,
          ),
        ),
      );
      log(
        `[cluster ${setup} N=${n}] up: ${up.nodes.length} node(s)` +
          (up.worker ? " + worker" : "") +
          `, ${n} clients joined, in ${((performance.now() - t) / 1000).toFixed(1)} s`,
      );
    }

    const window = windowFor(n);
    // twice the fan-out's (at least 5 s per setup): short rounds on a shared 2-core machine with
    // 7 server processes per setup are noisy
    const throughputMs = Math.max(2 * cfg.throughputMs, 5000);
    const subjects = ups.map((u) => u.subject);
    for (const s of subjects) {
      // longer than the fan-out's: 7 fresh server processes to warm up (JIT), each node seeing a
      // third of the load
      const warmupMs = Math.max(cfg.warmupMs, 3000);
      await round(pool, counts, n, s, { mode: "window", window, durationMs: warmupMs }, false);
    }
    const order = (r: number) => subjects.map((_, i) => subjects[(i + r) % subjects.length]);
    const tp = new Map<Subject<Setup>, Round[]>(subjects.map((s) => [s, []]));
    const lat = new Map<Subject<Setup>, Round[]>(subjects.map((s) => [s, []]));
    for (let r = 0; r < cfg.rounds; r++) {
      for (const s of order(r)) {
        const run: Run = { mode: "window", window, durationMs: throughputMs / cfg.rounds };
        const x = await round(pool, counts, n, s, run, false);
        tp.get(s)!.push(x);
        log(
          `[cluster ${s.system} N=${n}] throughput round ${r + 1}/${cfg.rounds}: ` +
            `${fmtRate(x.delivered / x.seconds)} deliveries/s, ` +
            `${((x.serverCpu + x.brokerCpu) / Math.max(1, x.delivered)).toFixed(2)} server CPU µs/delivery` +
            (x.sent * n > x.delivered ? `, ${x.sent * n - x.delivered} lost` : "") +
            (x.stalled ? " (STALLED)" : ""),
        );
      }
    }
    const rate = latencyRate(n);
    for (let r = 0; r < cfg.rounds; r++) {
      for (const s of order(r)) {
        const run: Run = { mode: "rate", rate, durationMs: cfg.latencyMs / cfg.rounds };
        lat.get(s)!.push(await round(pool, counts, n, s, run, true));
      }
    }

    return ups.map((up) => {
      const s = up.subject;
      const throughput = sum(tp.get(s)!, n);
      const lr = lat.get(s)!;
      const latency = { ...sum(lr, n), ...mergeLatency(lr.flatMap((x) => x.histograms)), rate };
      log(
        `[cluster ${s.system} N=${n}] ${fmtRate(throughput.deliveriesPerSec)} deliveries/s, ` +
          `${throughput.cpuPerDelivery.toFixed(2)} server CPU µs/delivery; latency at ${rate} msg/s: ` +
          `p50 ${latency.p50} µs, p99 ${latency.p99} µs` +
          (throughput.lost + latency.lost ? `, ${throughput.lost + latency.lost} lost` : ""),
      );
      return {
        setup: s.system,
        name: SETUP_NAMES[s.system],
        n,
        window,
        spread: split(n, pool.receivers.length).reduce(
          (acc, c) => {
            // receiver i sends its j-th client to node j mod nodes (bench/clients/receiver.ts)
            for (let j = 0; j < c; j++) acc[j % acc.length]++;
            return acc;
          },
          up.nodes.map(() => 0),
        ),
        throughput,
        latency,
        rssKiB: [
          ...up.nodes.map((c) => peakRssKiB(c.pid)),
          ...(up.worker?.pid ? [peakRssKiB(up.worker.pid)] : []),
        ],
        noDelay: {
          publisher: s.noDelay,
          nodes: up.infos.flatMap((i) => (i.mqttNoDelay === undefined ? [] : [i.mqttNoDelay])),
        },
      };
    });
  } finally {
    await Promise.all(
      pool.receivers.map((r) => r.call("disconnect", {}, 60_000).catch(() => undefined)),
    );
    await pool.publisher.call("closeSinks").catch(() => undefined);
    for (const up of ups) await stopSetup(up);
    await stopPool(pool);
  }
}

if (require.main === module) {
  const args = process.argv.slice(2);
  const cfg = config(args.includes("--full") ? "full" : "quick");
  const n = args.find((a) => a.startsWith("--n="))?.split("=")[1];
  const started = performance.now();
  const log = (line: string) =>
    console.log(`[${((performance.now() - started) / 1000).toFixed(1).padStart(6)} s] ${line}`);
  const deadline = setTimeout(
    () => {
      console.error("cluster bench: deadline passed, giving up");
      process.exit(1);
    },
    cfg.mode === "full" ? 10 * 60_000 : 3 * 60_000,
  );
  deadline.unref();
  ensureBuild(log);
  runClusterBench(cfg, log, n ? Number(n) : undefined).then(
    (results) => {
      console.log(`\n${textTable(...clusterTable(results))}\n`);
      log("done");
      process.exit(0);
    },
    (err: unknown) => {
      console.error("cluster bench failed:", err);
      process.exit(1);
    },
  );
}
