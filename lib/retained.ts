import type { BridgeMessage } from "./protocol";

/** One cached retained message: what sockets get, and the bytes that identify it. */
interface Entry {
  message: BridgeMessage;
  payload: Buffer;
  fingerprint: string;
}

/** What an update did to the cache. */
export type RetainedUpdate = "new" | "unchanged" | "cleared";

/**
 * The last-known state: the newest retained message of each topic that a live filter matches,
 * bounded to `max` topics (the oldest-updated go first; each eviction is counted). Joining sockets
 * get their state from here, so members already in a room never get it again.
 */
export class RetainedCache {
  private readonly entries = new Map<string, Entry>();
  /** Entries dropped because the cache was full. */
  evicted = 0;

  constructor(private readonly max: number) {}

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
      this.entries.delete(topic);
      return "cleared";
    }
    const old = this.entries.get(topic);
    if (old && old.fingerprint === fingerprint && old.payload.equals(payload)) return "unchanged";
    this.entries.delete(topic); // re-insert: Map order is update order
    this.entries.set(topic, { message, payload, fingerprint });
    if (this.entries.size > this.max) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
      this.evicted++;
    }
    return "new";
  }

  /** Calls `fn` for each cached message whose topic passes `keep`. */
  forEach(keep: (topic: string) => boolean, fn: (message: BridgeMessage) => void): void {
    for (const [topic, entry] of this.entries) if (keep(topic)) fn(entry.message);
  }

  /** Drops the topics that `stale` says no live filter matches any more. */
  prune(stale: (topic: string) => boolean): void {
    for (const topic of this.entries.keys()) if (stale(topic)) this.entries.delete(topic);
  }
}
