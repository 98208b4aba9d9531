import createDebug from "debug";
import type { Namespace, Socket } from "socket.io";
import type { ResolvedOptions } from "../options";
import type { BridgeMessage } from "../protocol";
import type { BridgeStats } from "../stats";
import { heldBytes } from "./held";
import { MARKERS } from "./markers";

const debug = createDebug("socket.io-mqtt-bridge:delivery");

/** Bytes counted per waiting message or dropped-topic count, besides its topic and payload. */
const ENTRY_BYTES = 64;

/** The latest message of a topic, waiting for a slow socket (`conflate`). */
interface Waiting {
  message: BridgeMessage;
  /** Messages of the topic it replaced: the socket will never see them. */
  skipped: number;
  size: number;
}

/** How one socket is delivered to. */
interface Lane {
  socket: Socket;
  batch: boolean;
  slow: boolean;
  /** Over the mark at the last check. */
  over: boolean;
  /** `conflate`, while slow: the latest message per topic. */
  waiting: Map<string, Waiting> | undefined;
  /** `drop`: messages dropped per topic, told (`skipped`) with the next one it gets. */
  owed: Map<string, number> | undefined;
  /** Bytes of {@link waiting} and {@link owed}. */
  bytes: number;
}

/** True when `socket` is in one of `rooms`. */
function inAny(socket: Socket, rooms: ReadonlySet<string>): boolean {
  for (const room of socket.rooms) if (rooms.has(room)) return true;
  return false;
}

/**
 * The delivery lanes of this node's sockets: plain or batching (marker rooms the broadcasts leave
 * out), and slow. Every `delivery.checkMs` it looks at what each socket's connection still holds;
 * past `delivery.highWaterMark` at two checks in a row the socket is slow: it joins the slow
 * marker room (no live broadcast reaches it any more) and, per `delivery.slow`, the node keeps the
 * latest message per topic for it, counts what it drops, or disconnects it. Below half the mark it
 * catches up: it gets what waited (with `skipped`), then live messages again, in this same turn.
 */
export class Lanes {
  /** Sends the broadcasts still pending (set by the node's broadcaster). */
  flusher: (() => void) | undefined;
  private readonly lanes = new Map<Socket, Lane>();
  private readonly slow = new Map<Namespace, Set<Lane>>();
  /** `drop`: by namespace and topic, the sockets (no longer slow) owed a `skipped` count. */
  private readonly owed = new Map<Namespace, Map<string, Set<Lane>>>();
  /** Bytes waiting for every socket together. */
  private total = 0;
  private slowCount = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly opts: ResolvedOptions,
    private readonly stats: BridgeStats,
    /** Whether a bridged room of `socket` still wants `topic` (it may have left one meanwhile). */
    private readonly wants: (socket: Socket, topic: string) => boolean,
  ) {}

  /** Sockets slow now. */
  get slowNow(): number {
    return this.slowCount;
  }

  /** Starts delivering to `socket` one message per frame (markers of a recovered one reset). */
  track(socket: Socket): void {
    if (this.lanes.has(socket)) return;
    this.flusher?.();
    void socket.leave(MARKERS.slow);
    void socket.leave(MARKERS.batch);
    void socket.join(MARKERS.plain);
    const lane: Lane = {
      socket,
      batch: false,
      slow: false,
      over: false,
      waiting: undefined,
      owed: undefined,
      bytes: 0,
    };
    this.lanes.set(socket, lane);
    if (!this.timer) {
      this.timer = setInterval(this.check, this.opts.delivery.checkMs);
      this.timer.unref();
    }
  }

  /** Forgets a socket (disconnected). */
  untrack(socket: Socket): void {
    const lane = this.lanes.get(socket);
    if (!lane) return;
    this.lanes.delete(socket);
    if (lane.slow) this.setSlow(lane, false);
    this.forgetOwed(lane);
    this.release(lane, lane.bytes);
    lane.waiting = undefined;
  }

  /**
   * Lets go of what waits for `socket` on topics no bridged room of it wants any more (it was
   * taken out of a room): the latest messages kept while it is slow (`conflate`) and the counts
   * it is owed (`drop`). It will never get them, not even if it is let into the room again.
   */
  forget(socket: Socket): void {
    const lane = this.lanes.get(socket);
    if (!lane) return;
    for (const [topic, w] of lane.waiting ?? []) {
      if (this.wants(socket, topic)) continue;
      lane.waiting?.delete(topic);
      this.release(lane, w.size);
    }
    const index = this.owed.get(socket.nsp);
    for (const topic of lane.owed?.keys() ?? []) {
      if (this.wants(socket, topic)) continue;
      lane.owed?.delete(topic);
      this.release(lane, topic.length + ENTRY_BYTES);
      const lanes = index?.get(topic);
      lanes?.delete(lane);
      if (lanes?.size === 0) index?.delete(topic);
    }
  }

  /**
   * Switches a socket to `mqtt.messages` frames or back; what is pending is sent first (in the
   * mode it was bound for). Returns what the socket now gets (false when batching is off).
   */
  setBatch(socket: Socket, batch: boolean): boolean {
    const lane = this.lanes.get(socket);
    if (!lane) return false;
    const on = batch && this.opts.delivery.batch;
    if (lane.batch === on) return on;
    this.flusher?.();
    lane.batch = on;
    void socket.leave(on ? MARKERS.plain : MARKERS.batch);
    void socket.join(on ? MARKERS.batch : MARKERS.plain);
    debug("[%s] %s", socket.id, on ? "batching" : "one message per frame");
    return on;
  }

  /** Whether `socket` gets `mqtt.messages` frames. */
  batching(socket: Socket): boolean {
    return this.lanes.get(socket)?.batch ?? false;
  }

  /** Slow sockets of `nsp` now. */
  slowIn(nsp: Namespace): number {
    return this.slow.get(nsp)?.size ?? 0;
  }

  /**
   * `messages` went to `rooms` (leaving out sockets `ids`): the slow sockets of `nsp` among them
   * keep the latest per topic (`conflate`) or count them (`drop`).
   */
  missed(
    nsp: Namespace,
    rooms: ReadonlySet<string>,
    ids: readonly string[],
    messages: readonly BridgeMessage[],
    sizes: readonly number[],
  ): void {
    const lanes = this.slow.get(nsp);
    if (!lanes) return;
    const conflate = this.opts.delivery.slow === "conflate";
    let over: Lane[] | undefined;
    for (const lane of lanes) {
      if ((ids.length > 0 && ids.includes(lane.socket.id)) || !inAny(lane.socket, rooms)) continue;
      for (let i = 0; i < messages.length; i++) {
        if (conflate) this.keep(lane, messages[i], sizes[i]);
        else this.count(lane, messages[i].topic);
      }
      if (lane.bytes > this.opts.delivery.highWaterMark || this.total > this.maxTotal) {
        (over ??= []).push(lane);
      }
    }
    for (const lane of over ?? []) this.kick(lane, "too far behind");
  }

  private get maxTotal(): number {
    return this.opts.delivery.maxWaitingBytes;
  }

  private keep(lane: Lane, message: BridgeMessage, size: number): void {
    const waiting = (lane.waiting ??= new Map<string, Waiting>());
    const entry = size + ENTRY_BYTES;
    const w = waiting.get(message.topic);
    if (w) {
      w.skipped++;
      this.stats.delivery.conflated++;
      this.hold(lane, entry - w.size);
      w.message = message;
      w.size = entry;
    } else {
      waiting.set(message.topic, { message, skipped: 0, size: entry });
      this.hold(lane, entry);
    }
  }

  private count(lane: Lane, topic: string): void {
    const owed = (lane.owed ??= new Map<string, number>());
    const n = owed.get(topic);
    owed.set(topic, (n ?? 0) + 1);
    if (n === undefined) this.hold(lane, topic.length + ENTRY_BYTES);
    this.stats.delivery.dropped++;
  }

  private hold(lane: Lane, bytes: number): void {
    lane.bytes += bytes;
    this.total += bytes;
  }

  private release(lane: Lane, bytes: number): void {
    lane.bytes -= bytes;
    this.total -= bytes;
  }

  /** True when sockets of `nsp` are owed a `skipped` count (`drop`). */
  owing(nsp: Namespace): boolean {
    return (this.owed.get(nsp)?.size ?? 0) > 0;
  }

  /**
   * Sockets among `rooms` owed a count for a topic of `messages` get their own copy of them, the
   * first of each such topic with `skipped`; their ids join `ids` (left out of the broadcast).
   */
  payOwed(
    nsp: Namespace,
    rooms: ReadonlySet<string>,
    ids: string[],
    messages: readonly BridgeMessage[],
  ): void {
    const index = this.owed.get(nsp);
    if (!index) return;
    let payees: Set<Lane> | undefined;
    for (const m of messages) {
      const lanes = index.get(m.topic);
      if (!lanes) continue;
      for (const lane of lanes) {
        if (!ids.includes(lane.socket.id) && inAny(lane.socket, rooms)) {
          (payees ??= new Set()).add(lane);
        }
      }
    }
    if (!payees) return;
    for (const lane of payees) {
      ids.push(lane.socket.id);
      const copy = messages.map((m) => {
        const n = lane.owed?.get(m.topic);
        if (n === undefined) return m;
        lane.owed?.delete(m.topic);
        this.release(lane, m.topic.length + ENTRY_BYTES);
        const lanes = index.get(m.topic);
        lanes?.delete(lane);
        if (lanes?.size === 0) index.delete(m.topic);
        return { ...m, skipped: n };
      });
      this.deliverTo(lane, copy);
    }
  }

  private forgetOwed(lane: Lane): void {
    const index = this.owed.get(lane.socket.nsp);
    if (!lane.owed || !index) return;
    for (const topic of lane.owed.keys()) {
      const lanes = index.get(topic);
      lanes?.delete(lane);
      if (lanes?.size === 0) index.delete(topic);
    }
  }

  /** Sends `messages` to `socket` alone, in its mode (a recovering socket's missed messages). */
  send(socket: Socket, messages: BridgeMessage[]): void {
    const lane = this.lanes.get(socket);
    if (lane) return this.deliverTo(lane, messages);
    for (const m of messages) socket.emit(this.opts.events.message, m);
  }

  /** Emits messages to one socket in its mode (several in `mqtt.messages` frames when it batches). */
  private deliverTo(lane: Lane, messages: BridgeMessage[]): void {
    const { events, delivery } = this.opts;
    const stats = this.stats.delivery;
    if (lane.batch && messages.length > 1) {
      for (let i = 0; i < messages.length; i += delivery.maxBatch) {
        const chunk = messages.slice(i, i + delivery.maxBatch);
        lane.socket.emit(events.messages, chunk);
        stats.frames++;
        stats.messages += chunk.length;
      }
      return;
    }
    for (const m of messages) lane.socket.emit(events.message, m);
    stats.frames += messages.length;
    stats.messages += messages.length;
  }

  private readonly check = (): void => {
    const hwm = this.opts.delivery.highWaterMark;
    for (const lane of this.lanes.values()) {
      const held = heldBytes(lane.socket, hwm);
      if (!lane.slow) {
        // one big turn (the process busy for a while, then everything it read sent at once)
        // fills even a fast socket's buffer for a moment: slow is over the mark at two checks
        // in a row (heldBytes stops counting past the mark: amounts are not comparable)
        if (held > hwm && lane.over) this.turnedSlow(lane, held);
        lane.over = held > hwm;
      } else if (held <= hwm / 2) {
        this.caughtUp(lane);
      }
    }
  };

  private turnedSlow(lane: Lane, held: number): void {
    if (this.opts.delivery.slow === "disconnect") return this.kick(lane, `${held} bytes unsent`);
    this.flusher?.(); // what was bound for it before it turned slow still goes to it
    this.setSlow(lane, true);
    debug("[%s] slow: %d bytes unsent; %s", lane.socket.id, held, this.opts.delivery.slow);
  }

  private caughtUp(lane: Lane): void {
    this.flusher?.();
    this.setSlow(lane, false);
    const waiting = lane.waiting;
    lane.waiting = undefined;
    if (waiting) {
      const out: BridgeMessage[] = [];
      for (const w of waiting.values()) {
        this.release(lane, w.size);
        if (!this.wants(lane.socket, w.message.topic)) continue;
        out.push(w.skipped > 0 ? { ...w.message, skipped: w.skipped } : w.message);
      }
      // in stream order: a socket's offsets only grow (what it reached is what it has)
      if (out.length > 1 && out[0].offset !== undefined) {
        out.sort((a, b) => (a.offset ?? 0) - (b.offset ?? 0));
      }
      this.deliverTo(lane, out);
      debug("[%s] caught up: %d waiting messages sent", lane.socket.id, out.length);
    }
    if (lane.owed) {
      let index = this.owed.get(lane.socket.nsp);
      if (!index) this.owed.set(lane.socket.nsp, (index = new Map<string, Set<Lane>>()));
      for (const topic of lane.owed.keys()) {
        let lanes = index.get(topic);
        if (!lanes) index.set(topic, (lanes = new Set()));
        lanes.add(lane);
      }
      debug("[%s] caught up: owed counts on %d topics", lane.socket.id, lane.owed.size);
    }
  }

  private setSlow(lane: Lane, slow: boolean): void {
    lane.slow = slow;
    const nsp = lane.socket.nsp;
    let set = this.slow.get(nsp);
    if (slow) {
      if (!set) this.slow.set(nsp, (set = new Set()));
      set.add(lane);
      this.slowCount++;
      void lane.socket.join(MARKERS.slow);
    } else {
      set?.delete(lane);
      if (set?.size === 0) this.slow.delete(nsp);
      this.slowCount--;
      void lane.socket.leave(MARKERS.slow);
    }
  }

  private kick(lane: Lane, why: string): void {
    if (!this.lanes.has(lane.socket)) return;
    this.stats.delivery.disconnected++;
    debug("[%s] disconnected: %s", lane.socket.id, why);
    this.untrack(lane.socket);
    lane.socket.disconnect(true);
  }

  /** Stops looking at sockets. */
  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    for (const socket of [...this.lanes.keys()]) this.untrack(socket);
  }
}
