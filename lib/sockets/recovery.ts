import createDebug from "debug";
import type { Socket } from "socket.io";
import type { ResolvedOptions } from "../options";
import type { BridgeMessage, SinceRequest, StreamPosition } from "../protocol";
import type { Entry, History } from "../routing/history";
import type { BridgeStats } from "../stats";
import type { RoomTracker } from "./rooms";

const debug = createDebug("socket.io-mqtt-bridge:recovery");

/** A socket's other bridged rooms and the offset each started at, for a replay's de-duplication. */
export type Others = [room: string, start: number][];

/** How the subscribe handler joins a socket to a room, in two steps of one turn. */
export interface JoinSteps {
  /** Throws when the join may not happen (the caps, checked again). */
  check(): void;
  /** Joins (the room's creation subscribes the broker). */
  join(): Promise<void>;
}

/** What a recovering join ended with. */
export interface RecoveredJoin {
  /** The socket got every message on the filter it missed (they were sent before the join). */
  recovered: boolean;
  /** The join (the room's creation subscribes the broker). */
  joining: Promise<void>;
  /** Where the stream was at the join. */
  position: StreamPosition | undefined;
}

/**
 * Missed-message recovery of the sockets of this process, as the subscribe handler uses it: in
 * the embedded topology (and the worker's own sockets) from this process's history
 * ({@link StreamRecovery}), on a web node of the worker topology from the worker's
 * (lib/cluster/recover.ts).
 */
export interface Recovery {
  /** Where the stream is now, as far as this process knows. */
  position(): StreamPosition | undefined;
  /** A socket joined a bridged room: it gets that room's messages from now (or its `since`). */
  joined(socket: Socket, room: string): void;
  /** True while `socket`'s join recovers (no retained state: it has the stream). */
  recoveringJoin(socket: Socket): boolean;
  /**
   * Checks the join, sends `socket` the messages on `filter` it missed after `since` and joins,
   * all in one turn (so nothing falls in between); or only joins when the history cannot tell
   * what it missed (`recovered: false`: the join brings the retained state). Rejects with what
   * `steps.check` threw.
   */
  recover(
    socket: Socket,
    filter: string,
    room: string,
    since: SinceRequest,
    steps: JoinSteps,
  ): Promise<RecoveredJoin>;
}

/** Where a room started for a socket: an offset of the stream `epoch`. */
interface Start {
  epoch: string | undefined;
  offset: number;
}

/**
 * Per socket, the position each of its bridged rooms started at (joined, or recovered from): what
 * reached it through a room is what was sent there after its start.
 */
export class RoomStarts {
  private readonly starts = new WeakMap<Socket, Map<string, Start>>();

  /** `socket` joined `room` at `offset` of the stream `epoch`. */
  set(socket: Socket, room: string, epoch: string | undefined, offset: number): void {
    let starts = this.starts.get(socket);
    if (!starts) this.starts.set(socket, (starts = new Map<string, Start>()));
    else for (const r of starts.keys()) if (!socket.rooms.has(r)) starts.delete(r);
    starts.set(room, { epoch, offset });
  }

  /**
   * The socket's bridged rooms other than `room`, with their starts in the stream `now` (its
   * offset when unknown; 0 for a room joined in an earlier stream: the socket stayed in it while
   * a new worker took over, and got every message of this stream sent there).
   */
  others(
    socket: Socket,
    room: string,
    rooms: RoomTracker,
    now: StreamPosition | undefined,
  ): Others {
    const starts = this.starts.get(socket);
    const out: Others = [];
    const current = now?.offset ?? 0;
    for (const r of socket.rooms) {
      if (r === room || !rooms.isBridged(socket.nsp, r)) continue;
      const start = starts?.get(r);
      let from = current;
      if (start) from = start.epoch === now?.epoch ? start.offset : 0;
      out.push([r, from]);
    }
    return out;
  }
}

/**
 * The messages on `filter` after `since` that a socket missed: without those that reached it
 * through its `others` rooms after their start, and without those published by `mine` (its
 * ids, with `echo: false`); undefined when the history cannot tell.
 */
export function missedSince(
  history: History,
  filter: string,
  since: StreamPosition,
  others: Others,
  mine: ReadonlySet<string> | undefined,
): BridgeMessage[] | undefined {
  return history.since(filter, since, (entry: Readonly<Entry>) => {
    if (mine && entry.origin !== undefined && mine.has(entry.origin)) return true;
    for (const [r, start] of others) {
      if (entry.message.offset > start && entry.rooms.has(r)) return true;
    }
    return false;
  });
}

/** The ids whose publishes a replay leaves out: with `echo: false`, the socket's, now and before. */
export const mineOf = (opts: ResolvedOptions, id: string, since: SinceRequest) =>
  opts.echo ? undefined : new Set([id, ...(since.ids ?? [])]);

/**
 * What both recoveries share: the rooms' starts, and the end of a recovering join — counted,
 * logged, the missed messages sent and the join made in one turn, the join taken for a
 * recovering one (no retained state) while it runs.
 */
export abstract class JoinRecovery implements Recovery {
  private readonly starts = new RoomStarts();
  private recovering: { socket: Socket; offset: number } | undefined;

  constructor(
    protected readonly stats: BridgeStats,
    protected readonly rooms: RoomTracker,
    /** Sends messages to one socket, through its delivery lane. */
    private readonly send: (socket: Socket, messages: BridgeMessage[]) => void,
  ) {}

  abstract position(): StreamPosition | undefined;
  abstract recover(
    socket: Socket,
    filter: string,
    room: string,
    since: SinceRequest,
    steps: JoinSteps,
  ): Promise<RecoveredJoin>;

  joined(socket: Socket, room: string): void {
    const r = this.recovering;
    const now = this.position();
    this.starts.set(socket, room, now?.epoch, r?.socket === socket ? r.offset : (now?.offset ?? 0));
  }

  recoveringJoin(socket: Socket): boolean {
    return this.recovering?.socket === socket;
  }

  /** The socket's other bridged rooms and their starts. */
  protected others(socket: Socket, room: string): Others {
    return this.starts.others(socket, room, this.rooms, this.position());
  }

  /** Sends what `socket` missed (undefined: it cannot be told) and joins, in this turn. */
  protected finish(
    socket: Socket,
    filter: string,
    since: SinceRequest,
    missed: BridgeMessage[] | undefined,
    steps: JoinSteps,
    position: StreamPosition | undefined,
  ): RecoveredJoin {
    if (!missed) {
      this.stats.recovery.failed++;
      debug("[%s] %s: cannot recover from %s:%d", socket.id, filter, since.epoch, since.offset);
      return { recovered: false, joining: steps.join(), position };
    }
    this.stats.recovery.recovered++;
    this.stats.recovery.replayed += missed.length;
    debug("[%s] %s: %d missed messages from %d", socket.id, filter, missed.length, since.offset);
    if (missed.length > 0) this.send(socket, missed);
    this.recovering = { socket, offset: since.offset };
    try {
      return { recovered: true, joining: steps.join(), position };
    } finally {
      this.recovering = undefined;
    }
  }
}

/**
 * Recovery from this process's history (embedded topology, and the worker's own sockets): a
 * socket that subscribes with `since` gets, right before it joins the room, the messages on the
 * filter it missed after that position; then live messages through the room. Nothing is missed in
 * between (what waits to be broadcast is sent first, so it is in the history) and nothing comes
 * twice: messages sent to another of its rooms since it joined that room are left out, and so
 * are its own publishes with `echo: false` (also those of its earlier connections it names in
 * `since.ids`).
 */
export class StreamRecovery extends JoinRecovery {
  constructor(
    private readonly opts: ResolvedOptions,
    stats: BridgeStats,
    private readonly history: History,
    rooms: RoomTracker,
    /** Sends what waits to be broadcast. */
    private readonly flush: () => void,
    send: (socket: Socket, messages: BridgeMessage[]) => void,
  ) {
    super(stats, rooms, send);
  }

  position(): StreamPosition {
    return this.history.position();
  }

  recover(
    socket: Socket,
    filter: string,
    room: string,
    since: SinceRequest,
    steps: JoinSteps,
  ): Promise<RecoveredJoin> {
    // the executor runs to its end in the caller's turn; what `check` throws rejects
    return new Promise((resolve) => {
      steps.check();
      this.flush(); // what waits to be broadcast goes to the history (and not to the joiner)
      const mine = mineOf(this.opts, socket.id, since);
      const missed = missedSince(this.history, filter, since, this.others(socket, room), mine);
      resolve(this.finish(socket, filter, since, missed, steps, this.position()));
    });
  }
}
