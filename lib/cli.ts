#!/usr/bin/env node
/**
 * `socket.io-mqtt-bridge worker`: the one bridge process of a cluster in the worker topology. It
 * runs a Socket.IO server with the Redis adapter and no HTTP listener, holds the cluster's only
 * broker connection, and serves the web nodes that run `mqttBridge({ topology: "forward" })`.
 * Needs `@socket.io/redis-adapter` and `ioredis` installed next to the package.
 */
import { readFileSync } from "node:fs";
import type { Server as HttpServer } from "node:http";
import { createServer } from "node:http";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import type { Redis as RedisClient } from "ioredis";
import { Server } from "socket.io";
import type { MqttBridge } from "./bridge";
import { mqttBridge } from "./bridge";
import { WorkerLease, WorkerLock } from "./cluster/lock";
import { fenceWorker } from "./cluster/worker";
import { METRICS_CONTENT_TYPE } from "./metrics";
import type { MqttBridgeOptions } from "./options";
import { resolveOptions } from "./options";

const HELP = `Usage: socket.io-mqtt-bridge worker [options]

Runs the bridge worker of a Socket.IO cluster: the one process that holds the MQTT broker
connection. Web nodes use mqttBridge({ topology: "forward", allow }) with the Redis adapter.

Options (each also read from the environment variable in brackets):
  --mqtt URL         broker URL, e.g. mqtt://broker:1883              [MQTT_URL]
  --redis URL        Redis URL of the cluster's adapter               [REDIS_URL]
  --namespace NS     Socket.IO namespace(s) to serve, comma-separated [BRIDGE_NAMESPACE] (default /)
  --key KEY          the Redis adapter's key prefix                   [BRIDGE_REDIS_KEY] (default socket.io)
  --config FILE      a module exporting more mqttBridge options        [BRIDGE_CONFIG]
                     (decode, retained, limits, reconnect, ...; not allow: web nodes authorize)
  --lock-ttl MS      workers share a lock in Redis: one serves, others wait as standbys and
                     take over within MS after it dies                [BRIDGE_LOCK_TTL] (default 5000)
  --metrics [HOST:]PORT
                     serve GET /metrics (Prometheus text format) on PORT, all interfaces
                     unless HOST is given; a standby answers an empty text [BRIDGE_METRICS]
  -h, --help         show this help
  -v, --version      print the version

Stops cleanly on SIGINT and SIGTERM.`;

/** The parsed command line of the worker command. */
export interface WorkerArgs {
  mqtt: string;
  redis: string;
  namespaces: string[];
  key: string;
  lockTtlMs: number;
  config?: string;
  /** Where to serve `/metrics` (`--metrics [HOST:]PORT`); no host: every interface. */
  metrics?: { host?: string; port: number };
}

/** Reads `[HOST:]PORT` (an IPv6 host in brackets: `[::1]:9464`); throws a one-line Error. */
function parseListen(raw: string): { host?: string; port: number } {
  const m = /^(?:(\[[^\]]+\]|[^:]+):)?(\d+)$/.exec(raw.trim());
  const port = m ? Number(m[2]) : NaN;
  if (!m || !Number.isInteger(port) || port < 1 || port > 65_535) {
    throw new Error(`--metrics must be [HOST:]PORT with a port from 1 to 65535, got "${raw}"`);
  }
  return m[1] ? { host: m[1].replace(/^\[(.*)\]$/, "$1"), port } : { port };
}

/**
 * Parses argv (without node and the script) and the environment; throws a one-line Error.
 * `"usage"`: no command was given (the usage goes to stderr, exit code 2).
 */
export function parseWorkerArgs(
  argv: string[],
  env: NodeJS.ProcessEnv,
): WorkerArgs | "help" | "version" | "usage" {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      mqtt: { type: "string" },
      redis: { type: "string" },
      namespace: { type: "string" },
      key: { type: "string" },
      config: { type: "string" },
      "lock-ttl": { type: "string" },
      metrics: { type: "string" },
      help: { type: "boolean", short: "h" },
      version: { type: "boolean", short: "v" },
    },
  });
  if (values.help) return "help";
  if (values.version) return "version";
  if (positionals.length === 0) return "usage";
  if (positionals[0] !== "worker" || positionals.length > 1) {
    throw new Error(`unknown command "${positionals.join(" ")}" (try --help)`);
  }
  const mqtt = values.mqtt ?? env.MQTT_URL;
  const redis = values.redis ?? env.REDIS_URL;
  if (!mqtt) throw new Error("--mqtt URL (or MQTT_URL) is required");
  if (!redis) throw new Error("--redis URL (or REDIS_URL) is required");
  const namespaces = (values.namespace ?? env.BRIDGE_NAMESPACE ?? "/")
    .split(",")
    .map((n) => n.trim())
    .filter(Boolean);
  if (namespaces.some((n) => !n.startsWith("/"))) {
    throw new Error(`--namespace must start with "/", got "${namespaces.join(",")}"`);
  }
  const ttl = Number(values["lock-ttl"] ?? env.BRIDGE_LOCK_TTL ?? 5000);
  if (!Number.isInteger(ttl) || ttl < 100) {
    throw new Error("--lock-ttl must be an integer number of milliseconds >= 100");
  }
  const args: WorkerArgs = {
    mqtt,
    redis,
    namespaces,
    key: values.key ?? env.BRIDGE_REDIS_KEY ?? "socket.io",
    lockTtlMs: ttl,
  };
  const config = values.config ?? env.BRIDGE_CONFIG;
  if (config) args.config = config;
  const metrics = values.metrics ?? env.BRIDGE_METRICS;
  if (metrics) args.metrics = parseListen(metrics);
  return args;
}

/** The package's version, read from its package.json (next to dist/ or lib/) at run time. */
function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(join(__dirname, "..", "package.json"), "utf8")) as {
    version: string;
  };
  return pkg.version;
}

/** Imports an optional peer dependency of the worker, or throws a one-line install command. */
async function importPeer<T>(name: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    const missing =
      (code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND") &&
      (err as Error).message.includes(`'${name}'`);
    if (!missing) throw err; // something else, or a module the peer itself needs
    throw new Error(
      `the worker needs ${name}, which is not installed (the worker's optional peer ` +
        `dependencies are @socket.io/redis-adapter and ioredis): ` +
        `npm install @socket.io/redis-adapter ioredis`,
      { cause: err },
    );
  }
}

async function loadConfig(file: string): Promise<MqttBridgeOptions> {
  const mod = (await import(pathToFileURL(resolve(file)).href)) as {
    default?: MqttBridgeOptions;
  } & MqttBridgeOptions;
  return mod.default ?? mod;
}

/** One serving term of the worker: from taking the lock to losing it or stopping. */
interface Term {
  /** The term's bridge, once made. */
  bridge(): MqttBridge | undefined;
  /** Stops serving at once (the lock is lost): see {@link fenceWorker}. */
  fence(): void;
  /** Stops serving gracefully (SIGINT, SIGTERM). */
  close(): Promise<void>;
}

const whenReady = (c: RedisClient) =>
  new Promise<void>((resolve) => {
    if (c.status === "ready") resolve();
    else c.once("ready", () => resolve());
  });

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

/**
 * Runs the worker: waits for the worker lock (as a standby while another worker holds it), then
 * serves until `stop()`. At most one worker serves at any time: a worker that cannot renew the lock
 * (refused, failed or timed out, or no renewal within 2/3 of its expiry) stops serving at once (it
 * drops its broker connection and its adapter connections) and waits as a standby again.
 */
async function runWorker(args: WorkerArgs): Promise<{ stop: () => Promise<void> }> {
  // optional peer dependencies, only needed by the worker command
  const { createAdapter } = await importPeer(
    "@socket.io/redis-adapter",
    () => import("@socket.io/redis-adapter"),
  );
  const { Redis } = await importPeer("ioredis", () => import("ioredis"));
  const config = args.config ? await loadConfig(args.config) : {};
  const bridgeOptions: MqttBridgeOptions = { ...config, mqtt: args.mqtt, topology: "worker" };
  resolveOptions(bridgeOptions); // a bad config file stops the worker now, not when it takes over
  // the adapter's PUBLISHes are not awaited: they reject while Redis is unreachable, and when a
  // term's connections are dropped; that must not crash the worker
  process.on("unhandledRejection", (reason) => {
    console.error(`error: unhandled rejection: ${message(reason)}`);
  });
  const ttl = args.lockTtlMs;
  // the lock has a connection of its own whose commands time out: a renewal hung on Redis fails
  // in ttl/4, and the worker stops serving before another may take the lock
  const lockClient = new Redis(args.redis, {
    commandTimeout: Math.max(10, Math.floor(ttl / 4)),
    maxRetriesPerRequest: 1,
  });
  lockClient.on("error", (err: Error) => console.error(`redis: ${err.message}`));
  await whenReady(lockClient);

  /** Serves the namespaces through adapter connections of this term's own. */
  const serve = (): Term => {
    const pub = new Redis(args.redis, { maxRetriesPerRequest: 3 });
    const sub = pub.duplicate();
    for (const client of [pub, sub]) {
      client.on("error", (err: Error) => console.error(`redis: ${err.message}`));
    }
    let io: Server | undefined;
    let bridge: MqttBridge | undefined;
    let over = false;
    let fenced = false;
    const onConnect = () => console.log(`connected to ${args.mqtt}`);
    const onOffline = () => console.log("broker offline, reconnecting");
    // subscribe only once both connections are ready: a SUBSCRIBE queued before ioredis's ready
    // check can put the connection in subscriber mode first, and the adapter then never hears
    // the nodes' requests
    void Promise.all([pub, sub].map(whenReady)).then(() => {
      if (over) return;
      io = new Server({ adapter: createAdapter(pub, sub, { key: args.key }) });
      bridge = mqttBridge(bridgeOptions);
      bridge.on("error", (err) => console.error(`mqtt: ${err.message}`));
      bridge.on("connect", onConnect);
      bridge.on("offline", onOffline);
      for (const ns of args.namespaces) bridge.attach(io.of(ns));
      console.log(`bridge worker serving ${args.namespaces.join(", ")} through ${args.redis}`);
    });
    return {
      bridge: () => bridge,
      fence() {
        if (fenced) return;
        over = fenced = true;
        bridge?.off("connect", onConnect).off("offline", onOffline);
        if (io) for (const ns of args.namespaces) fenceWorker(io.of(ns));
        pub.disconnect();
        sub.disconnect();
        void bridge?.close();
      },
      async close() {
        over = true;
        if (bridge && io) {
          await bridge.close();
          // io.close() needs an attached HTTP server; the worker has none, so close the adapters
          if (!fenced) for (const ns of args.namespaces) await io.of(ns).adapter.close();
        }
        pub.disconnect();
        sub.disconnect();
      },
    };
  };

  let term: Term | undefined;
  // before the lock: a port that cannot be had stops the worker before it serves
  const metrics = args.metrics ? await serveMetrics(args.metrics, () => term?.bridge()) : undefined;
  const lock = new WorkerLock(lockClient, `${args.key}#mqtt-bridge#worker`, ttl);
  let stopping = false;
  let standby = false;
  const lease = new WorkerLease(lock, {
    acquired() {
      standby = false;
      if (!stopping) term = serve();
    },
    waiting() {
      if (standby) return;
      standby = true;
      console.log("standby: another worker holds the lock; waiting to take over");
    },
    lost(reason) {
      term?.fence();
      term = undefined;
      console.error(`error: lost the worker lock (${reason}); stopped serving`);
    },
  });
  lease.start();

  return {
    async stop() {
      stopping = true;
      metrics?.close();
      // the lease keeps renewing meanwhile: losing the lock fences the closing term
      await term?.close();
      term = undefined;
      await lease.stop(); // hands the lock back
      lockClient.disconnect();
    },
  };
}

/**
 * Serves `GET /metrics` at `where`: the metrics of the serving term's bridge, an empty text while
 * there is none (a standby). Resolves once listening; rejects when the port cannot be had.
 */
async function serveMetrics(
  where: { host?: string; port: number },
  bridge: () => MqttBridge | undefined,
): Promise<HttpServer> {
  const server = createServer((req, res) => {
    if (new URL(req.url ?? "/", "http://localhost").pathname !== "/metrics") {
      res.writeHead(404, { "Content-Type": "text/plain; charset=utf-8" }).end("Not Found\n");
      return;
    }
    const b = bridge();
    (b ? b.metrics() : Promise.resolve("")).then(
      (text) => res.writeHead(200, { "Content-Type": METRICS_CONTENT_TYPE }).end(text),
      (err: unknown) => {
        console.error(`metrics: ${message(err)}`);
        res.writeHead(500).end();
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err) => reject(new Error(`--metrics: ${err.message}`, { cause: err })));
    server.listen(where.port, where.host, () => resolve());
  });
  const host = where.host ?? "0.0.0.0";
  console.log(`metrics: http://${host.includes(":") ? `[${host}]` : host}:${where.port}/metrics`);
  return server;
}

async function main(): Promise<void> {
  let args: ReturnType<typeof parseWorkerArgs>;
  try {
    args = parseWorkerArgs(process.argv.slice(2), process.env);
  } catch (err) {
    console.error(`error: ${(err as Error).message}`);
    process.exitCode = 2;
    return;
  }
  if (args === "help" || args === "version") {
    console.log(args === "help" ? HELP : packageVersion());
    return;
  }
  if (args === "usage") {
    console.error(HELP);
    process.exitCode = 2;
    return;
  }
  const { stop } = await runWorker(args);
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`${signal}: stopping`);
    const force = setTimeout(() => process.exit(1), 5000);
    force.unref();
    stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on("SIGINT", () => shutdown("SIGINT"));
  process.on("SIGTERM", () => shutdown("SIGTERM"));
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(`error: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
