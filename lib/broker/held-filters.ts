/**
 * The filters the broker may hold for this session: a SUBSCRIBE was sent, and no UNSUBACK came
 * since. On a resumed persistent session they are compared with what is subscribed again on
 * connect; the others are left over (e.g. released while offline, when no UNSUBSCRIBE could be
 * sent) and must be unsubscribed, or the broker would go on delivering them.
 */
export class HeldFilters {
  /** Each filter with the number of its last SUBSCRIBE (an UNSUBACK clears only an older one). */
  private readonly held = new Map<string, number>();
  private sequence = 0;
  /** Filters subscribed during the current connect round. */
  private round: Set<string> | undefined;

  /** A SUBSCRIBE of `filter` is sent. */
  subscribing(filter: string): void {
    this.held.set(filter, ++this.sequence);
  }

  /** An UNSUBSCRIBE of `filter` is sent: the mark to give {@link unsubscribed}. */
  unsubscribing(filter: string): number | undefined {
    return this.held.get(filter);
  }

  /** Its UNSUBACK came: no longer held, unless a SUBSCRIBE followed the UNSUBSCRIBE. */
  unsubscribed(filter: string, mark: number | undefined): void {
    if (this.held.get(filter) === mark) this.held.delete(filter);
  }

  /** `filter` is asked for during the connect round (before its SUBSCRIBE is sent). */
  wanted(filter: string): void {
    this.round?.add(filter);
  }

  /** A connection starts: a new session holds nothing; a resumed one holds what it held. */
  connected(resumed: boolean): void {
    if (!resumed) this.held.clear();
    this.round = new Set();
  }

  /** The connect round is over: the filters held that nobody asked for again. */
  leftOver(): string[] {
    const round = this.round ?? new Set();
    this.round = undefined;
    return [...this.held.keys()].filter((filter) => !round.has(filter));
  }
}
