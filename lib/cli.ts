#!/usr/bin/env node
/**
 * `socket.io-mqtt-bridge worker`: the one bridge process of a cluster in the worker topology. It
 * runs a Socket.IO server with the Redis adapter and no HTTP listener, holds the cluster's only
 * broker connection, and serves the web nodes that run `mqttBridge({ topology: "forward" })`.
 * Needs `@socket.io/redis-adapter` and `ioredis` installed next to the package.
 */
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { Server } from "socket.io";
import { mqttBridge } from "./bridge";
import type { MqttBridgeOptions } from "./options";

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
  -h, --help         show this help

Stops cleanly on SIGINT and SIGTERM.`;

/** The parsed command line of the worker command. */
export interface WorkerArgs {
  mqtt: string;
  redis: string;
  namespaces: string[];
  key: string;
  config?: string;
}

/** Parses argv (without node and the script) and the environment; throws a one-line Error. */
export function parseWorkerArgs(argv: string[], env: NodeJS.ProcessEnv): WorkerArgs | "help" {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      mqtt: { type: "string" },
      redis: { type: "string" },
      namespace: { type: "string" },
      key: { type: "string" },
      config: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help || positionals.length === 0) return "help";
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
  const args: WorkerArgs = {
    mqtt,
    redis,
    namespaces,
    key: values.key ?? env.BRIDGE_REDIS_KEY ?? "socket.io",
  };
  const config = values.config ?? env.BRIDGE_CONFIG;
  if (config) args.config = config;
  return args;
}

async function loadConfig(file: string): Promise<MqttBridgeOptions> {
  const mod = (await import(pathToFileURL(resolve(file)).href)) as {
    default?: MqttBridgeOptions;
  } & MqttBridgeOptions;
  return mod.default ?? mod;
}

/** Starts the worker; resolves with a stop function once it serves. */
export async function startWorker(args: WorkerArgs): Promise<() => Promise<void>> {
  const config = args.config ? await loadConfig(args.config) : {};
  // optional peer dependencies, only needed by the worker command
  const { createAdapter } = await import("@socket.io/redis-adapter");
  const { Redis } = await import("ioredis");
  const pub = new Redis(args.redis, { maxRetriesPerRequest: 3 });
  const sub = pub.duplicate();
  for (const client of [pub, sub]) {
    client.on("error", (err: Error) => console.error(`redis: ${err.message}`));
  }
  const io = new Server({ adapter: createAdapter(pub, sub, { key: args.key }) });
  const bridge = mqttBridge({ ...config, mqtt: args.mqtt, topology: "worker" });
  bridge.on("error", (err) => console.error(`mqtt: ${err.message}`));
  bridge.on("connect", () => console.log(`connected to ${args.mqtt}`));
  bridge.on("offline", () => console.log("broker offline, reconnecting"));
  for (const ns of args.namespaces) bridge.attach(io.of(ns));
  console.log(`bridge worker serving ${args.namespaces.join(", ")} through ${args.redis}`);
  return async () => {
    await bridge.close();
    // io.close() needs an attached HTTP server; the worker has none, so close the adapters
    for (const ns of args.namespaces) await io.of(ns).adapter.close();
    pub.disconnect();
    sub.disconnect();
  };
}

async function main(): Promise<void> {
  let args: WorkerArgs | "help";
  try {
    args = parseWorkerArgs(process.argv.slice(2), process.env);
  } catch (err) {
    console.error(`error: ${(err as Error).message}`);
    process.exitCode = 2;
    return;
  }
  if (args === "help") {
    console.log(HELP);
    return;
  }
  const stop = await startWorker(args);
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
