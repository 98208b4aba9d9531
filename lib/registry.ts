import createDebug from "debug";
import type { Namespace } from "socket.io";
import type { MqttBridgeError } from "./errors";
import { MqttBridgeError as BridgeError } from "./errors";
import type { ResolvedOptions } from "./options";
import type { QoS } from "./protocol";
import type { Session } from "./session";
import { TopicTrie } from "./topic-trie";
import { checkFilter } from "./validate";

const debug = createDebug("socket.io-mqtt-bridge:registry");

/** The largest MQTT 5 subscription identifier (§3.8.2.1.2). */
const MAX_SUBSCRIPTION_ID = 268_435_455;

/** One broker subscription, held while some bridged room routed to its filter has members. */
export interface FilterEntry {
  readonly filter: string;
  /** MQTT 5 subscription identifier; a newer entry always gets a larger one (until wrap-around). */
  readonly id: number;
  /** Live (namespace, room) pairs that route to this filter. */
  refs: number;
  /** The rooms routed to this filter, with how many namespaces hold each live. */
  rooms: Map<string, number>;
  /** The QoS asked of the broker: the highest any requester wanted. */
  qos: QoS;
  /** idle: waiting for a connection; pending: SUBSCRIBE sent; active: SUBACK ok; failed: refused. */
  state: "idle" | "pending" | "active" | "failed";
  granted: QoS;
  error?: MqttBridgeError;
  /** Bumped on every SUBSCRIBE so a late answer to an older one is ignored. */
  generation: number;
  waiters: ((err?: MqttBridgeError) => void)[];
}

/** Per-namespace state: the adapter listeners and the live bridged rooms with their filters. */
interface Link {
  nsp: Namespace;
  live: Map<string, Set<string>>;
  off: () => void;
}

/** What the registry tells the rest of the bridge. */
export interface RegistryHooks {
  /** A socket joined a bridged room (for the retained replay). */
  onJoin(nsp: Namespace, room: string, socketId: string): void;
  /** A broker subscription was refused: its filter and the rooms routed to it. */
  onRefused(entry: FilterEntry): void;
  /** A filter has no live room left and was removed. */
  onRemoved(filter: string): void;
}

/**
 * Room ⇄ filter bookkeeping with reference counts. Rooms drive the broker: the adapter's
 * `create-room` / `delete-room` events (emitted for local rooms only, whoever caused the join:
 * `mqtt.subscribe`, `socket.join` or `io.in(id).socketsJoin`) acquire and release filters; the
 * first reference subscribes, the last unsubscribes. Socket-id rooms are never bridged.
 */
export class Registry {
  /** Active filters, for routing: match cost does not grow with the number of filters. */
  readonly trie = new TopicTrie<FilterEntry>();
  private readonly routes = new Map<string, Set<string>>();
  private readonly links = new Map<Namespace, Link>();
  private nextId = 1;
  /** QoS asked for filters whose room is about to be created (see upgrade). */
  private readonly wantedQos = new Map<string, QoS>();

  constructor(
    private readonly opts: ResolvedOptions,
    private readonly session: Session,
    private readonly hooks: RegistryHooks,
  ) {}

  /** The room that client subscriptions to `filter` use. */
  room(filter: string): string {
    return this.opts.roomPrefix + filter;
  }

  /** Number of live bridged rooms across namespaces. */
  get rooms(): number {
    let n = 0;
    for (const link of this.links.values()) n += link.live.size;
    return n;
  }

  /** The namespaces the bridge serves. */
  namespaces(): IterableIterator<Namespace> {
    return this.links.keys();
  }

  /** The filters a room is routed to: explicit routes plus the one its prefixed name encodes. */
  filtersOf(room: string): Set<string> | undefined {
    const explicit = this.routes.get(room);
    let implicit: string | undefined;
    if (room.startsWith(this.opts.roomPrefix)) {
      const filter = room.slice(this.opts.roomPrefix.length);
      try {
        implicit = checkFilter(filter, this.opts.limits);
      } catch {
        implicit = undefined; // not a valid filter: an ordinary app room
      }
    }
    if (implicit === undefined) return explicit;
    if (!explicit) return new Set([implicit]);
    return new Set([...explicit, implicit]);
  }

  /** True when `room` is a live bridged room of `nsp`. */
  isBridged(nsp: Namespace, room: string): boolean {
    return this.links.get(nsp)?.live.has(room) ?? false;
  }

  /** The filters of a live bridged room of `nsp`. */
  liveFilters(nsp: Namespace, room: string): ReadonlySet<string> | undefined {
    return this.links.get(nsp)?.live.get(room);
  }

  /** Starts following the rooms of a namespace (idempotent); picks up rooms that already exist. */
  attach(nsp: Namespace): void {
    if (this.links.has(nsp)) return;
    const adapter = nsp.adapter;
    const link: Link = { nsp, live: new Map(), off: () => undefined };
    const onCreate = (room: string) => this.onCreate(link, room);
    const onDelete = (room: string) => this.onDelete(link, room);
    const onJoin = (room: string, id: string) => {
      if (room !== id && link.live.has(room)) this.hooks.onJoin(nsp, room, id);
    };
    adapter.on("create-room", onCreate);
    adapter.on("delete-room", onDelete);
    adapter.on("join-room", onJoin);
    link.off = () => {
      adapter.off("create-room", onCreate);
      adapter.off("delete-room", onDelete);
      adapter.off("join-room", onJoin);
    };
    this.links.set(nsp, link);
    for (const room of adapter.rooms.keys()) this.onCreate(link, room);
  }

  private onCreate(link: Link, room: string): void {
    if (link.live.has(room) || link.nsp.adapter.sids.has(room)) return; // a socket's own room
    const filters = this.filtersOf(room);
    if (!filters || filters.size === 0) return;
    link.live.set(room, new Set(filters));
    for (const filter of filters) this.acquire(filter, room);
  }

  private onDelete(link: Link, room: string): void {
    const filters = link.live.get(room);
    if (!filters) return;
    link.live.delete(room);
    for (const filter of filters) this.release(filter, room);
  }

  /** Routes `filter` to `room` (server-side `bridge.subscribe`). */
  route(filter: string, room: string): void {
    let set = this.routes.get(room);
    if (!set) this.routes.set(room, (set = new Set()));
    set.add(filter);
    for (const link of this.links.values()) {
      const live = link.live.get(room);
      if (live && !live.has(filter)) {
        live.add(filter);
        this.acquire(filter, room);
      } else if (!live && link.nsp.adapter.rooms.has(room)) {
        this.onCreate(link, room);
      }
    }
  }

  /** Removes a route of `bridge.subscribe`; the broker subscription goes when nothing needs it. */
  unroute(filter: string, room: string): void {
    const set = this.routes.get(room);
    if (!set?.delete(filter)) return;
    if (set.size === 0) this.routes.delete(room);
    const still = this.filtersOf(room);
    for (const link of this.links.values()) {
      const live = link.live.get(room);
      if (!live?.has(filter) || still?.has(filter)) continue;
      live.delete(filter);
      if (live.size === 0) link.live.delete(room);
      this.release(filter, room);
    }
  }

  /**
   * Makes sure the broker subscription of `filter` has at least `qos`: a live one is subscribed
   * again with it; for one that does not exist yet, the QoS is used when the room appears.
   */
  upgrade(filter: string, qos: QoS): void {
    const entry = this.trie.get(filter);
    if (!entry) {
      if (qos > 0) this.wantedQos.set(filter, qos);
      return;
    }
    if (entry.qos >= qos) return;
    entry.qos = qos;
    if (entry.state !== "idle") this.send(entry);
  }

  private acquire(filter: string, room: string): void {
    let entry = this.trie.get(filter);
    if (entry) {
      entry.refs++;
      entry.rooms.set(room, (entry.rooms.get(room) ?? 0) + 1);
      return;
    }
    entry = {
      filter,
      id: this.allocateId(),
      refs: 1,
      rooms: new Map([[room, 1]]),
      qos: this.wantedQos.get(filter) ?? 0,
      state: "idle",
      granted: 0,
      generation: 0,
      waiters: [],
    };
    this.wantedQos.delete(filter);
    this.trie.set(filter, entry);
    debug("+ %s (id %d)", filter, entry.id);
    if (this.session.connected) this.send(entry);
  }

  private release(filter: string, room: string): void {
    const entry = this.trie.get(filter);
    if (!entry) return;
    const n = (entry.rooms.get(room) ?? 1) - 1;
    if (n > 0) entry.rooms.set(room, n);
    else entry.rooms.delete(room);
    if (--entry.refs > 0) return;
    this.trie.delete(filter);
    debug("- %s", filter);
    this.hooks.onRemoved(filter);
    this.settle(entry, new BridgeError("BROKER_UNAVAILABLE", "the subscription was removed"));
    // removed from the trie first: copies still in flight for it are dropped by the router
    if (entry.state === "pending" || entry.state === "active")
      void this.session.unsubscribe(filter);
  }

  private allocateId(): number {
    const id = this.nextId;
    this.nextId = id >= MAX_SUBSCRIPTION_ID ? 1 : id + 1;
    return id;
  }

  private send(entry: FilterEntry): void {
    const generation = ++entry.generation;
    entry.state = "pending";
    this.session.subscribe(entry.filter, entry.qos, entry.id).then(
      (granted) => {
        if (entry.generation !== generation || this.trie.get(entry.filter) !== entry) return;
        entry.state = "active";
        entry.granted = granted;
        delete entry.error;
        this.settle(entry);
      },
      (err: MqttBridgeError) => {
        if (entry.generation !== generation || this.trie.get(entry.filter) !== entry) return;
        if (err.code === "BROKER_REJECTED") {
          entry.state = "failed";
          entry.error = err;
          debug("broker refused %s: %s", entry.filter, err.message);
          this.settle(entry, err);
          this.hooks.onRefused(entry);
        } else {
          // connection lost or no answer: retried on the next connect
          entry.state = "idle";
          this.settle(entry, err);
        }
      },
    );
  }

  private settle(entry: FilterEntry, err?: MqttBridgeError): void {
    const waiters = entry.waiters;
    entry.waiters = [];
    for (const w of waiters) w(err);
  }

  /**
   * Resolves with the granted QoS once the broker confirmed `filter`; rejects when refused, when
   * the connection drops first, or with `TIMEOUT` after `timeoutMs`.
   */
  whenSubscribed(filter: string, timeoutMs: number): Promise<QoS> {
    const entry = this.trie.get(filter);
    if (!entry) return Promise.reject(new BridgeError("BROKER_UNAVAILABLE", "not subscribed"));
    if (entry.state === "active") return Promise.resolve(entry.granted);
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
    for (const [, entry] of this.trie.entries()) this.send(entry);
  }

  /** When the connection drops: nothing is confirmed any more. */
  disconnected(): void {
    for (const [, entry] of this.trie.entries()) {
      if (entry.state !== "failed") entry.state = "idle";
    }
  }

  /** Active broker subscriptions. */
  get subscriptions(): number {
    let n = 0;
    for (const [, entry] of this.trie.entries()) if (entry.state === "active") n++;
    return n;
  }

  /** Stops following every namespace and unsubscribes every filter (when connected). */
  async close(): Promise<void> {
    for (const link of this.links.values()) link.off();
    this.links.clear();
    const filters = [...this.trie.entries()];
    for (const [filter] of filters) this.trie.delete(filter);
    for (const [, entry] of filters) {
      this.settle(entry, new BridgeError("BROKER_UNAVAILABLE", "the bridge is closing"));
    }
    await Promise.all(
      filters
        .filter(([, e]) => e.state === "active")
        .map(([filter]) => this.session.unsubscribe(filter)),
    );
  }
}
