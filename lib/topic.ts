/**
 * MQTT topic names and topic filters: validation, matching and coverage (the routing trie is in
 * topic-trie.ts).
 *
 * Pure functions only: no Node-only APIs (no Buffer, no node: imports). This module is also
 * bundled into the browser helper. UTF-8 byte lengths are computed by hand from UTF-16 code units.
 *
 * Spec references: MQTT 3.1.1 (OASIS, 2014) and MQTT 5.0 (OASIS, 2019). Rule ids R1..R13 refer
 * to section 1.1 of MQTT-RULES.md.
 *
 * Nothing here ever normalizes, trims or case-folds a topic [MQTT-4.7.3-4] (R9).
 */

/** Policy limits for topic names and filters. */
export interface TopicLimits {
  /** max UTF-8 bytes */
  maxBytes: number;
  /** max levels (number of '/' + 1) */
  maxLevels: number;
}

/** The protocol maximum, 65,535 bytes; levels capped at 32 by default in the bridge. */
export const MQTT_MAX_TOPIC_BYTES = 65_535; // [MQTT-4.7.3-3], 3.1.1 §1.5.3, 5.0 §1.5.4

export const SLASH = 0x2f; // "/"
export const PLUS = 0x2b; // "+"
export const HASH = 0x23; // "#"
export const DOLLAR = 0x24; // "$"
const SHARE_PREFIX = "$share/";
const SHARE_PREFIX_LENGTH = SHARE_PREFIX.length;

/** `String.prototype.isWellFormed` exists in Node >= 20 and current browsers; the scan below
 * also rejects lone surrogates, so older browsers stay safe without it. */
const HAS_IS_WELL_FORMED =
  typeof (String.prototype as { isWellFormed?: unknown }).isWellFormed === "function";

/**
 * Index where the inner filter of a shared subscription starts ("$share/{ShareName}/{filter}"),
 * or 0 when `filter` is not a shared subscription (or has no "/" after the share name).
 * [MQTT-4.8.2-1], [MQTT-4.8.2-2]
 */
export function sharedStart(filter: string): number {
  if (!filter.startsWith(SHARE_PREFIX)) return 0;
  const slash = filter.indexOf("/", SHARE_PREFIX_LENGTH);
  return slash < 0 ? 0 : slash + 1;
}

/** Effective byte limit: min(limits.maxBytes, 65535); a missing/NaN limit means the protocol max. */
function effectiveMaxBytes(limits: TopicLimits): number {
  const max = limits.maxBytes;
  return max >= 0 ? Math.min(max, MQTT_MAX_TOPIC_BYTES) : MQTT_MAX_TOPIC_BYTES;
}

/**
 * Shared validation of topic names (`isFilter` false) and topic filters (`isFilter` true).
 * Returns a reason string or undefined.
 */
function check(s: unknown, limits: TopicLimits, isFilter: boolean): string | undefined {
  const what = isFilter ? "topic filter" : "topic";
  // R1 [MQTT-3.3.2-1]: a UTF-8 string. Type check first: no coercion of numbers, arrays,
  // objects with toString, Buffers, String objects...
  if (typeof s !== "string") return `${what} must be a string`;
  // R3 [MQTT-4.7.3-1]: at least one character.
  if (s.length === 0) return `${what} must not be empty`;
  const maxBytes = effectiveMaxBytes(limits);
  const maxLevels = limits.maxLevels; // NaN/undefined: comparisons below are false, no limit
  const tooLong = `${what} is longer than ${maxBytes} bytes`;
  // R6 [MQTT-4.7.3-3]: UTF-8 bytes >= UTF-16 code units, so this cheap check is exact as a
  // rejection and avoids scanning huge strings.
  if (s.length > maxBytes) return tooLong;
  // R5 [MQTT-1.5.3-1] (3.1.1) / [MQTT-1.5.4-1] (5.0): no lone surrogates. Checked before any
  // encoding, which would silently substitute U+FFFD.
  if (HAS_IS_WELL_FORMED && !s.isWellFormed()) return `${what} must be well-formed UTF-16`;
  if (maxLevels < 1) return `${what} has more than ${maxLevels} levels`;

  const len = s.length;
  let start = 0; // where the (inner) filter starts; levels are counted from here
  if (isFilter && s.startsWith(SHARE_PREFIX)) {
    // R13 [MQTT-4.8.2-1]: "$share/{ShareName}/{filter}", ShareName at least one character.
    const slash = s.indexOf("/", SHARE_PREFIX_LENGTH);
    if (slash < 0) return "shared subscription must be $share/{ShareName}/{filter}";
    if (slash === SHARE_PREFIX_LENGTH) return "shared subscription ShareName must not be empty";
    // [MQTT-4.8.2-2]: ShareName must not contain "/", "+" or "#".
    for (let i = SHARE_PREFIX_LENGTH; i < slash; i++) {
      const c = s.charCodeAt(i);
      if (c === PLUS || c === HASH) {
        return "shared subscription ShareName must not contain + or #";
      }
    }
    start = slash + 1;
    // [MQTT-4.8.2-2] + [MQTT-4.7.3-1]: the "/" is followed by a non-empty topic filter.
    if (start === len) return "shared subscription topic filter must not be empty";
    // Policy (as EMQX): no shared subscription inside a shared subscription.
    if (s.startsWith(SHARE_PREFIX, start)) return "shared subscriptions must not be nested";
  }

  let bytes = 0;
  let levels = 1;
  for (let i = 0; i < len; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) {
      bytes += 1;
      // R4 [MQTT-4.7.3-2], [MQTT-1.5.3-2] (3.1.1) / [MQTT-1.5.4-2] (5.0): no U+0000.
      if (c === 0) return `${what} must not contain U+0000`;
      // R8 3.1.1 §1.5.3 / 5.0 §1.5.4 (SHOULD NOT; policy: reject, as mosquitto does).
      if (c <= 0x1f || c === 0x7f) return `${what} must not contain control characters`;
      if (c === SLASH) {
        if (i >= start && ++levels > maxLevels) return `${what} has more than ${maxLevels} levels`;
      } else if (c === PLUS) {
        // R2 [MQTT-3.3.2-2], [MQTT-4.7.1-1] (3.1.1) / [MQTT-4.7.0-1] (5.0): none in names.
        if (!isFilter) return `${what} must not contain wildcards (+ or #)`;
        // R11 [MQTT-4.7.1-3] (3.1.1) / [MQTT-4.7.1-2] (5.0): "+" occupies an entire level.
        if (
          (i > start && s.charCodeAt(i - 1) !== SLASH) ||
          (i + 1 < len && s.charCodeAt(i + 1) !== SLASH)
        ) {
          return "+ must occupy an entire level of the topic filter";
        }
      } else if (c === HASH) {
        if (!isFilter) return `${what} must not contain wildcards (+ or #)`;
        // R10 [MQTT-4.7.1-2] (3.1.1) / [MQTT-4.7.1-1] (5.0): "#" alone or after "/", and last.
        if ((i > start && s.charCodeAt(i - 1) !== SLASH) || i + 1 !== len) {
          return "# must be the last level of the topic filter, on its own";
        }
      }
    } else if (c < 0x800) {
      bytes += 2;
      // R8: C1 controls U+0080..U+009F.
      if (c <= 0x9f) return `${what} must not contain control characters`;
    } else if (c >= 0xd800 && c <= 0xdbff) {
      const d = i + 1 < len ? s.charCodeAt(i + 1) : 0;
      // R5: a high surrogate must be followed by a low surrogate (fallback for engines
      // without isWellFormed).
      if (d < 0xdc00 || d > 0xdfff) return `${what} must be well-formed UTF-16`;
      const cp = ((c - 0xd800) << 10) + (d - 0xdc00) + 0x10000;
      // R8: non-characters U+1FFFE, U+1FFFF, ..., U+10FFFE, U+10FFFF.
      if ((cp & 0xfffe) === 0xfffe) return `${what} must not contain Unicode non-characters`;
      bytes += 4;
      i++;
    } else {
      // R5: a low surrogate here is a lone one.
      if (c >= 0xdc00 && c <= 0xdfff) return `${what} must be well-formed UTF-16`;
      // R8: non-characters U+FDD0..U+FDEF, U+FFFE, U+FFFF. R7 [MQTT-1.5.4-3]: U+FEFF (BOM) is
      // an ordinary character and passes unchanged.
      if ((c >= 0xfdd0 && c <= 0xfdef) || c >= 0xfffe) {
        return `${what} must not contain Unicode non-characters`;
      }
      bytes += 3;
    }
    // R6 [MQTT-4.7.3-3]: UTF-8 length, not .length.
    if (bytes > maxBytes) return tooLong;
  }
  return undefined;
}

/**
 * Returns undefined when `topic` is a valid MQTT topic NAME (for PUBLISH) within limits, else a
 * short human-readable reason (e.g. "topic must be a string", "topic must not contain wildcards
 * (+ or #)", "topic is longer than 1024 bytes").
 *
 * Rules: a JS string (type check first, nothing is coerced) [R1]; length >= 1 [R3];
 * byte length <= min(limits.maxBytes, 65535) [R6]; well-formed UTF-16, no lone surrogates [R5];
 * no U+0000 [R4]; no control characters U+0001–U+001F, U+007F–U+009F and no Unicode
 * non-characters (U+FDD0–U+FDEF and code points whose low 16 bits are FFFE or FFFF) [R8, policy];
 * no '+' or '#' [R2]; levels ('/' count + 1) <= limits.maxLevels. The BOM U+FEFF is allowed
 * [R7]. Never normalizes anything [R9]. A NaN/missing limit means "protocol maximum" / "no level
 * limit"; a limit of 0 rejects everything.
 *
 * `$`-topics ("$SYS/...", "$share/...") are valid syntax; denying them is the caller's policy.
 * When several rules are broken, the reason reported is the first one found scanning left to
 * right (the type, empty, length and well-formedness checks come first).
 */
export function checkTopicName(topic: unknown, limits: TopicLimits): string | undefined {
  return check(topic, limits, false);
}

/**
 * Same as {@link checkTopicName} for a topic FILTER (SUBSCRIBE): the same string rules, plus '#'
 * only as the whole last level [R10] and '+' only as a whole level [R11].
 *
 * Shared-subscription filters ("$share/...") are checked against their syntax [R13]: a
 * ShareName of at least one character without '/', '+' or '#', followed by '/' and a valid
 * non-empty filter. Nested ones ("$share/g1/$share/t") are rejected. Whether shared
 * subscriptions are allowed at all is the caller's policy.
 *
 * For a shared subscription the byte limit applies to the whole string (what goes on the
 * wire) and the level limit to the inner filter (the levels that are matched). "$share" alone
 * (no "/") is an ordinary filter.
 */
export function checkTopicFilter(filter: unknown, limits: TopicLimits): string | undefined {
  return check(filter, limits, true);
}

/** True when the filter is a shared subscription ("$share/..."). [MQTT-4.8.2-1] */
export function isSharedFilter(filter: string): boolean {
  return filter.startsWith(SHARE_PREFIX);
}

/** True when `filter` contains '+' or '#'. */
export function hasWildcard(filter: string): boolean {
  return filter.includes("+") || filter.includes("#");
}

/** Index of the end of the level starting at `start` (the next "/" or the string's length). */
export function levelEnd(s: string, start: number): number {
  const slash = s.indexOf("/", start);
  return slash < 0 ? s.length : slash;
}

/** Do s[a, a+n) and t[b, b+n) hold the same code units? No normalization [MQTT-4.7.3-4]. */
function sameRange(s: string, a: number, t: string, b: number, n: number): boolean {
  for (let k = 0; k < n; k++) {
    if (s.charCodeAt(a + k) !== t.charCodeAt(b + k)) return false;
  }
  return true;
}

/** Is the level of `s` starting at `i` exactly the single character `code`? */
function isLevel(s: string, i: number, code: number): boolean {
  return s.charCodeAt(i) === code && (i + 1 === s.length || s.charCodeAt(i + 1) === SLASH);
}

/**
 * Does a (valid) filter match a (valid) topic name? Implements section D of MQTT-RULES.md,
 * including [MQTT-4.7.2-1]: a filter starting with a wildcard does not match topics starting
 * with '$'.
 *
 * Walks both strings by index; allocates nothing. A shared subscription "$share/{name}/{f}"
 * matches what its inner filter `f` matches (MQTT 5.0 §4.8.2). Matching is exact, case- and
 * whitespace-sensitive [MQTT-4.7.3-4]. Empty levels are levels ("a//b", "/a", "a/").
 */
export function matches(filter: string, topic: string): boolean {
  let f = sharedStart(filter);
  const fl = filter.length;
  const tl = topic.length;
  // R12 [MQTT-4.7.2-1]: "#" or "+" as the first level never matches a topic starting with "$".
  if (topic.charCodeAt(0) === DOLLAR) {
    const c = filter.charCodeAt(f);
    if (c === HASH || c === PLUS) return false;
  }
  // f / t: start of the current level; a value of length + 1 means "no more levels".
  let t = 0;
  for (;;) {
    // "#" matches the parent level and any number of child levels [MQTT-4.7.1-2].
    if (f <= fl && filter.charCodeAt(f) === HASH) return true;
    if (t > tl) return false; // topic has no level left for this filter level
    const fe = levelEnd(filter, f);
    const te = levelEnd(topic, t);
    // "+" matches exactly one level, including an empty one [MQTT-4.7.1-3].
    if (!(fe === f + 1 && filter.charCodeAt(f) === PLUS)) {
      if (fe - f !== te - t || !sameRange(filter, f, topic, t, fe - f)) return false;
    }
    if (fe === fl) return te === tl;
    f = fe + 1;
    t = te + 1; // te === tl gives tl + 1: topic exhausted
  }
}

/**
 * Does `rule` (a valid filter) cover `filter` (a valid filter), i.e. is every topic name that
 * `filter` can match also matched by `rule`? Used for authorization: a requested subscription
 * is allowed only if a rule covers it.
 *
 * Examples: covers("sensors/#", "sensors/+/temp") true; covers("sensors/#", "sensors") true;
 * covers("sensors/#", "#") false; covers("#", "$SYS/#") false; covers("#", "a/#") true;
 * covers("+/#", "+/x") true; covers("a/+", "a/#") false ("a/#" matches "a" and "a/b/c");
 * covers("a/#", "a") true; covers("+", "$x") false; covers("a/+", "a/b") true.
 *
 * Exact for ordinary filters (true if and only if the set of topics matched by `filter` is a
 * subset of the one matched by `rule`, given that valid topic names are non-empty), so
 * covers("+/#", "#") and covers("/+/#", "/#") are true. Honors [MQTT-4.7.2-1]: a first-level wildcard in `rule` never
 * covers a first level starting with "$". Shared subscriptions are compared as shared
 * subscriptions: a shared filter is covered only by a shared rule with the same ShareName whose
 * inner filter covers its inner filter; ordinary rules never cover shared filters and vice
 * versa (conservative, deny-by-default).
 */
export function covers(rule: string, filter: string): boolean {
  let r = sharedStart(rule);
  let f = sharedStart(filter);
  if (r !== f) return false; // shared vs ordinary, or ShareNames of different lengths
  if (r > 0 && !sameRange(rule, 0, filter, 0, r)) return false; // different ShareName
  const rl = rule.length;
  const fl = filter.length;
  // "#" as the filter's first level, or as its second level after an empty first level, cannot
  // match its parent (that would be the empty topic name, invalid [MQTT-4.7.3-1]): there it
  // matches exactly what "+/#" matches.
  const emptyFirst = filter.charCodeAt(f) === SLASH;
  let first = true;
  let second = false;
  for (;;) {
    // r / f: start of the current level; a value of length + 1 means "no more levels".
    if (r <= rl && rule.charCodeAt(r) === HASH) {
      // "#" covers the rest, including "no more levels" (the parent), except that at the
      // first level it does not cover a literal level starting with "$" [MQTT-4.7.2-1].
      return !first || filter.charCodeAt(f) !== DOLLAR;
    }
    if (f > fl) return r > rl; // filter ends here: the rule must end here too
    if (r > rl) return false; // filter matches longer topics than the rule
    const re = levelEnd(rule, r);
    const fe = levelEnd(filter, f);
    const rPlus = re === r + 1 && rule.charCodeAt(r) === PLUS;
    const fPlus = fe === f + 1 && filter.charCodeAt(f) === PLUS;
    if (fe === f + 1 && filter.charCodeAt(f) === HASH) {
      // filter "#" here matches the parent and all descendants; the rule level is not "#".
      // Only "+/#" can cover it, where "#" cannot match the parent (see emptyFirst).
      return (
        (first || (second && emptyFirst)) && rPlus && re + 1 < rl && isLevel(rule, re + 1, HASH)
      );
    }
    if (rPlus) {
      // "+" covers "+" and any literal level, except a first level starting with "$".
      if (first && !fPlus && filter.charCodeAt(f) === DOLLAR) return false;
    } else if (fPlus || re - r !== fe - f || !sameRange(rule, r, filter, f, re - r)) {
      return false; // a literal level covers only the same literal
    }
    second = first;
    first = false;
    r = re + 1;
    f = fe + 1;
  }
}
