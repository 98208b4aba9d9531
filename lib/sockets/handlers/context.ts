import createDebug from "debug";
import type { Socket } from "socket.io";
import type { Authorizer } from "../authorize";
import type { ClientRooms } from "../client-rooms";
import { toAck } from "../../errors";
import type { ResolvedOptions } from "../../options";
import type { AckFailure, StreamPosition } from "../../protocol";
import type { Backend } from "../../core";
import type { Lanes } from "../../delivery/lanes";
import type { Reauthorizer } from "../reauthorize";
import type { RoomTracker } from "../rooms";
import type { Recovery } from "../recovery";
import type { BridgeStats } from "../../stats";

const debug = createDebug("socket.io-mqtt-bridge:handlers");

/** What every socket event handler needs, created once per bridge. */
export interface HandlerContext {
  opts: ResolvedOptions;
  backend: Backend;
  rooms: RoomTracker;
  authorizer: Authorizer;
  stats: BridgeStats;
  /** The rooms sockets joined through their own `mqtt.subscribe`. */
  clientRooms: ClientRooms;
  /** `bridge.reauthorize()`: a grant checked before one began is checked again. */
  reauthorizer: Reauthorizer;
  /** How each socket is delivered to (`mqtt.options`). */
  lanes: Lanes;
  /** Missed-message recovery (absent with recovery off). */
  recovery: Recovery | undefined;
  /** Where the stream this process numbers is (undefined where it numbers none). */
  position: () => StreamPosition | undefined;
  /** Socket publishes queued while the broker is offline. */
  offlineQueued: { count: number };
}

/** An acknowledgement callback, or nothing when the client sent none. */
export type Ack<T> = ((res: T) => void) | undefined;

/** Picks the ack callback out of an event's arguments (the last one, when it is a function). */
export function ackOf<T>(args: unknown[]): Ack<T> {
  const last = args[args.length - 1];
  return typeof last === "function" ? (last as (res: T) => void) : undefined;
}

/** Sends an acknowledgement, never throwing; counts acks the client did not ask for. */
export function reply<T>(ctx: HandlerContext, socket: Socket, ack: Ack<T>, res: T): void {
  if (!ack) {
    ctx.stats.noAckCallback++;
    debug("[%s] no ack callback for %o", socket.id, res);
    return;
  }
  try {
    ack(res);
  } catch (err) {
    debug("[%s] ack failed: %O", socket.id, err);
  }
}

/** Answers a refused request with its error code, counting it by code. */
export function refuse(
  ctx: HandlerContext,
  socket: Socket,
  ack: Ack<AckFailure>,
  err: unknown,
): void {
  const res = toAck(err);
  ctx.stats.rejected[res.error.code]++;
  debug("[%s] refused: %s %s", socket.id, res.error.code, res.error.message);
  reply(ctx, socket, ack, res);
}
