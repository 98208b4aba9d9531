/** Latency histograms (hdr-histogram-js) and number formatting. */
import * as hdr from "hdr-histogram-js";
import type { Histogram } from "hdr-histogram-js";

/** A histogram of latencies in µs, 1 µs to 60 s, 3 significant digits. */
export function latencyHistogram(): Histogram {
  return hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 60_000_000,
    numberOfSignificantValueDigits: 3,
  });
}

/** Serializes a histogram to send it over IPC. */
export function encodeHistogram(h: Histogram): string {
  return hdr.encodeIntoCompressedBase64(h);
}

/** Latency percentiles, in µs. */
export interface Latency {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

/** Merges encoded histograms (one per receiver process) and reads p50 / p99 / max. */
export function mergeLatency(encoded: string[]): Latency {
  const total = latencyHistogram();
  for (const e of encoded) total.add(hdr.decodeFromCompressedBase64(e));
  return {
    count: total.totalCount,
    p50: total.getValueAtPercentile(50),
    p99: total.getValueAtPercentile(99),
    max: total.maxValue,
  };
}

/** 12345.6 → "12,346"; small values keep `digits` decimals. */
export function fmt(n: number | undefined, digits = 0): string {
  if (n === undefined || !Number.isFinite(n)) return "–";
  return n.toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

/** µs → "0.84 ms" / "123 µs". */
export function fmtMicros(us: number | undefined): string {
  if (us === undefined || !Number.isFinite(us)) return "–";
  return us >= 1000 ? `${fmt(us / 1000, 2)} ms` : `${fmt(us)} µs`;
}

/** The median of a list of numbers. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** A Markdown table. */
export function markdownTable(head: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [line(head), line(head.map(() => "---")), ...rows.map(line)].join("\n");
}

/** The same table, aligned for a terminal. */
export function textTable(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ");
  return [line(head), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}
