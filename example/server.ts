/**
 * The example: a chat and a live sensor dashboard whose messages travel over MQTT.
 *
 *   npm start                                  # embedded aedes broker, in-memory adapter
 *   MQTT_URL=mqtt://host:1883 npm start        # an outside broker instead
 *   REDIS_URL=redis://localhost:6379 npm start # the Redis adapter: start more nodes on other PORTs
 *   TOPOLOGY=forward REDIS_URL=... npm start   # a web node of the worker topology (no broker here)
 *
 * Environment: PORT (web, default 3000), MQTT_PORT (embedded broker, default 1883), MQTT_URL,
 * REDIS_URL, TOPOLOGY (`embedded` or `forward`), FLEET (`1`/`0`: run the simulated sensors here),
 * FLEET_INTERVAL_MS (default 1000), HOST (interface, default 127.0.0.1). A default port that is
 * taken is replaced by the next free one; a port set explicitly must be free.
 */
import { realpath } from "node:fs/promises";
import { createServer } from "node:http";
import path from "node:path";
import { Server } from "socket.io";
import type { ServerOptions } from "socket.io";
import { mqttBridge } from "../lib";
import type { MqttBridge } from "../lib";
import type { EmbeddedBroker } from "./broker";
import { MQTT_WS_PATH, startBroker } from "./broker";
import { bundlePages } from "./bundle";
import { serveMetrics } from "./metrics";
import type { Fleet } from "./fleet";
import { SENSORS, startFleet } from "./fleet";
import type { PortChoice } from "./ports";
import { StartupError, listenOnPort, portFromEnv } from "./ports";
import { sendText, serveStatic } from "./static";

const PUBLIC_DIR = path.join(__dirname, "public");
/** Longest a shutdown may take before the process exits anyway. */
const SHUTDOWN_TIMEOUT_MS = 1500;
/** Longest one step of the shutdown may take before the next one starts. */
const CLOSE_STEP_MS = 600;
/** Longest the embedded broker may take to accept the bridge and the fleet at startup. */
const READY_TIMEOUT_MS = 5000;
/** The event that tells the pages whether this node's bridge reaches the broker. */
const BROKER_EVENT = "example.broker";

/** Who may do what from a browser; everything else is refused with FORBIDDEN. */
const ALLOW = {
  subscribe: ["chat/+", "sensors/#"],
  publish: ["chat/+"],
};

/**
 * The pages recover what they missed while offline (chat lines, alarms, readings) from the
 * bridge's history. It is bounded here in bytes, which bounds its memory whatever the size of the
 * messages: 256 KiB hold about 1,900 of the fleet's readings (the default 2-minute `windowMs` of
 * them at one tick a second is 960; at FLEET_INTERVAL_MS=250 they last about a minute), but only
 * about 120 messages of 2 kB, so a flood of large messages does not keep megabytes of them alive
 * (test/e2e/slow-page.test.ts bounds the server's memory under such a flood).
 */
const RECOVERY = { maxBytes: 256 * 1024 };

/** Something to close on shutdown; closed in reverse order of creation. */
type Closer = [what: string, close: () => Promise<void>];

interface Config {
  host: string;
  web: PortChoice;
  mqttPort: PortChoice;
  /** An outside broker (MQTT_URL). */
  mqttUrl?: URL;
  redisUrl?: URL;
  topology: "embedded" | "forward";
  fleet: boolean;
  fleetIntervalMs: number;
}

function parseUrl(name: string, raw: string, protocols: string[]): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new StartupError(`${name} is not a URL: ${JSON.stringify(raw)}`);
  }
  if (!protocols.includes(url.protocol)) {
    throw new StartupError(
      `${name} must start with ${protocols.map((p) => `${p}//`).join(" or ")}, got ${JSON.stringify(raw)}`,
    );
  }
  return url;
}

function readConfig(env: NodeJS.ProcessEnv): Config {
  const value = (name: string) => env[name]?.trim() || undefined;
  const mqttRaw = value("MQTT_URL");
  const redisRaw = value("REDIS_URL");
  const topology = value("TOPOLOGY") ?? "embedded";
  if (topology !== "embedded" && topology !== "forward") {
    throw new StartupError(
      `TOPOLOGY must be "embedded" or "forward", got ${JSON.stringify(topology)}`,
    );
  }
  const config: Config = {
    host: value("HOST") ?? "127.0.0.1",
    web: portFromEnv(env, "PORT", 3000),
    mqttPort: portFromEnv(env, "MQTT_PORT", 1883),
    topology,
    fleet: false,
    fleetIntervalMs: 1000,
  };
  if (mqttRaw) {
    config.mqttUrl = parseUrl("MQTT_URL", mqttRaw, ["mqtt:", "mqtts:", "tcp:", "ws:", "wss:"]);
  }
  if (redisRaw) config.redisUrl = parseUrl("REDIS_URL", redisRaw, ["redis:", "rediss:"]);
  if (topology === "forward" && !config.redisUrl) {
    throw new StartupError(
      "TOPOLOGY=forward needs REDIS_URL: the web nodes reach the bridge worker through the Redis adapter",
    );
  }
  // one fleet per broker: by default it runs next to the embedded broker, or on a lone node
  const fleet = value("FLEET");
  if (fleet !== undefined && !["0", "1", "true", "false"].includes(fleet)) {
    throw new StartupError(`FLEET must be 1 or 0, got ${JSON.stringify(fleet)}`);
  }
  const embedded = topology === "embedded" && !config.mqttUrl;
  config.fleet =
    fleet === undefined ? embedded || !config.redisUrl : fleet === "1" || fleet === "true";
  if (config.fleet && topology === "forward" && !config.mqttUrl) {
    throw new StartupError(
      "FLEET=1 with TOPOLOGY=forward needs MQTT_URL (the broker of the fleet)",
    );
  }
  const interval = value("FLEET_INTERVAL_MS");
  if (interval !== undefined) {
    const ms = Number(interval);
    if (!Number.isInteger(ms) || ms < 50 || ms > 60_000) {
      throw new StartupError(
        `FLEET_INTERVAL_MS must be an integer from 50 to 60000, got ${interval}`,
      );
    }
    config.fleetIntervalMs = ms;
  }
  return config;
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

/** A URL without its credentials, for printing. */
function redact(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname === "/" ? "" : url.pathname}`;
}

/** Resolves when `promise` settles or after `ms`, whichever comes first; never rejects. */
async function bounded(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([
      promise.then(
        () => true,
        () => false,
      ),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
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
        // a step that hangs (an unreachable Redis) must not hold up the others
        await bounded(
          close().catch((err: unknown) => {
            console.error(`closing the ${what}: ${(err as Error).message}`);
          }),
          CLOSE_STEP_MS,
        );
      }
      process.exit(0);
    })();
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);

  const config = readConfig(process.env);
  const { host } = config;
  const shownHost = urlHost(reachableHost(host));
  const notes: string[] = [];

  await bundlePages(PUBLIC_DIR);

  // the broker: embedded aedes, an outside one (MQTT_URL), or none here (forward topology)
  let broker: EmbeddedBroker | undefined;
  let brokerUrl = config.mqttUrl;
  if (config.topology === "embedded" && !config.mqttUrl) {
    broker = await startBroker(config.mqttPort, host);
    closers.push(["MQTT broker", broker.close]);
    brokerUrl = new URL(`mqtt://${shownHost}:${broker.port}`);
  } else if (config.mqttUrl) {
    notes.push(`MQTT broker: ${redact(config.mqttUrl)} (MQTT_URL)`);
  }

  const root = await realpath(PUBLIC_DIR);
  /** The bridge, once made (the web server is made first: the broker may share it). */
  let served: MqttBridge | undefined = undefined;
  const http = createServer((req, res) => {
    if (serveMetrics(req, res, () => served)) return;
    serveStatic(root, req, res).catch(() => {
      if (!res.headersSent) sendText(res, 500, "Internal Server Error");
      else res.destroy();
    });
  });
  closers.push([
    "web server",
    () =>
      new Promise<void>((resolve) => {
        http.close(() => resolve());
        http.closeAllConnections();
      }),
  ]);
  if (broker) closers.push(["MQTT over WebSocket", broker.attachWebSocket(http)]);

  // the adapter: in-memory (one process) or Redis (a cluster of nodes)
  const ioOptions: Partial<ServerOptions> = {};
  if (config.redisUrl) {
    const { createAdapter } = await import("@socket.io/redis-adapter");
    const { Redis } = await import("ioredis");
    const pub = new Redis(config.redisUrl.href, { lazyConnect: false });
    const sub = pub.duplicate();
    let lastRedisError = "";
    for (const client of [pub, sub]) {
      client.on("error", (err: Error) => {
        if (err.message !== lastRedisError) console.error(`Redis: ${err.message}`);
        lastRedisError = err.message;
      });
      client.on("ready", () => (lastRedisError = ""));
    }
    ioOptions.adapter = createAdapter(pub, sub);
    closers.push([
      "Redis connections",
      () => {
        pub.disconnect();
        sub.disconnect();
        return Promise.resolve();
      },
    ]);
    notes.push(`Socket.IO adapter: Redis at ${redact(config.redisUrl)}`);
  } else {
    notes.push("Socket.IO adapter: in-memory (one process; set REDIS_URL for a cluster)");
  }
  const io = new Server(http, ioOptions);
  closers.push(["Socket.IO server", () => io.close()]);

  let bridge: MqttBridge;
  try {
    bridge =
      config.topology === "forward"
        ? mqttBridge({ topology: "forward", allow: ALLOW })
        : mqttBridge({ mqtt: brokerUrl!.href, allow: ALLOW, recovery: RECOVERY });
  } catch (err) {
    throw new StartupError(`MQTT_URL: ${(err as Error).message}`, { cause: err });
  }
  closers.push(["MQTT bridge", () => bridge.close()]);
  served = bridge;
  const upstream =
    config.topology === "forward" ? "the bridge worker" : redact(brokerUrl ?? new URL("mqtt://?"));
  let lastError = "";
  let onFirstError!: () => void;
  const firstError = new Promise<void>((resolve) => (onFirstError = resolve));
  bridge.on("error", (err) => {
    if (err.message !== lastError) console.error(`MQTT bridge: ${err.message}`);
    lastError = err.message;
    onFirstError();
  });
  let up = false;
  // what the pages show: whether the bridge is up, and where a terminal MQTT client gets in
  const mqttHint =
    brokerUrl && (brokerUrl.protocol === "mqtt:" || brokerUrl.protocol === "tcp:")
      ? {
          host: brokerUrl.hostname.replace(/^\[(.*)\]$/, "$1"),
          port: Number(brokerUrl.port || 1883),
        }
      : undefined;
  const brokerInfo = () => ({ connected: bridge.connected, mqtt: mqttHint });
  const tellPages = () => io.local.emit(BROKER_EVENT, brokerInfo());
  bridge.on("connect", () => {
    up = true;
    lastError = "";
    if (started) console.log(`MQTT bridge: connected to ${upstream}`);
    tellPages();
  });
  bridge.on("offline", () => {
    if (up && !stopping) console.log("MQTT bridge: connection lost; reconnecting");
    up = false;
    tellPages();
  });
  io.use(bridge);
  // serve the namespace now rather than on the first connection: a forward node then finds its
  // worker (bridge.ready, "connect") before any browser comes
  bridge.attach(io);
  io.on("connection", (socket) => {
    socket.emit(BROKER_EVENT, brokerInfo());
  });

  let fleet: Fleet | undefined;
  if (config.fleet && brokerUrl) {
    fleet = startFleet(brokerUrl.href, { intervalMs: config.fleetIntervalMs });
    const f = fleet;
    closers.push(["device fleet", () => f.close()]);
    const every =
      config.fleetIntervalMs === 1000 ? "every second" : `every ${config.fleetIntervalMs} ms`;
    const online = SENSORS.filter((s) => s.online).length;
    notes.push(
      `Device fleet: ${SENSORS.length} simulated sensors (${online} online) publish sensors/<id>/temp and sensors/<id>/humidity ${every} and now and then an alarm on sensors/<id>/alarm; their state is retained in sensors/<id>/status`,
    );
  } else {
    notes.push("Device fleet: not started on this node (FLEET=1 starts it)");
  }

  // The pages should find the bridge up (a page that reconnects to a restarted example must not
  // subscribe before the bridge can) and, with the embedded broker, the fleet's last-known state
  // in place. An outside broker that refuses the connection does not hold up the start.
  if (broker) {
    await bounded(Promise.all([bridge.ready, fleet?.ready]), READY_TIMEOUT_MS);
  } else if (config.topology === "embedded") {
    await bounded(Promise.race([bridge.ready, firstError]), READY_TIMEOUT_MS);
  }
  if (config.topology === "embedded" && !bridge.connected) {
    notes.push("The bridge is not connected to the broker yet; it keeps trying.");
  }

  // only now: the pages, Socket.IO and MQTT over WebSocket
  const port = await listenOnPort(http, { ...config.web, host, name: "PORT" });
  if (port !== config.web.port && config.web.port !== 0) {
    notes.unshift(`Port ${config.web.port} is taken; the web server uses ${port} instead.`);
  }
  if (broker) {
    notes.unshift(
      `MQTT broker (embedded aedes): ${brokerUrl!.href} and ws://${shownHost}:${port}${MQTT_WS_PATH}`,
    );
    if (broker.port !== config.mqttPort.port && config.mqttPort.port !== 0) {
      notes.unshift(
        `Port ${config.mqttPort.port} is taken; the MQTT broker uses ${broker.port} instead.`,
      );
    }
  }

  const base = `http://${shownHost}:${port}`;
  for (const note of notes) console.log(note);
  if (config.topology === "forward") {
    console.log(
      "Bridge: forward topology; the broker connection is the bridge worker's. Start one with:",
    );
    const mqttArg = config.mqttUrl ? redact(config.mqttUrl) : "mqtt://localhost:1883";
    console.log(
      `  npx tsx lib/cli.ts worker --mqtt ${mqttArg} --redis ${redact(config.redisUrl!)}`,
    );
  } else if (config.redisUrl && broker) {
    console.log("Another node of this cluster (it uses this node's broker):");
    console.log(
      `  PORT=${port + 1} REDIS_URL=${redact(config.redisUrl)} MQTT_URL=${brokerUrl!.href} npm start`,
    );
  }
  console.log(`Chat page: ${base}/`);
  console.log(`Dashboard: ${base}/dashboard.html`);
  console.log(`Metrics (Prometheus): ${base}/metrics`);
  const pub = brokerUrl && mosquittoPub(brokerUrl);
  if (pub) console.log(`Publish to the chat: ${pub}`);
  console.log("Press Ctrl-C to stop.");
  started = true;
}

main().catch((err: unknown) => {
  // a problem the user can fix is one line; anything else keeps its stack trace
  console.error(err instanceof StartupError ? `error: ${err.message}` : err);
  process.exit(1);
});
