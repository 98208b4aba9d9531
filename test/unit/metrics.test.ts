/**
 * bridge.metrics()'s text (lib/metrics.ts, lib/metrics-histogram.ts): every field of stats() has a
 * metric or a written reason, each value lands in its metric, and the text follows the exposition
 * format (checked by the rules of test/support/prometheus.ts and by promtool).
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { expect } from "chai";
import type { MetricMapping } from "../../lib/metrics";
import { METRIC_TABLE, METRICS_PREFIX, renderMetrics } from "../../lib/metrics";
import { BROKER_TO_SOCKET_BUCKETS, Histogram } from "../../lib/metrics-histogram";
import type { BridgeStats } from "../../lib/stats";
import { createStats } from "../../lib/stats";
import { parseExposition, promtool, valueOf } from "../support/prometheus";

const TABLE = METRIC_TABLE as Readonly<Record<string, MetricMapping>>;
const H = `${METRICS_PREFIX}broker_to_socket_seconds`;

/** The paths of the fields of `stats()`; a field mapped as a whole (by key) is one path. */
function fieldPaths(value: unknown, prefix = ""): string[] {
  const out: string[] = [];
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    const path = prefix + key;
    const mapping = TABLE[path];
    if (v !== null && typeof v === "object" && !(mapping && "byKey" in mapping)) {
      out.push(...fieldPaths(v, `${path}.`));
    } else out.push(path);
  }
  return out;
}

/** Stats whose every number is different (1001, 1002, …), booleans true, strings `text`. */
function distinctStats(text = "id-1"): BridgeStats {
  let next = 1000;
  const fill = (o: Record<string, unknown>): void => {
    for (const key of Object.keys(o)) {
      const v = o[key];
      if (v !== null && typeof v === "object") fill(v as Record<string, unknown>);
      else if (typeof v === "boolean") o[key] = true;
      else if (key === "clientId" || key === "epoch" || key === "responseTopic")
        o[key] = `${text}-${key}`;
      else o[key] = ++next;
    }
  };
  const s = createStats();
  fill(s as unknown as Record<string, unknown>);
  return s;
}

function read(stats: BridgeStats, path: string): unknown {
  return path.split(".").reduce<unknown>((v, k) => (v as Record<string, unknown>)[k], stats);
}

describe("metrics: the text of bridge.metrics()", () => {
  it("gives every field of stats() a metric or a written reason, and names no field that does not exist", () => {
    const fields = fieldPaths(createStats());
    expect(fields.length).to.be.greaterThan(40);
    const missing = fields.filter((p) => TABLE[p] === undefined);
    expect(missing, "fields of stats() without a metric in METRIC_TABLE").to.deep.equal([]);
    const unknown = Object.keys(TABLE).filter((p) => !fields.includes(p));
    expect(unknown, "METRIC_TABLE entries that are no field of stats()").to.deep.equal([]);
    for (const [path, m] of Object.entries(TABLE)) {
      if ("skip" in m) expect(m.skip.length, `${path}: a reason`).to.be.greaterThan(10);
    }
  });

  it("writes each field's value in its own sample", () => {
    const stats = distinctStats();
    const families = parseExposition(renderMetrics(stats, new Histogram()), {
      prefix: METRICS_PREFIX,
    });
    for (const [path, m] of Object.entries(TABLE)) {
      if ("skip" in m) continue;
      const name = METRICS_PREFIX + m.family.name;
      const v = read(stats, path);
      if ("byKey" in m) {
        const record = v as Record<string, number>;
        for (const key of Object.keys(record)) {
          expect(valueOf(families, name, { [m.byKey]: key }), `${path}.${key}`).to.equal(
            record[key],
          );
        }
      } else if ("info" in m) {
        expect(valueOf(families, name, { [m.info]: v as string }), path).to.equal(1);
      } else {
        expect(valueOf(families, name, m.labels ?? {}), path).to.equal(v === true ? 1 : v);
      }
    }
    // every error code is a label value of one family, none a name of its own
    const refusals = families.get(`${METRICS_PREFIX}refusals_total`)!;
    expect(refusals.samples.map((s) => s.labels.code)).to.include.members([
      "FORBIDDEN",
      "RATE_LIMITED",
      "BROKER_UNAVAILABLE",
    ]);
  });

  it("writes one family per name, counters ending in _total, each HELP and TYPE once before its samples", () => {
    const text = renderMetrics(createStats(), new Histogram());
    const families = parseExposition(text, { prefix: METRICS_PREFIX });
    const types = text.split("\n").filter((l) => l.startsWith("# TYPE "));
    expect(types.length).to.equal(families.size);
    expect(new Set(types).size).to.equal(types.length);
    for (const f of families.values()) {
      expect(f.name).to.match(/^socketio_mqtt_bridge_[a-z0-9_]+$/);
      expect(f.type === "counter", f.name).to.equal(f.name.endsWith("_total"));
    }
    // a field still unknown (no broker connection yet) has no sample, but its family is there
    expect(families.get(`${METRICS_PREFIX}broker_protocol_version`)!.samples).to.deep.equal([]);
    expect(families.get(`${METRICS_PREFIX}broker_info`)!.samples).to.deep.equal([]);
    expect(valueOf(families, `${METRICS_PREFIX}broker_connected`)).to.equal(0);
  });

  it("escapes label values (backslash, double quote, line feed) so they read back as they were", () => {
    const id = 'a"b\\c\nd';
    const stats = createStats();
    stats.clientId = id;
    const text = renderMetrics(stats, new Histogram());
    expect(text).to.include(`${METRICS_PREFIX}broker_info{client_id="a\\"b\\\\c\\nd"} 1\n`);
    const families = parseExposition(text, { prefix: METRICS_PREFIX });
    expect(families.get(`${METRICS_PREFIX}broker_info`)!.samples[0].labels.client_id).to.equal(id);
  });

  it("writes the broker-to-socket histogram: buckets cumulative up to +Inf = _count, and _sum", () => {
    const h = new Histogram();
    // on a bound counts in that bucket (le: less or equal); past the last one, in +Inf only
    for (const s of [0, 0.00005, 0.0001, 0.0003, 0.001, 0.002, 3, 10]) h.observe(s);
    h.observe(-1); // a clock that went back counts as 0
    const families = parseExposition(renderMetrics(createStats(), h), { prefix: METRICS_PREFIX });
    const bucket = (le: string) => valueOf(families, `${H}_bucket`, { le });
    expect(bucket("0.0001")).to.equal(4);
    expect(bucket("0.00025")).to.equal(4);
    expect(bucket("0.0005")).to.equal(5);
    expect(bucket("0.001")).to.equal(6);
    expect(bucket("0.0025")).to.equal(7);
    expect(bucket("2.5")).to.equal(7);
    expect(bucket("+Inf")).to.equal(9);
    expect(valueOf(families, `${H}_count`)).to.equal(9);
    expect(valueOf(families, `${H}_sum`)).to.be.closeTo(13.00345, 1e-9);
    const les = families.get(H)!.samples.filter((s) => s.name === `${H}_bucket`);
    expect(les.map((s) => s.labels.le)).to.deep.equal([
      ...BROKER_TO_SOCKET_BUCKETS.map(String),
      "+Inf",
    ]);
  });

  it("is listed in README.md: every family and the buckets", () => {
    const readme = readFileSync(path.join(__dirname, "../../README.md"), "utf8");
    const section = readme.slice(readme.indexOf("### Metrics (Prometheus)")).replace(/\s+/g, " ");
    for (const m of Object.values(TABLE)) {
      if ("skip" in m) continue;
      expect(section, m.family.name).to.match(new RegExp(`\`${m.family.name}[\`{]`));
    }
    expect(section).to.include(`\`${H}\``);
    expect(section).to.include(`Buckets (seconds): ${BROKER_TO_SOCKET_BUCKETS.join(", ")} and`);
  });

  it("passes promtool check metrics (Prometheus's parser and linter), with every field set", () => {
    const h = new Histogram();
    h.observe(0.0002);
    for (const text of [
      renderMetrics(createStats(), new Histogram()),
      renderMetrics(distinctStats('x"y\\z\nw'), h),
    ]) {
      const r = promtool(text);
      expect(r.output).to.equal("");
      expect(r.status).to.equal(0);
    }
  });

  describe("the format checker of the tests", () => {
    const ok = [
      "# HELP a_total Things.",
      "# TYPE a_total counter",
      'a_total{k="v"} 1',
      "# HELP h_seconds Time.",
      "# TYPE h_seconds histogram",
      'h_seconds_bucket{le="0.1"} 1',
      'h_seconds_bucket{le="+Inf"} 2',
      "h_seconds_sum 0.3",
      "h_seconds_count 2",
      "",
    ].join("\n");
    const broken: [string, string, RegExp][] = [
      ["no final line feed", ok.trimEnd(), /line feed/],
      [
        "a second TYPE",
        ok.replace("# TYPE a_total counter", "# TYPE a_total counter\n# TYPE a_total counter"),
        /second TYPE/,
      ],
      [
        "TYPE after samples",
        ok.replace('a_total{k="v"} 1', 'a_total{k="v"} 1\n# HELP a_total again'),
        /after the samples/,
      ],
      ["a counter without _total", ok.replace(/a_total/g, "a"), /_total/],
      ["a bad escape", ok.replace('k="v"', 'k="\\x"'), /bad escape/],
      ["an unquoted label", ok.replace('k="v"', "k=v"), /not quoted/],
      ["a bad label name", ok.replace('k="v"', '1k="v"'), /bad label name/],
      ["a bad value", ok.replace('a_total{k="v"} 1', 'a_total{k="v"} one'), /not a float/],
      ["buckets not cumulative", ok.replace('le="0.1"} 1', 'le="0.1"} 3'), /cumulative/],
      ["no +Inf bucket", ok.replace('h_seconds_bucket{le="+Inf"} 2\n', ""), /\+Inf/],
      ["+Inf != count", ok.replace("h_seconds_count 2", "h_seconds_count 3"), /_count/],
      ["no _sum", ok.replace("h_seconds_sum 0.3\n", ""), /_sum/],
      ["split samples", `${ok}a_total{k="w"} 2\n`, /one group/],
      [
        "a series twice",
        ok.replace('a_total{k="v"} 1', 'a_total{k="v"} 1\na_total{k="v"} 1'),
        /twice/,
      ],
      ["no HELP", ok.replace("# HELP a_total Things.\n", ""), /no HELP/],
      ["a foreign name", ok, /does not start with/],
    ];
    it("accepts a valid text and rejects each broken rule", () => {
      expect(() => parseExposition(ok)).not.to.throw();
      for (const [what, text, error] of broken) {
        const o = what === "a foreign name" ? { prefix: "socketio_" } : {};
        expect(() => parseExposition(text, o), what).to.throw(error);
      }
    });
  });
});
