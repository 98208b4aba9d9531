/**
 * The usual hand-written bridge: one MQTT.js client (MQTT 3.1.1, its default), a broker
 * subscription on the first join of a topic's room, and `io.to(topic).emit(...)` per message.
 * No validation, authorization, deduplication or reconnect handling — that is the point.
 */
import { connectNoDelay, hasNoDelay, whenConnected } from "../lib/mqtt";
import { MESSAGE_EVENT } from "../lib/payload";
import { JOIN_EVENT, serveServer, startIo } from "./common";

async function main(): Promise<void> {
  const brokerUrl = process.argv[2];
  const { io, port, close } = await startIo();
  const client = connectNoDelay(brokerUrl);
  await whenConnected(client);

  const subscribed = new Set<string>();
  io.on("connection", (socket) => {
    socket.on(JOIN_EVENT, (topic: string, ack: (ok: boolean) => void) => {
      void socket.join(topic);
      if (subscribed.has(topic)) return ack(true);
      subscribed.add(topic);
      client.subscribe(topic, { qos: 0 }, (err) => ack(!err));
    });
  });
  client.on("message", (topic, payload, packet) => {
    io.to(topic).emit(MESSAGE_EVENT, {
      topic,
      payload: JSON.parse(payload.toString()) as unknown,
      qos: packet.qos,
      retain: packet.retain,
    });
  });

  serveServer({ pid: process.pid, port, mqttNoDelay: hasNoDelay(client.stream) }, async () => {
    await close();
    await client.endAsync();
  });
}

void main();
