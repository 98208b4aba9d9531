import createDebug from "debug";
import type { MqttBridgeError } from "../errors";
import { MqttBridgeError as BridgeError, closedError } from "../errors";
import type { QoS } from "../protocol";
import type { Session } from "./session";
import type { BridgeStats } from "../stats";
import { TopicTrie } from "./topic-trie";

const debug = createDebug("socket.io-mqtt-bridge:subscriptions");

/**
 * The subscription identifier of the bridge's response topic (lib/routing/request.ts): the largest
 * MQTT 5 allows (§3.8.2.1.2), which the filters of this table never take, so a copy of a message
 * carries it exactly when it came through the response topic's subscription.
 */
export const RESPONSE_SUBSCRIPTION_ID = 268_435_455;

/** The largest subscription identifier of a filter of this table. */
const MAX_SUBSCRIPTION_ID = RESPONSE_SUBSCRIPTION_ID - 1;

/** One broker subscription, held while some bridged room routed to its filter has members. */
export interface FilterEntry {
  readonly filter: string;
  /** MQTT 5 subscription identifier; a newer entry always gets a larger one (until wrap-around). */
  readonly id: number;
  /**
   * The rooms routed to this filter, with how many places (namespaces, or nodes for the worker)
   * hold each live; the entry goes when the last one does.
   */
  rooms: Map<string, number>;
  /**
   * The same rooms as a Set, ready for a broadcast. Never changed once made: a change makes a new
   * Set. Socket.IO's connection state recovery keeps each broadcast's room set by reference and
   * reads it again when a socket recovers, so a set changed after the emit would change who a
   * stored message is replayed to (an emptied one means everybody).
   */
  roomSet: ReadonlySet<string>;
  /** The QoS asked of the broker: the highest any requester wanted. */
  qos: QoS;
  /**
   * idle: waiting for a connection; pending: SUBSCRIBE sent; active: SUBACK ok; failed: refused
   * (retried with backoff while rooms still need it, when a retry can succeed). An active entry
   * stays active while a SUBSCRIBE raising its QoS is on its way: the broker keeps delivering
   * under the same subscription (and identifier), so the router's choice of copy does not move.
   */
  state: "idle" | "pending" | "active" | "failed";
  granted: QoS;
  /** A SUBSCRIBE raising the QoS of the active subscription is on its way. */
  upgrading: boolean;
  /** The QoS last confirmed by the broker (what a refused upgrade falls back to). */
  confirmedQos?: QoS;
  /** A SUBSCRIBE sent again after a timeout or a refusal, with backoff. */
  retry?: NodeJS.Timeout;
  /** SUBSCRIBEs of this entry that failed in a row (for the backoff). */
  attempts: number;
  error?: MqttBridgeError;
  /** Bumped on every SUBSCRIBE so a late answer to an older one is ignored. */
  generation: number;
  waiters: ((err?: MqttBridgeError) => void)[];
}

/** What the subscription table tells the rest of the bridge. */
export interface SubscriptionHooks {
  /** A broker subscription was refused: its filter and the rooms routed to it. */
  onRefused(entry: FilterEntry): void;
  /** A filter has no live room left and was removed. */
  onRemoved(filter: string): void;
  /** The delay before SUBSCRIBE attempt `attempt` (1-based) of a filter is sent again. */
  retryDelay(attempt: number): number;
  /** A SUBSCRIBE went unanswered or was refused (an operational error, for `error` events). */
  onFailed(err: MqttBridgeError): void;
  /**
   * A SUBSCRIBE of `filter` with subscription identifier `id` is being sent now (the broker will
   * replay its retained state).
   */
  willReplay(filter: string, id: number): void;
}

/** How long close() waits for the UNSUBACKs of the filters it lets go. */
const CLOSE_UNSUBSCRIBE_MS = 1000;

/** SUBACK reason codes after which the same SUBSCRIBE cannot succeed: not retried. */
const FINAL_REFUSALS = new Set([0x8f, 0x9e, 0xa1, 0xa2]);

/**
 * The broker subscriptions, with reference counts: the first room that needs a filter subscribes
 * it, the last one to let go unsubscribes it. Every subscription is restored after each connect.
 */
export class SubscriptionTable {
  /** Active filters, for routing: match cost does not grow with the number of filters. */
  readonly trie = new TopicTrie<FilterEntry>();
  /** Bumped by every change that can change where a topic is routed (for the router's cache). */
  version = 0;
  private nextId = 1;
  /** QoS asked for filters whose room is about to be created in this turn (see upgrade). */
  private readonly wantedQos = new Map<string, QoS>();

  constructor(
    private readonly session: Session,
    private readonly hooks: SubscriptionHooks,
    private readonly stats: BridgeStats,
  ) {}

  /**
   * Makes sure the broker subscription of `filter` has at least `qos`: a live one is subscribed
   * again with it; for one that does not exist yet, the QoS is used when the room appears.
   */
  upgrade(filter: string, qos: QoS): void {
    const entry = this.trie.get(filter);
    if (!entry) {
      if (qos > 0) {
        this.wantedQos.set(filter, qos);
        // the join that creates the room (and takes the QoS) follows in this same turn; a join
        // that did not happen leaves nothing behind
        queueMicrotask(() => this.wantedQos.delete(filter));
      }
      return;
    }
    if (entry.qos >= qos) return;
    entry.qos = qos;
    // one SUBSCRIBE of a filter at a time: a pending one is followed by the raise once answered
    // (sent at once, a refused raise could come back before the grant it was meant to raise)
    if (entry.state === "pending") return;
    if (entry.state !== "idle" && this.session.connected) this.send(entry);
  }

  /** `room` needs `filter`: the first reference subscribes the broker. */
  acquire(filter: string, room: string): void {
    let entry = this.trie.get(filter);
    if (entry) {
      const n = entry.rooms.get(room) ?? 0;
      entry.rooms.set(room, n + 1);
      if (n === 0) entry.roomSet = new Set(entry.rooms.keys());
      this.version++;
      return;
    }
    entry = {
      filter,
      id: this.allocateId(),
      rooms: new Map([[room, 1]]),
      roomSet: new Set([room]),
      qos: this.wantedQos.get(filter) ?? 0,
      state: "idle",
      granted: 0,
      generation: 0,
      attempts: 0,
      upgrading: false,
      waiters: [],
    };
    this.wantedQos.delete(filter);
    this.trie.set(filter, entry);
    this.version++;
    debug("+ %s (id %d)", filter, entry.id);
    if (this.session.connected) this.send(entry);
  }

  /** `room` no longer needs `filter`: the last reference unsubscribes the broker. */
  release(filter: string, room: string): void {
    const entry = this.trie.get(filter);
    if (!entry) return;
    const n = (entry.rooms.get(room) ?? 1) - 1;
    if (n > 0) {
      entry.rooms.set(room, n);
    } else {
      entry.rooms.delete(room);
      entry.roomSet = new Set(entry.rooms.keys());
    }
    this.version++;
    if (entry.rooms.size > 0) return;
    this.trie.delete(filter);
    this.cancelRetry(entry);
    debug("- %s", filter);
    this.hooks.onRemoved(filter);
    this.settle(entry, new BridgeError("BROKER_UNAVAILABLE", "the subscription was removed"));
    // removed from the trie first: copies still in flight for it are dropped by the router
    // a refused entry too: the broker may hold it from an earlier grant (an UNSUBSCRIBE of a
    // filter it does not hold is harmless)
    if (entry.state !== "idle") void this.session.unsubscribe(filter);
  }

  private allocateId(): number {
    const id = this.nextId;
    this.nextId = id >= MAX_SUBSCRIPTION_ID ? 1 : id + 1;
    return id;
  }

  private send(entry: FilterEntry): void {
    this.cancelRetry(entry);
    const generation = ++entry.generation;
    const upgrade = entry.state === "active";
    entry.upgrading = upgrade;
    if (!upgrade) {
      entry.state = "pending";
      this.version++;
    }
    const qos = entry.qos;
    this.session
      .subscribe(entry.filter, qos, entry.id, {
        late: (granted) => this.late(entry, granted),
        sending: () => this.hooks.willReplay(entry.filter, entry.id),
      })
      .then(
        (granted) => {
          if (entry.generation !== generation || this.trie.get(entry.filter) !== entry) return;
          entry.upgrading = false;
          entry.state = "active";
          entry.attempts = 0;
          this.version++;
          entry.granted = granted;
          entry.confirmedQos = qos;
          delete entry.error;
          this.settle(entry);
          if (entry.qos > qos && this.session.connected) this.send(entry); // a raise asked meanwhile
        },
        (err: MqttBridgeError) => {
          if (entry.generation !== generation || this.trie.get(entry.filter) !== entry) return;
          entry.upgrading = false;
          this.hooks.onFailed(err);
          if (err.code !== "BROKER_REJECTED") {
            // no answer in time (the SUBSCRIBE may still take effect) or the connection went: keep
            // routing what comes and send it again, with backoff, while connected; a new
            // connection restores everything anyway
            this.settle(entry, err);
            if (this.session.connected) this.scheduleRetry(entry);
            return;
          }
          this.stats.subscribes.refused++;
          debug("broker refused %s (QoS %d): %s", entry.filter, qos, err.message);
          if (upgrade && entry.confirmedQos !== undefined) {
            // a refused SUBSCRIBE leaves the existing subscription as it was: only the upgrade failed
            entry.qos = entry.confirmedQos;
            this.settle(entry, err);
            return;
          }
          entry.state = "failed";
          this.version++;
          entry.error = err;
          this.settle(entry, err);
          this.hooks.onRefused(entry);
          const final = err.reasonCode !== undefined && FINAL_REFUSALS.has(err.reasonCode);
          if (!final && this.trie.get(entry.filter) === entry) this.scheduleRetry(entry);
        },
      );
  }

  /**
   * A SUBACK that granted `entry` after its SUBSCRIBE gave up waiting. Still needed: it is
   * confirmed (no need to wait for the retry). Released meanwhile: the UNSUBSCRIBE sent then may
   * have been handled before this grant (not every broker handles packets in order), so the filter
   * is unsubscribed again — unless a newer entry of the same filter needs it.
   */
  private late(entry: FilterEntry, granted: QoS): void {
    const current = this.trie.get(entry.filter);
    if (current === entry) {
      if (entry.state !== "pending" || entry.upgrading) return;
      this.cancelRetry(entry);
      entry.state = "active";
      entry.attempts = 0;
      entry.granted = granted;
      entry.confirmedQos = granted;
      this.version++;
      this.settle(entry);
    } else if (current === undefined && this.session.connected) {
      debug("late SUBACK for released %s: unsubscribing again", entry.filter);
      void this.session.unsubscribe(entry.filter);
    }
  }

  /** Sends the entry's SUBSCRIBE again after a backoff (the entry keeps its state meanwhile). */
  private scheduleRetry(entry: FilterEntry): void {
    this.cancelRetry(entry);
    const delay = this.hooks.retryDelay(++entry.attempts);
    debug("SUBSCRIBE %s again in %d ms (attempt %d)", entry.filter, delay, entry.attempts);
    entry.retry = setTimeout(() => {
      entry.retry = undefined;
      if (this.trie.get(entry.filter) !== entry || !this.session.connected) return;
      this.stats.subscribes.retried++;
      this.send(entry);
    }, delay);
    entry.retry.unref();
  }

  private cancelRetry(entry: FilterEntry): void {
    if (entry.retry === undefined) return;
    clearTimeout(entry.retry);
    entry.retry = undefined;
  }

  private settle(entry: FilterEntry, err?: MqttBridgeError): void {
    const waiters = entry.waiters;
    entry.waiters = [];
    for (const w of waiters) w(err);
  }

  /**
   * Resolves with the granted QoS once the broker confirmed `filter` (for `qos`: a raise on its
   * way does not hold up a request the confirmed subscription already serves); rejects when
   * refused, when the connection drops first, or with `TIMEOUT` after `timeoutMs`.
   */
  whenSubscribed(filter: string, timeoutMs: number, qos: QoS = 0): Promise<QoS> {
    const entry = this.trie.get(filter);
    if (!entry) return Promise.reject(new BridgeError("BROKER_UNAVAILABLE", "not subscribed"));
    if (entry.state === "active" && (!entry.upgrading || qos <= (entry.confirmedQos ?? 0))) {
      return Promise.resolve(entry.granted);
    }
    if (entry.state === "failed" && entry.error) return Promise.reject(entry.error);
    return new Promise((resolve, reject) => {
      const waiter = (err?: MqttBridgeError) => {
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(entry.granted);
      };
      const timer = setTimeout(() => {
        entry.waiters = entry.waiters.filter((w) => w !== waiter);
        reject(new BridgeError("TIMEOUT", `no SUBACK for "${filter}" within ${timeoutMs} ms`));
      }, timeoutMs);
      entry.waiters.push(waiter);
    });
  }

  /** After every (re)connect: subscribe every live filter again (a clean session has none). */
  resubscribeAll(): void {
    for (const [, entry] of this.trie.entries()) {
      entry.attempts = 0;
      if (entry.state === "active") entry.state = "pending"; // a new connection: confirm again
      this.send(entry);
    }
  }

  /** When the connection drops: nothing is confirmed any more. */
  disconnected(): void {
    for (const [, entry] of this.trie.entries()) {
      this.cancelRetry(entry);
      if (entry.state !== "failed") entry.state = "idle";
    }
    this.version++;
  }

  /** Active broker subscriptions. */
  get subscriptions(): number {
    let n = 0;
    for (const [, entry] of this.trie.entries()) if (entry.state === "active") n++;
    return n;
  }

  /** Forgets every filter and unsubscribes the active ones (when connected). */
  async close(): Promise<void> {
    const filters = [...this.trie.entries()];
    for (const [filter, entry] of filters) {
      this.trie.delete(filter);
      this.cancelRetry(entry);
    }
    this.version++;
    for (const [, entry] of filters) {
      this.settle(entry, closedError());
    }
    // best effort, and never long: a broker that stopped answering must not hold up close()
    // (a clean session drops its subscriptions with the connection anyway)
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(
        filters
          .filter(([, e]) => e.state === "active")
          .map(([filter]) => this.session.unsubscribe(filter)),
      ),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_UNSUBSCRIBE_MS))),
    ]);
    clearTimeout(timer);
  }
}
