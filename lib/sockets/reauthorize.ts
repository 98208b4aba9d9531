import createDebug from "debug";
import type { Namespace, Server, Socket } from "socket.io";
import type { Lanes } from "../delivery/lanes";
import { MqttBridgeError, forbidden } from "../errors";
import type { ResolvedOptions } from "../options";
import type { BridgeStats } from "../stats";
import type { Authorizer } from "./authorize";
import type { ClientRooms } from "./client-rooms";
import { notifyUnsubscribed } from "./notify";
import type { RoomTracker } from "./rooms";

const debug = createDebug("socket.io-mqtt-bridge:reauthorize");

/**
 * A subscription that {@link Reauthorizer.reauthorize} (`bridge.reauthorize()`) took away: the
 * socket left `room` and was told with `mqtt.unsubscribed` (code `FORBIDDEN`).
 */
export interface RevokedSubscription {
  /** The socket's id. */
  socket: string;
  /** The name of the socket's namespace (`"/"` for the main one). */
  namespace: string;
  /** The topic filter of the subscription. */
  filter: string;
  /** The room the socket left (`bridge.room(filter)`). */
  room: string;
}

/** What `bridge.reauthorize()` takes: one socket, the sockets of a namespace, or of a server. */
export type ReauthorizeTarget = Socket | Namespace | Server;

/**
 * The rooms of `socket` that `allow.subscribe` governs, with their filter: its live bridged
 * client-subscription rooms (`roomPrefix + filter`). Prefixed rooms that server code joined it to
 * are the app's and are left out; where the bridge does not know which rooms the socket joined
 * itself (see {@link ClientRooms}), every prefixed bridged room counts.
 */
export function subscriptionRooms(
  opts: ResolvedOptions,
  rooms: RoomTracker,
  clientRooms: ClientRooms,
  socket: Socket,
): [room: string, filter: string][] {
  const own = clientRooms.of(socket);
  const out: [string, string][] = [];
  for (const room of socket.rooms) {
    if (!room.startsWith(opts.roomPrefix) || !rooms.isBridged(socket.nsp, room)) continue;
    if (own && !own.has(room)) continue;
    out.push([room, room.slice(opts.roomPrefix.length)]);
  }
  return out;
}

function isServer(target: object): target is Server {
  return typeof (target as Partial<Server>).of === "function";
}

function isSocket(target: object): target is Socket {
  const t = target as Partial<Socket>;
  return typeof t.id === "string" && t.rooms instanceof Set && typeof t.nsp === "object";
}

function isNamespace(target: object): target is Namespace {
  const t = target as Partial<Namespace>;
  return t.sockets instanceof Map && typeof t.name === "string" && typeof t.adapter === "object";
}

/**
 * Revoking rights at once (`bridge.reauthorize()`). A subscription is authorized when it is made;
 * after a logout or a role change the app calls `reauthorize`, which checks every client
 * subscription of the socket(s) against `allow.subscribe` again (rule functions are called again,
 * placeholders are filled from the socket again) and takes the sockets out of the rooms they may
 * no longer be in, each told with `mqtt.unsubscribed` (`FORBIDDEN`).
 *
 * What must hold once a socket is out of a room: nothing of the room reaches it any more. The
 * socket leaves in the turn the rule answers (a list rule: within the call itself), and every
 * broadcast picks its sockets when it is sent, so a batched frame still pending in this turn, or
 * a message held for the socket while it is slow (see {@link Lanes.forget}), does not reach it.
 * A grant checked before a reauthorize of the socket began is stale: every place that grants a
 * room after awaiting a rule (`mqtt.subscribe`, the rooms of a recovered socket) compares
 * {@link generation} before and after, and checks again when it changed.
 */
export class Reauthorizer {
  /** Per socket, how many reauthorizations of it have begun. */
  private readonly generations = new WeakMap<Socket, number>();
  /** Per socket, the rooms reauthorizations took it out of, with the generation then. */
  private readonly removals = new WeakMap<Socket, Map<string, number>>();

  constructor(
    private readonly opts: ResolvedOptions,
    private readonly authorizer: Authorizer,
    private readonly rooms: RoomTracker,
    private readonly clientRooms: ClientRooms,
    private readonly lanes: Lanes,
    private readonly stats: BridgeStats,
    /** The sockets the bridge serves in this process. */
    private readonly served: () => Iterable<Socket>,
  ) {}

  /**
   * How many reauthorizations of `socket` have begun. A rule's answer obtained while this number
   * changed may rest on rights the app has since withdrawn: it must be asked again.
   */
  generation(socket: Socket): number {
    return this.generations.get(socket) ?? 0;
  }

  /** True when a reauthorization of `socket` begun after `generation` took it out of `room`. */
  tookOut(socket: Socket, room: string, generation: number): boolean {
    return (this.removals.get(socket)?.get(room) ?? -1) > generation;
  }

  /**
   * Checks the sockets of `target` served by this process (a socket, a namespace's, a server's in
   * every namespace the bridge serves) and resolves with what it took away. Rejects with
   * `INVALID_ARGUMENT` for anything else.
   */
  async reauthorize(target: ReauthorizeTarget): Promise<RevokedSubscription[]> {
    // up to the first await this runs within the call: list rules take sockets out at once
    const checks = this.socketsOf(target).map((socket) => this.socket(socket));
    return (await Promise.all(checks)).flat();
  }

  private socketsOf(target: ReauthorizeTarget): Socket[] {
    // checked at run time: JavaScript callers (and a RemoteSocket of fetchSockets()) get an error
    const t: unknown = target;
    if (typeof t === "object" && t !== null) {
      const all = [...this.served()];
      if (isServer(t)) return all.filter((s) => s.nsp.server === t);
      if (isSocket(t)) return all.includes(t) ? [t] : [];
      if (isNamespace(t)) return all.filter((s) => s.nsp === t);
    }
    throw new MqttBridgeError(
      "INVALID_ARGUMENT",
      "bridge.reauthorize() takes a Socket of this process, a Namespace or the Server",
    );
  }

  /** Checks one socket's client subscriptions again; resolves with what it took away. */
  private socket(socket: Socket): Promise<RevokedSubscription[]> {
    this.generations.set(socket, this.generation(socket) + 1);
    const results: Promise<RevokedSubscription | undefined>[] = [];
    for (const [room, filter] of subscriptionRooms(
      this.opts,
      this.rooms,
      this.clientRooms,
      socket,
    )) {
      // a rule that throws or rejects denies (lib/sockets/authorize.ts), as on subscribe
      const allowed = this.authorizer.subscribe(socket, filter);
      if (allowed === true) continue;
      results.push(
        allowed === false
          ? Promise.resolve(this.revoke(socket, room, filter))
          : allowed.then((ok) => (ok ? undefined : this.revoke(socket, room, filter))),
      );
    }
    return Promise.all(results).then((list) =>
      list.filter((r): r is RevokedSubscription => r !== undefined),
    );
  }

  /** Takes `socket` out of `room` (when still in it), tells it and counts it. */
  private revoke(socket: Socket, room: string, filter: string): RevokedSubscription | undefined {
    // unsubscribed or disconnected while the rule was asked: nothing left to take away
    if (socket.disconnected || !socket.rooms.has(room)) return undefined;
    // out of the room in this turn: a broadcast picks its sockets when it is sent
    void socket.leave(room);
    this.clientRooms.delete(socket, room);
    let removals = this.removals.get(socket);
    if (!removals) this.removals.set(socket, (removals = new Map<string, number>()));
    removals.set(room, this.generation(socket));
    this.lanes.forget(socket);
    this.stats.subscribes.revoked++;
    debug("[%s] %s no longer allows %s: left %s", socket.id, socket.nsp.name, filter, room);
    notifyUnsubscribed(
      this.opts,
      socket,
      filter,
      forbidden(`subscribe to "${filter}" (checked again by bridge.reauthorize)`),
    );
    return { socket: socket.id, namespace: socket.nsp.name, filter, room };
  }
}
