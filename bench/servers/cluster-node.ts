/**
 * One Socket.IO node of the cluster bench (bench/cluster.ts), with @socket.io/redis-adapter:
 *
 *   node --import tsx bench/servers/cluster-node.ts <embedded|forward> <redis URL> <key> [broker URL]
 *
 * - embedded: the node's own bridge, with the bench bridge's options (bench/servers/bridge.ts: an
 *   MQTT.js client with TCP_NODELAY passed in, MQTT 5, defaults otherwise);
 * - forward: a web node of the worker topology (no broker connection): `mqttBridge({ topology:
 *   "forward", allow })`, attached at start, ready once a worker answered (start the worker first).
 * The bridge is the tsc build of lib/ (bench/lib/build.ts), as for every bench server.
 */
import { createAdapter } from "@socket.io/redis-adapter";
import { Redis } from "ioredis";
import { loadBridge } from "../lib/build";
import { connectNoDelay, hasNoDelay, whenConnected } from "../lib/mqtt";
import { serveServer, startIo } from "./common";

async function main(): Promise<void> {
  const [topology, redisUrl, key, brokerUrl] = process.argv.slice(2);
  if (topology !== "embedded" && topology !== "forward") {
    throw new Error(`topology must be embedded or forward, got ${topology}`);
  }
  const { mqttBridge } = loadBridge();
  const pub = new Redis(redisUrl, { maxRetriesPerRequest: 3 });
  const sub = pub.duplicate();
  for (const c of [pub, sub])
    c.on("error", (err: Error) => console.error("bench node redis:", err));
  // subscribe only once both connections are ready (as lib/cli.ts does for the worker)
  await Promise.all(
    [pub, sub].map(
      (c) =>
        new Promise<void>((resolve) =>
          c.status === "ready" ? resolve() : c.once("ready", resolve),
        ),
    ),
  );
  const { io, port, close } = await startIo();
  io.adapter(createAdapter(pub, sub, { key }));
  const allow = { subscribe: ["bench/#"], publish: ["bench/#"] };

  let mqttNoDelay: boolean | undefined;
  let bridge;
  if (topology === "embedded") {
    const client = connectNoDelay(brokerUrl, { protocolVersion: 5, resubscribe: false });
    bridge = mqttBridge({ mqtt: client, closeClient: true, allow });
    io.use(bridge);
    await whenConnected(client);
    mqttNoDelay = hasNoDelay(client.stream);
  } else {
    bridge = mqttBridge({ topology: "forward", allow });
    io.use(bridge);
    bridge.attach(io);
  }
  bridge.on("error", (err) => console.error("bench node bridge:", err.message));
  await bridge.ready;

  serveServer(
    { pid: process.pid, port, mqttNoDelay },
    async () => {
      await bridge.close();
      await close();
      pub.disconnect();
      sub.disconnect();
    },
    { stats: () => bridge.stats() },
  );
}

main().catch((err: unknown) => {
  console.error("bench cluster node:", err);
  process.exit(1);
});
