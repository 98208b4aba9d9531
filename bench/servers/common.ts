/**
 * What every bench server shares: a Socket.IO server on an ephemeral loopback port (WebSocket
 * transport only) and the IPC commands the orchestrator uses: `info`, `cpu` (process.cpuUsage),
 * `mark` (the monotonic clock, to window a CPU profile), `rss` (resident set size, sampled by the
 * process itself), `memory` (`process.memoryUsage()`, after full garbage collections when the
 * process runs with `--expose-gc`), `stop`.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Server } from "socket.io";
import type { ServerOptions } from "socket.io";
import type { Handlers } from "../lib/ipc";
import { serve } from "../lib/ipc";
import { nowMicros } from "../lib/payload";

/** The IPC event raw and hand-written clients send to join the room (acked once joined). */
export const JOIN_EVENT = "bench.join";

export interface ServerInfo {
  pid: number;
  /** Socket.IO port on 127.0.0.1. */
  port: number;
  /** Raw server only: the TCP port the publisher writes newline-separated payloads to. */
  ingestPort?: number;
  /** TCP_NODELAY verified on the server's MQTT socket (bridge, hand-written). */
  mqttNoDelay?: boolean;
}

export async function startIo(
  opts: Partial<ServerOptions> = {},
): Promise<{ io: Server; port: number; close: () => Promise<void> }> {
  const http = createServer();
  const io = new Server(http, { transports: ["websocket"], serveClient: false, ...opts });
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  const port = (http.address() as AddressInfo).port;
  const close = () => new Promise<void>((resolve) => void io.close(() => resolve()));
  return { io, port, close };
}

/** The resident set size, sampled every 20 ms from `rss { reset: true }` on: start, peak, now. */
const rss = { start: 0, peak: 0, timer: undefined as NodeJS.Timeout | undefined };

function rssCommand({ reset }: { reset?: boolean }): { start: number; peak: number; now: number } {
  const now = process.memoryUsage.rss();
  if (reset) {
    clearInterval(rss.timer);
    rss.start = rss.peak = now;
    rss.timer = setInterval(() => {
      rss.peak = Math.max(rss.peak, process.memoryUsage.rss());
    }, 20);
    rss.timer.unref();
  }
  rss.peak = Math.max(rss.peak, now);
  return { start: rss.start, peak: rss.peak, now };
}

/** What `memory` answers: `process.memoryUsage()`, and whether a full GC ran first. */
export interface MemoryAnswer extends NodeJS.MemoryUsage {
  collected: boolean;
}

/**
 * `process.memoryUsage()`; with `gc`, after two full garbage collections (the second collects
 * what the first's finalizers let go) when the process has `--expose-gc`.
 */
function memoryCommand({ gc }: { gc?: boolean }): MemoryAnswer {
  const collect = (globalThis as { gc?: () => void }).gc;
  const collected = gc === true && collect !== undefined;
  if (collected) {
    collect();
    collect();
  }
  return { ...process.memoryUsage(), collected };
}

/** Answers the orchestrator: `info`, `cpu`, `mark`, `rss`, `memory`, plus `extra`; `stop` runs `onStop` and exits. */
export function serveServer(
  info: ServerInfo,
  onStop: () => Promise<void>,
  extra: Handlers = {},
): void {
  serve(
    {
      info: () => info,
      cpu: () => process.cpuUsage(),
      mark: () => nowMicros(),
      rss: rssCommand,
      memory: memoryCommand,
      ...extra,
    },
    onStop,
  );
}
