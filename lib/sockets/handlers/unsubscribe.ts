import type { Socket } from "socket.io";
import type { UnsubscribeAck } from "../../protocol";
import { checkFilter } from "../validate";
import type { Ack, HandlerContext } from "./context";
import { refuse, reply } from "./context";

/**
 * `mqtt.unsubscribe`: leave `bridge.room(filter)`; the room's deletion unsubscribes the broker
 * when it was the last member. Idempotent.
 */
export async function onUnsubscribe(
  ctx: HandlerContext,
  socket: Socket,
  raw: unknown,
  ack: Ack<UnsubscribeAck>,
): Promise<void> {
  try {
    const filter = checkFilter(raw, ctx.opts.limits);
    const room = ctx.rooms.room(filter);
    ctx.clientRooms.delete(socket, room);
    await socket.leave(room);
    ctx.stats.subscribes.unsubscribes++;
    reply(ctx, socket, ack, { ok: true });
  } catch (err) {
    refuse(ctx, socket, ack, err);
  }
}
