/**
 * The example's embedded MQTT broker: aedes (MQTT 3.1.1) over TCP on its own port, and over
 * WebSocket on the web server's `/mqtt` path (for MQTT.js in a browser or MQTT Explorer).
 */
import type { IncomingMessage, Server as HttpServer } from "node:http";
import net from "node:net";
import type { Duplex } from "node:stream";
import { WebSocketServer, createWebSocketStream } from "ws";
import type { PortChoice } from "./ports";
import { listenOnPort } from "./ports";

/** The path of MQTT over WebSocket on the web server. */
export const MQTT_WS_PATH = "/mqtt";

export interface EmbeddedBroker {
  /** The TCP port it listens on. */
  port: number;
  /**
   * Serves MQTT over WebSocket on `http`'s {@link MQTT_WS_PATH}; other upgrades are left alone.
   * Returns a function that stops it and ends its connections (which `http.close()` waits for).
   */
  attachWebSocket(http: HttpServer): () => Promise<void>;
  /** Closes the listeners and every client connection; resolves once aedes has closed. */
  readonly close: () => Promise<void>;
}

/** Starts aedes and makes it listen on `choice` (see {@link listenOnPort}). */
export async function startBroker(choice: PortChoice, host: string): Promise<EmbeddedBroker> {
  // aedes 1.x is an ES module: this CommonJS file loads it with import()
  const { Aedes } = await import("aedes");
  const broker = await Aedes.createBroker();
  const connections = new Set<{ destroy(): void }>();
  const track = (conn: Duplex) => {
    connections.add(conn);
    conn.once("close", () => connections.delete(conn));
  };

  const tcp = net.createServer((socket) => {
    track(socket);
    broker.handle(socket);
  });
  const wss = new WebSocketServer({ noServer: true });
  wss.on("connection", (ws, req: IncomingMessage) => {
    const stream = createWebSocketStream(ws);
    stream.on("error", () => ws.terminate());
    track(stream);
    broker.handle(stream, req);
  });
  let http: HttpServer | undefined;
  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    let pathname: string;
    try {
      pathname = new URL(req.url ?? "/", "http://localhost").pathname;
    } catch {
      return;
    }
    // anything else (Socket.IO's /socket.io/) belongs to the other upgrade listeners
    if (pathname !== MQTT_WS_PATH) return;
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit("connection", ws, req));
  };

  const closeWebSocket = (): Promise<void> =>
    new Promise<void>((resolve) => {
      http?.off("upgrade", onUpgrade);
      for (const ws of wss.clients) ws.terminate();
      wss.close(() => resolve());
    });
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= new Promise<void>((resolve) => {
      void closeWebSocket();
      if (tcp.listening) tcp.close();
      for (const conn of connections) conn.destroy();
      broker.close(() => resolve());
    }));

  try {
    const port = await listenOnPort(tcp, { ...choice, host, name: "MQTT_PORT" });
    return {
      port,
      attachWebSocket(server) {
        http = server;
        server.on("upgrade", onUpgrade);
        return closeWebSocket;
      },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}
