/**
 * Starts private redis-server instances for integration tests on ephemeral
 * loopback ports, without persistence. Never touches the system Redis on 6379.
 */
import net from "node:net";
import {
  LogRing,
  PortInUseError,
  findBinary,
  launchUntilReady,
  retryWhilePortInUse,
} from "./child";
import type { ManagedChild } from "./child";
import { freePort, tmpDir } from "./util";

/** Options for {@link startRedis}. */
export interface RedisOptions {
  /** TCP port; a free ephemeral port when omitted. */
  port?: number;
}

/** A running (or stopped) private redis-server. */
export interface RedisHandle {
  /** TCP port on 127.0.0.1. */
  readonly port: number;
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  /** PID of the current redis-server process (changes on restart). */
  readonly pid: number;
  /** Whether the server process is currently running. */
  readonly running: boolean;
  /** Stops the server: SIGTERM, then SIGKILL after 2 s; resolves once it exited. No-op if stopped. */
  stop(): Promise<void>;
  /** Sends `signal` (default SIGKILL) and waits for the exit (rejects after 5 s). */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Stops the server if running, starts it again on the same port, and waits until it answers PING. */
  restart(): Promise<void>;
  /** The server's recent output (last 500 lines, across restarts), for debugging. */
  logs(): string;
}

/**
 * Sends `PING` over a raw TCP connection and resolves with the first reply
 * line (`"+PONG"` when healthy, e.g. `"-LOADING ..."` otherwise). Rejects on
 * connection errors or after `timeoutMs`.
 */
export function redisPing(port: number, host = "127.0.0.1", timeoutMs = 1000): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const socket = net.connect({ port, host });
    let reply = "";
    const finish = (err: Error | null, line?: string): void => {
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(line ?? "");
    };
    const timer = setTimeout(
      () => finish(new Error(`redis PING on ${host}:${port} timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );
    socket.once("connect", () => socket.write("*1\r\n$4\r\nPING\r\n"));
    socket.on("data", (chunk: Buffer) => {
      reply += chunk.toString();
      const end = reply.indexOf("\r\n");
      if (end >= 0) finish(null, reply.slice(0, end));
    });
    socket.once("error", (err) => finish(err));
    socket.once("close", () => finish(new Error(`redis on ${host}:${port} closed without reply`)));
  });
}

const pingOk = async (port: number): Promise<boolean> => {
  try {
    return (await redisPing(port, "127.0.0.1", 500)) === "+PONG";
  } catch {
    return false;
  }
};

/**
 * Starts a private `redis-server --port P --bind 127.0.0.1 --save "" --appendonly no
 * --daemonize no --dir <tmp>` and resolves once it answers PING with +PONG. With an
 * automatic port, a port grabbed by another process in the meantime is
 * replaced (up to 3 retries). The process is SIGKILLed at test-process exit if
 * still running.
 */
export async function startRedis(opts: RedisOptions = {}): Promise<RedisHandle> {
  const command = findBinary("redis-server");
  const dir = await tmpDir("redis-");
  const ring = new LogRing();
  let port = 0;
  let child: ManagedChild | undefined;

  const launch = (): Promise<ManagedChild> =>
    launchUntilReady({
      name: "redis-server",
      command,
      args: [
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--dir",
        dir,
      ],
      cwd: dir,
      ring,
      readyLine: /Ready to accept connections/,
      probe: () => pingOk(port),
    });

  for (let attempt = 0; ; attempt++) {
    port = opts.port ?? (await freePort());
    try {
      child = await launch();
      break;
    } catch (err) {
      if (err instanceof PortInUseError && opts.port === undefined && attempt < 3) continue;
      throw err;
    }
  }

  const current = (): ManagedChild => child!;
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get pid() {
      return current().pid;
    },
    get running() {
      return current().running;
    },
    stop: () => current().stop(2000),
    kill: (signal: NodeJS.Signals = "SIGKILL") => current().kill(signal),
    async restart(): Promise<void> {
      await current().stop(2000);
      child = await retryWhilePortInUse(launch);
    },
    logs: () => ring.toString(),
  };
}
