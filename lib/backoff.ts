/**
 * Capped exponential backoff with jitter, shared by the server side (broker reconnects,
 * SUBSCRIBE retries) and the browser helper (restore retries). No Node APIs.
 */

/** The delays of a backoff: doubling from `minDelayMs` up to `maxDelayMs`, ± `jitter` (0 … 1). */
export interface BackoffOptions {
  minDelayMs: number;
  maxDelayMs: number;
  jitter: number;
}

/** The delay before attempt `attempt` (0-based): capped exponential with jitter. */
export function backoffDelay(attempt: number, r: BackoffOptions, random = Math.random): number {
  const base = Math.min(r.maxDelayMs, r.minDelayMs * 2 ** Math.min(attempt, 30));
  const spread = base * r.jitter * (random() * 2 - 1);
  return Math.max(1, Math.round(base + spread));
}
