import createDebug from "debug";
import type { Socket } from "socket.io";
import type { ResolvedOptions } from "../options";
import type { BridgeMessage, SinceRequest, StreamPosition } from "../protocol";
import type { History } from "../routing/history";
import type { BridgeStats } from "../stats";
import type { RoomTracker } from "./rooms";

const debug = createDebug("socket.io-mqtt-bridge:recovery");

/** A join in progress that recovers: it brings no retained state, and starts at `since`. */
interface Recovering {
  socket: Socket;
  offset: number;
}

/**
 * Missed-message recovery for the sockets of this process (embedded topology, and the worker's
 * own sockets): a socket that subscribes with `since` gets, right before it joins the room, the
 * messages on the filter it missed after that position, from the history; then live messages
 * through the room. Nothing is missed in between (what waits to be broadcast is sent first, so it
 * is in the history) and nothing comes twice: messages sent to another of its rooms since it
 * joined that room are left out, and so are its own publishes with `echo: false`
 * (also those of its earlier connections it names in `since.ids`).
 */
export class StreamRecovery {
  /** Per socket, the offset each of its bridged rooms started at (joined, or recovered from). */
  private readonly starts = new WeakMap<Socket, Map<string, number>>();
  private recovering: Recovering | undefined;

  constructor(
    private readonly opts: ResolvedOptions,
    private readonly stats: BridgeStats,
    private readonly history: History,
    private readonly rooms: RoomTracker,
    /** Sends what waits to be broadcast. */
    private readonly flush: () => void,
  ) {}

  /** Where the stream is now. */
  position(): StreamPosition {
    return this.history.position();
  }

  /** A socket joined a bridged room: it gets that room's messages from now (or its `since`). */
  joined(socket: Socket, room: string): void {
    let starts = this.starts.get(socket);
    if (!starts) this.starts.set(socket, (starts = new Map<string, number>()));
    else for (const r of starts.keys()) if (!socket.rooms.has(r)) starts.delete(r);
    const r = this.recovering;
    starts.set(room, r?.socket === socket ? r.offset : this.history.position().offset);
  }

  /** True while `socket`'s join recovers (no retained state: it has the stream). */
  recoveringJoin(socket: Socket): boolean {
    return this.recovering?.socket === socket;
  }

  /**
   * Called right before `socket` joins `room` (of `filter`) with `since`: the messages it missed,
   * to send before the join, or undefined when the history cannot tell what it missed. Until
   * {@link done}, the join is taken for a recovering one.
   */
  recover(
    socket: Socket,
    filter: string,
    room: string,
    since: SinceRequest,
  ): BridgeMessage[] | undefined {
    this.flush(); // what waits to be broadcast goes to the history (and not to the joiner)
    // what reached it through its other rooms since it joined them
    const others: [room: string, start: number][] = [];
    const starts = this.starts.get(socket);
    for (const r of socket.rooms) {
      if (r === room || !this.rooms.isBridged(socket.nsp, r)) continue;
      others.push([r, starts?.get(r) ?? this.history.position().offset]);
    }
    const mine = this.opts.echo ? undefined : new Set([socket.id, ...(since.ids ?? [])]);
    const missed = this.history.since(filter, since, (entry) => {
      if (mine && entry.origin !== undefined && mine.has(entry.origin)) return true;
      for (const [r, start] of others) {
        if (entry.message.offset > start && entry.rooms.has(r)) return true;
      }
      return false;
    });
    if (!missed) {
      this.stats.recovery.failed++;
      debug("[%s] %s: cannot recover from %s:%d", socket.id, filter, since.epoch, since.offset);
      return undefined;
    }
    this.recovering = { socket, offset: since.offset };
    this.stats.recovery.recovered++;
    this.stats.recovery.replayed += missed.length;
    debug("[%s] %s: %d missed messages from %d", socket.id, filter, missed.length, since.offset);
    return missed;
  }

  /** The recovering join is done. */
  done(): void {
    this.recovering = undefined;
  }
}
