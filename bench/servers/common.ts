/**
 * What every bench server shares: a Socket.IO server on an ephemeral loopback port (WebSocket
 * transport only) and the IPC commands the orchestrator uses: `info`, `cpu` (process.cpuUsage),
 * `mark` (the monotonic clock, to window a CPU profile), `stop`.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Server } from "socket.io";
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

export async function startIo(): Promise<{ io: Server; port: number; close: () => Promise<void> }> {
  const http = createServer();
  const io = new Server(http, { transports: ["websocket"], serveClient: false });
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  const port = (http.address() as AddressInfo).port;
  const close = () => new Promise<void>((resolve) => void io.close(() => resolve()));
  return { io, port, close };
}

/** Answers the orchestrator: `info`, `cpu`, `mark`, plus `extra`; `stop` runs `onStop` and exits. */
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
      ...extra,
    },
    onStop,
  );
}
