/** The targets a run is checked against: a measured figure, its limit, met or not. */

/** One target of a run. */
export interface Target {
  target: string;
  measured: string;
  limit: string;
  /** undefined: not measured in this run. */
  pass: boolean | undefined;
}

/** a ÷ b, undefined when either is missing or b is 0. */
export function ratio(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined || b === undefined || b === 0 ? undefined : a / b;
}

/** A target on a ratio: at most (or at least) `limit`. */
export function ratioTarget(
  name: string,
  value: number | undefined,
  limit: number,
  atMost: boolean,
): Target {
  return {
    target: name,
    measured: value === undefined ? "n/a" : `${value.toFixed(2)}×`,
    limit: `${atMost ? "≤" : "≥"} ${limit}×`,
    pass: value === undefined ? undefined : atMost ? value <= limit : value >= limit,
  };
}

/** "pass", "FAIL" or "n/a". */
export const verdict = (p: boolean | undefined) => (p === undefined ? "n/a" : p ? "pass" : "FAIL");
