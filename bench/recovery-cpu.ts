/**
 * Server CPU per delivery with recovery on against `recovery: false` (issue 13), in the fan-out
 * bench's style: for N = 1 and N = 100, one room of N sockets (`mqtt.subscribe` by hand, as the
 * fan-out), one QoS 0 publisher of 100-byte messages, both bridges up at once (each with its own
 * fresh Mosquitto) and measured in turn in rounds that alternate their order. First the history
 * is filled (warm-up rounds until the bridge with recovery keeps its 10,000 messages, so that
 * every message measured also pushes the oldest out: the steady state), then throughput (window
 * W), matched load (both at 70 % of the slower one's throughput) and a fixed rate for latency.
 */
import type { BridgeStats } from "../lib/stats";
import type { Config } from "./lib/config";
import { MATCHED_LOAD, latencyRate, windowFor } from "./lib/config";
import { startSubject, stopSubject } from "./lib/delivery-subject";
import { fmtRate } from "./lib/fanout";
import type { RecoveryMode } from "./lib/recovery-bridge";
import { RECOVERY_MODES } from "./lib/recovery-bridge";
import type { PhaseResult, Pool, Round, Run, Subject } from "./lib/rounds";
import { round, split, startPool, stopPool, sum } from "./lib/rounds";
import type { Latency } from "./lib/stats";
import { mergeLatency } from "./lib/stats";

/** Room sizes of the CPU comparison. */
export const CPU_NS = [1, 100];
/** Longest history fill per room size. */
const FILL_MS = 120_000;

/** One mode at one room size. */
export interface CpuCell {
  mode: RecoveryMode;
  n: number;
  throughput: PhaseResult;
  matched: PhaseResult & { rate: number };
  latency: PhaseResult & Latency & { rate: number };
}

export interface CpuResult {
  cells: CpuCell[];
  /** Per room size: messages kept by the bridge with recovery when the measured rounds began. */
  kept: Record<number, number>;
}

/** The subject of each mode is called `recovery-on` / `recovery-off` (its receivers' group too). */
const modeOf = (s: Subject) => s.system.slice("recovery-".length) as RecoveryMode;

const perDelivery = (x: Round) => (x.serverCpu + x.brokerCpu) / Math.max(1, x.delivered);

/** Warm-up rounds on both, in turn, until the bridge with recovery keeps `maxMessages`. */
async function fill(
  pool: Pool,
  counts: number[],
  n: number,
  subjects: Subject[],
  cfg: Config,
): Promise<number> {
  const on = subjects.find((s) => modeOf(s) === "on")!;
  const kept = async () => (await on.server!.call<BridgeStats>("stats")).recovery.messages;
  const end = performance.now() + FILL_MS;
  const run: Run = {
    mode: "window",
    window: windowFor(n),
    durationMs: Math.max(cfg.warmupMs, 500),
  };
  for (;;) {
    for (const s of subjects) await round(pool, counts, n, s, run, false);
    const k = await kept();
    if (k >= 10_000 || performance.now() > end) return k;
  }
}

async function cpuGroup(
  pool: Pool,
  cfg: Config,
  n: number,
  log: (line: string) => void,
): Promise<{ cells: CpuCell[]; kept: number }> {
  const counts = split(n, pool.receivers.length);
  const subjects: Subject[] = [];
  try {
    for (const mode of RECOVERY_MODES) {
      const extra = mode === "off" ? { recovery: false } : undefined;
      const system = `recovery-${mode}`;
      const s = await startSubject(pool, { system, server: "bridge", extra });
      subjects.push(s);
      const url = `http://127.0.0.1:${s.info!.port}`;
      await Promise.all(
        pool.receivers.map((r, i) =>
          r.call(
            "connect",
            { group: system, kind: "socketio", url, count: counts[i], join: "bridge" },
            120_000,
          ),
        ),
      );
    }
    const tag = (s: Subject) => `[${s.system} N=${n}]`;
    const kept = await fill(pool, counts, n, subjects, cfg);
    log(`[recovery cpu N=${n}] history filled: ${kept} messages kept`);
    const order = (r: number) => (r % 2 === 0 ? subjects : [...subjects].reverse());
    const rounds = cfg.rounds;
    const phases = () => new Map(subjects.map((s) => [s, [] as Round[]]));

    const tp = phases();
    const window = windowFor(n);
    for (let r = 0; r < rounds; r++) {
      for (const s of order(r)) {
        const run: Run = { mode: "window", window, durationMs: cfg.throughputMs / rounds };
        const x = await round(pool, counts, n, s, run, false);
        tp.get(s)!.push(x);
        log(
          `${tag(s)} throughput round ${r + 1}/${rounds}: ${fmtRate(x.delivered / x.seconds)} ` +
            `deliveries/s, ${perDelivery(x).toFixed(2)} server CPU µs/delivery` +
            (x.sent * n > x.delivered ? `, ${x.sent * n - x.delivered} lost` : ""),
        );
      }
    }
    const slowest = Math.min(...subjects.map((s) => sum(tp.get(s)!, n).deliveriesPerSec));
    const rate = Math.max(1, Math.floor((MATCHED_LOAD * slowest) / n));
    const matched = phases();
    for (let r = 0; r < rounds; r++) {
      for (const s of order(r)) {
        const run: Run = { mode: "rate", rate, durationMs: cfg.matchedMs / rounds };
        const x = await round(pool, counts, n, s, run, false);
        matched.get(s)!.push(x);
        log(
          `${tag(s)} matched round ${r + 1}/${rounds} at ${fmtRate(rate * n)} deliveries/s: ` +
            `${perDelivery(x).toFixed(2)} server CPU µs/delivery` +
            (x.unsustained ? " (UNSUSTAINED)" : ""),
        );
      }
    }
    const fixed = latencyRate(n);
    const lat = phases();
    for (let r = 0; r < rounds; r++) {
      for (const s of order(r)) {
        const run: Run = { mode: "rate", rate: fixed, durationMs: cfg.latencyMs / rounds };
        lat.get(s)!.push(await round(pool, counts, n, s, run, true));
      }
    }
    const cells = subjects.map((s) => {
      const l = lat.get(s)!;
      const cell: CpuCell = {
        mode: modeOf(s),
        n,
        throughput: sum(tp.get(s)!, n),
        matched: { ...sum(matched.get(s)!, n), rate },
        latency: { ...sum(l, n), ...mergeLatency(l.flatMap((x) => x.histograms)), rate: fixed },
      };
      log(
        `${tag(s)} at matched load: ${cell.matched.cpuPerDelivery.toFixed(2)} server CPU ` +
          `µs/delivery; at ${fixed} msg/s: ${cell.latency.cpuPerDelivery.toFixed(2)} µs/delivery, ` +
          `p50 ${cell.latency.p50} µs, p99 ${cell.latency.p99} µs` +
          (cell.matched.lost + cell.latency.lost
            ? `, ${cell.matched.lost + cell.latency.lost} lost`
            : ""),
      );
      return cell;
    });
    return { cells, kept };
  } finally {
    await Promise.all(
      pool.receivers.map((r) => r.call("disconnect", {}, 60_000).catch(() => undefined)),
    );
    await pool.publisher.call("closeSinks").catch(() => undefined);
    for (const s of subjects) await stopSubject(s);
  }
}

/** Runs the CPU comparison at every room size of {@link CPU_NS}, with its own client processes. */
export async function runRecoveryCpu(cfg: Config, log: (line: string) => void): Promise<CpuResult> {
  const pool = await startPool(cfg.receivers);
  try {
    const result: CpuResult = { cells: [], kept: {} };
    for (const n of CPU_NS) {
      const { cells, kept } = await cpuGroup(pool, cfg, n, log);
      result.cells.push(...cells);
      result.kept[n] = kept;
    }
    return result;
  } finally {
    await stopPool(pool);
  }
}
