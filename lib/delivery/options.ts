import { optionError } from "../errors";

/** What happens to a socket whose unsent data passes `delivery.highWaterMark`. */
export type SlowPolicy = "conflate" | "drop" | "disconnect";

/** How messages reach sockets (README, "Slow sockets and batched frames"). */
export interface DeliveryOptions {
  /**
   * Sockets that ask for it (`mqtt.options { batch: true }`, the browser helper does) receive the
   * messages bound for them in one event-loop turn as one `mqtt.messages` array. `false`: every
   * socket gets one `mqtt.message` per message. @default true
   */
  batch: boolean;
  /** Most messages in one `mqtt.messages` frame (a longer turn sends several). @default 256 */
  maxBatch: number;
  /**
   * Bytes waiting to be written to one socket (in Socket.IO/engine.io and the WebSocket) above
   * which it counts as slow; it catches up once below half of it. @default 1048576
   */
  highWaterMark: number;
  /**
   * While a socket is slow: `"conflate"` keeps the latest message per topic for it, `"drop"` drops
   * its messages (both tell it `skipped: n` later), `"disconnect"` disconnects it.
   * @default "conflate"
   */
  slow: SlowPolicy;
  /**
   * Bytes (topic + payload + 64 per entry) waiting for slow sockets on this node, all together;
   * each slow socket may hold up to `highWaterMark` of them. A socket that would pass either bound
   * is disconnected instead. @default 67108864
   */
  maxWaitingBytes: number;
  /** How often the sockets' unsent data is looked at. @default 100 */
  checkMs: number;
}

/** The default delivery options. */
export const DEFAULT_DELIVERY: Readonly<DeliveryOptions> = Object.freeze({
  batch: true,
  maxBatch: 256,
  highWaterMark: 1_048_576,
  slow: "conflate",
  maxWaitingBytes: 64 * 1_048_576,
  checkMs: 100,
});

const POLICIES: readonly SlowPolicy[] = ["conflate", "drop", "disconnect"];

/** Validates `delivery` (an object or undefined) and applies the defaults. */
export function resolveDelivery(v: unknown): DeliveryOptions {
  if (v === undefined) return { ...DEFAULT_DELIVERY };
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw optionError("delivery", "an object", v);
  }
  const given = v as Partial<Record<keyof DeliveryOptions, unknown>>;
  const get = (key: keyof DeliveryOptions): unknown =>
    Object.prototype.hasOwnProperty.call(given, key) ? given[key] : undefined;
  const out: DeliveryOptions = { ...DEFAULT_DELIVERY };
  const batch = get("batch");
  if (batch !== undefined) {
    if (typeof batch !== "boolean") throw optionError("delivery.batch", "a boolean", batch);
    out.batch = batch;
  }
  const slow = get("slow");
  if (slow !== undefined) {
    if (!POLICIES.includes(slow as SlowPolicy)) {
      throw optionError("delivery.slow", '"conflate", "drop" or "disconnect"', slow);
    }
    out.slow = slow as SlowPolicy;
  }
  const ints: [keyof DeliveryOptions, number, number][] = [
    ["maxBatch", 1, 65_536],
    ["highWaterMark", 1024, 2 ** 31 - 1],
    ["maxWaitingBytes", 1024, 2 ** 31 - 1],
    ["checkMs", 1, 60_000],
  ];
  for (const [key, min, max] of ints) {
    const n = get(key);
    if (n === undefined) continue;
    if (typeof n !== "number" || !Number.isInteger(n) || n < min || n > max) {
      throw optionError(`delivery.${key}`, `an integer from ${min} to ${max}`, n);
    }
    (out as unknown as Record<string, number>)[key] = n;
  }
  return out;
}
