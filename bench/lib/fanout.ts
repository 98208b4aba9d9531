/**
 * The fan-out bench for one room size N: every system under test is started at once (its own
 * server process and its own fresh Mosquitto, so peak RSS is per system), the receivers connect
 * N clients to each, then the systems are measured in turn, in rounds with a rotating order
 * (ABCD, BCDA, …) so that drift on a shared 2-core machine hits them alike: a warm-up each, then
 * throughput rounds (windowed publisher), then latency rounds (fixed rate).
 */
import { startMosquitto } from "../../test/support/mosquitto";
import type { ServerInfo } from "../servers/common";
import type { Config } from "./config";
import { MATCHED_LOAD, latencyRate, windowFor } from "./config";
import { startChild } from "./ipc";
import { peakRssKiB } from "./proc";
import type { PhaseResult, Pool, Round, Run, Subject as AnySubject } from "./rounds";
import { round, split, sum } from "./rounds";
import type { Latency } from "./stats";
import { mergeLatency } from "./stats";

export const SYSTEMS = ["bridge", "raw", "handwritten", "direct"] as const;
export type System = (typeof SYSTEMS)[number];

/** A subject of the fan-out bench. */
type Subject = AnySubject<System>;

export const SYSTEM_NAMES: Record<System, string> = {
  bridge: "our bridge",
  raw: "raw Socket.IO",
  handwritten: "hand-written bridge",
  direct: "browser-direct MQTT",
};

export interface CellResult {
  system: System;
  n: number;
  window: number;
  throughput: PhaseResult;
  latency?: PhaseResult & Latency & { rate: number };
  /** Every system of the room size at one rate, {@link MATCHED_LOAD} of the slowest's throughput. */
  matched?: PhaseResult & { rate: number };
  serverRssKiB: number;
  brokerRssKiB: number;
  noDelay: { publisher: boolean; server?: boolean };
  /** The bridge's own counters after the run (bridge only). */
  bridgeMessages?: unknown;
  /** Profiled runs: the throughput rounds on the server's monotonic clock (µs). */
  profileWindow?: { from: number; to: number };
}

async function startSubject(pool: Pool, system: System, execArgv: string[]): Promise<Subject> {
  const s: Subject = { system, noDelay: false };
  if (system !== "raw") {
    s.broker = await startMosquitto({
      websockets: system === "direct",
      extraConfig: ["set_tcp_nodelay true"],
    });
  }
  if (system !== "direct") {
    s.server = await startChild(
      system,
      `bench/servers/${system}.ts`,
      [s.broker?.url ?? ""],
      execArgv,
    );
    s.info = await s.server.call<ServerInfo>("info");
  }
  const sink =
    system === "raw"
      ? { id: system, kind: "tcp", url: `tcp://127.0.0.1:${s.info!.ingestPort}` }
      : { id: system, kind: "mqtt", url: s.broker!.url };
  s.noDelay = (await pool.publisher.call<{ noDelay: boolean }>("sink", sink)).noDelay;
  return s;
}

export interface GroupOptions {
  /** Profile the server (one Node system) with --cpu-prof into `dir`; no latency rounds then. */
  profile?: { dir: string };
  log: (line: string) => void;
}

export const fmtRate = (v: number) => Math.round(v).toLocaleString("en-US");

/** Measures `systems` for one room size `n`; see the file comment. */
export async function runGroup(
  pool: Pool,
  cfg: Config,
  n: number,
  systems: readonly System[],
  opts: GroupOptions,
): Promise<CellResult[]> {
  const counts = split(n, pool.receivers.length);
  const subjects: Subject[] = [];
  const tag = (s: Subject) => `[${s.system} N=${n}${opts.profile ? " profiled" : ""}]`;
  // a directory of its own: tsx's loader thread writes a profile too (it must not overwrite the
  // main thread's, which the caller picks)
  const execArgv = opts.profile ? ["--cpu-prof", `--cpu-prof-dir=${opts.profile.dir}`] : [];
  try {
    for (const system of systems) {
      const s = await startSubject(pool, system, execArgv);
      subjects.push(s);
      const t = performance.now();
      const url = system === "direct" ? s.broker!.wsUrl! : `http://127.0.0.1:${s.info!.port}`;
      await Promise.all(
        pool.receivers.map((r, i) =>
          r.call(
            "connect",
            {
              group: system,
              kind: system === "direct" ? "mqtt" : "socketio",
              url,
              count: counts[i],
              join: system === "bridge" ? "bridge" : "event",
            },
            120_000,
          ),
        ),
      );
      opts.log(
        `${tag(s)} up, ${n} clients joined in ${((performance.now() - t) / 1000).toFixed(1)} s`,
      );
    }

    const window = windowFor(n);
    const rounds = opts.profile ? 1 : cfg.rounds;
    for (const s of subjects) {
      await round(pool, counts, n, s, { mode: "window", window, durationMs: cfg.warmupMs }, false);
    }
    const order = (r: number) => subjects.map((_, i) => subjects[(i + r) % subjects.length]);

    const tp = new Map<Subject, Round[]>(subjects.map((s) => [s, []]));
    const mark0 = opts.profile ? await subjects[0].server!.call<number>("mark") : 0;
    const tpMs = (opts.profile ? cfg.profileMs : cfg.throughputMs) / rounds;
    for (let r = 0; r < rounds; r++) {
      for (const s of order(r)) {
        const x = await round(
          pool,
          counts,
          n,
          s,
          { mode: "window", window, durationMs: tpMs },
          false,
        );
        tp.get(s)!.push(x);
        opts.log(
          `${tag(s)} throughput round ${r + 1}/${rounds}: ${fmtRate(x.delivered / x.seconds)} deliveries/s, ` +
            `${((x.serverCpu + x.brokerCpu) / Math.max(1, x.delivered)).toFixed(2)} server CPU µs/delivery` +
            (x.sent * n > x.delivered ? `, ${x.sent * n - x.delivered} lost` : "") +
            (x.stalled ? " (STALLED)" : ""),
        );
      }
    }
    const mark1 = opts.profile ? await subjects[0].server!.call<number>("mark") : 0;

    // the same load for every system: MATCHED_LOAD of the slowest one's throughput
    const matched = new Map<Subject, Round[]>(subjects.map((s) => [s, []]));
    const slowest = Math.min(...subjects.map((s) => sum(tp.get(s)!, n).deliveriesPerSec));
    const matchedRate = Math.max(1, Math.floor((MATCHED_LOAD * slowest) / n));
    if (!opts.profile) {
      for (let r = 0; r < rounds; r++) {
        for (const s of order(r)) {
          const run: Run = { mode: "rate", rate: matchedRate, durationMs: cfg.matchedMs / rounds };
          matched.get(s)!.push(await round(pool, counts, n, s, run, false));
        }
      }
    }

    const lat = new Map<Subject, Round[]>(subjects.map((s) => [s, []]));
    const rate = latencyRate(n);
    if (!opts.profile) {
      for (let r = 0; r < rounds; r++) {
        for (const s of order(r)) {
          const run: Run = { mode: "rate", rate, durationMs: cfg.latencyMs / rounds };
          lat.get(s)!.push(await round(pool, counts, n, s, run, true));
        }
      }
    }

    const results: CellResult[] = [];
    for (const s of subjects) {
      const throughput = sum(tp.get(s)!, n);
      let latency: CellResult["latency"];
      const lr = lat.get(s)!;
      if (lr.length) {
        latency = { ...sum(lr, n), ...mergeLatency(lr.flatMap((x) => x.histograms)), rate };
        opts.log(
          `${tag(s)} ${fmtRate(throughput.deliveriesPerSec)} deliveries/s, ` +
            `${throughput.cpuPerDelivery.toFixed(2)} server CPU µs/delivery ` +
            `(rounds ${throughput.roundsCpuPerDelivery.map((v) => v.toFixed(2)).join(", ")}); ` +
            `latency at ${rate} msg/s: p50 ${latency.p50} µs, p99 ${latency.p99} µs, max ${latency.max} µs` +
            (latency.lost ? `, ${latency.lost} lost` : "") +
            (latency.unsustained ? " (UNSUSTAINED)" : ""),
        );
      }
      const mr = matched.get(s)!;
      const atMatched = mr.length ? { ...sum(mr, n), rate: matchedRate } : undefined;
      if (atMatched) {
        opts.log(
          `${tag(s)} at ${fmtRate(matchedRate * n)} deliveries/s (matched load): ` +
            `${atMatched.cpuPerDelivery.toFixed(2)} server CPU µs/delivery, ` +
            `${atMatched.writesPerDelivery.toFixed(3)} write syscalls/delivery` +
            (atMatched.unsustained ? " (UNSUSTAINED)" : ""),
        );
      }
      results.push({
        system: s.system,
        n,
        window,
        throughput,
        matched: atMatched,
        latency,
        serverRssKiB: s.server ? peakRssKiB(s.server.pid) : 0,
        brokerRssKiB: s.broker ? peakRssKiB(s.broker.pid) : 0,
        noDelay: { publisher: s.noDelay, server: s.info?.mqttNoDelay },
        bridgeMessages:
          s.system === "bridge"
            ? (await s.server!.call<{ messages: unknown }>("stats")).messages
            : undefined,
        profileWindow: opts.profile ? { from: mark0, to: mark1 } : undefined,
      });
    }
    return results;
  } finally {
    await Promise.all(
      pool.receivers.map((r) => r.call("disconnect", {}, 60_000).catch(() => undefined)),
    );
    await pool.publisher.call("closeSinks").catch(() => undefined);
    for (const s of subjects) {
      await s.server?.stop(10_000);
      await s.broker?.stop();
    }
  }
}
