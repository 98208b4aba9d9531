import { unknownOptionError } from "./errors";

/**
 * The keys an options object may have: `keys` at its top level, and for each nested options
 * object (`allow`, `limits`, …) the keys of that object.
 */
export interface KnownKeys {
  keys: readonly string[];
  nested: Readonly<Record<string, readonly string[]>>;
}

/** A key JSON.parse makes an own property; the option resolvers ignore it (see options.ts). */
const PROTO = "__proto__";

/**
 * Throws a `TypeError` naming the first unknown key of `opts` or of one of its nested objects,
 * with its path (`limits.payloadByte`) and the closest known key. A typo would otherwise be
 * ignored silently: `alow` would mean deny-all, `mqt` a connection to the default broker.
 */
export function checkKnownKeys(opts: object, known: KnownKeys): void {
  const nestedKeys = Object.entries(known.nested).flatMap(([group, keys]) =>
    keys.map((key) => `${group}.${key}`),
  );
  for (const key of Object.keys(opts)) {
    if (key === PROTO || known.keys.includes(key)) continue;
    // a nested option given at the top level (`payloadBytes` for `limits.payloadBytes`)
    const nested = nestedKeys.find((path) => path.endsWith(`.${key}`));
    throw unknownOptionError(key, nested ?? closest(key, known.keys), known.keys);
  }
  for (const [group, keys] of Object.entries(known.nested)) {
    const value: unknown = Object.prototype.hasOwnProperty.call(opts, group)
      ? (opts as Record<string, unknown>)[group]
      : undefined;
    if (typeof value !== "object" || value === null || Array.isArray(value)) continue;
    for (const key of Object.keys(value)) {
      if (key === PROTO || keys.includes(key)) continue;
      const suggestion = closest(key, keys);
      throw unknownOptionError(
        `${group}.${key}`,
        suggestion === undefined ? undefined : `${group}.${suggestion}`,
        keys.map((k) => `${group}.${k}`),
      );
    }
  }
}

/**
 * The candidate closest to `word`, case aside: the one with the smallest edit distance, at most 3,
 * where a candidate that is a prefix of `word` (or `word` of it) counts as close whatever its
 * length (`sub` → `subscribe`, `offlineQueueSize` → `offlineQueue`); undefined when none is.
 */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  const w = word.toLowerCase();
  let best: string | undefined;
  let bestScore = Infinity;
  for (const candidate of candidates) {
    const c = candidate.toLowerCase();
    const distance = levenshtein(w, c);
    // a prefix either way counts as close whatever its length (`sub` → `subscribe`)
    const prefix = w.length >= 3 && (c.startsWith(w) || w.startsWith(c));
    const score = prefix ? Math.min(distance, 1.5) : distance;
    if (score <= 3 && score < bestScore) {
      best = candidate;
      bestScore = score;
    }
  }
  return best;
}

/** The Levenshtein edit distance (insertions, deletions, substitutions) between two strings. */
export function levenshtein(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1);
      current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, substitution);
    }
    previous = current;
  }
  return previous[b.length];
}
