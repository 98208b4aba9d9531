/**
 * Delivery accounting for the cluster tests: every message a test publishes carries a sequence
 * number (`{ s }`), or is a barrier (`{ end }`); every socket counts what it receives, per topic,
 * in arrival order. Waits are event-driven: a predicate is checked again on every delivery, and
 * bounded in time. A barrier published after a stream on the same topic proves, once it arrived,
 * that nothing of the stream is still under way (per-topic order).
 */
import { expect } from "chai";
import type { Socket as ClientSocket } from "socket.io-client";
import { io as ioc } from "socket.io-client";
import type { ManagerOptions, SocketOptions } from "socket.io-client";
import { withTimeout } from "./util";

/** A message payload of the cluster tests. */
export interface SeqPayload {
  s?: number;
  end?: string;
}

/** What one socket received on one topic. */
export interface TopicLog {
  seqs: number[];
  barriers: string[];
}

/** Counts of one socket (or a group of sockets) for one stream. */
export interface Counts {
  sent: number;
  received: number;
  duplicates: number;
  lost: number;
  /** Deliveries that arrived after a larger sequence number (duplicates excluded). */
  outOfOrder: number;
}

/** A socket.io-client socket connected to one node, counting what it receives. */
export class Receiver {
  /** Per topic: sequence numbers and barriers, in arrival order. */
  readonly topics = new Map<string, TopicLog>();
  /** Sequence numbers of the app-level `app` broadcasts, in arrival order. */
  readonly broadcasts: number[] = [];
  /** Arrival time (ms since the epoch) of each `app` broadcast. */
  readonly broadcastAt = new Map<number, number>();
  private readonly waiters = new Set<() => void>();

  constructor(
    readonly socket: ClientSocket,
    /** Index of the node the socket is connected to (changes if the test moves it). */
    public node: number,
    readonly label: string,
  ) {
    socket.on("mqtt.message", (m: { topic: string; payload: SeqPayload }) => {
      let log = this.topics.get(m.topic);
      if (!log) this.topics.set(m.topic, (log = { seqs: [], barriers: [] }));
      if (typeof m.payload?.s === "number") log.seqs.push(m.payload.s);
      else if (typeof m.payload?.end === "string") log.barriers.push(m.payload.end);
      this.wake();
    });
    socket.on("app", (data: { b: number }) => {
      this.broadcasts.push(data.b);
      if (!this.broadcastAt.has(data.b)) this.broadcastAt.set(data.b, Date.now());
      this.wake();
    });
  }

  /** The sequence numbers received on `topic`. */
  seqs(topic: string): number[] {
    return this.topics.get(topic)?.seqs ?? [];
  }

  /** Whether barrier `end` of `topic` arrived. */
  hasBarrier(topic: string, end: string): boolean {
    return this.topics.get(topic)?.barriers.includes(end) ?? false;
  }

  /** Resolves once `predicate` holds (checked now and after every delivery); rejects after `timeoutMs`. */
  until(predicate: () => boolean, timeoutMs: number, what: string): Promise<void> {
    if (predicate()) return Promise.resolve();
    let check!: () => void;
    const p = new Promise<void>((resolve) => {
      check = () => {
        if (!predicate()) return;
        this.waiters.delete(check);
        resolve();
      };
      this.waiters.add(check);
    });
    return withTimeout(p, timeoutMs, `${this.label}: ${what}`).finally(() =>
      this.waiters.delete(check),
    );
  }

  /** Waits for barrier `end` on `topic`. */
  barrier(topic: string, end: string, timeoutMs = 5000): Promise<void> {
    return this.until(() => this.hasBarrier(topic, end), timeoutMs, `barrier ${end} on ${topic}`);
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }
}

/** Connects a socket.io-client to `url` (websocket only) and waits (bounded) for the connection. */
export async function connectReceiver(
  url: string,
  node: number,
  label: string,
  opts: Partial<ManagerOptions & SocketOptions> = {},
): Promise<Receiver> {
  const socket = ioc(url, {
    transports: ["websocket"],
    forceNew: true,
    reconnection: false,
    ...opts,
  });
  const receiver = new Receiver(socket, node, label);
  await withTimeout(
    new Promise<void>((resolve, reject) => {
      socket.once("connect", () => resolve());
      socket.once("connect_error", reject);
    }),
    5000,
    `${label} connected to node ${node}`,
  );
  return receiver;
}

/** Counts `got` (arrival order) against the `expected` sequence numbers. */
export function count(got: readonly number[], expected: readonly number[]): Counts {
  const seen = new Set<number>();
  let duplicates = 0;
  let outOfOrder = 0;
  let max = -Infinity;
  for (const s of got) {
    if (seen.has(s)) {
      duplicates++;
      continue;
    }
    seen.add(s);
    if (s < max) outOfOrder++;
    max = Math.max(max, s);
  }
  let lost = 0;
  for (const s of expected) if (!seen.has(s)) lost++;
  return { sent: expected.length, received: got.length, duplicates, lost, outOfOrder };
}

/** Adds counts up (a group of sockets). */
export function sum(list: readonly Counts[]): Counts {
  const total: Counts = { sent: 0, received: 0, duplicates: 0, lost: 0, outOfOrder: 0 };
  for (const c of list) {
    total.sent += c.sent;
    total.received += c.received;
    total.duplicates += c.duplicates;
    total.lost += c.lost;
    total.outOfOrder += c.outOfOrder;
  }
  return total;
}

/**
 * Asserts that every receiver got each of the `expected` sequence numbers of `topic` exactly once
 * and in order; returns their counts added up.
 */
export function expectExactlyOnce(
  rs: readonly Receiver[],
  topic: string,
  expected: number[],
): Counts {
  const counts = rs.map((r) => count(r.seqs(topic), expected));
  rs.forEach((r, i) =>
    expect(counts[i], `${r.label} on ${topic}`).to.deep.equal({
      sent: expected.length,
      received: expected.length,
      duplicates: 0,
      lost: 0,
      outOfOrder: 0,
    }),
  );
  return sum(counts);
}

/** `[from, from + 1, …, to - 1]` */
export function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);
}

/** One row of the fault-test summary. */
export interface ReportRow extends Counts {
  test: string;
  what: string;
  note?: string;
}

/** Collects the delivery counts of the fault tests and prints them when `CLUSTER_REPORT=1`. */
export class DeliveryReport {
  readonly rows: ReportRow[] = [];
  readonly notes: string[] = [];

  /** A line printed under the table. */
  note(test: string, text: string): void {
    this.notes.push(`${test}: ${text}`);
  }

  add(test: string, what: string, counts: Counts, note?: string): void {
    this.rows.push({ test, what, ...counts, ...(note ? { note } : {}) });
  }

  /** Prints the table (only with `CLUSTER_REPORT=1`). */
  print(title: string): void {
    if (process.env.CLUSTER_REPORT !== "1") return;
    const head = ["test", "what", "sent", "received", "dup", "lost", "disorder", "note"];
    const cells = this.rows.map((r) => [
      r.test,
      r.what,
      String(r.sent),
      String(r.received),
      String(r.duplicates),
      String(r.lost),
      String(r.outOfOrder),
      r.note ?? "",
    ]);
    const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
    const line = (c: string[]) => c.map((x, i) => x.padEnd(widths[i])).join(" | ");
    console.log(`\n${title}\n${line(head)}\n${widths.map((w) => "-".repeat(w)).join("-|-")}`);
    for (const c of cells) console.log(line(c));
    for (const n of this.notes) console.log(`- ${n}`);
  }
}
