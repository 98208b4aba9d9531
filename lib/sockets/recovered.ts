import createDebug from "debug";
import type { Namespace, Socket } from "socket.io";
import type { Authorizer } from "./authorize";
import type { ClientRooms } from "./client-rooms";
import { forbidden } from "../errors";
import { notifyUnsubscribed } from "./notify";
import type { Reauthorizer } from "./reauthorize";
import { subscriptionRooms } from "./reauthorize";
import type { ResolvedOptions } from "../options";
import type { BridgeMessage } from "../protocol";
import type { RoomTracker } from "./rooms";
import type { BridgeStats } from "../stats";
import { matches } from "../topic";

const debug = createDebug("socket.io-mqtt-bridge:recovered");

/** How long missed messages wait for their socket's `connection` before they are dropped. */
const HOLD_MS = 10_000;

/** The session an adapter hands back on recovery (socket.io-adapter's `Session`). */
interface RestoredSession {
  sid: string;
  rooms: string[];
  missedPackets: unknown[][];
}

type RestoreSession = (pid: string, offset: string) => unknown;

/** The missed bridge messages of one recovering socket, until its `connection`. */
interface Held {
  packets: unknown[][];
  timer: NodeJS.Timeout;
}

/**
 * What the bridge does for sockets that Socket.IO's connection state recovery restores. Those
 * skip the `io.use` middlewares, get their rooms back and are handed the packets they missed, all
 * before any `connection` listener runs. So the missed bridge messages are taken out of what the
 * adapter restores and held; on `connection` every bridged room of the socket is authorized again
 * (rooms it may no longer be in are left), and only then does it get the held messages whose topic
 * a filter of its remaining bridged rooms matches, in order, before any live message.
 */
export class RecoveryGuard {
  private readonly held = new Map<string, Held>();
  private readonly wrapped = new Map<Namespace, RestoreSession>();

  constructor(
    private readonly opts: ResolvedOptions,
    private readonly authorizer: Authorizer,
    private readonly rooms: RoomTracker,
    private readonly clientRooms: ClientRooms,
    private readonly stats: BridgeStats,
    private readonly reauthorizer: Reauthorizer,
  ) {}

  /** Takes the bridge's messages out of what `nsp`'s adapter restores (idempotent). */
  attach(nsp: Namespace): void {
    const adapter = nsp.adapter as unknown as { restoreSession?: RestoreSession };
    const original = adapter.restoreSession;
    if (typeof original !== "function" || this.wrapped.has(nsp)) return;
    this.wrapped.set(nsp, original);
    adapter.restoreSession = async (pid: string, offset: string) => {
      const session = (await original.call(adapter, pid, offset)) as RestoredSession | null;
      if (!session) return session;
      // a session is restored once: the in-memory adapter keeps it after restoring it, and a
      // client that disconnects itself (no new session is stored then) and connects again would
      // be put back into the rooms it had before its first recovery
      (adapter as unknown as { sessions?: Map<string, unknown> }).sessions?.delete(pid);
      if (Array.isArray(session.missedPackets)) this.hold(session);
      return session;
    };
  }

  private hold(session: RestoredSession): void {
    const { message, messages } = this.opts.events;
    const packets: unknown[][] = [];
    session.missedPackets = session.missedPackets.filter((data) => {
      if (!Array.isArray(data)) return true;
      if (data[0] === message) {
        packets.push(data);
      } else if (data[0] === messages && Array.isArray(data[1])) {
        // a batched frame: held message by message, each checked on its own
        for (const m of data[1] as unknown[]) packets.push([message, m]);
      } else {
        return true;
      }
      return false;
    });
    this.drop(session.sid);
    if (packets.length === 0) return;
    // a socket refused by a middleware (skipMiddlewares: false) never reaches `connection`
    const timer = setTimeout(() => this.drop(session.sid), HOLD_MS);
    timer.unref();
    this.held.set(session.sid, { packets, timer });
    debug("[%s] holding %d missed messages until re-authorized", session.sid, packets.length);
  }

  private drop(sid: string): void {
    const held = this.held.get(sid);
    if (!held) return;
    clearTimeout(held.timer);
    this.held.delete(sid);
  }

  /**
   * A recovered socket connected: checks each of its client-subscription rooms again, leaves the
   * ones it may no longer be in, then hands it the held messages it may still see. A rule that
   * answers at once is applied in this same turn, before any live message can reach the socket;
   * a room whose hook answers later is left while it is checked and joined again if allowed (its
   * held messages first, then the retained state as on any join).
   */
  recovered(socket: Socket): void {
    const held = this.held.get(socket.id)?.packets ?? [];
    this.drop(socket.id);
    this.stats.recovered.sockets++;
    const own = this.clientRooms.of(socket); // rooms server code joined are not checked
    const generation = this.reauthorizer.generation(socket);
    const pending: Promise<string | undefined>[] = [];
    for (const [room, filter] of subscriptionRooms(
      this.opts,
      this.rooms,
      this.clientRooms,
      socket,
    )) {
      if (!own) this.clientRooms.add(socket, room); // unknown: taken as its own from now on
      const allowed = this.authorizer.subscribe(socket, filter);
      if (allowed === true) continue;
      void socket.leave(room);
      if (allowed === false) {
        this.clientRooms.delete(socket, room);
        this.revoked(socket, filter);
      } else {
        // left while checked; still the socket's own afterwards unless it unsubscribed meanwhile
        pending.push(allowed.then((ok) => this.answered(socket, room, filter, ok)));
      }
    }
    const delivered = new Set<unknown[]>();
    this.deliver(socket, held, delivered);
    if (pending.length === 0) {
      this.withhold(socket, held, delivered);
      return;
    }
    this.rejoin(socket, pending, generation, held, delivered);
  }

  /** The rule's answer for a room the socket left while it was asked: the room, if allowed. */
  private answered(socket: Socket, room: string, filter: string, ok: boolean): string | undefined {
    if (ok) return room;
    this.clientRooms.delete(socket, room);
    this.revoked(socket, filter);
    return undefined;
  }

  /** Once every pending check answered: the held messages of the allowed rooms, then the rooms. */
  private rejoin(
    socket: Socket,
    pending: Promise<string | undefined>[],
    generation: number,
    held: unknown[][],
    delivered: Set<unknown[]>,
  ): void {
    void Promise.all(pending).then((rooms) => {
      if (socket.disconnected) return;
      // an `mqtt.unsubscribe` of the filter sent meanwhile took the room out of the record
      const mine = this.clientRooms.of(socket);
      const back = rooms.filter((r): r is string => r !== undefined && mine?.has(r) === true);
      const now = this.reauthorizer.generation(socket);
      if (now !== generation) {
        // a bridge.reauthorize() began meanwhile and could not see these rooms (the socket was
        // out of them): their answers may rest on withdrawn rights, so they are asked again
        const again = back.map((room) => {
          const filter = room.slice(this.opts.roomPrefix.length);
          const allowed = this.authorizer.subscribe(socket, filter);
          return Promise.resolve(allowed).then((ok) => this.answered(socket, room, filter, ok));
        });
        this.rejoin(socket, again, now, held, delivered);
        return;
      }
      const filters = back.flatMap((r) => [...(this.rooms.filtersOf(r) ?? [])]);
      this.deliver(socket, held, delivered, filters);
      for (const room of back) void socket.join(room);
      this.withhold(socket, held, delivered);
    });
  }

  private revoked(socket: Socket, filter: string): void {
    this.stats.recovered.revoked++;
    debug("[%s] recovered socket no longer allowed %s", socket.id, filter);
    notifyUnsubscribed(
      this.opts,
      socket,
      filter,
      forbidden(`subscribe to "${filter}" (checked again on recovery)`),
    );
  }

  /** Emits, in order, the held messages a filter of the socket's bridged rooms (or `extra`) matches. */
  private deliver(
    socket: Socket,
    held: unknown[][],
    delivered: Set<unknown[]>,
    extra: string[] = [],
  ): void {
    if (held.length === 0) return;
    const filters = [...extra];
    for (const room of socket.rooms) {
      if (this.rooms.isBridged(socket.nsp, room))
        filters.push(...(this.rooms.filtersOf(room) ?? []));
    }
    for (const data of held) {
      if (delivered.has(data)) continue;
      const message = data[1] as BridgeMessage | undefined;
      const topic = message?.topic;
      if (typeof topic !== "string" || !filters.some((f) => matches(f, topic))) continue;
      delivered.add(data);
      socket.emit(this.opts.events.message, message);
      this.stats.recovered.replayed++;
    }
  }

  private withhold(socket: Socket, held: unknown[][], delivered: Set<unknown[]>): void {
    const withheld = held.length - delivered.size;
    if (withheld === 0) return;
    this.stats.recovered.withheld += withheld;
    debug("[%s] withheld %d missed messages of rooms it left", socket.id, withheld);
  }

  /** Puts every adapter back as it was and forgets what is held. */
  close(): void {
    for (const [nsp, original] of this.wrapped) {
      (nsp.adapter as unknown as { restoreSession: RestoreSession }).restoreSession = original;
    }
    this.wrapped.clear();
    for (const sid of [...this.held.keys()]) this.drop(sid);
  }
}
