/**
 * The upper bounds, in seconds, of the buckets of the broker-to-socket histogram
 * (`socketio_mqtt_bridge_broker_to_socket_seconds`), from 0.1 ms to 2.5 s; a last bucket, `+Inf`,
 * holds the rest. A message that keeps up spends well under a millisecond in the bridge: the
 * batching of one event-loop turn and a busy loop are what move it up.
 */
export const BROKER_TO_SOCKET_BUCKETS: readonly number[] = Object.freeze([
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
]);

/**
 * The clock of the histogram: milliseconds from a fixed point, monotonic, sub-millisecond
 * resolution.
 */
export const clock: () => number = () => performance.now();

/**
 * A Prometheus histogram with fixed buckets (seconds), counting observations only: no labels, no
 * allocation per observation. Its counts are per bucket (not cumulative); {@link cumulative}
 * gives the exposition's `_bucket` values.
 */
export class Histogram {
  /** Observations per bucket; the last one is `+Inf` (past the last bound). */
  readonly counts: number[];
  /** The sum of the observed values, in seconds. */
  sum = 0;
  /** The number of observations. */
  count = 0;

  constructor(readonly bounds: readonly number[] = BROKER_TO_SOCKET_BUCKETS) {
    this.counts = new Array<number>(bounds.length + 1).fill(0);
  }

  /** Counts one observation of `seconds` (negative values, from a clock that is not monotonic, as 0). */
  observe(seconds: number): void {
    const v = seconds > 0 ? seconds : 0;
    const bounds = this.bounds;
    let i = 0;
    // most observations fall in the first buckets: a linear walk beats a binary search here
    while (i < bounds.length && v > bounds[i]) i++;
    this.counts[i]++;
    this.sum += v;
    this.count++;
  }

  /** The `_bucket` values: observations at or below each bound, then `+Inf` (= {@link count}). */
  cumulative(): number[] {
    const out: number[] = [];
    let total = 0;
    for (const c of this.counts) out.push((total += c));
    return out;
  }
}
