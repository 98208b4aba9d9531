/**
 * A tiny request/response protocol over the Node IPC channel of forked bench processes.
 * Parent: `spawnChild(script)` then `child.call(cmd, args)`. Child: `serve({ cmd: handler })`.
 */
import { fork } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import path from "node:path";

interface Request {
  id: number;
  cmd: string;
  args: unknown;
}
interface Reply {
  id: number;
  result?: unknown;
  error?: string;
}

/** The repository root (bench/lib/../..). */
export const ROOT = path.resolve(__dirname, "..", "..");

/** Every forked child, so that a crashing orchestrator never leaves one behind. */
const children = new Set<ChildProcess>();
process.on("exit", () => {
  for (const c of children) c.kill("SIGKILL");
});

/** A forked bench process (a server or a client pool) that answers `call`s. */
export class Child {
  private nextId = 1;
  private readonly waiting = new Map<number, (r: Reply) => void>();
  readonly exited: Promise<number | null>;
  /** Resolves when the child serves requests (it sends id 0 then); rejects if it exits first. */
  readonly ready: Promise<void>;
  private onReady: () => void = () => undefined;

  constructor(
    readonly name: string,
    readonly proc: ChildProcess,
  ) {
    let failReady: (err: Error) => void = () => undefined;
    this.ready = new Promise<void>((resolve, reject) => {
      this.onReady = resolve;
      failReady = reject;
    });
    this.ready.catch(() => undefined);
    proc.on("message", (m: Reply) => {
      if (m.id === 0) return this.onReady();
      this.waiting.get(m.id)?.(m);
      this.waiting.delete(m.id);
    });
    this.exited = new Promise((resolve) => {
      proc.once("exit", (code) => {
        children.delete(proc);
        failReady(new Error(`${name} exited (${code}) before it was ready`));
        for (const w of this.waiting.values()) w({ id: 0, error: `${name} exited (${code})` });
        this.waiting.clear();
        resolve(code);
      });
    });
  }

  get pid(): number {
    return this.proc.pid ?? 0;
  }

  /** Sends `cmd` and resolves with the handler's result; rejects on error or after `timeoutMs`. */
  call<T = unknown>(cmd: string, args: unknown = {}, timeoutMs = 60_000): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`${this.name}: "${cmd}" timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, (r) => {
        clearTimeout(timer);
        if (r.error !== undefined) reject(new Error(`${this.name}: ${cmd}: ${r.error}`));
        else resolve(r.result as T);
      });
      this.proc.send({ id, cmd, args } satisfies Request);
    });
  }

  /** Asks the child to exit ("stop"), then SIGKILLs it if it has not exited within `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.call("stop", {}, graceMs).catch(() => undefined);
    const timer = setTimeout(() => this.proc.kill("SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

/**
 * Forks `node --import tsx <ROOT>/<script> ...args` (plus `execArgv`, e.g. `--cpu-prof`) and
 * resolves once it serves requests (within `timeoutMs`).
 */
export async function startChild(
  name: string,
  script: string,
  args: string[] = [],
  execArgv: string[] = [],
  timeoutMs = 30_000,
): Promise<Child> {
  const child = spawnChild(name, script, args, execArgv);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${name} not ready within ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  try {
    await Promise.race([child.ready, timeout]);
  } catch (err) {
    child.proc.kill("SIGKILL");
    throw err;
  } finally {
    clearTimeout(timer);
  }
  return child;
}

/** Forks a bench process without waiting for it (see {@link startChild}). */
export function spawnChild(
  name: string,
  script: string,
  args: string[] = [],
  execArgv: string[] = [],
): Child {
  const proc = fork(path.join(ROOT, script), args, {
    cwd: ROOT,
    execArgv: ["--import", "tsx", ...execArgv],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  children.add(proc);
  return new Child(name, proc);
}

/** Handlers of a child process; `stop` is added: it runs `onStop` and exits with code 0. */
export type Handlers = Record<string, (args: never) => unknown>;

/**
 * Child side: answers requests with `handlers`, exits when the parent goes away, and exits by
 * itself after `maxLifeMs` whatever happens (every bench process stops by itself).
 */
export function serve(
  handlers: Handlers,
  onStop?: () => Promise<void> | void,
  maxLifeMs = 30 * 60_000,
): void {
  const stop = async () => {
    try {
      await onStop?.();
    } finally {
      // exit on the next turn, so the reply to "stop" is flushed first
      setImmediate(() => process.exit(0));
    }
  };
  process.on("message", (m: Request) => {
    const handler = m.cmd === "stop" ? stop : handlers[m.cmd];
    const reply = (r: Omit<Reply, "id">) => process.send?.({ id: m.id, ...r });
    if (!handler) {
      reply({ error: `unknown command ${m.cmd}` });
      return;
    }
    Promise.resolve()
      .then(() => handler(m.args as never))
      .then(
        (result) => reply({ result }),
        (err: unknown) =>
          reply({ error: err instanceof Error ? (err.stack ?? err.message) : String(err) }),
      );
  });
  process.on("disconnect", () => process.exit(0));
  process.send?.({ id: 0 } satisfies Reply);
  setTimeout(() => {
    console.error(`bench child ${process.argv[1]}: max lifetime reached, exiting`);
    process.exit(3);
  }, maxLifeMs).unref();
}
