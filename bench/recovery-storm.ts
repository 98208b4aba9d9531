/**
 * The reconnect storm of issue 13: S sockets (1,000) on the browser helper, in the storm client
 * processes (bench/clients/storm.ts), subscribed to `bench/recovery/#`; all drop at once (their
 * transport closed, as a network cut); M messages (100, 100 bytes, retained, over 10 topics) are
 * published meanwhile; all reconnect at once and the helper restores each subscription with the
 * position its handler reached. With recovery on, each socket must recover the M missed messages,
 * once and in order; with `recovery: false` it only gets the retained state (the last message of
 * each topic). Then 10 live messages check that every socket is live again.
 *
 * Measured from the reconnect order (t0) on: the time until every socket is restored and holds
 * what it should (recovery on: the M missed messages; off: the retained state), the bridge
 * process's and Mosquitto's CPU over that time, the bridge's RSS (sampled every 20 ms by the
 * process, from t0) and its VmHWM. Each round starts a fresh bridge and Mosquitto per mode, connects
 * the sockets, runs one storm unmeasured (warm-up) and then the measured one; rounds alternate the
 * order of the modes.
 */
import { waitFor } from "../test/support/util";
import type { Child } from "./lib/ipc";
import { nowMicros } from "./lib/payload";
import { cpuMicros, peakRssKiB } from "./lib/proc";
import type { RecoveryBridge, RecoveryMode } from "./lib/recovery-bridge";
import {
  RECOVERY_FILTER,
  bridgeStats,
  cpuOf,
  publishSeq,
  startBridge,
  stopBridge,
} from "./lib/recovery-bridge";
import { split } from "./lib/rounds";
import { median } from "./lib/stats";
import type { SocketReport } from "./clients/storm";

/** The storm's fixed shape (the socket and message counts come from the config). */
export const STORM = {
  topics: 10,
  bytes: 100,
  /** Live messages after the storm. */
  live: 10,
  /** Longest wait for every socket to settle, and for the live messages. */
  settleMs: 60_000,
  liveMs: 15_000,
} as const;

/** One measured storm. */
export interface StormRun {
  mode: RecoveryMode;
  round: number;
  sockets: number;
  missed: number;
  /** Seconds from t0 until every socket connected / was restored / settled (undefined: never). */
  connectedSeconds?: number;
  restoredSeconds?: number;
  doneSeconds?: number;
  /** Median socket's settle time, seconds. */
  medianDoneSeconds?: number;
  /** Sockets restored, and what their restores said. */
  restored: number;
  recovered: number;
  notRecovered: number;
  /** Sockets that had every message they should have (on: the M missed; off: the retained). */
  complete: number;
  /** Messages of the missed part got (distinct), over all sockets; min and max per socket. */
  got: number;
  gotMin: number;
  gotMax: number;
  duplicates: number;
  disordered: number;
  /** Messages outside the storm's sequence numbers (e.g. an older retained state). */
  outside: number;
  /** Sockets that got every live message after the storm. */
  liveComplete: number;
  /** CPU over the storm (t0 until every socket settled), ms. */
  serverCpuMs: number;
  brokerCpuMs: number;
  clientCpuMs: number;
  /** Bridge process RSS at t0 and its peak during the storm (MiB); VmHWM over its life (MiB). */
  rssStartMiB: number;
  rssPeakMiB: number;
  hwmMiB: number;
  /** `stats()` over the storm: recovery.recovered / failed / replayed, retained.replayed. */
  bridge: { recovered: number; failed: number; replayed: number; retainedReplayed: number };
  /** The helper's errors by code (onError). */
  errors: Record<string, number>;
}

export interface StormResult {
  sockets: number;
  missed: number;
  rounds: number;
  runs: StormRun[];
}

interface Progress {
  sockets: number;
  connected: number;
  restored: number;
  done: number;
  live: number;
  received: number;
}

const mib = (bytes: number) => bytes / 1_048_576;

async function progress(clients: Child[]): Promise<Progress> {
  const all = await Promise.all(clients.map((c) => c.call<Progress>("progress")));
  const total = (k: keyof Progress) => all.reduce((t, p) => t + p[k], 0);
  return {
    sockets: total("sockets"),
    connected: total("connected"),
    restored: total("restored"),
    done: total("done"),
    live: total("live"),
    received: total("received"),
  };
}

/** Polls until `pred` holds for the clients' progress, or `ms` passed; the last progress. */
async function until(clients: Child[], pred: (p: Progress) => boolean, ms: number) {
  const end = performance.now() + ms;
  for (;;) {
    const p = await progress(clients);
    if (pred(p) || performance.now() > end) return p;
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** One storm from sequence number `from`; measured or not (`round` -1: the warm-up). */
async function storm(
  b: RecoveryBridge,
  clients: Child[],
  from: number,
  missed: number,
  round: number,
  log: (line: string) => void,
): Promise<StormRun> {
  const recovery = b.mode === "on";
  const want = recovery ? missed : Math.min(STORM.topics, missed);
  const window = { from, missed, live: STORM.live, want, recovery };
  await Promise.all(clients.map((c) => c.call("window", window)));
  await Promise.all(clients.map((c) => c.call("drop", {}, 30_000)));
  await waitFor(async () => (await b.server.call<number>("clients")) === 0, {
    timeoutMs: 15_000,
    message: "the bridge to see every socket gone",
  });
  // on: the broker subscription is held (lingering); off: it is gone before the messages come
  await waitFor(
    async () => {
      const s = await bridgeStats(b);
      return recovery ? s.recovery.lingering === 1 : s.brokerSubscriptions === 0;
    },
    { timeoutMs: 10_000, message: recovery ? "a lingering subscription" : "no subscription" },
  );
  const shape = { topics: STORM.topics, bytes: STORM.bytes, retain: true };
  await publishSeq(b, { from, count: missed, ...shape }, recovery);

  const s0 = await bridgeStats(b);
  await b.server.call("rss", { reset: true });
  const clientCpu = () => clients.reduce((t, c) => t + cpuMicros(c.pid), 0);
  const [cpu0, client0] = [await cpuOf(b), clientCpu()];
  const t0 = nowMicros();
  await Promise.all(clients.map((c) => c.call("reconnect", { t0 })));
  const p = await until(clients, (x) => x.done === x.sockets, STORM.settleMs);
  const [cpu1, client1] = [await cpuOf(b), clientCpu()];
  const rss = await b.server.call<{ start: number; peak: number }>("rss");
  const s1 = await bridgeStats(b);

  await publishSeq(b, { from: from + missed, count: STORM.live, ...shape });
  const live = await until(clients, (x) => x.live === x.sockets, STORM.liveMs);

  const reports = await Promise.all(
    clients.map((c) =>
      c.call<{ sockets: SocketReport[]; errors: Record<string, number> }>("report"),
    ),
  );
  const sockets = reports.flatMap((r) => r.sockets);
  const errors: Record<string, number> = {};
  for (const r of reports) for (const [k, v] of Object.entries(r.errors)) errors[k] = v;
  const settledAt = (s: SocketReport) =>
    s.restoredAt < 0
      ? -1
      : recovery && s.recovered === false
        ? s.restoredAt
        : s.completeAt < 0
          ? -1
          : Math.max(s.restoredAt, s.completeAt);
  const allAt = (f: (s: SocketReport) => number) => {
    const ts = sockets.map(f);
    return ts.some((t) => t < 0) ? undefined : Math.max(...ts) / 1e6;
  };
  const done = sockets.map(settledAt).filter((t) => t >= 0);
  const got = sockets.map((s) => s.got);
  const run: StormRun = {
    mode: b.mode,
    round,
    sockets: sockets.length,
    missed,
    connectedSeconds: allAt((s) => s.connectedAt),
    restoredSeconds: allAt((s) => s.restoredAt),
    doneSeconds: p.done === p.sockets ? allAt(settledAt) : undefined,
    medianDoneSeconds: done.length ? median(done) / 1e6 : undefined,
    restored: sockets.filter((s) => s.restoredAt >= 0).length,
    recovered: sockets.filter((s) => s.recovered === true).length,
    notRecovered: sockets.filter((s) => s.recovered === false).length,
    complete: sockets.filter((s) => s.got >= want).length,
    got: got.reduce((t, g) => t + g, 0),
    gotMin: Math.min(...got),
    gotMax: Math.max(...got),
    duplicates: sockets.reduce((t, s) => t + s.duplicates, 0),
    disordered: sockets.reduce((t, s) => t + s.disordered, 0),
    outside: sockets.reduce((t, s) => t + s.outside, 0),
    liveComplete: live.live,
    serverCpuMs: (cpu1.server - cpu0.server) / 1000,
    brokerCpuMs: (cpu1.broker - cpu0.broker) / 1000,
    clientCpuMs: (client1 - client0) / 1000,
    rssStartMiB: mib(rss.start),
    rssPeakMiB: mib(rss.peak),
    hwmMiB: peakRssKiB(b.server.pid) / 1024,
    bridge: {
      recovered: s1.recovery.recovered - s0.recovery.recovered,
      failed: s1.recovery.failed - s0.recovery.failed,
      replayed: s1.recovery.replayed - s0.recovery.replayed,
      retainedReplayed: s1.retained.replayed - s0.retained.replayed,
    },
    errors,
  };
  const secs = (v: number | undefined) => (v === undefined ? "never" : `${v.toFixed(2)} s`);
  log(
    `[storm recovery ${b.mode}${round < 0 ? " warm-up" : ` round ${round + 1}`}] ` +
      `${run.sockets} sockets: all settled after ${secs(run.doneSeconds)} ` +
      `(restored ${secs(run.restoredSeconds)}), ${run.recovered} recovered, ` +
      `${run.notRecovered} not; missed messages got ${run.gotMin}–${run.gotMax} per socket ` +
      `(want ${want}), ${run.duplicates} duplicates, ${run.disordered} out of order, ` +
      `${run.outside} outside; live ${run.liveComplete}/${run.sockets}; bridge replayed ` +
      `${run.bridge.replayed} missed + ${run.bridge.retainedReplayed} retained; ` +
      `server CPU ${run.serverCpuMs.toFixed(0)} ms + broker ${run.brokerCpuMs.toFixed(0)} ms, ` +
      `RSS ${run.rssStartMiB.toFixed(0)} → ${run.rssPeakMiB.toFixed(0)} MiB` +
      (Object.keys(errors).length ? `, helper errors ${JSON.stringify(errors)}` : ""),
  );
  return run;
}

/** One round of one mode: a fresh bridge, the sockets, a warm-up storm, the measured storm. */
async function stormRound(
  clients: Child[],
  mode: RecoveryMode,
  sockets: number,
  missed: number,
  round: number,
  log: (line: string) => void,
): Promise<StormRun> {
  const b = await startBridge(mode);
  try {
    const t = performance.now();
    const url = `http://127.0.0.1:${b.info.port}`;
    const counts = split(sockets, clients.length);
    await Promise.all(
      clients.map((c, i) =>
        c.call("connect", { url, count: counts[i], filter: RECOVERY_FILTER }, 300_000),
      ),
    );
    log(
      `[storm recovery ${mode}] ${sockets} sockets subscribed in ` +
        `${((performance.now() - t) / 1000).toFixed(1)} s`,
    );
    const step = missed + STORM.live;
    await storm(b, clients, 0, missed, -1, log);
    return await storm(b, clients, step, missed, round, log);
  } finally {
    await Promise.all(clients.map((c) => c.call("disconnect", {}, 60_000).catch(() => undefined)));
    await stopBridge(b);
  }
}

/** Runs `rounds` × (recovery on, off), alternating the order; see the file comment. */
export async function runStorm(
  clients: Child[],
  opts: { sockets: number; missed: number; rounds: number },
  log: (line: string) => void,
): Promise<StormResult> {
  const runs: StormRun[] = [];
  for (let r = 0; r < opts.rounds; r++) {
    const order: RecoveryMode[] = r % 2 === 0 ? ["on", "off"] : ["off", "on"];
    for (const mode of order) {
      runs.push(await stormRound(clients, mode, opts.sockets, opts.missed, r, log));
    }
  }
  return { sockets: opts.sockets, missed: opts.missed, rounds: opts.rounds, runs };
}
