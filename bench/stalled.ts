/**
 * The stalled-sockets bench of issue 12: one bridge (default options: batching, `delivery.slow:
 * "conflate"`, 1 MiB high-water mark), one room of 100 sockets on the browser helper with
 * batching, 1 KiB messages at 2,000 msg/s spread over 10 topics (the sockets subscribe to
 * `bench/fanout/#`), for `seconds` (60 with --full). Two runs, each on a fresh bridge and
 * Mosquitto: every socket reading, and 10 of the 100 no longer reading (their TCP socket paused
 * after the warm-up, as a client that stops reading). Measured during the run: the bridge
 * process's RSS growth (sampled by the process every 20 ms, peak − start), the latency of the
 * reading sockets and the messages they lost, `stats().delivery`. After the run the stalled
 * sockets read again: the bench waits (at most 30 s) until the bridge counts no slow socket and
 * each of them has accounted for every message (received + `skipped`).
 *
 * Socket.IO's heartbeat would close a socket that reads nothing after 45 s (25 s ping interval +
 * 20 s timeout); the server's `pingTimeout` is raised past the run so that the stalled sockets
 * stay connected throughout, the worst case for the bridge's memory.
 */
import type { Config } from "./lib/config";
import type { DeliveryCounters } from "./lib/delivery-subject";
import { deliveryCounters, startSubject, stopSubject } from "./lib/delivery-subject";
import { fmtRate } from "./lib/fanout";
import type { PhaseResult, Pool, Round, Run, Subject } from "./lib/rounds";
import { round, split, startPool, stopPool, sum } from "./lib/rounds";
import type { Latency } from "./lib/stats";
import { mergeLatency } from "./lib/stats";
import { sleep } from "../test/support/util";

/** The workload (issue 12). */
export const STALL = {
  n: 100,
  stalled: 10,
  rate: 2000,
  bytes: 1024,
  topics: 10,
  filter: "bench/fanout/#",
  warmupMs: 2000,
  catchUpMs: 30_000,
} as const;

/** One run (summed over rounds): every socket reading (`stalled` 0) or 10 stalled. */
export interface StallRun {
  stalled: number;
  readers: number;
  seconds: number;
  /** The reading sockets: deliveries, losses, CPU; latency over every delivery. */
  phase: PhaseResult & Latency;
  /** The bridge process's RSS during the run, MiB: at its start, peak − start (the largest round). */
  rssStartMiB: number;
  rssGrowthMiB: number;
  /**
   * `stats().delivery` over the run (before the stalled sockets read again), summed over rounds;
   * `slow`: at its end (the largest round).
   */
  delivery: DeliveryCounters;
  /** After reading again: seconds until no socket was slow (max over rounds; undefined: never). */
  catchUpSeconds?: number;
  /** Stalled sockets that accounted for every message (received + skipped), and how many. */
  accounted: number;
  stalledSockets: number;
}

export interface StallResult {
  seconds: number;
  runs: StallRun[];
}

interface StallRound {
  x: Round;
  rss: { start: number; peak: number };
  delivery: DeliveryCounters;
  catchUpSeconds?: number;
  accounted: number;
}

/** One run on a fresh bridge and broker. */
async function stallRound(
  pool: Pool,
  stalled: number,
  seconds: number,
  log: (line: string) => void,
): Promise<StallRound> {
  const system = `stall-${stalled}`;
  const io = { pingTimeout: seconds * 1000 + 60_000 };
  const s: Subject = await startSubject(pool, { system, server: "bridge", extra: { io } });
  const shape = { bytes: STALL.bytes, topics: STALL.topics };
  try {
    const counts = split(STALL.n, pool.receivers.length);
    const url = `http://127.0.0.1:${s.info!.port}`;
    await Promise.all(
      pool.receivers.map((r, i) =>
        r.call(
          "connect",
          {
            group: system,
            kind: "socketio",
            url,
            count: counts[i],
            join: "helper",
            filter: STALL.filter,
          },
          120_000,
        ),
      ),
    );
    const warmup: Run = { mode: "rate", rate: STALL.rate, durationMs: STALL.warmupMs, ...shape };
    await round(pool, counts, STALL.n, s, warmup, false);

    const paused = split(stalled, pool.receivers.length);
    await Promise.all(
      pool.receivers.map((r, i) => r.call("stall", { group: system, count: paused[i] })),
    );
    const readers = counts.map((c, i) => c - paused[i]);
    const n = STALL.n - stalled;
    const d0 = (await deliveryCounters(s))!;
    await s.server!.call("rss", { reset: true });
    const run: Run = { mode: "rate", rate: STALL.rate, durationMs: seconds * 1000, ...shape };
    const x = await round(pool, readers, n, s, run, true);
    const rss = await s.server!.call<{ start: number; peak: number }>("rss", {});
    const d1 = (await deliveryCounters(s))!;
    const delivery = { ...d1 };
    for (const k of ["conflated", "dropped", "disconnected", "frames", "messages"] as const) {
      delivery[k] = d1[k] - d0[k];
    }
    delivery.messagesPerFrame = delivery.frames ? delivery.messages / delivery.frames : 0;
    log(
      `[stalled ${stalled}/${STALL.n}] ${fmtRate(x.delivered / x.seconds)} deliveries/s to the readers, ` +
        `RSS +${((rss.peak - rss.start) / 1_048_576).toFixed(1)} MiB, ` +
        `delivery ${JSON.stringify(delivery)}` +
        (x.sent * n > x.delivered ? `, ${x.sent * n - x.delivered} lost` : "") +
        (x.unsustained ? " (UNSUSTAINED)" : ""),
    );

    let catchUpSeconds: number | undefined;
    let accounted = 0;
    if (stalled > 0) {
      const t0 = performance.now();
      await Promise.all(pool.receivers.map((r) => r.call("resume", { group: system })));
      const end = t0 + STALL.catchUpMs;
      for (;;) {
        const slow = (await deliveryCounters(s))?.slow ?? 0;
        const got = (
          await Promise.all(
            pool.receivers.map((r) => r.call<number[]>("stalledStats", { group: system })),
          )
        ).flat();
        accounted = got.filter((a) => a === x.sent).length;
        if (slow === 0 && catchUpSeconds === undefined) {
          catchUpSeconds = (performance.now() - t0) / 1000;
        }
        if ((slow === 0 && accounted === stalled) || performance.now() > end) break;
        await sleep(50);
      }
      log(
        `[stalled ${stalled}/${STALL.n}] reading again: ` +
          (catchUpSeconds === undefined
            ? "still slow"
            : `caught up in ${catchUpSeconds.toFixed(1)} s`) +
          `, ${accounted} of ${stalled} accounted for all ${x.sent} messages`,
      );
    }
    return { x, rss, delivery, catchUpSeconds, accounted };
  } finally {
    await Promise.all(
      pool.receivers.map((r) => r.call("disconnect", {}, 60_000).catch(() => undefined)),
    );
    await pool.publisher.call("closeSinks").catch(() => undefined);
    await stopSubject(s);
  }
}

function merge(stalled: number, seconds: number, rounds: StallRound[]): StallRun {
  const n = STALL.n - stalled;
  const total = (f: (d: DeliveryCounters) => number) =>
    rounds.reduce((t, r) => t + f(r.delivery), 0);
  const frames = total((d) => d.frames);
  const messages = total((d) => d.messages);
  const catchUps = rounds.map((r) => r.catchUpSeconds);
  const mib = (b: number) => b / 1_048_576;
  return {
    stalled,
    readers: n,
    seconds,
    phase: {
      ...sum(
        rounds.map((r) => r.x),
        n,
      ),
      ...mergeLatency(rounds.flatMap((r) => r.x.histograms)),
    },
    rssStartMiB: mib(Math.max(...rounds.map((r) => r.rss.start))),
    rssGrowthMiB: mib(Math.max(...rounds.map((r) => r.rss.peak - r.rss.start))),
    delivery: {
      slow: Math.max(...rounds.map((r) => r.delivery.slow)),
      conflated: total((d) => d.conflated),
      dropped: total((d) => d.dropped),
      disconnected: total((d) => d.disconnected),
      frames,
      messages,
      messagesPerFrame: frames ? messages / frames : 0,
    },
    catchUpSeconds:
      stalled === 0 || catchUps.some((c) => c === undefined)
        ? undefined
        : Math.max(...(catchUps as number[])),
    accounted: rounds.reduce((t, r) => t + r.accounted, 0),
    stalledSockets: stalled * rounds.length,
  };
}

/** Runs the stalled-sockets bench: `rounds` × (all reading, 10 stalled), alternating the order. */
export async function runStalledBench(
  cfg: Config,
  log: (line: string) => void,
  seconds: number,
  rounds: number,
): Promise<StallResult> {
  const pool = await startPool(cfg.receivers);
  try {
    const byStalled = new Map<number, StallRound[]>([
      [0, []],
      [STALL.stalled, []],
    ]);
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 === 0 ? [0, STALL.stalled] : [STALL.stalled, 0];
      for (const stalled of order) {
        log(
          `[stalled ${stalled}/${STALL.n}] round ${r + 1}/${rounds}: ${seconds} s at ${STALL.rate} msg/s …`,
        );
        byStalled.get(stalled)!.push(await stallRound(pool, stalled, seconds, log));
      }
    }
    return { seconds, runs: [...byStalled].map(([stalled, rs]) => merge(stalled, seconds, rs)) };
  } finally {
    await stopPool(pool);
  }
}
