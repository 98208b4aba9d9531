/**
 * What the recovery tests read of a raw socket.io-client: every message it gets (through
 * `mqtt.message` or `mqtt.messages`) with its sequence number and stream offset, and the
 * subscribe ack with its position.
 */
import type { Socket as ClientSocket } from "socket.io-client";
import type { StreamPosition } from "../../lib";

/** A message as a client got it (`s`: the sequence number the test put in its payload). */
export interface Got {
  topic: string;
  s: number;
  offset?: number;
  retain: boolean;
}

/** A subscribe ack, as the recovery tests read it. */
export interface Ack {
  ok: boolean;
  position?: StreamPosition;
  recovered?: boolean;
  error?: { code: string };
}

/** Records every message a client gets, through either event. */
export function record(c: ClientSocket): Got[] {
  const got: Got[] = [];
  type M = { topic: string; payload: { s: number }; offset?: number; retain: boolean };
  const take = (m: M) =>
    got.push({ topic: m.topic, s: m.payload.s, offset: m.offset, retain: m.retain });
  c.on("mqtt.message", take);
  c.on("mqtt.messages", (list: M[]) => list.forEach(take));
  return got;
}
