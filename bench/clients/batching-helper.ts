/**
 * The browser helper as the delivery benches use it: the real helper (`mqttClient` of the tsc
 * build of lib/client.ts) with batching. Until the helper batches by itself (another branch adds
 * it), this stand-in does what it will do: ask `mqtt.options { batch: true }` on every connect and
 * hand each message of an `mqtt.messages` array to the helper's own `mqtt.message` listener, so
 * that its handlers see no difference. When the helper already listens to `mqtt.messages`, it is
 * used as it is and nothing is added.
 */
import type { Socket } from "socket.io-client";
import type { MqttClient } from "../../lib/client";
import { loadClient } from "../lib/build";

/** The events of the bridge's defaults (lib/protocol.ts). */
const EVENTS = { message: "mqtt.message", messages: "mqtt.messages", options: "mqtt.options" };

/** The helper on `socket`, batching; `standIn`: whether this file adds the batching. */
export function batchingClient(socket: Socket): { client: MqttClient; standIn: boolean } {
  const { mqttClient } = loadClient();
  // the helper's own option name is not known yet: passed through untyped
  const options: Record<string, unknown> = { batch: true };
  const client = mqttClient(socket, options);
  if (socket.hasListeners(EVENTS.messages)) return { client, standIn: false };
  const ask = () => void socket.emit(EVENTS.options, { batch: true }, () => undefined);
  socket.on("connect", ask);
  if (socket.connected) ask();
  socket.on(EVENTS.messages, (messages: unknown) => {
    if (!Array.isArray(messages)) return;
    const listeners = socket.listeners(EVENTS.message);
    for (const m of messages) for (const listener of listeners) listener(m);
  });
  return { client, standIn: true };
}

/** What the server does for `socket` now: `mqtt.options {}` answers without changing anything. */
export async function batchingNow(socket: Socket, timeoutMs = 10_000): Promise<boolean> {
  const ack = (await socket.timeout(timeoutMs).emitWithAck(EVENTS.options, {})) as {
    ok: boolean;
    batch?: boolean;
  };
  return ack.ok && ack.batch === true;
}
