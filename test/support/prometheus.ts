/**
 * Checks text against the Prometheus text exposition format 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/) in two ways:
 * - {@link parseExposition}: the format's rules, written out here, so that a test says which rule
 *   broke (names and labels, escapes, HELP/TYPE once each and before the samples, a family's
 *   samples in one group, histograms cumulative up to `+Inf` with `_sum` and `_count`), plus the
 *   naming conventions of https://prometheus.io/docs/practices/naming/ that apply to every family
 *   (`_total` on counters and only on counters);
 * - {@link promtool}: `promtool check metrics`, Prometheus's own parser and linter (Debian's
 *   `prometheus` package, installed by .ci/run).
 */
import { spawnSync } from "node:child_process";
import { findBinary } from "./child";

/** One sample line. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A metric family: its TYPE, HELP and samples. */
export interface Family {
  name: string;
  type: "counter" | "gauge" | "histogram" | "summary" | "untyped";
  help: string | undefined;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);
/**
 * A float as Go's ParseFloat reads it (what Prometheus uses): decimal, or NaN and infinities in
 * any case (prom-client writes "Nan").
 */
const FLOAT = /^(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|nan|[+-]?inf(?:inity)?)$/i;

function parseFloatGo(text: string, where: string): number {
  if (!FLOAT.test(text)) throw new Error(`${where}: "${text}" is not a float`);
  const t = text.toLowerCase();
  if (t === "nan") return NaN;
  if (/^[+-]?inf/.test(t)) return t.startsWith("-") ? -Infinity : Infinity;
  return Number(text);
}

/** Reads `{a="x",b="y"}` from `line` at `i` (at the `{`); returns the labels and the index after `}`. */
function readLabels(line: string, i: number, where: string): [Record<string, string>, number] {
  const labels: Record<string, string> = {};
  i++; // {
  for (;;) {
    if (line[i] === "}") return [labels, i + 1];
    const eq = line.indexOf("=", i);
    if (eq < 0) throw new Error(`${where}: a label without "="`);
    const name = line.slice(i, eq).trim();
    if (!LABEL_NAME.test(name) || name.startsWith("__")) {
      throw new Error(`${where}: bad label name "${name}"`);
    }
    if (name in labels) throw new Error(`${where}: label "${name}" twice`);
    i = eq + 1;
    if (line[i] !== '"') throw new Error(`${where}: the value of label "${name}" is not quoted`);
    i++;
    let value = "";
    for (;;) {
      const c = line[i];
      if (c === undefined) throw new Error(`${where}: unterminated value of label "${name}"`);
      if (c === '"') break;
      if (c === "\\") {
        const next = line[i + 1];
        if (next === "\\") value += "\\";
        else if (next === '"') value += '"';
        else if (next === "n") value += "\n";
        else throw new Error(`${where}: bad escape "\\${next}" in label "${name}"`);
        i += 2;
        continue;
      }
      value += c;
      i++;
    }
    labels[name] = value;
    i++; // closing quote
    if (line[i] === ",") i++;
    else if (line[i] !== "}")
      throw new Error(`${where}: expected "," or "}" after label "${name}"`);
  }
}

/** A HELP docstring unescaped; only `\\` and `\n` are escapes there. */
function unescapeHelp(text: string, where: string): string {
  return text.replace(/\\(.?)/g, (_, c: string) => {
    if (c === "\\") return "\\";
    if (c === "n") return "\n";
    throw new Error(`${where}: bad escape "\\${c}" in HELP`);
  });
}

/** The family a sample name belongs to: its own, or a histogram's / summary's for its suffixes. */
function familyOf(name: string, families: Map<string, Family>): string {
  if (families.has(name)) return name;
  const m = /^(.*)_(bucket|sum|count)$/.exec(name);
  if (m) {
    const base = families.get(m[1]);
    if (base && (base.type === "histogram" || (base.type === "summary" && m[2] !== "bucket"))) {
      return m[1];
    }
  }
  return name;
}

/** Options of {@link parseExposition}. */
export interface ParseOptions {
  /** The families' prefix: every family must start with it, unless {@link foreign}. */
  prefix?: string;
  /**
   * Let families without {@link prefix} through (another library's, e.g. prom-client's), held to
   * the format's rules but not to the naming conventions, which some of them do not follow.
   */
  foreign?: boolean;
}

/**
 * Parses exposition text; throws an Error naming the line and the rule for the first rule broken.
 * Families come in the order of the text.
 */
export function parseExposition(text: string, o: ParseOptions = {}): Map<string, Family> {
  if (!text.endsWith("\n")) throw new Error("the last line does not end with a line feed");
  const families = new Map<string, Family>();
  const series = new Set<string>();
  /** Families whose samples have started, and the one being written. */
  const started = new Set<string>();
  let current: string | undefined;
  const get = (name: string): Family => {
    let f = families.get(name);
    if (!f) families.set(name, (f = { name, type: "untyped", help: undefined, samples: [] }));
    return f;
  };
  const typed = new Set<string>();
  const lines = text.slice(0, -1).split("\n");
  lines.forEach((line, n) => {
    const where = `line ${n + 1} (${JSON.stringify(line.slice(0, 80))})`;
    if (line.trim() === "") return;
    if (line.startsWith("#")) {
      const m = /^#[ \t]+(HELP|TYPE)[ \t]+(\S+)(?:[ \t]+(.*))?$/.exec(line);
      if (!m) return; // a comment
      const [, kind, name, rest = ""] = m;
      if (!METRIC_NAME.test(name)) throw new Error(`${where}: bad metric name "${name}"`);
      if (started.has(name)) throw new Error(`${where}: ${kind} after the samples of ${name}`);
      const f = get(name);
      if (kind === "HELP") {
        if (f.help !== undefined) throw new Error(`${where}: a second HELP for ${name}`);
        f.help = unescapeHelp(rest, where);
      } else {
        if (typed.has(name)) throw new Error(`${where}: a second TYPE for ${name}`);
        if (!TYPES.has(rest.trim())) throw new Error(`${where}: unknown type "${rest}"`);
        typed.add(name);
        f.type = rest.trim() as Family["type"];
      }
      return;
    }
    const nameEnd = line.search(/[{ \t]/);
    if (nameEnd <= 0) throw new Error(`${where}: a sample without a value`);
    const name = line.slice(0, nameEnd);
    if (!METRIC_NAME.test(name)) throw new Error(`${where}: bad metric name "${name}"`);
    let i = nameEnd;
    let labels: Record<string, string> = {};
    if (line[i] === "{") [labels, i] = readLabels(line, i, where);
    const fields = line
      .slice(i)
      .trim()
      .split(/[ \t]+/);
    if (fields.length < 1 || fields.length > 2 || fields[0] === "") {
      throw new Error(`${where}: expected a value and an optional timestamp`);
    }
    const value = parseFloatGo(fields[0], where);
    if (fields.length === 2 && !/^-?\d+$/.test(fields[1])) {
      throw new Error(`${where}: bad timestamp "${fields[1]}"`);
    }
    const familyName = familyOf(name, families);
    if (current !== familyName && started.has(familyName)) {
      throw new Error(`${where}: the samples of ${familyName} are not in one group`);
    }
    current = familyName;
    started.add(familyName);
    const key = `${name}{${Object.entries(labels)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
      .join(",")}}`;
    if (series.has(key)) throw new Error(`${where}: the series ${key} twice`);
    series.add(key);
    const f = get(familyName);
    if (f.type !== "histogram" && "le" in labels) {
      throw new Error(`${where}: label "le" outside a histogram`);
    }
    f.samples.push({ name, labels, value });
  });
  for (const f of families.values()) checkFamily(f, o);
  return families;
}

/** The rules a whole family must follow. */
function checkFamily(f: Family, o: ParseOptions): void {
  const own = o.prefix === undefined || f.name.startsWith(o.prefix);
  if (!own && !o.foreign) throw new Error(`${f.name}: does not start with ${o.prefix}`);
  if (f.type === "histogram") checkHistogram(f);
  if (!own) return;
  if (f.help === undefined) throw new Error(`${f.name}: no HELP`);
  if (f.type === "untyped") throw new Error(`${f.name}: no TYPE`);
  if (f.type === "counter" && !f.name.endsWith("_total")) {
    throw new Error(`${f.name}: a counter whose name does not end in _total`);
  }
  if (f.type !== "counter" && f.name.endsWith("_total")) {
    throw new Error(`${f.name}: a ${f.type} whose name ends in _total`);
  }
  if (f.type === "counter") {
    for (const s of f.samples) {
      if (!(s.value >= 0)) throw new Error(`${f.name}: counter sample ${s.value} is not >= 0`);
    }
  }
}

/** Per label set (le aside): buckets ascending and cumulative, ending at +Inf = _count, and a _sum. */
function checkHistogram(f: Family): void {
  const groups = new Map<string, { buckets: [number, number][]; sum?: number; count?: number }>();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { buckets: [] }));
    if (s.name === `${f.name}_bucket`) {
      if (le === undefined) throw new Error(`${f.name}: a bucket without "le"`);
      g.buckets.push([parseFloatGo(le, `${f.name} le`), s.value]);
    } else if (s.name === `${f.name}_sum`) g.sum = s.value;
    else if (s.name === `${f.name}_count`) g.count = s.value;
    else throw new Error(`${f.name}: sample ${s.name} is not a bucket, sum or count`);
  }
  for (const g of groups.values()) {
    if (g.sum === undefined || g.count === undefined) {
      throw new Error(`${f.name}: no _sum or no _count`);
    }
    const last = g.buckets[g.buckets.length - 1];
    if (!last || last[0] !== Infinity) throw new Error(`${f.name}: the buckets do not end at +Inf`);
    if (last[1] !== g.count) throw new Error(`${f.name}: bucket +Inf (${last[1]}) != _count`);
    for (let i = 1; i < g.buckets.length; i++) {
      if (!(g.buckets[i][0] > g.buckets[i - 1][0])) {
        throw new Error(`${f.name}: bucket bounds not ascending at le=${g.buckets[i][0]}`);
      }
      if (g.buckets[i][1] < g.buckets[i - 1][1]) {
        throw new Error(`${f.name}: buckets not cumulative at le=${g.buckets[i][0]}`);
      }
    }
  }
}

/** The value of the sample `name` whose labels include `labels`; undefined when there is none. */
export function valueOf(
  families: Map<string, Family>,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  for (const f of families.values()) {
    for (const s of f.samples) {
      if (s.name !== name) continue;
      if (Object.entries(labels).every(([k, v]) => s.labels[k] === v)) return s.value;
    }
  }
  return undefined;
}

/** The path of `promtool`; throws with the package to install when it is missing. */
export function promtoolPath(): string {
  try {
    return findBinary("promtool");
  } catch {
    throw new Error(
      "promtool not found: install Debian's prometheus package (apt-get install prometheus; .ci/run does)",
    );
  }
}

/**
 * The problems promtool reports about the families of `prefix` in `text` (its parse errors
 * included: they are about the whole text), leaving out its naming remarks about other libraries'
 * families.
 */
export function promtoolProblems(text: string, prefix: string): string[] {
  const { status, output } = promtool(text);
  const lines = output.split("\n").filter(Boolean);
  if (status === 0) return lines;
  const problems = lines.filter(
    (l) => !/^[a-zA-Z_:][a-zA-Z0-9_:]* /.test(l) || l.startsWith(prefix),
  );
  // exit code 3: lint remarks only; anything else is a failure of its own
  return status === 3 ? problems : [`exit code ${status}`, ...lines];
}

/**
 * Runs `promtool check metrics` on `text` (Prometheus's own parser and its linter of names, units,
 * types and help); returns what it printed and its exit code (0: clean).
 */
export function promtool(text: string): { status: number | null; output: string } {
  const r = spawnSync(promtoolPath(), ["check", "metrics"], {
    input: text,
    encoding: "utf8",
    timeout: 10_000,
  });
  if (r.error) throw r.error;
  return { status: r.status, output: `${r.stdout}${r.stderr}`.trim() };
}
