/**
 * Summarizes a V8 .cpuprofile (from `node --cpu-prof`): where the time went by package, the top
 * functions by self time, and the functions of lib/ by self and by total (inclusive) time.
 * `--from` / `--to` (µs, the monotonic clock the profile's timestamps use) keep only the samples
 * of a window, e.g. a measured phase.
 *
 *   node --import tsx bench/profile-summary.ts bench/profiles/bridge-n100.cpuprofile [--top 15]
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { ROOT } from "./lib/ipc";
import { markdownTable } from "./lib/stats";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface SummaryOptions {
  from?: number;
  to?: number;
  top?: number;
}

/** Where a function lives: "lib", a package of node_modules, "node", or a V8 pseudo-frame. */
function category(url: string, name: string): string {
  if (!url) return name.startsWith("(") ? name : "(native)";
  if (url.startsWith("node:")) return "node";
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1];
  if (url.includes(`${ROOT}/lib/`) || url.includes(`${ROOT}/bench/.dist/`)) return "lib";
  if (url.includes(`${ROOT}/bench/`)) return "bench";
  return "(other)";
}

function label(f: CallFrame): string {
  const name = f.functionName || "(anonymous)";
  if (!f.url) return name;
  const file = f.url.startsWith("file://") ? path.relative(ROOT, new URL(f.url).pathname) : f.url;
  return `${name} (${file.replace(/^node_modules\//, "")}:${f.lineNumber + 1})`;
}

const pct = (part: number, whole: number) => `${((100 * part) / Math.max(1, whole)).toFixed(1)}%`;
const ms = (us: number) => (us / 1000).toFixed(0);

/** The summary as Markdown (tables), for the console and RESULTS.md. */
export function summarizeProfile(file: string, o: SummaryOptions = {}): string {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

  const self = new Map<string, number>();
  const total = new Map<string, number>();
  const cats = new Map<string, number>();
  const frames = new Map<string, CallFrame>();
  let sampled = 0;
  let idle = 0;
  let t = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i];
    // a sample stands for the time until the next one
    const weight = profile.timeDeltas[i + 1] ?? 0;
    if ((o.from !== undefined && t < o.from) || (o.to !== undefined && t > o.to)) continue;
    const node = byId.get(profile.samples[i])!;
    const f = node.callFrame;
    sampled += weight;
    if (f.functionName === "(idle)") {
      idle += weight;
      continue;
    }
    const key = label(f);
    frames.set(key, f);
    self.set(key, (self.get(key) ?? 0) + weight);
    const cat = category(f.url, f.functionName);
    cats.set(cat, (cats.get(cat) ?? 0) + weight);
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const k = label(byId.get(id)!.callFrame);
      if (seen.has(k)) continue;
      seen.add(k);
      frames.set(k, byId.get(id)!.callFrame);
      total.set(k, (total.get(k) ?? 0) + weight);
    }
  }
  const busy = sampled - idle;
  const top = o.top ?? 15;
  const sorted = (m: Map<string, number>, keep: (k: string) => boolean = () => true) =>
    [...m].filter(([k]) => keep(k)).sort((a, b) => b[1] - a[1]);
  const isLib = (k: string) => category(frames.get(k)!.url, "") === "lib";

  const out: string[] = [];
  out.push(
    `${path.basename(file)}: ${ms(sampled)} ms sampled, ${ms(busy)} ms busy (${pct(busy, sampled)}), ` +
      `lib/ self time ${pct(cats.get("lib") ?? 0, busy)} of busy`,
    "",
    markdownTable(
      ["where (self time)", "ms", "% of busy"],
      sorted(cats)
        .slice(0, 12)
        .map(([k, v]) => [k, ms(v), pct(v, busy)]),
    ),
    "",
    markdownTable(
      ["top functions by self time", "ms", "% of busy"],
      sorted(self)
        .slice(0, top)
        .map(([k, v]) => [k, ms(v), pct(v, busy)]),
    ),
    "",
    markdownTable(
      ["lib/ functions", "self ms", "self %", "total ms", "total %"],
      sorted(total, isLib)
        .slice(0, top)
        .map(([k, v]) => [
          k,
          ms(self.get(k) ?? 0),
          pct(self.get(k) ?? 0, busy),
          ms(v),
          pct(v, busy),
        ]),
    ),
  );
  return out.join("\n");
}

if (require.main === module) {
  const args = process.argv.slice(2);
  const file = args.find((a) => !a.startsWith("--"));
  const opt = (name: string) => {
    const i = args.indexOf(`--${name}`);
    return i === -1 ? undefined : Number(args[i + 1]);
  };
  if (!file) {
    console.error("usage: profile-summary <file.cpuprofile> [--from µs] [--to µs] [--top n]");
    process.exit(2);
  }
  console.log(summarizeProfile(file, { from: opt("from"), to: opt("to"), top: opt("top") }));
}
