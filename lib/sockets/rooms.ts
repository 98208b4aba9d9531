import type { Namespace, Socket } from "socket.io";
import { isMarker } from "../delivery/markers";
import type { ResolvedOptions } from "../options";
import { checkFilter } from "./validate";

/** Per-namespace state: the adapter listeners and the live bridged rooms with their filters. */
interface Link {
  nsp: Namespace;
  live: Map<string, Set<string>>;
  off: () => void;
}

/** What the room tracker tells the rest of the bridge. */
export interface RoomHooks {
  /** `room` of `nsp` now needs `filter` (a bridged room appeared, or a route was added to it). */
  acquire(filter: string, room: string, nsp: Namespace): void;
  /** `room` of `nsp` no longer needs `filter`. */
  release(filter: string, room: string, nsp: Namespace): void;
  /**
   * A socket joined a live bridged room (for the retained replay): the room's filters, and the
   * filters of the socket's other bridged rooms (state it already has through them).
   */
  join(nsp: Namespace, socket: Socket, filters: ReadonlySet<string>, others: string[]): void;
  /**
   * A socket joined the live bridged `room` (any join, before {@link join}); `others`: the filters
   * of its other bridged rooms.
   */
  joined?(socket: Socket, others: readonly string[], room: string): void;
}

/**
 * Follows the rooms of the namespaces the bridge serves. Rooms drive the broker: the adapter's
 * `create-room` / `delete-room` events (emitted for local rooms only, whoever caused the join:
 * `mqtt.subscribe`, `socket.join` or `io.in(id).socketsJoin`) acquire and release the room's
 * filters. A room's filters are the routes of `bridge.subscribe` plus the filter a prefixed name
 * encodes (`"mqtt:" + filter`). Socket-id rooms are never bridged.
 */
export class RoomTracker {
  private readonly routes = new Map<string, Set<string>>();
  private readonly links = new Map<Namespace, Link>();

  constructor(
    private readonly opts: ResolvedOptions,
    private readonly hooks: RoomHooks,
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

  /** The filters a room is routed to: explicit routes plus the one its prefixed name encodes. */
  filtersOf(room: string): Set<string> | undefined {
    if (isMarker(room)) return undefined; // the delivery stage's own rooms
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

  /** Starts following the rooms of a namespace (idempotent); picks up rooms that already exist. */
  attach(nsp: Namespace): void {
    if (this.links.has(nsp)) return;
    const adapter = nsp.adapter;
    const link: Link = { nsp, live: new Map(), off: () => undefined };
    const onCreate = (room: string) => this.onCreate(link, room);
    const onDelete = (room: string) => this.onDelete(link, room);
    const onJoin = (room: string, id: string) => {
      const filters = link.live.get(room);
      const socket = nsp.sockets.get(id);
      if (room === id || !filters || !socket) return;
      const others: string[] = [];
      for (const r of socket.rooms) {
        const f = r === room ? undefined : link.live.get(r);
        if (f) others.push(...f);
      }
      this.hooks.joined?.(socket, others, room);
      if (this.opts.retained) this.hooks.join(nsp, socket, filters, others);
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
    for (const filter of filters) this.hooks.acquire(filter, room, link.nsp);
  }

  private onDelete(link: Link, room: string): void {
    const filters = link.live.get(room);
    if (!filters) return;
    link.live.delete(room);
    for (const filter of filters) this.hooks.release(filter, room, link.nsp);
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
        this.hooks.acquire(filter, room, link.nsp);
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
      this.hooks.release(filter, room, link.nsp);
    }
  }

  /** All live bridged rooms of a namespace with their filters. */
  liveRooms(nsp: Namespace): ReadonlyMap<string, ReadonlySet<string>> {
    return this.links.get(nsp)?.live ?? new Map();
  }

  /** Stops following every namespace. */
  close(): void {
    for (const link of this.links.values()) link.off();
    this.links.clear();
  }
}
