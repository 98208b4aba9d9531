import { optionError } from "../errors";

/** Missed-message recovery across reconnects (README, "Recovery: missed messages"). */
export interface RecoveryOptions {
  /**
   * How long delivered messages are kept for sockets that reconnect, and how long a broker
   * subscription whose last socket left by disconnecting is held after it. @default 120000
   */
  windowMs: number;
  /** Most messages kept. @default 10000 */
  maxMessages: number;
  /** Most bytes kept (topic + raw payload + 240 per message). @default 33554432 */
  maxBytes: number;
  /**
   * Most broker subscriptions held at once for sockets that disconnected (past it, a subscription
   * goes at once, as without recovery). @default 1000
   */
  maxLingering: number;
}

/** The default recovery options. */
export const DEFAULT_RECOVERY: Readonly<RecoveryOptions> = Object.freeze({
  windowMs: 120_000,
  maxMessages: 10_000,
  maxBytes: 32 * 1_048_576,
  maxLingering: 1000,
});

/** Validates `recovery` (an object, `false`, or undefined) and applies the defaults. */
export function resolveRecovery(v: unknown): RecoveryOptions | false {
  if (v === undefined || v === true) return { ...DEFAULT_RECOVERY };
  if (v === false) return false;
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw optionError("recovery", "an object or false", v);
  }
  const given = v as Partial<Record<keyof RecoveryOptions, unknown>>;
  const out: RecoveryOptions = { ...DEFAULT_RECOVERY };
  const ints: [keyof RecoveryOptions, number, number][] = [
    ["windowMs", 0, 24 * 3_600_000],
    ["maxMessages", 1, 10_000_000],
    ["maxBytes", 1024, 2 ** 31 - 1],
    ["maxLingering", 0, 1_000_000],
  ];
  for (const [key, min, max] of ints) {
    const n = Object.prototype.hasOwnProperty.call(given, key) ? given[key] : undefined;
    if (n === undefined) continue;
    if (typeof n !== "number" || !Number.isInteger(n) || n < min || n > max) {
      throw optionError(`recovery.${key}`, `an integer from ${min} to ${max}`, n);
    }
    out[key] = n;
  }
  return out;
}
