import { randomBytes } from "node:crypto";
import type { BridgeMessage, StreamPosition } from "../protocol";
import type { BridgeStats } from "../stats";
import { matches } from "../topic";
import type { RecoveryOptions } from "./recovery-options";

/**
 * Bytes counted per kept message besides its topic and raw payload: what a kept message costs in
 * V8's heap besides them (the message and entry objects, the decoded payload's object): measured
 * 349 bytes per message of 100 bytes on a 17-byte topic (bench/recovery-memory.ts, 10,000 kept).
 */
const ENTRY_BYTES = 240;

/** A delivered message, kept for sockets that come back. */
export interface Entry {
  message: BridgeMessage & { offset: number };
  /** The socket that published it (left out of its own replays with `echo: false`). */
  origin: string | undefined;
  /** The rooms it was sent to (a set never changed once made: kept by reference). */
  rooms: ReadonlySet<string>;
  bytes: number;
  at: number;
}

/**
 * The stream of this bridge: every message it delivers gets the next offset of the stream, and
 * the most recent ones are kept (bounded by `recovery.maxMessages`, `maxBytes` and `windowMs`) so
 * that a socket that comes back with the position it had reached gets exactly what it missed.
 *
 * The stream has every message of a filter only while the broker subscription of that filter is
 * in place: {@link cover} records from which offset on (the SUBSCRIBE), {@link uncover} and
 * {@link gap} (the broker connection dropped: anything may have been lost) forget it. A position
 * older than that cannot be recovered on that filter.
 */
export class History {
  /** Names this stream: new at every start. */
  readonly epoch = randomBytes(9).toString("base64url");
  /** The offset of the last message numbered. */
  private offset = 0;
  private entries: Entry[] = [];
  private head = 0;
  private bytes = 0;
  /** Per filter, the offset from which every message on it is in the stream. */
  private readonly coverage = new Map<string, number>();

  constructor(
    private readonly opts: RecoveryOptions,
    private readonly stats: BridgeStats,
  ) {}

  /** Where the stream is now. */
  position(): StreamPosition {
    return { epoch: this.epoch, offset: this.offset };
  }

  /** Numbers a message about to be sent to `rooms` and keeps it. */
  append(
    message: BridgeMessage,
    rooms: ReadonlySet<string>,
    origin: string | undefined,
    size: number,
  ): void {
    const offset = ++this.offset;
    message.offset = offset;
    message.epoch = this.epoch;
    const bytes = size + ENTRY_BYTES;
    const entry: Entry = { message: message as Entry["message"], origin, rooms, bytes, at: 0 };
    entry.at = Date.now();
    this.entries.push(entry);
    this.bytes += bytes;
    const { maxMessages, maxBytes } = this.opts;
    while (this.entries.length - this.head > maxMessages || this.bytes > maxBytes) this.shift();
  }

  /** The broker subscription of `filter` is being made: its messages are in the stream from now. */
  cover(filter: string): void {
    if (!this.coverage.has(filter)) this.coverage.set(filter, this.offset);
  }

  /** The broker subscription of `filter` is gone. */
  uncover(filter: string): void {
    this.coverage.delete(filter);
  }

  /** The broker connection dropped: no filter's messages are known to be complete from here. */
  gap(): void {
    this.coverage.clear();
  }

  /**
   * The messages on `filter` after position `from`, oldest first, without those `skip` refuses;
   * undefined when the stream cannot tell what was missed (another epoch, history no longer
   * complete, the filter not subscribed all along).
   */
  since(
    filter: string,
    from: StreamPosition,
    skip: (entry: Readonly<Entry>) => boolean,
  ): BridgeMessage[] | undefined {
    if (from.epoch !== this.epoch || from.offset > this.offset) return undefined;
    const covered = this.coverage.get(filter);
    if (covered === undefined || covered > from.offset) return undefined;
    this.expire();
    const first = this.head < this.entries.length ? this.entries[this.head].message.offset : NaN;
    if (Number.isNaN(first)) return from.offset === this.offset ? [] : undefined;
    if (from.offset < first - 1) return undefined;
    const out: BridgeMessage[] = [];
    for (let i = this.head + (from.offset + 1 - first); i < this.entries.length; i++) {
      const entry = this.entries[i];
      if (matches(filter, entry.message.topic) && !skip(entry)) out.push(entry.message);
    }
    return out;
  }

  /** Messages and bytes kept now. */
  held(): { messages: number; bytes: number } {
    this.expire();
    return { messages: this.entries.length - this.head, bytes: this.bytes };
  }

  /** Forgets messages older than the window. */
  private expire(): void {
    const oldest = Date.now() - this.opts.windowMs;
    while (this.head < this.entries.length && this.entries[this.head].at < oldest) this.shift();
  }

  private shift(): void {
    const entry = this.entries[this.head];
    this.entries[this.head++] = undefined as unknown as Entry;
    this.bytes -= entry.bytes;
    this.stats.recovery.expired++;
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }
}
