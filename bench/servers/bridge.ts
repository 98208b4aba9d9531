/**
 * Our bridge, loaded from a tsc build of lib/ (see ../lib/build.ts). Its MQTT.js client is passed in
 * (`mqtt: client`, closed on close) so that its TCP socket has TCP_NODELAY; otherwise the
 * options are the defaults (MQTT 5, decode "auto", retained cache on, echo on, recovery on), except
 * the publish rate limit, raised for the publish bench.
 *
 *   node --import tsx bench/servers/bridge.ts <broker URL> [<JSON: { delivery?, recovery?, io? }>]
 *
 * The optional JSON gives the bridge's `delivery` and `recovery` options and Socket.IO server
 * options (the delivery benches: `delivery.batch: false`, a longer `pingTimeout`; the recovery
 * bench: `recovery: false`). Besides the common commands it answers `stats` (`bridge.stats()`)
 * and `clients` (Engine.IO connections open now).
 */
import type { ServerOptions } from "socket.io";
import type { MqttBridgeOptions } from "../../lib";
import { loadBridge } from "../lib/build";
import { connectNoDelay, hasNoDelay, whenConnected } from "../lib/mqtt";
import { serveServer, startIo } from "./common";

async function main(): Promise<void> {
  const { mqttBridge } = loadBridge();
  const brokerUrl = process.argv[2];
  const extra = JSON.parse(process.argv[3] ?? "{}") as {
    delivery?: MqttBridgeOptions["delivery"];
    recovery?: MqttBridgeOptions["recovery"];
    io?: Partial<ServerOptions>;
  };
  const { io, port, close } = await startIo(extra.io);
  const client = connectNoDelay(brokerUrl, { protocolVersion: 5, resubscribe: false });
  const bridge = mqttBridge({
    mqtt: client,
    closeClient: true,
    allow: { subscribe: ["bench/#"], publish: ["bench/#"] },
    limits: { publishRate: 1_000_000, publishBurst: 1_000_000 },
    ...(extra.delivery ? { delivery: extra.delivery } : {}),
    ...(extra.recovery !== undefined ? { recovery: extra.recovery } : {}),
  });
  bridge.on("error", (err) => console.error("bench bridge:", err.message));
  io.use(bridge);
  await whenConnected(client);
  await bridge.ready;

  serveServer(
    { pid: process.pid, port, mqttNoDelay: hasNoDelay(client.stream) },
    async () => {
      await bridge.close();
      await close();
    },
    { stats: () => bridge.stats(), clients: () => io.engine.clientsCount },
  );
}

void main();
