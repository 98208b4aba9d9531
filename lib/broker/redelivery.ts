import * as zlib from "node:zlib";
import type { IPublishPacket } from "mqtt";

/** QoS 1/2 messages of a connection remembered to recognise their redelivery on the next one. */
export const REMEMBERED_MESSAGES = 1024;

/** Payload checksum (zlib.crc32 from Node 20.15; without it, the length alone is compared). */
const crc32: (data: Buffer) => number =
  typeof (zlib as { crc32?: unknown }).crc32 === "function"
    ? (zlib as unknown as { crc32: (data: Buffer) => number }).crc32
    : () => 0;

/** What identifies a message received under a packet id. */
interface Seen {
  topic: string;
  length: number;
  crc: number;
}

/**
 * Recognises a broker's redelivery, on a resumed persistent session, of a QoS 1/2 message already
 * handed on. MQTT.js acknowledges a message right after emitting it: when the connection drops
 * before the broker read that PUBACK, the broker sends the message again on the resumed session,
 * with DUP set and the same packet id (MQTT 3.1.1 and 5, §4.4). A DUP message whose packet id,
 * topic, length and checksum match one of the last {@link REMEMBERED_MESSAGES} of the previous
 * connection is that redelivery. Brokers hand out packet ids in turn, so an id seen within that
 * window has not been reused for another message.
 */
export class Redeliveries {
  private current = new Map<number, Seen>();
  private previous = new Map<number, Seen>();

  /** The connection dropped: its messages are the ones a resumed session may send again. */
  disconnected(): void {
    if (this.current.size === 0) return;
    this.previous = this.current;
    this.current = new Map();
  }

  /** A new session holds nothing to redeliver. */
  forget(): void {
    this.previous.clear();
  }

  /** Records a message; true when it is the redelivery of one handed on before the reconnect. */
  redelivered(topic: string, payload: Buffer, packet: IPublishPacket): boolean {
    const id = packet.messageId;
    if (packet.qos === 0 || id === undefined) return false;
    const seen: Seen = { topic, length: payload.length, crc: crc32(payload) };
    if (packet.dup) {
      const before = this.previous.get(id);
      if (
        before !== undefined &&
        before.topic === seen.topic &&
        before.length === seen.length &&
        before.crc === seen.crc
      ) {
        this.previous.delete(id);
        return true;
      }
    }
    const current = this.current;
    current.delete(id); // re-inserted last: the Map's order is arrival order
    current.set(id, seen);
    if (current.size > REMEMBERED_MESSAGES) {
      current.delete(current.keys().next().value as number);
    }
    return false;
  }
}
