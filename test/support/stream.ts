/**
 * What the recovery tests read of a raw socket.io-client: every message it gets (through
 * `mqtt.message` or `mqtt.messages`) with its sequence number and stream position, and the
 * subscribe ack with its position; and how they cut its connection and let it back.
 */
import type { Socket as ClientSocket } from "socket.io-client";
import type { StreamPosition } from "../../lib";
import { onceEvent } from "./util";

/** A message as a client got it (`s`: the sequence number the test put in its payload). */
export interface Got {
  topic: string;
  s: number;
  offset?: number;
  epoch?: string;
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
  type M = { topic: string; payload: { s: number }; offset?: number; epoch?: string } & {
    retain: boolean;
  };
  const take = (m: M) =>
    got.push({
      topic: m.topic,
      s: m.payload.s,
      offset: m.offset,
      epoch: m.epoch,
      retain: m.retain,
    });
  c.on("mqtt.message", take);
  c.on("mqtt.messages", (list: M[]) => list.forEach(take));
  return got;
}

/** Cuts the client's transport and keeps it from reconnecting until {@link online}. */
export async function offline(c: ClientSocket): Promise<void> {
  const gone = onceEvent(c, "disconnect", 5000);
  c.io.reconnection(false);
  c.io.engine.close();
  await gone;
}

/** Lets the client connect again; resolves once it has. */
export async function online(c: ClientSocket): Promise<void> {
  const back = onceEvent(c, "connect", 5000);
  c.io.reconnection(true);
  c.connect();
  await back;
}
