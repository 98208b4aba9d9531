/**
 * The ceiling: Socket.IO alone, no MQTT. The publisher writes the same 100-byte JSON payloads,
 * one per line, to a plain TCP socket; each line is parsed and emitted to the room in the
 * bridge's message shape, `io.to(room).emit("mqtt.message", { topic, payload, qos, retain })`.
 */
import net from "node:net";
import type { AddressInfo } from "node:net";
import { MESSAGE_EVENT, ROOM, TOPIC } from "../lib/payload";
import { JOIN_EVENT, serveServer, startIo } from "./common";

async function main(): Promise<void> {
  const { io, port, close } = await startIo();
  io.on("connection", (socket) => {
    socket.on(JOIN_EVENT, (room: string, ack: (ok: boolean) => void) => {
      void socket.join(room);
      ack(true);
    });
  });

  const ingest = net.createServer({ noDelay: true }, (conn) => {
    conn.setNoDelay(true);
    conn.setEncoding("utf8");
    let buffered = "";
    conn.on("data", (chunk: string) => {
      buffered += chunk;
      let start = 0;
      for (let nl = buffered.indexOf("\n"); nl !== -1; nl = buffered.indexOf("\n", start)) {
        const payload = JSON.parse(buffered.slice(start, nl)) as unknown;
        io.to(ROOM).emit(MESSAGE_EVENT, { topic: TOPIC, payload, qos: 0, retain: false });
        start = nl + 1;
      }
      buffered = buffered.slice(start);
    });
    conn.on("error", () => conn.destroy());
  });
  await new Promise<void>((resolve) => ingest.listen(0, "127.0.0.1", resolve));
  const ingestPort = (ingest.address() as AddressInfo).port;

  serveServer({ pid: process.pid, port, ingestPort }, async () => {
    ingest.close();
    await close();
  });
}

void main();
