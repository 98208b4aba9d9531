/**
 * The benchmark suite of issues 5 and 12: `npm run bench` (quick, about five minutes) or
 * `npm run bench -- --full`. Runs, in order: the fan-out bench (4 systems × N), the bridge's
 * server profiled on the fan-out at N = 100 and N = 1, the routing bench, the publish bench (and
 * its profile), the cluster bench (3 nodes with the Redis adapter vs 1, bench/cluster.ts), the
 * batching bench (bench/batching.ts), the stalled-sockets bench (bench/stalled.ts) and the recovery
 * bench (bench/recovery.ts: history memory, a reconnect storm, CPU with recovery on vs off). Then writes
 * bench/RESULTS.md and bench/results.svg and prints the tables. Everything runs on 127.0.0.1 with private brokers on
 * ephemeral ports; every phase is bounded and the whole run has a hard deadline.
 *
 * Options: --full; --only=fanout,profile,routing,publish,cluster,batching,stalled,recovery (a
 * subset: prints the tables but leaves RESULTS.md alone; --out=FILE writes that partial report
 * there); --n=1,100 (room sizes); --rounds=N (measured rounds of every bench, the stalled-sockets
 * bench's and the reconnect storm's included); --stall-seconds=S (length of each stalled-sockets
 * run: 60 with --full, 15 otherwise); --storm-sockets=S (sockets of the reconnect storm: 1,000).
 */
import { mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import * as prettier from "prettier";
import { runBatchingBench } from "./batching";
import { runClusterBench } from "./cluster";
import { runStalledBench } from "./stalled";
import { runRecoveryBench } from "./recovery";
import { runPublishBench } from "./publish";
import { summarizeProfile } from "./profile-summary";
import type { ParseResult } from "./parse";
import type { RoutingResult } from "./routing";
import { ensureBuild, libVersion } from "./lib/build";
import { config } from "./lib/config";
import { SYSTEMS, runGroup } from "./lib/fanout";
import { startPool, stopPool } from "./lib/rounds";
import { ROOT, startChild } from "./lib/ipc";
import { loadAverage, machineInfo } from "./lib/proc";
import type { RunResults } from "./lib/report";
import { consoleReport, resultsMarkdown, resultsSvg } from "./lib/report";

const args = process.argv.slice(2);
const arg = (name: string) => args.find((a) => a.startsWith(`--${name}=`))?.split("=")[1];
const cfg = config(args.includes("--full") ? "full" : "quick");
const only = arg("only")?.split(",");
const wants = (part: string) => !only || only.includes(part);
const ns = arg("n")?.split(",").map(Number);
if (ns) cfg.ns = ns;
const rounds = arg("rounds");
if (rounds) cfg.rounds = cfg.stallRounds = cfg.stormRounds = Math.max(1, Number(rounds));
const stallSeconds = arg("stall-seconds");
if (stallSeconds) cfg.stallSeconds = Math.max(1, Number(stallSeconds));
const stormSockets = arg("storm-sockets");
if (stormSockets) cfg.stormSockets = Math.max(1, Number(stormSockets));

const started = performance.now();
const log = (line: string) =>
  console.log(`[${((performance.now() - started) / 1000).toFixed(1).padStart(6)} s] ${line}`);

/**
 * Runs `bench` with a server under --cpu-prof writing into a fresh directory, keeps the main
 * thread's profile as bench/profiles/<name>.cpuprofile and summarizes the measured window.
 */
async function profiled(
  name: string,
  bench: (dir: string) => Promise<{ from: number; to: number }>,
): Promise<string> {
  const dir = path.join(ROOT, "bench", "profiles", name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const window = await bench(dir);
  // CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile: thread 0 is the main thread (tsx's
  // loader thread writes one too)
  const main = readdirSync(dir).find((f) => f.split(".")[4] === "0");
  if (!main) throw new Error(`no main-thread profile in ${dir}`);
  const file = path.join(dir, "..", `${name}.cpuprofile`);
  renameSync(path.join(dir, main), file);
  rmSync(dir, { recursive: true, force: true });
  const summary = summarizeProfile(file, { ...window, top: 12 });
  log(`profile ${name}:\n${summary}\n`);
  return summary;
}

async function main(): Promise<void> {
  const deadline = setTimeout(() => {
    console.error(`bench: deadline of ${cfg.deadlineMs / 1000} s passed, giving up`);
    process.exit(1); // the exit handlers of lib/ipc and test/support kill every child and broker
  }, cfg.deadlineMs);
  deadline.unref();

  const machine = machineInfo();
  log(
    `${cfg.mode} mode on ${machine.cpu} (${machine.nproc} cores), Node ${machine.node}, ` +
      `Mosquitto ${machine.mosquitto}, socket.io ${machine.socketio}, mqtt ${machine.mqtt}, ` +
      `load average ${machine.loadStart}`,
  );
  ensureBuild(log);
  machine.lib = libVersion();
  log(`lib/ at ${machine.lib}`);

  const results: RunResults = {
    cfg,
    machine,
    cells: [],
    profiles: [],
    cluster: "_not run_",
    seconds: 0,
  };

  if (wants("fanout") || wants("profile")) {
    const pool = await startPool(cfg.receivers);
    try {
      if (wants("fanout")) {
        for (const n of cfg.ns)
          results.cells.push(...(await runGroup(pool, cfg, n, SYSTEMS, { log })));
      }
      if (wants("profile")) {
        for (const n of [100, 1]) {
          const summary = await profiled(`bridge-n${n}`, async (dir) => {
            const [cell] = await runGroup(pool, cfg, n, ["bridge"], { log, profile: { dir } });
            return cell.profileWindow!;
          });
          results.profiles.push({ title: `fan-out, N = ${n}`, summary });
        }
      }
    } finally {
      await stopPool(pool);
    }
  }

  if (wants("routing")) {
    log(
      `routing bench: ${cfg.routingFilters.map((f) => f.toLocaleString("en-US")).join(", ")} filters …`,
    );
    const child = await startChild("routing", "bench/routing.ts");
    try {
      // first, while the child's heap is small (the routing setups hold 100,000 filters)
      results.parse = await child.call<ParseResult>("parse", { rounds: 9, repeats: 50 }, 120_000);
      log(
        `[parse] PUBLISH: ${results.parse.v311Ns.toFixed(0)} ns over 3.1.1, ` +
          `${results.parse.v5Ns.toFixed(0)} ns over 5`,
      );
      results.routing = await child.call<RoutingResult[]>(
        "run",
        { filters: cfg.routingFilters, messages: cfg.routingMessages, rounds: cfg.routingRounds },
        300_000,
      );
      for (const r of results.routing) {
        log(
          `[routing ${r.filters} filters] ${r.routedNs.toFixed(0)} ns/message routed, ` +
            `${r.sameNs.toFixed(0)} ns same 8 topics, ${r.unmatchedNs.toFixed(0)} ns unmatched, ` +
            `${r.handwrittenNs.toFixed(0)} / ${r.handwrittenSameNs.toFixed(0)} ns hand-written handler`,
        );
      }
    } finally {
      await child.stop();
    }
  }

  if (wants("publish")) {
    results.publish = await runPublishBench(cfg, log);
    if (wants("profile")) {
      const summary = await profiled("bridge-publish", async (dir) => {
        const profile: { dir: string; window?: { from: number; to: number } } = { dir };
        await runPublishBench(cfg, log, profile);
        return profile.window!;
      });
      results.profiles.push({ title: "socket → broker QoS 1 publishes", summary });
    }
  }

  if (wants("cluster")) {
    const n = cfg.mode === "full" ? 1000 : 100;
    log(`cluster bench: 1 node vs 3 nodes (embedded, forward + worker), N = ${n} …`);
    try {
      results.cluster = await runClusterBench(cfg, log, n);
    } catch (err) {
      // the rest of the run is still written; the section says why the cluster bench is missing
      console.error("cluster bench failed:", err);
      results.cluster = `_failed: ${err instanceof Error ? err.message : String(err)}_`;
    }
  }

  if (wants("batching")) {
    log("batching bench: raw Socket.IO vs the bridge with and without batching, N = 100 …");
    results.batching = await runBatchingBench(cfg, log);
  }

  if (wants("stalled")) {
    log(
      `stalled-sockets bench: ${cfg.stallRounds} × 2 runs of ${cfg.stallSeconds} s (expect ` +
        `about ${Math.ceil((cfg.stallRounds * 2 * (cfg.stallSeconds + 10)) / 60)} min) …`,
    );
    results.stalled = await runStalledBench(cfg, log, cfg.stallSeconds, cfg.stallRounds);
  }

  if (wants("recovery")) {
    results.recovery = await runRecoveryBench(cfg, log);
  }

  results.seconds = (performance.now() - started) / 1000;
  machine.loadEnd = loadAverage();
  // formatted as `npm run format` would, so that `prettier --check .` stays clean after a run
  const mdFile = path.join(ROOT, "bench", "RESULTS.md");
  const md = await prettier.format(resultsMarkdown(results), {
    ...(await prettier.resolveConfig(mdFile)),
    filepath: mdFile,
  });
  console.log(`\n${consoleReport(results)}\n`);
  if (only) {
    // a partial run must not replace the committed results with a mostly empty report
    log("--only: bench/RESULTS.md and bench/results.svg left as they are");
    const out = arg("out");
    if (out) {
      const file = path.resolve(ROOT, out);
      mkdirSync(path.dirname(file), { recursive: true });
      writeFileSync(file, await prettier.format(resultsMarkdown(results), { filepath: file }));
      log(`wrote the partial report to ${out}`);
    }
    return;
  }
  writeFileSync(mdFile, md);
  writeFileSync(path.join(ROOT, "bench", "results.svg"), resultsSvg(results));
  log("wrote bench/RESULTS.md and bench/results.svg");
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error("bench failed:", err);
    process.exit(1);
  },
);
