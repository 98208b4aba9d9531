/** One operation waiting for the broker. */
export interface Pending {
  readonly deadline: number;
  readonly expire: () => void;
}

/**
 * Timeouts for many operations that all wait the same time (the broker's acknowledgements): one
 * sweeping timer instead of a `setTimeout` per publish. Entries are kept in insertion order, which
 * is deadline order, so a sweep stops at the first one still in time. An operation times out
 * between `timeoutMs` and `timeoutMs` plus one sweep interval (a quarter of it, at most 250 ms).
 */
export class Deadlines {
  private readonly pending = new Set<Pending>();
  private timer: NodeJS.Timeout | undefined;
  private readonly every: number;

  constructor(private readonly timeoutMs: number) {
    this.every = Math.max(5, Math.min(250, Math.floor(timeoutMs / 4)));
  }

  /** Starts the clock of an operation; `expire` runs if it is still pending at its deadline. */
  add(expire: () => void): Pending {
    const entry: Pending = { deadline: performance.now() + this.timeoutMs, expire };
    this.pending.add(entry);
    if (!this.timer) {
      this.timer = setInterval(() => this.sweep(), this.every);
      this.timer.unref(); // the broker connection keeps the process alive, not a waiting ack
    }
    return entry;
  }

  /** Stops the clock of an operation; false when it was not pending (expired or done). */
  delete(entry: Pending): boolean {
    return this.pending.delete(entry);
  }

  /** Expires every pending operation now (on close). */
  expireAll(): void {
    for (const entry of [...this.pending]) entry.expire();
  }

  private sweep(): void {
    const now = performance.now();
    for (const entry of this.pending) {
      if (entry.deadline > now) break;
      entry.expire(); // removes itself through delete()
      this.pending.delete(entry);
    }
    if (this.pending.size === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }
}
