import type { BridgeMessage } from "../protocol";

/** One cached retained message: what sockets get, and the bytes that identify it. */
interface Entry {
  message: BridgeMessage;
  payload: Buffer;
  fingerprint: string;
  /** What the entry counts against the byte bound: topic and payload bytes. */
  bytes: number;
}

/** A level of the topic tree: the topic ending here (if cached) and the next levels. */
interface Node {
  topic?: string;
  children: Map<string, Node>;
}

/** What an update did to the cache. */
export type RetainedUpdate = "new" | "unchanged" | "cleared";

/**
 * The last-known state: the newest retained message of each topic that a live filter matches,
 * bounded to `maxMessages` topics and `maxBytes` bytes of topics and payloads (the oldest-updated
 * go first; each eviction is counted). Joining sockets get their state from here, so members
 * already in a room never get it again. Topics are also kept in a tree of levels, so finding the
 * topics a filter matches costs what it finds, not the size of the cache.
 */
export class RetainedCache {
  private readonly entries = new Map<string, Entry>();
  private readonly root: Node = { children: new Map() };
  /** Entries dropped because the cache was full (by count or by bytes). */
  evicted = 0;
  /** Bytes held now (topics and payloads). */
  bytes = 0;
  /** Tree levels visited by the last {@link match} (a diagnostic: the cost of a lookup). */
  visited = 0;

  constructor(
    private readonly maxMessages: number,
    private readonly maxBytes = Infinity,
  ) {}

  /** Number of cached topics. */
  get size(): number {
    return this.entries.size;
  }

  /** True when `topic` has cached state. */
  has(topic: string): boolean {
    return this.entries.has(topic);
  }

  /**
   * Records a retained message: an empty payload clears the topic ([MQTT-3.3.1-6]); the same bytes
   * and properties as cached are `unchanged` (a replay after a subscribe or reconnect).
   */
  update(message: BridgeMessage, payload: Buffer, fingerprint: string): RetainedUpdate {
    const { topic } = message;
    if (payload.length === 0) {
      this.delete(topic);
      return "cleared";
    }
    const old = this.entries.get(topic);
    if (old && old.fingerprint === fingerprint && old.payload.equals(payload)) return "unchanged";
    this.delete(topic); // re-insert: Map order is update order
    const bytes = Buffer.byteLength(topic) + payload.length;
    this.entries.set(topic, { message, payload, fingerprint, bytes });
    this.bytes += bytes;
    this.node(topic, true)!.topic = topic;
    while (this.entries.size > this.maxMessages || this.bytes > this.maxBytes) {
      const oldest = this.entries.keys().next().value as string;
      this.delete(oldest);
      this.evicted++;
    }
    return "new";
  }

  /** Calls `fn` with every cached message whose topic `filter` matches (MQTT rules, R12 too). */
  match(filter: string, fn: (message: BridgeMessage) => void): void {
    this.visited = 0;
    this.walk(this.root, filter.split("/"), 0, (topic) => fn(this.entries.get(topic)!.message));
  }

  /** Forgets the cached topics `filter` matches for which `stale` says true. */
  prune(filter: string, stale: (topic: string) => boolean): void {
    const doomed: string[] = [];
    this.walk(this.root, filter.split("/"), 0, (topic) => {
      if (stale(topic)) doomed.push(topic);
    });
    for (const topic of doomed) this.delete(topic);
  }

  private walk(node: Node, levels: string[], i: number, fn: (topic: string) => void): void {
    this.visited++;
    if (i === levels.length) {
      if (node.topic !== undefined) fn(node.topic);
      return;
    }
    const level = levels[i];
    if (level === "#") {
      // "#" matches the parent level too ("a/#" matches "a"), but no "$" topic at the first level
      if (node.topic !== undefined && i > 0) fn(node.topic);
      this.all(node, i === 0, fn);
      return;
    }
    if (level === "+") {
      for (const [name, child] of node.children) {
        if (i === 0 && name.startsWith("$")) continue;
        this.walk(child, levels, i + 1, fn);
      }
      return;
    }
    const child = node.children.get(level);
    if (child) this.walk(child, levels, i + 1, fn);
  }

  /** Every topic below `node` (not `node`'s own). */
  private all(node: Node, top: boolean, fn: (topic: string) => void): void {
    for (const [name, child] of node.children) {
      if (top && name.startsWith("$")) continue;
      this.visited++;
      if (child.topic !== undefined) fn(child.topic);
      this.all(child, false, fn);
    }
  }

  /** The tree node of `topic`, made on the way when `create`. */
  private node(topic: string, create: boolean): Node | undefined {
    let node = this.root;
    for (const level of topic.split("/")) {
      let child = node.children.get(level);
      if (!child) {
        if (!create) return undefined;
        child = { children: new Map() };
        node.children.set(level, child);
      }
      node = child;
    }
    return node;
  }

  private delete(topic: string): void {
    const entry = this.entries.get(topic);
    if (!entry) return;
    this.entries.delete(topic);
    this.bytes -= entry.bytes;
    // unlink the topic, then the levels left empty on its path
    const path: [Node, string][] = [];
    let node = this.root;
    for (const level of topic.split("/")) {
      const child = node.children.get(level)!;
      path.push([node, level]);
      node = child;
    }
    node.topic = undefined;
    for (let i = path.length - 1; i >= 0; i--) {
      const [parent, level] = path[i];
      const child = parent.children.get(level)!;
      if (child.topic !== undefined || child.children.size > 0) break;
      parent.children.delete(level);
    }
  }
}
