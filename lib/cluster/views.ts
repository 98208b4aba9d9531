import createDebug from "debug";
import type { QoS } from "../protocol";
import type { RoomOp, RoomSnapshot } from "./messages";

const debug = createDebug("socket.io-mqtt-bridge:worker");

/** What the views change in the worker's subscription table. */
export interface ViewTable {
  acquire(filter: string, room: string): void;
  /** `lingering`: the node's last socket of the room left by disconnecting. */
  release(filter: string, room: string, lingering?: boolean): void;
  upgrade(filter: string, qos: QoS): void;
}

/** What the worker knows of one node. */
interface NodeView {
  /** The node's last change number applied (report or snapshot). */
  seq: number;
  /** The change number of the last snapshot applied (-1: none yet). */
  synced: number;
  /** The picture is whole: a snapshot was applied, or the reports were followed from the first. */
  whole: boolean;
  /** `room \0 filter` pairs the node holds → the change number that added them. */
  refs: Map<string, number>;
  /** Pairs that reports newer than the last snapshot removed → the change number. */
  gone: Map<string, number>;
}

const SEP = "\u0000";
/** Removals remembered per node between two snapshots; past it the oldest are forgotten. */
const MAX_GONE = 100_000;

/**
 * The worker's picture of the bridged rooms of every node of one namespace, from their reports
 * and snapshots. Each change of a node carries its change number, and so does a snapshot (all the
 * node's rooms as of that number), so a snapshot is applied for what it covers even when newer
 * reports got here first (a busy node): a pair a newer report added or removed is left as that
 * report said, everything else is made as the snapshot says. A lost report is thus repaired by
 * the next snapshot, however busy the node.
 */
export class RoomViews {
  private readonly nodes = new Map<string, NodeView>();

  constructor(
    private readonly table: ViewTable,
    /** Told how many pairs a snapshot added or removed that the reports had missed. */
    private readonly repaired: (pairs: number) => void,
  ) {}

  private view(node: string): NodeView {
    let v = this.nodes.get(node);
    if (!v) {
      v = { seq: 0, synced: -1, whole: false, refs: new Map(), gone: new Map() };
      this.nodes.set(node, v);
    }
    return v;
  }

  private add(v: NodeView, key: string, seq: number): boolean {
    const had = v.refs.has(key);
    v.refs.set(key, seq);
    if (had) return false;
    const [room, filter] = key.split(SEP) as [string, string];
    this.table.acquire(filter, room);
    return true;
  }

  private remove(v: NodeView, key: string, lingering = false): boolean {
    if (!v.refs.delete(key)) return false;
    const [room, filter] = key.split(SEP) as [string, string];
    this.table.release(filter, room, lingering);
    return true;
  }

  /** Applies a node's report, unless a snapshot applied already covers it. */
  report(node: string, seq: number, ops: readonly RoomOp[]): void {
    const v = this.view(node);
    if (seq <= v.seq) return; // already in a snapshot
    if (seq === 1) v.whole = true; // the node's first change: nothing came before
    v.seq = seq;
    for (const op of ops) {
      const key = op[1] + SEP + op[2];
      if (op[0] === "+") {
        this.table.upgrade(op[2], op[3]);
        v.gone.delete(key);
        this.add(v, key, seq);
      } else {
        this.remove(v, key, op[0] === "~");
        v.gone.delete(key); // re-inserted: the Map keeps the newest last
        v.gone.set(key, seq);
        if (v.gone.size > MAX_GONE) v.gone.delete(v.gone.keys().next().value!);
      }
    }
  }

  /** Applies a node's snapshot for what it covers (see the class). */
  snapshot(node: string, seq: number, rooms: RoomSnapshot["rooms"]): void {
    const v = this.view(node);
    if (seq < v.synced) return; // an older snapshot than one applied
    // the first snapshot of a node met late (this worker started after it) loads, not repairs
    const loaded = v.whole;
    const wanted = new Set<string>();
    let changed = 0;
    for (const [room, filters] of rooms) {
      for (const filter of filters) {
        const key = room + SEP + filter;
        wanted.add(key);
        if ((v.gone.get(key) ?? -1) > seq) continue; // removed since
        if (!v.refs.has(key) && this.add(v, key, seq)) changed++;
      }
    }
    for (const [key, addedAt] of [...v.refs]) {
      if (addedAt <= seq && !wanted.has(key) && this.remove(v, key)) changed++;
    }
    for (const [key, removedAt] of v.gone) if (removedAt <= seq) v.gone.delete(key);
    v.synced = seq;
    v.whole = true;
    if (seq > v.seq) v.seq = seq;
    if (changed > 0 && loaded) {
      debug("node %s: its snapshot %d repaired %d pairs", node, seq, changed);
      this.repaired(changed);
    }
  }

  /** Releases everything of the nodes not in `alive` (gone: they did not answer a sync). */
  keepOnly(alive: ReadonlySet<string>): void {
    for (const [node, v] of this.nodes) {
      if (alive.has(node)) continue;
      debug("node %s is gone: releasing %d rooms", node, v.refs.size);
      for (const key of [...v.refs.keys()]) this.remove(v, key);
      this.nodes.delete(node);
    }
  }
}
