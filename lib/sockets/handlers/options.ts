import type { Socket } from "socket.io";
import { MqttBridgeError } from "../../errors";
import type { DeliveryAck } from "../../protocol";
import type { Ack, HandlerContext } from "./context";
import { refuse, reply } from "./context";

/**
 * `mqtt.options { batch? }`: how the socket wants messages delivered. Keys it does not know are
 * ignored (a newer client may ask for more); the ack says what the server will do.
 */
export function onOptions(
  ctx: HandlerContext,
  socket: Socket,
  raw: unknown,
  ack: Ack<DeliveryAck>,
): void {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    refuse(ctx, socket, ack, new MqttBridgeError("INVALID_ARGUMENT", "options must be an object"));
    return;
  }
  const batch: unknown = (raw as { batch?: unknown }).batch;
  if (batch !== undefined && typeof batch !== "boolean") {
    refuse(ctx, socket, ack, new MqttBridgeError("INVALID_ARGUMENT", "batch must be a boolean"));
    return;
  }
  const now = batch === undefined ? ctx.lanes.batching(socket) : ctx.lanes.setBatch(socket, batch);
  reply(ctx, socket, ack, { ok: true, batch: now });
}
