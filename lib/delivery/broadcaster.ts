import type { Namespace } from "socket.io";
import type { Histogram } from "../metrics-histogram";
import { clock } from "../metrics-histogram";
import type { ResolvedOptions } from "../options";
import type { BridgeMessage } from "../protocol";
import type { BridgeStats } from "../stats";
import { matches } from "../topic";
import type { History } from "../routing/history";
import type { Lanes } from "./lanes";
import { MARKERS } from "./markers";

/** socket.io-parser's EVENT packet type (its PacketType.EVENT). */
const EVENT_PACKET = 2;

/**
 * Estimated bytes above which a batch is closed and the next message starts another; at most a
 * quarter of `delivery.highWaterMark`, so that a socket that keeps up never holds more than the
 * mark because of one frame.
 */
const MAX_BATCH_BYTES = 262_144;

/** The messages of one event-loop turn bound for one set of rooms (one frame for batchers). */
interface Group {
  rooms: ReadonlySet<string>;
  /** The id of the socket that published them, left out (`echo: false`). */
  origin: string | undefined;
  messages: BridgeMessage[];
  sizes: number[];
  /** When each message reached the router ({@link clock}). */
  times: number[];
  bytes: number;
  /** Its place in the turn's groups. */
  index: number;
}

/**
 * A socket that just joined a bridged room: what is pending was published before it joined, so
 * it gets only what its other bridged rooms (filters `others`) were already getting.
 */
export interface Joiner {
  id: string;
  others: readonly string[];
}

const LOCAL = Object.freeze({ local: true });
const freeze = (...rooms: string[]): ReadonlySet<string> => Object.freeze(new Set(rooms));
/** `except` of a lone message: every socket but the slow ones. */
const EXCEPT_ONE = freeze(MARKERS.slow);
/** `except` of the per-message frames of a batch: they are for the plain sockets. */
const EXCEPT_BATCHERS = freeze(MARKERS.batch, MARKERS.slow);
/** `except` of a batch's `mqtt.messages` frame: it is for the batching sockets. */
const EXCEPT_PLAIN = freeze(MARKERS.plain, MARKERS.slow);

function withIds(base: ReadonlySet<string>, ids: string[]): ReadonlySet<string> {
  if (ids.length === 0) return base;
  const set = new Set(base);
  for (const id of ids) set.add(id);
  return set;
}

/**
 * Where the worker of the worker topology sends each broadcast for the web nodes' sockets
 * (`ids`: sockets left out).
 */
export type RemoteSink = (
  nsp: Namespace,
  rooms: ReadonlySet<string>,
  ids: readonly string[],
  messages: BridgeMessage[],
  sizes: number[],
) => void;

/**
 * The only writer of live messages to sockets. Messages of one event-loop turn are grouped by the
 * room set they go to and sent when the turn ends: a lone message as one `mqtt.message` broadcast
 * to every socket of the rooms (as before batching), several as one `mqtt.messages` frame for the
 * sockets that batch plus one `mqtt.message` per message for the others. Each broadcast is encoded
 * once for all its sockets; slow sockets are left out of all of them (see {@link Lanes}).
 *
 * Order per topic holds across groups: a message never joins a group older than the last group its
 * topic went to. Anything that changes which sockets a group reaches (a join, a socket turning
 * slow or fast, a switch to batching) sends what is pending first ({@link flush}).
 *
 * Broadcasts reach this node's sockets only (`local`): in the embedded topology each node has its
 * own broker subscriptions, and in the worker topology the worker sends each broadcast to the web
 * nodes ({@link remote}), which deliver it to their sockets with {@link deliver}, so batching and
 * slow sockets are handled where the sockets are.
 *
 * Every structure handed to the adapter is never changed afterwards (adapters with connection
 * state recovery keep them by reference).
 */
export class Broadcaster {
  private readonly namespaces = new Set<Namespace>();
  private pending: Group[] = [];
  /** The newest group of each room set in {@link pending}. */
  private readonly last = new Map<ReadonlySet<string>, Group>();
  /** The group each topic went to last, while the turn has several groups. */
  private readonly topicAt = new Map<string, number>();
  private scheduled = false;
  private readonly maxBatchBytes: number;
  /** The worker's: sends every broadcast to the web nodes too. */
  remote: RemoteSink | undefined;
  /**
   * The stream that numbers and keeps every message as it is sent (recovery on, where this
   * process numbers messages). Numbered in the order sent, so every socket gets increasing offsets.
   */
  history: History | undefined;
  private readonly onTurn = () => {
    this.scheduled = false;
    this.flush();
  };

  constructor(
    private readonly opts: ResolvedOptions,
    private readonly stats: BridgeStats,
    private readonly lanes: Lanes,
    /** Where the broker-to-socket time of each message goes (the router's side of a node only). */
    private readonly latency?: Histogram,
  ) {
    lanes.flusher = () => this.flush();
    this.maxBatchBytes = Math.min(MAX_BATCH_BYTES, Math.floor(opts.delivery.highWaterMark / 4));
  }

  /** Emits to `nsp` from now on. */
  attach(nsp: Namespace): void {
    this.namespaces.add(nsp);
  }

  /**
   * Sends `message` (`bytes`: its topic and raw payload) to `rooms`, leaving out `origin`. `at`:
   * when it reached the router ({@link clock}), for the broker-to-socket histogram.
   */
  send(
    rooms: ReadonlySet<string>,
    origin: string | undefined,
    message: BridgeMessage,
    bytes: number,
    at: number,
  ): void {
    if (!this.opts.delivery.batch) {
      this.history?.append(message, rooms, origin, bytes);
      this.latency?.observe((clock() - at) / 1000);
      this.emit(rooms, origin, [message], [bytes], undefined);
      return;
    }
    const n = this.pending.length;
    let g = this.last.get(rooms);
    if (
      g === undefined ||
      g.origin !== origin ||
      g.messages.length >= this.opts.delivery.maxBatch ||
      g.bytes >= this.maxBatchBytes ||
      (n > 1 && (this.topicAt.get(message.topic) ?? -1) > g.index)
    ) {
      g = { rooms, origin, messages: [], sizes: [], times: [], bytes: 0, index: n };
      this.pending.push(g);
      this.last.set(rooms, g);
    }
    g.messages.push(message);
    g.sizes.push(bytes);
    g.times.push(at);
    g.bytes += bytes;
    if (this.pending.length > 1) this.topicAt.set(message.topic, g.index);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.onTurn);
    }
  }

  /**
   * Sends everything pending now, in order. `joiner`: a socket that just joined a room; it gets
   * no pending message through that room (the retained state of its topics instead).
   */
  flush(joiner?: Joiner): void {
    if (this.pending.length === 0) return;
    const groups = this.pending;
    this.pending = [];
    this.last.clear();
    this.topicAt.clear();
    for (const g of groups) {
      if (this.history) {
        for (let i = 0; i < g.messages.length; i++) {
          this.history.append(g.messages[i], g.rooms, g.origin, g.sizes[i]);
        }
      }
      this.handedOver(g.times);
      if (!joiner) {
        this.emit(g.rooms, g.origin, g.messages, g.sizes, undefined);
        continue;
      }
      const had = g.messages.map((m) => joiner.others.some((f) => matches(f, m.topic)));
      if (had.every(Boolean)) {
        this.emit(g.rooms, g.origin, g.messages, g.sizes, undefined);
        continue;
      }
      this.emit(g.rooms, g.origin, g.messages, g.sizes, joiner.id);
      // what its other rooms were bound to bring it, to it alone
      const messages = g.messages.filter((_, i) => had[i]);
      if (messages.length === 0 || joiner.id === g.origin) continue;
      const sizes = g.sizes.filter((_, i) => had[i]);
      this.emit(new Set([joiner.id]), undefined, messages, sizes, undefined);
    }
  }

  /**
   * Counts the broker-to-socket time of a group's messages (`times`: when each reached the
   * router), handed to Socket.IO now: one clock read per group, none per socket.
   */
  private handedOver(times: readonly number[]): void {
    const h = this.latency;
    if (!h) return;
    const now = clock();
    for (let i = 0; i < times.length; i++) h.observe((now - times[i]) / 1000);
  }

  private emit(
    rooms: ReadonlySet<string>,
    origin: string | undefined,
    messages: BridgeMessage[],
    sizes: number[],
    exceptId: string | undefined,
  ): void {
    for (const nsp of this.namespaces) {
      const ids: string[] = [];
      if (origin !== undefined) ids.push(origin);
      if (exceptId !== undefined) ids.push(exceptId);
      this.remote?.(nsp, rooms, ids, messages, sizes);
      this.deliver(nsp, rooms, ids, messages, sizes);
    }
  }

  /**
   * Sends `messages` to the sockets of `rooms` on this node now, leaving out the sockets `ids`
   * (the array may grow) and the slow ones (they keep or count them, see {@link Lanes}).
   */
  deliver(
    nsp: Namespace,
    rooms: ReadonlySet<string>,
    ids: string[],
    messages: BridgeMessage[],
    sizes: readonly number[],
  ): void {
    const events = this.opts.events;
    if (this.lanes.slowIn(nsp) > 0) this.lanes.missed(nsp, rooms, ids, messages, sizes);
    // sockets owed a `skipped` count get their own copy of these messages
    if (this.lanes.owing(nsp)) this.lanes.payOwed(nsp, rooms, ids, messages);
    if (messages.length === 1) {
      this.broadcast(nsp, [events.message, messages[0]], rooms, withIds(EXCEPT_ONE, ids), 1);
      return;
    }
    if (this.reaches(nsp, MARKERS.plain)) {
      const except = withIds(EXCEPT_BATCHERS, ids);
      for (const m of messages) this.broadcast(nsp, [events.message, m], rooms, except, 1);
    }
    if (this.reaches(nsp, MARKERS.batch)) {
      const except = withIds(EXCEPT_PLAIN, ids);
      this.broadcast(nsp, [events.messages, messages], rooms, except, messages.length);
    }
  }

  /**
   * Whether a broadcast could reach a socket of `marker`: whether this node has any — or could
   * have one later: with connection state recovery the adapter keeps every broadcast for sockets
   * that come back (a batching socket away now gets this frame when it is restored).
   */
  private reaches(nsp: Namespace, marker: string): boolean {
    if (nsp.server._opts.connectionStateRecovery) return true;
    return (nsp.adapter.rooms.get(marker)?.size ?? 0) > 0;
  }

  private broadcast(
    nsp: Namespace,
    data: unknown[],
    rooms: ReadonlySet<string>,
    except: ReadonlySet<string>,
    count: number,
  ): void {
    // straight to the adapter, as BroadcastOperator.emit does (one encode per broadcast); `data`
    // is new per broadcast: an adapter with recovery appends its offset to it
    nsp.adapter.broadcast(
      { type: EVENT_PACKET, data, nsp: nsp.name },
      // the adapter's types ask for Sets it may change; it only reads them
      { rooms: rooms as Set<string>, except: except as Set<string>, flags: LOCAL },
    );
    this.stats.delivery.frames++;
    this.stats.delivery.messages += count;
  }

  /** Sends what is pending and stops. */
  close(): void {
    this.flush();
    this.namespaces.clear();
  }
}
