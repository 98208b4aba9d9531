import type { Socket } from "socket.io";

/**
 * The rooms each socket joined through its own `mqtt.subscribe`, as opposed to prefixed rooms that
 * server code joined it to (which `allow` rules do not govern). Kept with the socket's `data`
 * object, so they survive Socket.IO's connection state recovery on the in-memory adapter (which
 * hands the recovered socket the same `data`); where they are unknown, every prefixed room counts
 * as the socket's own.
 */
export class ClientRooms {
  private readonly byData = new WeakMap<object, Set<string>>();

  private key(socket: Socket): object {
    const data: unknown = socket.data;
    return typeof data === "object" && data !== null ? data : socket;
  }

  /**
   * Starts the record of a new socket (empty: none of its rooms is its own yet). A recovered
   * socket keeps the record of its `data`; one whose record is gone has every prefixed room
   * counted as its own.
   */
  track(socket: Socket): void {
    const key = this.key(socket);
    if (!this.byData.has(key)) this.byData.set(key, new Set());
  }

  /** The socket joined `room` through `mqtt.subscribe`. */
  add(socket: Socket, room: string): void {
    const key = this.key(socket);
    let rooms = this.byData.get(key);
    if (!rooms) this.byData.set(key, (rooms = new Set()));
    rooms.add(room);
  }

  /** The socket left `room` through `mqtt.unsubscribe` (or was taken out). */
  delete(socket: Socket, room: string): void {
    this.byData.get(this.key(socket))?.delete(room);
  }

  /** The rooms the socket joined itself, when known. */
  of(socket: Socket): ReadonlySet<string> | undefined {
    return this.byData.get(this.key(socket));
  }
}
