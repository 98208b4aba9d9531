import type { Socket } from "socket.io";

/**
 * The rooms each socket joined through its own `mqtt.subscribe`, as opposed to prefixed rooms that
 * server code joined it to (which `allow` rules do not govern). Kept with the socket, and with its
 * `data` object so that they survive Socket.IO's connection state recovery on the in-memory
 * adapter (which hands the recovered socket the same `data`); where they are unknown, every
 * prefixed room counts as the socket's own. An app that replaces `socket.data` keeps the record:
 * it is found through the socket, and filed under the new object at the next look.
 */
export class ClientRooms {
  private readonly bySocket = new WeakMap<Socket, Set<string>>();
  private readonly byData = new WeakMap<object, Set<string>>();

  private record(socket: Socket): Set<string> | undefined {
    const data: unknown = socket.data;
    const key = typeof data === "object" && data !== null ? data : undefined;
    let rooms = this.bySocket.get(socket);
    if (!rooms && key) {
      rooms = this.byData.get(key);
      if (rooms) this.bySocket.set(socket, rooms);
    }
    if (rooms && key && this.byData.get(key) !== rooms) this.byData.set(key, rooms);
    return rooms;
  }

  private create(socket: Socket): Set<string> {
    const rooms = new Set<string>();
    this.bySocket.set(socket, rooms);
    const data: unknown = socket.data;
    if (typeof data === "object" && data !== null) this.byData.set(data, rooms);
    return rooms;
  }

  /**
   * Starts the record of a new socket (empty: none of its rooms is its own yet). A recovered
   * socket keeps the record of its `data`; one whose record is gone has every prefixed room
   * counted as its own.
   */
  track(socket: Socket): void {
    if (!this.record(socket)) this.create(socket);
  }

  /** The socket joined `room` through `mqtt.subscribe`. */
  add(socket: Socket, room: string): void {
    (this.record(socket) ?? this.create(socket)).add(room);
  }

  /** The socket left `room` through `mqtt.unsubscribe` (or was taken out). */
  delete(socket: Socket, room: string): void {
    this.record(socket)?.delete(room);
  }

  /** The rooms the socket joined itself, when known. */
  of(socket: Socket): ReadonlySet<string> | undefined {
    return this.record(socket);
  }
}
