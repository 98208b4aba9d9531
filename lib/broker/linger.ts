import createDebug from "debug";
import type { BridgeStats } from "../stats";

const debug = createDebug("socket.io-mqtt-bridge:recovery");

/** A held subscription: its timer and how to let it go. */
interface Hold {
  timer: NodeJS.Timeout;
  release: () => void;
}

/**
 * Holds broker subscriptions whose last socket left by disconnecting for `windowMs` more, so that
 * what is published during a short disconnect is in the history when the socket comes back. A room
 * that comes back in time takes the subscription over ({@link cancel}): the hold goes at once. At
 * most `max` are held at once; past that a subscription is let go at once, as without recovery.
 */
export class Linger {
  private readonly holds = new Map<string, Hold>();

  constructor(
    private readonly windowMs: number,
    private readonly max: number,
    private readonly stats: BridgeStats,
  ) {}

  /**
   * `room` no longer needs `filter`: calls `release` now, or after the window when `leaving` (a
   * socket's disconnect let it go).
   */
  release(filter: string, room: string, leaving: boolean, release: () => void): void {
    const key = `${room}\u0000${filter}`;
    if (!leaving || this.windowMs === 0 || this.holds.has(key)) return release();
    if (this.holds.size >= this.max) {
      this.stats.recovery.lingerRefused++;
      debug("%s let go at once: %d subscriptions held already", filter, this.holds.size);
      return release();
    }
    const timer = setTimeout(() => this.end(key), this.windowMs);
    timer.unref();
    this.holds.set(key, { timer, release });
    this.count();
  }

  /** `room` needs `filter` again (after taking its own reference): the hold, if any, goes. */
  cancel(filter: string, room: string): void {
    if (this.holds.size > 0) this.end(`${room}\u0000${filter}`);
  }

  private end(key: string): void {
    const hold = this.holds.get(key);
    if (!hold) return;
    clearTimeout(hold.timer);
    this.holds.delete(key);
    this.count();
    hold.release();
  }

  private count(): void {
    this.stats.recovery.lingering = this.holds.size;
  }

  /** Drops every hold's timer (the subscription table lets everything go itself). */
  close(): void {
    for (const hold of this.holds.values()) clearTimeout(hold.timer);
    this.holds.clear();
    this.count();
  }
}
