import type { Socket } from "socket.io";
import { MqttBridgeError, forbidden } from "../../errors";
import type { QoS, StreamPosition, SubscribeAck } from "../../protocol";
import type { JoinSteps } from "../recovery";
import { parseSubscribe } from "../validate";
import type { Ack, HandlerContext } from "./context";
import { refuse, reply } from "./context";

/** Counts the bridged rooms a socket is in through client subscriptions (prefixed rooms). */
function subscriptionCount(ctx: HandlerContext, socket: Socket): number {
  let n = 0;
  for (const room of socket.rooms) if (room.startsWith(ctx.opts.roomPrefix)) n++;
  return n;
}

/** Refuses a new subscription beyond the socket's cap or the bridge's distinct-filter cap. */
function checkCaps(ctx: HandlerContext, socket: Socket, filter: string): void {
  const { subscriptionsPerSocket, brokerSubscriptions } = ctx.opts.limits;
  if (subscriptionCount(ctx, socket) >= subscriptionsPerSocket) {
    throw new MqttBridgeError(
      "TOO_MANY_SUBSCRIPTIONS",
      `at most ${subscriptionsPerSocket} subscriptions per socket`,
      { reasonCode: 0x97 },
    );
  }
  if (!ctx.backend.admits(filter)) {
    throw new MqttBridgeError(
      "TOO_MANY_SUBSCRIPTIONS",
      `the bridge holds ${brokerSubscriptions} broker subscriptions at most`,
      { reasonCode: 0x97 },
    );
  }
}

/** Thrown by a join's check when a bridge.reauthorize() of the socket began since its grant. */
const STALE = new Error("the socket's rights were checked again meanwhile");

/**
 * `mqtt.subscribe`: validate, authorize, check the cap, join `bridge.room(filter)` (the room's
 * creation subscribes the broker), and answer once the broker's SUBACK is in. A refused SUBACK
 * leaves no socket in the room. With `since`, the messages the socket missed are sent right
 * before the join (lib/sockets/recovery.ts), or the ack says `recovered: false`.
 */
export async function onSubscribe(
  ctx: HandlerContext,
  socket: Socket,
  raw: unknown,
  ack: Ack<SubscribeAck>,
): Promise<void> {
  try {
    const request = parseSubscribe(raw, ctx.opts.limits);
    const filter = request.filter;
    const qos = Math.min(request.qos, ctx.opts.limits.subscribeQos) as QoS;
    const room = ctx.rooms.room(filter);
    if (!ctx.backend.connected) throw new MqttBridgeError("BROKER_UNAVAILABLE");
    if (!socket.rooms.has(room)) checkCaps(ctx, socket, filter);
    // also when the socket is in the room already (server code may have put it there): a
    // subscribe the rules do not allow changes nothing, not even the QoS. A grant that was
    // awaited while a bridge.reauthorize() of the socket began may rest on withdrawn rights
    // (the app changed them before that call): asked again
    let allowed: boolean;
    let generation: number;
    do {
      generation = ctx.reauthorizer.generation(socket);
      allowed = await ctx.authorizer.subscribe(socket, filter);
    } while (allowed && generation !== ctx.reauthorizer.generation(socket));
    if (!allowed) throw forbidden(`subscribe to "${filter}"`);
    if (socket.disconnected) return;
    if (!ctx.backend.connected) throw new MqttBridgeError("BROKER_UNAVAILABLE");
    const joined = !socket.rooms.has(room);
    const since = request.since;
    // already in the room, it missed nothing on this connection
    let recovered = since ? !joined : undefined;
    let position: StreamPosition | undefined;
    if (joined) {
      const steps: JoinSteps = {
        // checked again with the join in its turn: requests of one burst all passed the first
        // check while their authorization was awaited, so only this one keeps the caps exact
        check: () => {
          checkCaps(ctx, socket, filter);
          // a web node's recovery joins when the worker answers: rights may have changed since
          if (ctx.reauthorizer.generation(socket) !== generation) throw STALE;
        },
        join: () => {
          ctx.backend.prepare(filter, qos); // before the join: the first SUBSCRIBE has this QoS
          const joining = socket.join(room) ?? Promise.resolve();
          // the socket's own from the join on, so that a bridge.reauthorize() while the broker
          // confirms checks this room too
          ctx.clientRooms.add(socket, room);
          return joining;
        },
      };
      if (since && ctx.recovery) {
        // the missed messages are sent right before the join, in one turn: none falls in between
        let r;
        for (;;) {
          try {
            r = await ctx.recovery.recover(socket, filter, room, since, steps);
            break;
          } catch (err) {
            if (err !== STALE) throw err;
            generation = ctx.reauthorizer.generation(socket); // asked again, with the new rights
            if (!(await ctx.authorizer.subscribe(socket, filter))) {
              throw forbidden(`subscribe to "${filter}" (checked again by bridge.reauthorize)`);
            }
            if (socket.disconnected) return;
          }
        }
        ({ recovered, position } = r);
        if (socket.disconnected) return;
        await r.joining;
      } else {
        if (since) recovered = false;
        steps.check();
        const joining = steps.join();
        position = ctx.position();
        await joining;
      }
    } else {
      position = ctx.position();
    }
    // a bridge.reauthorize() took the socket out while the broker confirmed (its
    // `mqtt.unsubscribed` went first; the room's end may have cancelled the confirmation): this
    // request is refused as well
    const revoked = () =>
      !socket.rooms.has(room) && ctx.reauthorizer.tookOut(socket, room, generation)
        ? forbidden(`subscribe to "${filter}" (checked again by bridge.reauthorize)`)
        : undefined;
    let granted;
    try {
      granted = await ctx.backend.confirm(filter, qos, ctx.opts.ackTimeoutMs);
    } catch (err) {
      const refusal = revoked() ?? err;
      // undo what this request did (a refused new subscription has emptied the room already)
      if (joined) {
        ctx.clientRooms.delete(socket, room);
        await socket.leave(room);
      }
      throw refusal;
    }
    const refusal = revoked();
    if (refusal) throw refusal;
    ctx.clientRooms.add(socket, room);
    ctx.stats.subscribes.ok++;
    const res: SubscribeAck = { ok: true, room, qos: granted };
    if (position) res.position = position;
    if (recovered !== undefined) res.recovered = recovered;
    reply(ctx, socket, ack, res);
  } catch (err) {
    refuse(ctx, socket, ack, err);
  }
}
