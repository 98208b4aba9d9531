/**
 * Small, dependency-free helpers shared by the integration tests: bounded
 * polling, promise timeouts, one-shot event waits, free loopback ports and
 * temporary directories that are removed again.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";

/** Options for {@link waitFor}. */
export interface WaitForOptions {
  /** Give up after this many milliseconds (default 5000). */
  timeoutMs?: number;
  /** Pause between two evaluations of the predicate (default 10 ms). */
  intervalMs?: number;
  /** Describes what is awaited; included in the rejection message. */
  message?: string;
}

/** Resolves after `ms` milliseconds (pacing and retry intervals, never as synchronisation). */
export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls `predicate` until it returns (or resolves to) `true`.
 *
 * Rejects once `timeoutMs` has passed, with a message naming `message` and, if
 * the predicate threw on its last evaluation, that error. A predicate that
 * throws is treated as "not yet" so that it can probe something that is still
 * starting up.
 */
export async function waitFor(
  predicate: () => boolean | Promise<boolean>,
  opts: WaitForOptions = {},
): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  const intervalMs = opts.intervalMs ?? 10;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await predicate()) return;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const what = opts.message ?? "condition";
      const cause =
        lastError === undefined
          ? ""
          : ` (last error: ${lastError instanceof Error ? lastError.message : JSON.stringify(lastError)})`;
      throw new Error(`waitFor: timed out after ${timeoutMs} ms waiting for ${what}${cause}`);
    }
    await sleep(Math.min(intervalMs, Math.max(0, deadline - Date.now())));
  }
}

/**
 * Resolves or rejects like `p`, but rejects with
 * `"<what> timed out after <ms> ms"` if `p` has not settled within `ms`.
 * The timer is always cleared, so it never keeps the process alive.
 */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    p.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

/**
 * Listener type accepted by {@link EventSource}. `unknown[]` parameters make
 * every listener signature (typed or not) assignable without using `any`.
 */
type AnyListener = (...args: unknown[]) => void;

/**
 * The minimal emitter shape {@link onceEvent} needs: Node's `EventEmitter`,
 * MQTT.js clients, Socket.IO sockets and aedes brokers all fit.
 */
export interface EventSource {
  /** Registers a one-shot listener. */
  once(event: string, listener: AnyListener): unknown;
  /** Removes a listener (used to clean up on timeout), if the emitter has it. */
  off?(event: string, listener: AnyListener): unknown;
  /** Alternative to `off` on older emitters. */
  removeListener?(event: string, listener: AnyListener): unknown;
}

/**
 * Waits for `event` to be emitted once and resolves with the listener's
 * arguments as an array (`T` defaults to `unknown[]`). Rejects after
 * `timeoutMs` (default 5000) and removes its listener again.
 */
export function onceEvent<T = unknown[]>(
  emitter: EventSource,
  event: string,
  timeoutMs = 5000,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const listener = (...args: unknown[]): void => {
      clearTimeout(timer);
      resolve(args as T);
    };
    const timer = setTimeout(() => {
      if (emitter.off) emitter.off(event, listener);
      else emitter.removeListener?.(event, listener);
      reject(new Error(`event "${event}" not emitted within ${timeoutMs} ms`));
    }, timeoutMs);
    emitter.once(event, listener);
  });
}

/**
 * Returns a TCP port that was free on 127.0.0.1 a moment ago (listens on port
 * 0, reads the assigned port, closes). Another process may still grab it
 * before the caller binds it, so callers should retry on "address in use".
 */
export function freePort(): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      if (address === null || typeof address === "string") {
        server.close();
        reject(new Error("freePort: could not read the bound port"));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}

const tmpDirs = new Set<string>();

/**
 * Creates a fresh directory under `parent` (default `os.tmpdir()`) whose name
 * starts with `prefix`. It is removed by {@link cleanupTmp}, or at process exit
 * at the latest.
 */
export async function tmpDir(prefix: string, parent = os.tmpdir()): Promise<string> {
  await mkdir(parent, { recursive: true }); // e.g. the project's .tmp/ in a fresh clone
  const dir = await mkdtemp(path.join(parent, prefix));
  tmpDirs.add(dir);
  return dir;
}

/** Synchronous variant of {@link tmpDir}, for code that cannot await. */
export function tmpDirSync(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  tmpDirs.add(dir);
  return dir;
}

/** Removes every directory created by {@link tmpDir} so far. */
export async function cleanupTmp(): Promise<void> {
  const dirs = [...tmpDirs];
  tmpDirs.clear();
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
}

const exitCleanups: (() => void)[] = [];

function runExitCleanups(): void {
  // Last registered first: servers are killed before their directories go.
  for (const fn of exitCleanups.splice(0).reverse()) {
    try {
      fn();
    } catch {
      // best effort at exit
    }
  }
}

/**
 * Registers a synchronous cleanup that runs when the test process exits,
 * including on an uncaught exception, `process.exit()`, and SIGINT / SIGTERM /
 * SIGHUP (after which the signal's default action, terminating, is restored
 * and re-raised unless another listener handles it). Cleanups run in reverse
 * registration order.
 */
export function onProcessExit(fn: () => void): void {
  exitCleanups.push(fn);
}

process.on("exit", runExitCleanups);
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  const onSignal = (): void => {
    runExitCleanups();
    if (process.listenerCount(sig) === 1) {
      process.off(sig, onSignal);
      process.kill(process.pid, sig);
    }
  };
  process.on(sig, onSignal);
}

onProcessExit(() => {
  for (const dir of tmpDirs) rmSync(dir, { recursive: true, force: true });
  tmpDirs.clear();
});
