/**
 * The bridge under test is a tsc build of lib/ (tsconfig.build.json, as `npm run build`), emitted
 * to bench/.dist/ (git-ignored) so that dist/ is never touched while others use it. Not lib/ via
 * tsx: tsx's esbuild transform runs with keepNames, which wraps every closure created at run time
 * in a `__name()` call — a cost on the hot path that the published package does not have.
 */
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import { readdirSync, statSync } from "node:fs";
import path from "node:path";
import type * as Lib from "../../lib";
import type * as ClientLib from "../../lib/client";
import { ROOT } from "./ipc";

export const BUILD_DIR = path.join(ROOT, "bench", ".dist");

function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

/** The commit lib/ was measured at, with "+ uncommitted changes" when lib/ differs from it. */
export function libVersion(): string {
  try {
    const git = (...args: string[]) =>
      execFileSync("git", args, { cwd: ROOT, encoding: "utf8", stdio: "pipe" }).trim();
    const dirty = git("status", "--porcelain", "--", "lib") !== "";
    return git("rev-parse", "--short", "HEAD") + (dirty ? " + uncommitted changes" : "");
  } catch {
    return "?";
  }
}

/** Compiles lib/ into bench/.dist/ unless that build is newer than every file of lib/. */
export function ensureBuild(log: (line: string) => void = () => undefined): void {
  let built = 0;
  try {
    built = statSync(path.join(BUILD_DIR, "index.js")).mtimeMs;
  } catch {
    // not built yet
  }
  if (built > newest(path.join(ROOT, "lib"))) return;
  log("building lib/ into bench/.dist/ (tsc -p tsconfig.build.json) …");
  const tsc = path.join(ROOT, "node_modules", "typescript", "bin", "tsc");
  execFileSync(
    process.execPath,
    [tsc, "-p", "tsconfig.build.json", "--outDir", BUILD_DIR, "--declaration", "false"],
    { cwd: ROOT, stdio: "inherit" },
  );
}

/**
 * The bridge's public module, from the build (built first when missing or stale), or from the
 * build in BENCH_BRIDGE_BUILD (an absolute path: to measure a candidate change of lib/ side by side).
 */
export function loadBridge(): typeof Lib {
  const candidate = process.env.BENCH_BRIDGE_BUILD;
  if (!candidate) ensureBuild();
  return createRequire(__filename)(candidate ?? BUILD_DIR) as typeof Lib;
}

/** The browser helper (`socket.io-mqtt-bridge/client`) from the same build as {@link loadBridge}. */
export function loadClient(): typeof ClientLib {
  const candidate = process.env.BENCH_BRIDGE_BUILD;
  if (!candidate) ensureBuild();
  return createRequire(__filename)(path.join(candidate ?? BUILD_DIR, "client")) as typeof ClientLib;
}
