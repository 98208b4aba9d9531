/** Quick (`npm run bench`, about five minutes) and full (`npm run bench -- --full`) settings. */

export type Mode = "quick" | "full";

export interface Config {
  mode: Mode;
  /** Room sizes of the fan-out bench. */
  ns: number[];
  /** Receiver processes the N sockets are spread over. */
  receivers: number;
  /** Measured rounds per system (rotating order); throughput and latency time split over them. */
  rounds: number;
  warmupMs: number;
  throughputMs: number;
  latencyMs: number;
  /** Matched-load phase: every system at the same rate (see {@link MATCHED_LOAD}). */
  matchedMs: number;
  /** Throughput-phase length of the two profiled bridge runs. */
  profileMs: number;
  /** Filter counts of the routing bench, and routed messages per timed round. */
  routingFilters: number[];
  routingMessages: number;
  routingRounds: number;
  /** Publish bench: publishing clients, unacknowledged publishes per client, duration. */
  publishClients: number;
  publishWindow: number;
  publishMs: number;
  /** Stalled-sockets bench (bench/stalled.ts): seconds per run, and rounds of its two runs. */
  stallSeconds: number;
  stallRounds: number;
  /**
   * Recovery bench (bench/recovery.ts): sockets of the reconnect storm, messages each misses,
   * measured storms per mode.
   */
  stormSockets: number;
  stormMissed: number;
  stormRounds: number;
  /** Hard limit for the whole run; children are killed and the run fails past it. */
  deadlineMs: number;
}

export function config(mode: Mode): Config {
  const full = mode === "full";
  return {
    mode,
    ns: [1, 100, 1000],
    receivers: 2,
    rounds: full ? 5 : 3,
    warmupMs: full ? 2000 : 500,
    throughputMs: full ? 10_000 : 2500,
    latencyMs: full ? 10_000 : 2000,
    matchedMs: full ? 6000 : 2000,
    profileMs: full ? 8000 : 3000,
    routingFilters: [10, 1000, 100_000],
    routingMessages: full ? 200_000 : 40_000,
    routingRounds: full ? 9 : 3,
    publishClients: 10,
    publishWindow: 8,
    publishMs: full ? 10_000 : 3000,
    stallSeconds: full ? 60 : 15,
    stallRounds: 1,
    stormSockets: 1000,
    stormMissed: 100,
    stormRounds: full ? 3 : 1,
    deadlineMs: full ? 45 * 60_000 : 12 * 60_000,
  };
}

/** Messages the publisher may have unacknowledged in the throughput phase (≈ 4,000 deliveries). */
export function windowFor(n: number): number {
  return Math.min(64, Math.max(4, Math.ceil(4000 / n)));
}

/**
 * The matched-load phase runs every system of a room size at this fraction of the lowest
 * deliveries/s any of them reached in the throughput phase: the same load for all, near the limit.
 * CPU per delivery falls as the rate rises (a busy receiver needs no wake-up per write), so each
 * system's CPU at its own throughput favours the faster pipeline; at one rate it does not.
 */
export const MATCHED_LOAD = 0.7;

/**
 * The fixed publish rate of the latency phase, the same for every system: 5,000 deliveries/s at
 * N = 1 and 10,000 deliveries/s at larger N — a fraction of what the slowest system reaches, which
 * the run checks (a system that falls behind is flagged "unsustained").
 */
export function latencyRate(n: number): number {
  return n === 1 ? 5000 : Math.max(1, Math.round(10_000 / n));
}
