/**
 * The batching bench of issue 12: one room of 100 sockets, four systems up at once, each with its
 * own server process (and its own fresh Mosquitto):
 * - `raw`: raw Socket.IO, one room broadcast per message (bench/servers/raw.ts);
 * - `bridge`: the bridge with batching (the default), its sockets on the browser helper, which
 *   asks for `mqtt.messages` frames (its `batch` option, default true) and unpacks them;
 * - `bridge-nobatch`: the same with `delivery.batch: false` (the helper asks, the server says no);
 * - `handwritten`: the hand-written bridge (bench/servers/handwritten.ts), for latency.
 * Per burst size (1, 4, 16 messages written back to back by the publisher, each burst in a turn
 * of its own): a warm-up, throughput rounds with a window of 64 unacknowledged messages, then
 * matched-load rounds (every system at MATCHED_LOAD of the slowest one's throughput, in bursts of
 * the same size); then latency rounds at a fixed rate of one message every 10 ms (one message
 * per event-loop turn). Rounds rotate the order of the systems, as the fan-out bench does.
 * Measured: server (+ broker) CPU per delivery, the receiver processes' CPU per delivery (the
 * client side: the helper's cost), the bridge's messages per frame, latency percentiles.
 */
import type { Config } from "./lib/config";
import { MATCHED_LOAD, latencyRate } from "./lib/config";
import type { FramedRound, SubjectSpec } from "./lib/delivery-subject";
import { framedRound, messagesPerFrame, startSubject, stopSubject } from "./lib/delivery-subject";
import { fmtRate } from "./lib/fanout";
import type { PhaseResult, Pool, Run, Subject } from "./lib/rounds";
import { split, startPool, stopPool, sum } from "./lib/rounds";
import { peakRssKiB } from "./lib/proc";
import type { Latency } from "./lib/stats";
import { mergeLatency } from "./lib/stats";

export const BATCH_SYSTEMS = ["raw", "bridge", "bridge-nobatch", "handwritten"] as const;
export type BatchSystem = (typeof BATCH_SYSTEMS)[number];

export const BATCH_SYSTEM_NAMES: Record<BatchSystem, string> = {
  raw: "raw Socket.IO (room broadcast per message)",
  bridge: "bridge, batching",
  "bridge-nobatch": "bridge, batching off",
  handwritten: "hand-written bridge",
};

const SPECS: Record<BatchSystem, SubjectSpec<BatchSystem>> = {
  raw: { system: "raw", server: "raw" },
  bridge: { system: "bridge", server: "bridge" },
  "bridge-nobatch": {
    system: "bridge-nobatch",
    server: "bridge",
    extra: { delivery: { batch: false } },
  },
  handwritten: { system: "handwritten", server: "handwritten" },
};

/** Burst sizes, room size and window of the bench. */
export const BURSTS = [1, 4, 16];
export const BATCH_N = 100;
/** Unacknowledged messages in the throughput rounds (a multiple of every burst size). */
export const BATCH_WINDOW = 64;

/** A phase plus what the delivery benches add to it. */
export type DeliveryPhase = PhaseResult & {
  /** The bridge's messages per frame (undefined: not the bridge). */
  messagesPerFrame?: number;
};

/** One system at one burst size. */
export interface BurstCell {
  system: BatchSystem;
  burst: number;
  throughput: DeliveryPhase;
  matched: DeliveryPhase & { rate: number };
}

export interface BatchingResult {
  n: number;
  window: number;
  cells: BurstCell[];
  /** Fixed rate, one message at a time. */
  latency: (DeliveryPhase & Latency & { system: BatchSystem; rate: number })[];
  /** Per system: sockets the server batches for, out of how many. */
  sockets: Record<BatchSystem, { batching: number; of: number }>;
  serverRssKiB: Record<BatchSystem, number>;
}

function phase(rounds: FramedRound[], n: number): DeliveryPhase {
  return { ...sum(rounds, n), messagesPerFrame: messagesPerFrame(rounds) };
}

const perDelivery = (r: FramedRound) => (r.serverCpu + r.brokerCpu) / Math.max(1, r.delivered);

/** Runs the batching bench with its own client processes; see the file comment. */
export async function runBatchingBench(
  cfg: Config,
  log: (line: string) => void,
): Promise<BatchingResult> {
  const n = BATCH_N;
  const pool: Pool = await startPool(cfg.receivers);
  const subjects: Subject<BatchSystem>[] = [];
  const sockets = {} as BatchingResult["sockets"];
  try {
    const counts = split(n, pool.receivers.length);
    for (const system of BATCH_SYSTEMS) {
      const t = performance.now();
      const s = await startSubject(pool, SPECS[system]);
      subjects.push(s);
      const join = system === "raw" || system === "handwritten" ? "event" : "helper";
      const url = `http://127.0.0.1:${s.info!.port}`;
      const answers = await Promise.all(
        pool.receivers.map((r, i) =>
          r.call<{ connected: number; batching: number }>(
            "connect",
            { group: system, kind: "socketio", url, count: counts[i], join },
            120_000,
          ),
        ),
      );
      const total = (k: "connected" | "batching") => answers.reduce((acc, a) => acc + a[k], 0);
      sockets[system] = { of: total("connected"), batching: total("batching") };
      log(
        `[batching ${system}] up, ${n} clients joined in ${((performance.now() - t) / 1000).toFixed(1)} s` +
          (join === "helper" ? `, ${total("batching")} of them batching` : ""),
      );
    }
    const order = (r: number) => subjects.map((_, i) => subjects[(i + r) % subjects.length]);
    const rounds = cfg.rounds;
    const cells: BurstCell[] = [];

    for (const burst of BURSTS) {
      for (const s of subjects) {
        const run: Run = { mode: "window", window: BATCH_WINDOW, durationMs: cfg.warmupMs, burst };
        await framedRound(pool, counts, n, s, run, false);
      }
      const tp = new Map(subjects.map((s) => [s, [] as FramedRound[]]));
      for (let r = 0; r < rounds; r++) {
        for (const s of order(r)) {
          const durationMs = cfg.throughputMs / rounds;
          const run: Run = { mode: "window", window: BATCH_WINDOW, durationMs, burst };
          const x = await framedRound(pool, counts, n, s, run, false);
          tp.get(s)!.push(x);
          log(
            `[batching ${s.system} burst ${burst}] throughput round ${r + 1}/${rounds}: ` +
              `${fmtRate(x.delivered / x.seconds)} deliveries/s, ${perDelivery(x).toFixed(2)} server CPU µs/delivery` +
              (x.frames ? `, ${(x.framedMessages / x.frames).toFixed(2)} messages/frame` : "") +
              (x.sent * n > x.delivered ? `, ${x.sent * n - x.delivered} lost` : "") +
              (x.stalled ? " (STALLED)" : ""),
          );
        }
      }
      const slowest = Math.min(...subjects.map((s) => sum(tp.get(s)!, n).deliveriesPerSec));
      const rate = Math.max(1, Math.floor((MATCHED_LOAD * slowest) / n));
      const matched = new Map(subjects.map((s) => [s, [] as FramedRound[]]));
      for (let r = 0; r < rounds; r++) {
        for (const s of order(r)) {
          const run: Run = { mode: "rate", rate, durationMs: cfg.matchedMs / rounds, burst };
          matched.get(s)!.push(await framedRound(pool, counts, n, s, run, false));
        }
      }
      for (const s of subjects) {
        const cell: BurstCell = {
          system: s.system,
          burst,
          throughput: phase(tp.get(s)!, n),
          matched: { ...phase(matched.get(s)!, n), rate },
        };
        cells.push(cell);
        log(
          `[batching ${s.system} burst ${burst}] at ${fmtRate(rate * n)} deliveries/s (matched): ` +
            `${cell.matched.cpuPerDelivery.toFixed(2)} server CPU µs/delivery, ` +
            `${cell.matched.clientCpuPerDelivery.toFixed(2)} client CPU µs/delivery` +
            (cell.matched.messagesPerFrame
              ? `, ${cell.matched.messagesPerFrame.toFixed(2)} messages/frame`
              : "") +
            (cell.matched.unsustained ? " (UNSUSTAINED)" : ""),
        );
      }
    }

    const rate = latencyRate(n);
    const lat = new Map(subjects.map((s) => [s, [] as FramedRound[]]));
    for (let r = 0; r < rounds; r++) {
      for (const s of order(r)) {
        const run: Run = { mode: "rate", rate, durationMs: cfg.latencyMs / rounds };
        lat.get(s)!.push(await framedRound(pool, counts, n, s, run, true));
      }
    }
    const latency = subjects.map((s) => {
      const lr = lat.get(s)!;
      const l = { ...phase(lr, n), ...mergeLatency(lr.flatMap((x) => x.histograms)) };
      log(
        `[batching ${s.system}] at ${rate} msg/s: ${l.cpuPerDelivery.toFixed(2)} server CPU µs/delivery, ` +
          `${l.clientCpuPerDelivery.toFixed(2)} client CPU µs/delivery, p50 ${l.p50} µs, p99 ${l.p99} µs` +
          (l.lost ? `, ${l.lost} lost` : "") +
          (l.unsustained ? " (UNSUSTAINED)" : ""),
      );
      return { ...l, system: s.system, rate };
    });
    const serverRssKiB = Object.fromEntries(
      subjects.map((s) => [s.system, s.server ? peakRssKiB(s.server.pid) : 0]),
    ) as Record<BatchSystem, number>;
    return { n, window: BATCH_WINDOW, cells, latency, sockets, serverRssKiB };
  } finally {
    await Promise.all(
      pool.receivers.map((r) => r.call("disconnect", {}, 60_000).catch(() => undefined)),
    );
    await pool.publisher.call("closeSinks").catch(() => undefined);
    for (const s of subjects) await stopSubject(s);
    await stopPool(pool);
  }
}
