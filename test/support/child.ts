/**
 * Internal plumbing for the broker/server launchers in this folder
 * (mosquitto.ts, redis.ts): locating binaries, spawning a server in the
 * foreground while keeping its output in a ring buffer, stopping it by PID, and
 * making sure no spawned server outlives the test process.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { accessSync, constants } from "node:fs";
import net from "node:net";
import path from "node:path";
import { onProcessExit, sleep } from "./util";

/** How a spawned process ended. */
export interface ExitInfo {
  /** Exit code, or `null` when killed by a signal or never started. */
  code: number | null;
  /** Terminating signal, if any. */
  signal: NodeJS.Signals | null;
  /** Spawn error (e.g. ENOENT), if the process could not be started. */
  error?: Error;
}

/** Keeps the last `max` lines written by one or more processes. */
export class LogRing {
  private readonly lines: string[] = [];
  private partial = "";

  /** @param max number of lines kept (older lines are dropped) */
  constructor(private readonly max = 500) {}

  /** Appends a chunk of output; incomplete last lines are kept until completed. */
  write(chunk: Buffer | string): void {
    const text = this.partial + chunk.toString();
    const parts = text.split("\n");
    this.partial = parts.pop() ?? "";
    for (const line of parts) this.push(line);
  }

  /** Appends one complete line (used for harness markers such as restarts). */
  push(line: string): void {
    this.lines.push(line);
    if (this.lines.length > this.max) this.lines.splice(0, this.lines.length - this.max);
  }

  /** Everything currently buffered, newline-separated. */
  toString(): string {
    return this.partial ? [...this.lines, this.partial].join("\n") : this.lines.join("\n");
  }
}

/** A spawned server process that the harness owns. */
export interface ManagedChild {
  /** PID of the process (0 if spawning failed). */
  readonly pid: number;
  /** Whether the process is still running. */
  readonly running: boolean;
  /** Settles (never rejects) when the process has exited. */
  readonly exited: Promise<ExitInfo>;
  /** Sends `signal` and waits up to `timeoutMs` for the exit; rejects if it does not exit. */
  kill(signal: NodeJS.Signals, timeoutMs?: number): Promise<void>;
  /** SIGTERM, wait up to `graceMs`, then SIGKILL and wait again. */
  stop(graceMs?: number): Promise<void>;
}

const live = new Set<ChildProcess>();

function killAllSync(): void {
  for (const child of live) {
    try {
      if (child.pid !== undefined) process.kill(child.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  live.clear();
}

// A crashed or interrupted test run must never leave a server behind.
onProcessExit(killAllSync);

/**
 * Resolves the absolute path of an executable, looking in `PATH` and then in
 * the sbin directories (Debian installs mosquitto as /usr/sbin/mosquitto).
 */
export function findBinary(name: string): string {
  const dirs = (process.env.PATH ?? "").split(path.delimiter).filter(Boolean);
  for (const extra of ["/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/bin", "/usr/local/bin"]) {
    if (!dirs.includes(extra)) dirs.push(extra);
  }
  for (const dir of dirs) {
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // keep looking
    }
  }
  throw new Error(`${name} not found in PATH or /usr/sbin; install it (see .ci/run)`);
}

/**
 * Follows a child process the harness started: its output goes to `ring` (and `onOutput`), it is
 * SIGKILLed if the test process exits while it runs, and `exited` settles (never rejects) when it
 * has exited.
 */
export function track(
  child: ChildProcess,
  ring: LogRing,
  onOutput?: (chunk: string) => void,
): { exited: Promise<ExitInfo>; running: () => boolean } {
  let running = child.pid !== undefined;
  if (running) live.add(child);
  const onData = (chunk: Buffer): void => {
    ring.write(chunk);
    onOutput?.(chunk.toString());
  };
  child.stdout?.on("data", onData);
  child.stderr?.on("data", onData);
  const exited = new Promise<ExitInfo>((resolve) => {
    child.once("error", (error) => {
      // Only reached for spawn failures when no exit event follows.
      if (child.pid === undefined) {
        running = false;
        resolve({ code: null, signal: null, error });
      }
    });
    child.once("exit", (code, signal) => {
      running = false;
      live.delete(child);
      resolve({ code, signal });
    });
  });
  return { exited, running: () => running };
}

/**
 * Spawns `command` in the foreground with stdout/stderr captured into `ring`
 * (and passed to `onOutput`, if given, e.g. to watch for a readiness line).
 * The process is registered so that it is SIGKILLed if the test process
 * exits while it is still running.
 */
export function spawnManaged(
  command: string,
  args: readonly string[],
  opts: { cwd: string; ring: LogRing; onOutput?: (chunk: string) => void },
): ManagedChild {
  const child = spawn(command, args, { cwd: opts.cwd, stdio: ["ignore", "pipe", "pipe"] });
  const { exited, running } = track(child, opts.ring, opts.onOutput);

  const waitExit = (timeoutMs: number): Promise<boolean> =>
    new Promise<boolean>((resolve) => {
      if (!running()) {
        resolve(true);
        return;
      }
      const timer = setTimeout(() => resolve(false), timeoutMs);
      void exited.then(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });

  const handle: ManagedChild = {
    pid: child.pid ?? 0,
    get running() {
      return running();
    },
    exited,
    async kill(signal: NodeJS.Signals, timeoutMs = 5000): Promise<void> {
      if (!running()) return;
      child.kill(signal);
      if (!(await waitExit(timeoutMs))) {
        throw new Error(
          `${command} (pid ${child.pid}) did not exit ${timeoutMs} ms after ${signal}`,
        );
      }
    },
    async stop(graceMs = 2000): Promise<void> {
      if (!running()) return;
      child.kill("SIGTERM");
      if (await waitExit(graceMs)) return;
      await handle.kill("SIGKILL");
    },
  };
  return handle;
}

/** Resolves `true` if a TCP connection to `host:port` succeeds within `timeoutMs`. */
export function tcpProbe(port: number, host = "127.0.0.1", timeoutMs = 500): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const socket = net.connect({ port, host });
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/** Error thrown when a server could not bind its port because it is in use. */
export class PortInUseError extends Error {}

/** Parameters of {@link launchUntilReady}. */
export interface LaunchOptions {
  /** Human-readable name used in error messages ("mosquitto"). */
  name: string;
  /** Absolute path of the executable. */
  command: string;
  /** Command-line arguments. */
  args: readonly string[];
  /** Working directory. */
  cwd: string;
  /** Ring buffer receiving the output. */
  ring: LogRing;
  /** Output line that the server prints once it is listening. */
  readyLine: RegExp;
  /** Extra readiness check (TCP connect, PING, ...); must be quick and bounded. */
  probe: () => Promise<boolean>;
  /** Overall startup budget (default 5000 ms). */
  timeoutMs?: number;
}

/**
 * Spawns a server and resolves once it printed `readyLine` and `probe()`
 * succeeds while the process is still alive (checking both avoids mistaking
 * another process on the same port for ours). Rejects with
 * {@link PortInUseError} if the process exits complaining that the address is
 * in use, with a plain error (including its output) for any other early exit
 * or on timeout, in which case the process is killed.
 */
export async function launchUntilReady(o: LaunchOptions): Promise<ManagedChild> {
  let output = "";
  let sawReady = false;
  o.ring.push(`--- harness: starting ${o.command} ${o.args.join(" ")}`);
  const child = spawnManaged(o.command, o.args, {
    cwd: o.cwd,
    ring: o.ring,
    onOutput: (chunk) => {
      if (output.length < 64 * 1024) output += chunk;
      if (!sawReady && o.readyLine.test(output)) sawReady = true;
    },
  });
  const timeoutMs = o.timeoutMs ?? 5000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!child.running) {
      const info = await child.exited;
      if (/address already in use/i.test(output)) {
        throw new PortInUseError(`${o.name}: address already in use\n${output}`);
      }
      const how = info.error ? info.error.message : `code ${info.code}, signal ${info.signal}`;
      throw new Error(`${o.name} exited during startup (${how}):\n${output}`);
    }
    if (sawReady && (await o.probe()) && child.running) return child;
    if (Date.now() >= deadline) {
      await child.stop();
      throw new Error(`${o.name} not ready within ${timeoutMs} ms:\n${output}`);
    }
    await sleep(20);
  }
}

/**
 * Runs `launch` and retries it for up to `budgetMs` while it fails with
 * {@link PortInUseError} (a port that was just released can take a moment to
 * become bindable again, e.g. on restart after a kill).
 */
export async function retryWhilePortInUse<T>(
  launch: () => Promise<T>,
  budgetMs = 3000,
): Promise<T> {
  const deadline = Date.now() + budgetMs;
  for (;;) {
    try {
      return await launch();
    } catch (err) {
      if (!(err instanceof PortInUseError) || Date.now() >= deadline) throw err;
      await sleep(100);
    }
  }
}
