import createDebug from "debug";
import type { IPublishPacket } from "mqtt";
import type { PayloadDecoder } from "./codec";
import { clock } from "../metrics-histogram";
import type { ResolvedOptions } from "../options";
import type { BridgeMessage, MessageProperties } from "../protocol";
import { RetainedCache } from "./retained";
import type { Session } from "../broker/session";
import type { BridgeStats } from "../stats";
import type { FilterEntry, SubscriptionTable } from "../broker/subscriptions";
import { matches } from "../topic";
import { ORIGIN_PROPERTY } from "../sockets/validate";

const debug = createDebug("socket.io-mqtt-bridge:router");

type PacketProperties = NonNullable<IPublishPacket["properties"]>;

/** The MQTT 5 properties sockets see; the bridge's own origin marker is taken out. */
export function socketProperties(p: PacketProperties | undefined): MessageProperties | undefined {
  if (!p) return undefined;
  // most MQTT 5 messages carry only the subscription identifier: nothing for sockets
  let other = false;
  for (const key in p) {
    if (key !== "subscriptionIdentifier" && key !== "topicAlias") {
      other = true;
      break;
    }
  }
  if (!other) return undefined;
  let out: MessageProperties | undefined;
  const set = <K extends keyof MessageProperties>(key: K, value: MessageProperties[K]) => {
    (out ??= {})[key] = value;
  };
  if (p.contentType !== undefined) set("contentType", p.contentType);
  if (p.messageExpiryInterval !== undefined) set("messageExpiryInterval", p.messageExpiryInterval);
  if (p.responseTopic !== undefined) set("responseTopic", p.responseTopic);
  if (p.correlationData !== undefined) set("correlationData", p.correlationData);
  if (p.payloadFormatIndicator !== undefined)
    set("payloadFormatIndicator", p.payloadFormatIndicator);
  const user = p.userProperties;
  if (user) {
    const copy = Object.create(null) as Record<string, string | string[]>;
    let any = false;
    for (const key of Object.keys(user)) {
      if (key === ORIGIN_PROPERTY) continue;
      copy[key] = user[key];
      any = true;
    }
    if (any) set("userProperties", copy);
  }
  return out;
}

/**
 * Identifies a retained message's properties, to tell a replay from a new state. The broker
 * rewrites the message expiry interval of a replay to what is left of it, so it is left out.
 */
function fingerprint(p: MessageProperties | undefined): string {
  if (!p) return "";
  if (p.messageExpiryInterval === undefined) return JSON.stringify(p);
  return JSON.stringify({ ...p, messageExpiryInterval: undefined });
}

/**
 * Sends one message to a set of rooms, leaving out the origin socket when there is one (the
 * delivery stage; `bytes`: the topic's and raw payload's length, for its bounds; `at`: when it
 * reached the router, on the histogram's {@link clock}).
 */
export type Broadcast = (
  rooms: ReadonlySet<string>,
  except: string | undefined,
  message: BridgeMessage,
  bytes: number,
  at: number,
) => void;

/** Where a topic goes, as of a version of the subscription table (kept for unions only). */
interface Route {
  version: number;
  rooms: ReadonlySet<string>;
  /** The subscription identifier whose copy is processed (Infinity: none is live). */
  chosen: number;
  /** The identifiers of the subscriptions serving the topic (see Router.serving). */
  serving: number[];
}

/** True when `ids` (one subscription identifier or several) holds `id`. */
function holds(ids: number | number[], id: number): boolean {
  return typeof ids === "number" ? ids === id : ids.includes(id);
}

const EMPTY: ReadonlySet<string> = new Set();

/** How long after its SUBSCRIBE's deadline an expected replay is still taken for one. */
const REPLAY_GRACE_MS = 1000;

/** Topics whose route is remembered; past it the cache starts again (a topic set that big churns). */
const ROUTE_CACHE_SIZE = 10_000;

/**
 * Routes broker messages to rooms: one message → the set of rooms whose filters match → one
 * broadcast to that set, so a socket in several matching rooms gets it once. Keeps the retained
 * cache for joining sockets.
 */
export class Router {
  readonly retained: RetainedCache;
  private readonly routes = new Map<string, Route>();
  /**
   * The replays SUBSCRIBEs will bring, until when: `<subscription identifier>|<topic>` of cached
   * topics (identifier 0 when the broker has none). See expectReplay.
   */
  private readonly replays = new Map<string, number>();
  /** The filters of the topic being routed, filled by {@link collect} (reused: no allocation). */
  private readonly matched: FilterEntry[] = [];
  private readonly collect = (entry: FilterEntry) => {
    this.matched.push(entry);
  };
  /** route()'s answer: the rooms and the copy to process (fields: no object per message). */
  private rooms: ReadonlySet<string> = EMPTY;
  private chosen = Infinity;
  /**
   * The identifiers of the subscriptions that serve the topic: the confirmed ones, or the pending
   * ones when none is confirmed (reused arrays: no allocation per message).
   */
  private serving: number[] = [];
  private readonly activeIds: number[] = [];
  private readonly pendingIds: number[] = [];
  /**
   * The message the last processed copy belonged to. Mosquitto sends the copies of one message
   * (one per matching subscription) one after the other; a copy whose topic and payload are those
   * of the previous one, whose identifiers it has not seen yet and that all served the topic when
   * that message started, is another copy of it. So a message is delivered once even when the
   * chosen subscription changes between two of its copies (released, or another confirmed).
   */
  private readonly group = {
    topic: undefined as string | undefined,
    payload: undefined as Buffer | undefined,
    ids: [] as number[],
    serving: [] as number[],
    chosen: Infinity,
    delivered: false,
  };

  constructor(
    private readonly opts: ResolvedOptions,
    private readonly session: Session,
    private readonly table: SubscriptionTable,
    private readonly stats: BridgeStats,
    private readonly decode: PayloadDecoder,
    private readonly broadcast: Broadcast,
  ) {
    this.retained = new RetainedCache(opts.limits.retainedMessages, opts.limits.retainedBytes);
  }

  /**
   * Sets {@link rooms} and {@link chosen} for a topic. A topic one filter matches (the common
   * case) uses that filter's own room set; a union over several filters is cached until the
   * subscription table changes.
   */
  private route(topic: string): void {
    const version = this.table.version;
    if (this.routes.size > 0) {
      const cached = this.routes.get(topic);
      if (cached !== undefined && cached.version === version) {
        this.rooms = cached.rooms;
        this.chosen = cached.chosen;
        this.serving = cached.serving;
        return;
      }
    }
    const matched = this.matched;
    matched.length = 0;
    this.table.trie.match(topic, this.collect);
    let minActive = Infinity;
    let minPending = Infinity;
    let single: ReadonlySet<string> | undefined;
    let union: Set<string> | undefined;
    const activeIds = this.activeIds;
    const pendingIds = this.pendingIds;
    activeIds.length = 0;
    pendingIds.length = 0;
    for (let i = 0; i < matched.length; i++) {
      const entry = matched[i];
      if (entry.state === "active") {
        if (entry.id < minActive) minActive = entry.id;
        activeIds.push(entry.id);
      } else if (entry.state === "pending") {
        if (entry.id < minPending) minPending = entry.id;
        pendingIds.push(entry.id);
      } else {
        continue; // refused, or waiting for a connection: nobody is served through it
      }
      if (!single) {
        single = entry.roomSet;
      } else {
        union ??= new Set(single);
        for (const room of entry.roomSet) union.add(room);
      }
    }
    matched.length = 0;
    const chosen = minActive !== Infinity ? minActive : minPending;
    this.chosen = chosen;
    this.serving = activeIds.length > 0 ? activeIds : pendingIds;
    this.rooms = union ?? single ?? EMPTY;
    if (!union) return;
    if (this.routes.size >= ROUTE_CACHE_SIZE && !this.routes.has(topic)) this.routes.clear();
    this.routes.set(topic, { version, rooms: union, chosen, serving: [...this.serving] });
  }

  /**
   * Is this copy (subscription identifiers `ids`) the one to deliver? The first copy of a message
   * that carries the chosen identifier (as of now, or as of the message's first copy) is; every
   * other copy of the same message is not (see {@link group}).
   */
  private firstCopy(topic: string, payload: Buffer, ids: number | number[]): boolean {
    const g = this.group;
    if (!this.sameMessage(topic, payload, ids)) {
      g.topic = topic;
      g.payload = payload;
      g.ids.length = 0;
      g.serving.length = 0;
      for (let i = 0; i < this.serving.length; i++) g.serving.push(this.serving[i]);
      g.chosen = this.chosen;
      g.delivered = false;
    }
    if (typeof ids === "number") g.ids.push(ids);
    else for (let i = 0; i < ids.length; i++) g.ids.push(ids[i]);
    if (g.delivered || !(holds(ids, this.chosen) || holds(ids, g.chosen))) return false;
    g.delivered = true;
    return true;
  }

  private sameMessage(topic: string, payload: Buffer, ids: number | number[]): boolean {
    const g = this.group;
    if (topic !== g.topic || g.payload === undefined) return false;
    // a repeated identifier is the next message; one that did not serve then, another one
    if (typeof ids === "number") {
      if (g.ids.includes(ids) || !g.serving.includes(ids)) return false;
    } else {
      for (const id of ids) if (g.ids.includes(id) || !g.serving.includes(id)) return false;
    }
    return payload === g.payload || payload.equals(g.payload);
  }

  /** Handles one PUBLISH from the broker (the hot path). */
  handle(topic: string, payload: Buffer, packet: IPublishPacket): void {
    const at = clock(); // the broker-to-socket time starts here (one clock read per message)
    const stats = this.stats.messages;
    stats.in++;
    this.route(topic);
    const rooms = this.rooms;
    if (debug.enabled) {
      debug(
        "%s (retain %s, ids %o) → %d rooms",
        topic,
        packet.retain,
        packet.properties?.subscriptionIdentifier,
        rooms.size,
      );
    }
    if (rooms.size === 0) {
      stats.unrouted++;
      return;
    }
    // Exactly once with overlapping broker subscriptions. Mosquitto sends one copy per matching
    // subscription over MQTT 5; each copy carries the subscription identifier it was routed for.
    // We process only the copy of the lowest matching identifier (confirmed subscriptions first,
    // since a copy for a subscription still waiting for its SUBACK may never come) and emit it to
    // the union of the rooms. Over 3.1.1 brokers send one copy per client.
    const ids = packet.properties?.subscriptionIdentifier;
    // a replay's note is taken by its copy even when that copy is dropped as a duplicate below
    const noted = packet.retain && this.replays.size > 0 && this.takeNote(topic, ids);
    if (ids !== undefined && this.session.subscriptionIdentifiers) {
      if (!this.firstCopy(topic, payload, ids)) {
        stats.duplicates++;
        return;
      }
    }

    const properties = socketProperties(packet.properties);
    const decoded = this.decode(payload, packet);
    if (decoded.fallback) stats.decodeFallbacks++;
    const message: BridgeMessage = {
      topic,
      payload: decoded.value,
      qos: packet.qos,
      retain: packet.retain,
    };
    if (properties) message.properties = properties;

    if (this.opts.retained) {
      // MQTT 5 (retain-as-published): the retained flag marks state, live or replayed.
      // 3.1.1 only flags replays; a live message on a cached topic is taken as its new state.
      if (packet.retain || (!this.session.mqtt5 && this.retained.has(topic))) {
        // members see the new state flagged as state, as joiners will (3.1.1 cleared the flag)
        message.retain = true;
        const stored: BridgeMessage = { ...message };
        const result = this.retained.update(stored, payload, fingerprint(properties));
        // 3.1.1 flags replays only; over MQTT 5 a replay is a copy a SUBSCRIBE's note expects
        const replay = !this.session.mqtt5 || noted;
        if (packet.retain && replay && result === "unchanged") {
          stats.retainedUnchanged++;
          return; // every member has this state already; joiners got it from the cache
        }
      }
    }

    const origin = this.opts.echo
      ? undefined
      : packet.properties?.userProperties?.[ORIGIN_PROPERTY];
    const except = typeof origin === "string" ? origin : undefined;
    this.broadcast(rooms, except, message, topic.length + payload.length, at);
    stats.delivered++;
  }

  /**
   * A SUBSCRIBE of `filter` with subscription identifier `id` is being sent: the broker will
   * replay the retained messages of its topics, with that identifier. Over MQTT 5
   * (retain-as-published) a replay looks like a live retained publish, so the cached topics it
   * will replay are noted with the identifier: the next retained copy of such a topic carrying it
   * is that replay (not sent to members again when unchanged). Any other unchanged retained copy
   * is a live publish of the same state (a heartbeat) and is delivered.
   */
  expectReplay(filter: string, id: number): void {
    if (!this.opts.retained || !this.session.mqtt5 || this.retained.size === 0) return;
    const until = Date.now() + this.opts.ackTimeoutMs + REPLAY_GRACE_MS;
    const key = this.session.subscriptionIdentifiers ? id : 0;
    if (this.replays.size > 2 * this.retained.size) this.replays.clear(); // stale notes only
    this.retained.match(filter, (m) => this.replays.set(`${key}|${m.topic}`, until));
  }

  /** Takes the replay note a retained copy of `topic` with identifiers `ids` answers, if any. */
  private takeNote(topic: string, ids: number | number[] | undefined): boolean {
    const now = Date.now();
    if (ids === undefined || !this.session.subscriptionIdentifiers) return this.take(0, topic, now);
    if (typeof ids === "number") return this.take(ids, topic, now);
    let noted = false;
    for (const id of ids) if (this.take(id, topic, now)) noted = true;
    return noted;
  }

  /** Removes the note `id|topic`; true when it was there and still current. */
  private take(id: number, topic: string, now: number): boolean {
    const key = `${id}|${topic}`;
    const until = this.replays.get(key);
    if (until === undefined) return false;
    this.replays.delete(key);
    return until >= now;
  }

  /**
   * Calls `fn` with the cached state a socket joining a room of `filters` should get: topics that
   * match one of them, skipping those it already has through the filters of its other rooms. The
   * cost is that of the topics found, not the size of the cache.
   */
  replay(
    filters: Iterable<string>,
    others: readonly string[],
    fn: (message: BridgeMessage) => void,
  ): void {
    if (!this.opts.retained || this.retained.size === 0) return;
    const list = [...filters];
    const seen = list.length > 1 ? new Set<string>() : undefined;
    for (const filter of list) {
      this.retained.match(filter, (message) => {
        const { topic } = message;
        if (others.some((o) => matches(o, topic))) return;
        if (seen) {
          if (seen.has(topic)) return;
          seen.add(topic);
        }
        fn(message);
        this.stats.retained.replayed++;
      });
    }
  }

  /**
   * Forgets the cached state of `removed`, a filter just taken out of the table, on topics no
   * live filter matches any more. Every cached topic was matched by a live filter when it was
   * cached, and a filter leaves the table only through here (or all at once on close), so only
   * topics of `removed` can have gone stale.
   */
  prune(removed: string): void {
    const trie = this.table.trie;
    let live = false;
    const found = () => (live = true);
    this.retained.prune(removed, (topic) => {
      live = false;
      trie.match(topic, found);
      return !live;
    });
    debug("retained cache: %d topics", this.retained.size);
  }
}
