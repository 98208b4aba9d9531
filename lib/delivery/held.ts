import type { Socket } from "socket.io";

/** The parts of engine.io's socket and transports that hold unsent data (not in its types). */
interface EngineConn {
  writeBuffer?: { data?: unknown }[];
  transport?: { name?: string; socket?: { bufferedAmount?: unknown } };
}

function sizeOf(data: unknown): number {
  if (typeof data === "string") return data.length;
  if (data instanceof ArrayBuffer) return data.byteLength;
  if (ArrayBuffer.isView(data)) return data.byteLength;
  return 0;
}

/**
 * The bytes waiting to be written to a socket's connection: the packets engine.io holds for it
 * (while its transport is busy, or until the next long-polling request) plus what the WebSocket
 * still buffers. Stops counting once past `limit` (a slow socket's buffer can be long). Strings
 * count one byte per UTF-16 unit: close enough for a threshold.
 */
export function heldBytes(socket: Socket, limit: number): number {
  const conn = socket.conn as unknown as EngineConn;
  let n = 0;
  const transport = conn.transport;
  if (transport?.name === "websocket") {
    const buffered = transport.socket?.bufferedAmount;
    if (typeof buffered === "number") n = buffered;
    if (n > limit) return n;
  }
  const buffer = conn.writeBuffer;
  if (Array.isArray(buffer)) {
    for (let i = 0; i < buffer.length; i++) {
      n += sizeOf(buffer[i]?.data);
      if (n > limit) return n;
    }
  }
  return n;
}
