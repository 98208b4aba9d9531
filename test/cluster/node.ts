/**
 * One Socket.IO node of the cluster tests, as a process of its own:
 *
 *   REDIS_URL=redis://127.0.0.1:P MQTT_URL=mqtt://127.0.0.1:Q ADAPTER=redis \
 *     node --import tsx test/cluster/node.ts
 *
 * Configuration (argv `--redis URL --mqtt URL --adapter redis|streams --port N --recovery`
 * overrides the environment):
 * - REDIS_URL: the redis-server joining the nodes;
 * - MQTT_URL: the broker of the node's bridge;
 * - ADAPTER: `redis` (@socket.io/redis-adapter, default) or `streams`
 *   (@socket.io/redis-streams-adapter);
 * - ADAPTER_KEY: the channel key / stream name (nodes sharing it form one cluster);
 * - PORT: the HTTP port on 127.0.0.1 (default 0: ephemeral);
 * - RECOVERY=1: Socket.IO connection state recovery on (needs the streams adapter);
 * - TOPOLOGY=forward: a web node of the worker topology (no broker of its own; MQTT_URL unused),
 *   with CLUSTER_TIMING (JSON) as the bridge's `cluster` option.
 *
 * It reports `{ type: "ready", port }` over IPC once listening and connected to the broker, then
 * answers `{ id, cmd, ...args }` requests from test/support/cluster.ts with
 * `{ type: "reply", id, ok, result | error }`. SIGTERM (or losing the IPC channel, i.e. the test
 * process died) closes the bridge, the server and the Redis clients, then exits.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Server } from "socket.io";
import { mqttBridge } from "../../lib";
import type { AdapterKind } from "../support/adapters";
import { redisAdapterFactory } from "../support/adapters";
import type { NodeReply, NodeRequest } from "../support/cluster";

function arg(name: string): string | undefined {
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === `--${name}`) return argv[i + 1] ?? "";
    if (argv[i].startsWith(`--${name}=`)) return argv[i].slice(name.length + 3);
  }
  return undefined;
}

const REDIS_URL = arg("redis") ?? process.env.REDIS_URL;
const MQTT_URL = arg("mqtt") ?? process.env.MQTT_URL;
const ADAPTER_NAME = arg("adapter") ?? process.env.ADAPTER ?? "redis";
const ADAPTER_KEY = arg("key") ?? process.env.ADAPTER_KEY ?? "sio-cluster-test";
const PORT = Number(arg("port") ?? process.env.PORT ?? 0);
const RECOVERY = arg("recovery") !== undefined || process.env.RECOVERY === "1";
const FORWARD = process.env.TOPOLOGY === "forward";
const CLUSTER_TIMING = JSON.parse(process.env.CLUSTER_TIMING ?? "{}") as Record<string, number>;

function log(...parts: unknown[]): void {
  process.stderr.write(`[node ${process.pid}] ${parts.map(String).join(" ")}\n`);
}

/** Problems that would have crashed the node, counted and reported through `stats`. */
const problems = { redisErrors: 0, unhandledRejections: 0, bridgeErrors: 0 };

process.on("unhandledRejection", (reason) => {
  // e.g. an adapter's un-awaited PUBLISH failing while Redis is down: count it, keep serving
  problems.unhandledRejections++;
  log("unhandled rejection:", reason instanceof Error ? reason.message : String(reason));
});

async function main(): Promise<void> {
  if (!REDIS_URL || (!MQTT_URL && !FORWARD)) throw new Error("REDIS_URL and MQTT_URL are required");
  if (ADAPTER_NAME !== "redis" && ADAPTER_NAME !== "streams") {
    throw new Error(`ADAPTER must be redis or streams, got ${ADAPTER_NAME}`);
  }
  const ADAPTER: AdapterKind = ADAPTER_NAME;
  const nodeAdapter = await redisAdapterFactory(REDIS_URL, ADAPTER, {
    key: ADAPTER_KEY,
    onError: () => {
      problems.redisErrors++;
    },
  })(0);
  const http = createServer();
  const io = new Server(http, {
    adapter: nodeAdapter.adapter,
    ...(RECOVERY ? { connectionStateRecovery: { maxDisconnectionDuration: 30_000 } } : {}),
  });
  const allow = { subscribe: ["#"], publish: ["#"], retain: ["#"] };
  const bridge = FORWARD
    ? mqttBridge({ topology: "forward", allow, cluster: CLUSTER_TIMING, ackTimeoutMs: 3000 })
    : mqttBridge({
        mqtt: MQTT_URL,
        allow,
        reconnect: { minDelayMs: 100, maxDelayMs: 500 },
        // these suites assert each node's exact broker subscriptions as sockets come and go: no
        // subscription lingers after a disconnect (lingering: test/integration/recovery.test.ts)
        recovery: { maxLingering: 0 },
      });
  bridge.on("error", (err) => {
    problems.bridgeErrors++;
    log("bridge error:", err.message);
  });
  io.use(bridge);
  // serve the namespace now: a socket recovered onto this fresh node skips io.use middlewares
  bridge.attach(io);

  const handle = async (req: NodeRequest): Promise<unknown> => {
    switch (req.cmd) {
      case "socketsJoin":
        io.in(req.socketId).socketsJoin(req.room);
        return null;
      case "socketsLeave":
        io.in(req.socketId).socketsLeave(req.room);
        return null;
      case "bridgeSubscribe":
        bridge.subscribe(req.filter, req.room);
        return null;
      case "bridgeUnsubscribe":
        bridge.unsubscribe(req.filter, req.room);
        return null;
      case "broadcast":
        io.emit(req.event, req.data);
        return null;
      case "stats":
        return { ...bridge.stats(), pid: process.pid, ...problems };
      case "sockets":
        return [...io.of("/").sockets.values()].map((s) => ({ id: s.id, rooms: [...s.rooms] }));
      case "publish":
        await bridge.publish(req.topic, req.payload, { qos: req.qos ?? 1 });
        return null;
      default:
        throw new Error(`unknown command ${(req as { cmd: string }).cmd}`);
    }
  };

  process.on("message", (msg: NodeRequest) => {
    handle(msg).then(
      (result) => reply({ type: "reply", id: msg.id, ok: true, result }),
      (err: unknown) =>
        reply({
          type: "reply",
          id: msg.id,
          ok: false,
          error: err instanceof Error ? err.message : String(err),
        }),
    );
  });

  let stopping = false;
  const shutdown = (why: string): void => {
    if (stopping) return;
    stopping = true;
    log("stopping:", why);
    // the test's harness SIGKILLs after 3 s; exit on our own before that whatever hangs
    setTimeout(() => process.exit(1), 2500).unref();
    void (async () => {
      await bridge.close();
      await io.close();
      await nodeAdapter.close();
      process.exit(0);
    })().catch((err: unknown) => {
      log("shutdown failed:", err instanceof Error ? err.message : String(err));
      process.exit(1);
    });
  };
  process.once("SIGTERM", () => shutdown("SIGTERM"));
  process.once("SIGINT", () => shutdown("SIGINT"));
  // the IPC channel closes when the test process dies, however it died: never outlive it
  process.once("disconnect", () => shutdown("IPC channel closed"));

  await new Promise<void>((resolve) => http.listen(PORT, "127.0.0.1", resolve));
  const port = (http.address() as AddressInfo).port;
  await bridge.ready;
  reply({ type: "ready", port, pid: process.pid });
}

function reply(msg: NodeReply): void {
  if (process.connected) process.send?.(msg);
}

main().catch((err: unknown) => {
  log("failed to start:", err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exit(1);
});
