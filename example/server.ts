/**
 * The example: a web chat whose messages travel over MQTT.
 *
 *   npm start                         # embedded aedes broker on MQTT_PORT (default 1883)
 *   MQTT_URL=mqtt://host:1883 npm start   # an outside broker instead
 *
 * Environment: PORT (web, default 3000), MQTT_PORT (embedded broker, default 1883), MQTT_URL,
 * HOST (interface for both servers, default 127.0.0.1). A default port that is taken is replaced by
 * the next free one; a port set explicitly must be free.
 */
import { readFile, realpath } from "node:fs/promises";
import { createServer } from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import net from "node:net";
import path from "node:path";
import { Server } from "socket.io";
import { mqttBridge } from "../lib";
import type { MqttBridge } from "../lib";
import type { PortChoice } from "./ports";
import { StartupError, listenOnPort, portFromEnv } from "./ports";

const PUBLIC_DIR = path.join(__dirname, "public");
/** Longest a shutdown may take before the process exits anyway. */
const SHUTDOWN_TIMEOUT_MS = 1500;
/** Longest the embedded broker may take to accept the bridge at startup. */
const READY_TIMEOUT_MS = 5000;

/** Who may do what from a browser; everything else is refused with FORBIDDEN. */
const ALLOW = {
  subscribe: ["chat/+", "sensors/#"],
  publish: ["chat/+"],
};

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
};

/** Something to close on shutdown; closed in reverse order of creation. */
type Closer = [what: string, close: () => Promise<void>];

/** True when `file` is `dir` itself or lies below it. */
function isInside(dir: string, file: string): boolean {
  const rel = path.relative(dir, file);
  return rel === "" || (rel.split(path.sep)[0] !== ".." && !path.isAbsolute(rel));
}

function sendText(
  res: ServerResponse,
  status: number,
  text: string,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { "Content-Type": "text/plain; charset=utf-8", ...headers });
  res.end(`${text}\n`);
}

/** Serves the files of `root` (which must be a real path); nothing outside it, symlinks included. */
async function serveStatic(root: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method !== "GET" && req.method !== "HEAD") {
    sendText(res, 405, "Method Not Allowed", { Allow: "GET, HEAD" });
    return;
  }
  let pathname: string;
  try {
    pathname = decodeURIComponent(new URL(req.url ?? "/", "http://localhost").pathname);
  } catch {
    sendText(res, 400, "Bad Request");
    return;
  }
  if (pathname.includes("\0")) {
    sendText(res, 400, "Bad Request");
    return;
  }
  if (pathname.endsWith("/")) pathname += "index.html";
  const file = path.resolve(root, `.${pathname}`);
  let body: Buffer;
  try {
    if (!isInside(root, file)) throw new Error("outside");
    const real = await realpath(file);
    if (!isInside(root, real)) throw new Error("outside");
    body = await readFile(real);
  } catch {
    sendText(res, 404, "Not Found");
    return;
  }
  res.writeHead(200, {
    "Content-Type": CONTENT_TYPES[path.extname(file).toLowerCase()] ?? "application/octet-stream",
    "Content-Length": body.length,
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
  });
  res.end(req.method === "HEAD" ? undefined : body);
}

/** Starts an embedded aedes broker (MQTT 3.1.1 over TCP); returns its port and a closer. */
async function startBroker(
  choice: PortChoice,
  host: string,
): Promise<{ port: number; close: () => Promise<void> }> {
  // aedes 1.x is an ES module: this CommonJS file loads it with import()
  const { Aedes } = await import("aedes");
  const broker = await Aedes.createBroker();
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    broker.handle(socket);
  });
  const close = (): Promise<void> =>
    new Promise<void>((resolve) => {
      if (server.listening) server.close();
      for (const socket of sockets) socket.destroy();
      broker.close(() => resolve());
    });
  try {
    const port = await listenOnPort(server, { ...choice, host, name: "MQTT_PORT" });
    return { port, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** `host` as it goes into a URL or a command line (a wildcard becomes the loopback address). */
function reachableHost(host: string): string {
  if (host === "0.0.0.0" || host === "::" || host === "") return "127.0.0.1";
  return host;
}

function urlHost(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}

/** The ready-to-paste `mosquitto_pub` line for a broker URL, if mosquitto_pub can speak it. */
function mosquittoPub(brokerUrl: URL): string | undefined {
  if (brokerUrl.protocol !== "mqtt:" && brokerUrl.protocol !== "tcp:") return undefined;
  const host = brokerUrl.hostname.replace(/^\[(.*)\]$/, "$1");
  return `mosquitto_pub -h ${host} -p ${brokerUrl.port || "1883"} -t chat/lobby -m hello`;
}

/** A broker URL without its credentials, for printing. */
function redact(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname === "/" ? "" : url.pathname}`;
}

async function main(): Promise<void> {
  const closers: Closer[] = [];
  let started = false;
  let stopping = false;

  const stop = (signal: NodeJS.Signals): void => {
    if (!started || stopping) {
      // nothing served yet, or a second Ctrl-C: leave at once
      process.exit(stopping ? 1 : 0);
    }
    stopping = true;
    console.log(`\n${signal}: shutting down`);
    setTimeout(() => {
      console.error(`shutdown took longer than ${SHUTDOWN_TIMEOUT_MS} ms; exiting anyway`);
      process.exit(1);
    }, SHUTDOWN_TIMEOUT_MS).unref();
    void (async () => {
      for (const [what, close] of closers.reverse()) {
        try {
          await close();
        } catch (err) {
          console.error(`closing the ${what}: ${(err as Error).message}`);
        }
      }
      process.exitCode = 0;
    })();
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);

  const host = process.env.HOST?.trim() || "127.0.0.1";
  const webPort = portFromEnv(process.env, "PORT", 3000);
  const mqttPort = portFromEnv(process.env, "MQTT_PORT", 1883);
  const external = process.env.MQTT_URL?.trim() || undefined;
  const notes: string[] = [];

  let brokerUrl: URL;
  if (external) {
    try {
      brokerUrl = new URL(external);
    } catch {
      throw new StartupError(`MQTT_URL is not a URL: ${JSON.stringify(external)}`);
    }
    notes.push(`MQTT broker: ${redact(brokerUrl)} (MQTT_URL)`);
  } else {
    const broker = await startBroker(mqttPort, host);
    closers.push(["MQTT broker", broker.close]);
    brokerUrl = new URL(`mqtt://${urlHost(reachableHost(host))}:${broker.port}`);
    if (broker.port !== mqttPort.port && mqttPort.port !== 0) {
      notes.push(`Port ${mqttPort.port} is taken; the MQTT broker uses ${broker.port} instead.`);
    }
    notes.push(`MQTT broker (embedded aedes): ${brokerUrl.href}`);
  }

  const root = await realpath(PUBLIC_DIR);
  const http = createServer((req, res) => {
    serveStatic(root, req, res).catch(() => {
      if (!res.headersSent) sendText(res, 500, "Internal Server Error");
      else res.destroy();
    });
  });
  const port = await listenOnPort(http, { ...webPort, host, name: "PORT" });
  closers.push([
    "web server",
    () =>
      new Promise<void>((resolve) => {
        http.close(() => resolve());
        http.closeAllConnections();
      }),
  ]);
  if (port !== webPort.port && webPort.port !== 0) {
    notes.push(`Port ${webPort.port} is taken; the web server uses ${port} instead.`);
  }

  // the default, in-memory adapter: one process (a later version shows the Redis adapter)
  const io = new Server(http);
  closers.push(["Socket.IO server", () => io.close()]);

  let bridge: MqttBridge;
  try {
    bridge = mqttBridge({ mqtt: external ?? brokerUrl.href, allow: ALLOW });
  } catch (err) {
    throw new StartupError(`MQTT_URL: ${(err as Error).message}`, { cause: err });
  }
  closers.push(["MQTT bridge", () => bridge.close()]);
  let lastError = "";
  bridge.on("error", (err) => {
    if (err.message !== lastError) console.error(`MQTT bridge: ${err.message}`);
    lastError = err.message;
  });
  let up = false;
  bridge.on("connect", () => {
    up = true;
    lastError = "";
    if (started) console.log(`MQTT bridge: connected to ${redact(brokerUrl)}`);
  });
  bridge.on("offline", () => {
    if (up && !stopping) console.log("MQTT bridge: connection lost; reconnecting");
    up = false;
  });
  io.use(bridge);

  if (!external) {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, READY_TIMEOUT_MS);
    });
    await Promise.race([bridge.ready, timeout]);
    clearTimeout(timer);
    if (!bridge.connected) notes.push("The bridge is not connected to the broker yet.");
  }

  const pub = mosquittoPub(brokerUrl);
  for (const note of notes) console.log(note);
  console.log(`Chat page: http://${urlHost(reachableHost(host))}:${port}/`);
  if (pub) console.log(`Publish to the chat: ${pub}`);
  console.log("Press Ctrl-C to stop.");
  started = true;
}

main().catch((err: unknown) => {
  // a problem the user can fix is one line; anything else keeps its stack trace
  console.error(err instanceof StartupError ? `error: ${err.message}` : err);
  process.exit(1);
});
