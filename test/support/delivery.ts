/**
 * Helpers of the delivery-stage tests: what a client received through either event, pausing its
 * TCP reading, and floods paced by the bridge.
 */
import { expect } from "chai";
import type { MqttClient } from "mqtt";
import type { Socket as ClientSocket } from "socket.io-client";
import { waitFor } from "./util";

/** What a client got, message by message, whichever event carried it. */
export interface Got {
  topic: string;
  seq: number;
  skipped: number;
  event: "single" | "batch";
}

/** Records the sequence numbers (not the payloads: they would weigh on the RSS measured). */
export function record(c: ClientSocket): { got: Got[]; frames: number } {
  const box = { got: [] as Got[], frames: 0 };
  const take = (m: { topic: string; payload: { s: number }; skipped?: number }, batch: boolean) =>
    box.got.push({
      topic: m.topic,
      seq: m.payload.s,
      skipped: m.skipped ?? 0,
      event: batch ? "batch" : "single",
    });
  c.on("mqtt.message", (m: Parameters<typeof take>[0]) => {
    box.frames++;
    take(m, false);
  });
  c.on("mqtt.messages", (list: Parameters<typeof take>[0][]) => {
    box.frames++;
    for (const m of list) take(m, true);
  });
  return box;
}

/** The client's WebSocket's TCP socket (engine.io-client over `ws` in Node). */
export function tcpOf(c: ClientSocket): { pause(): void; resume(): void } {
  const engine = c.io.engine as unknown as { transport: { ws?: { _socket?: unknown } } };
  const tcp = engine.transport.ws?._socket as { pause(): void; resume(): void } | undefined;
  if (!tcp) throw new Error("no WebSocket TCP socket to pause");
  return tcp;
}

/** Per topic, the sequence numbers in the order received. */
export function byTopic(got: Got[]): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const g of got) {
    let list = out.get(g.topic);
    if (!list) out.set(g.topic, (list = []));
    list.push(g.seq);
  }
  return out;
}

export function expectIncreasing(got: Got[], what: string): void {
  for (const [topic, seqs] of byTopic(got)) {
    for (let i = 1; i < seqs.length; i++) {
      if (seqs[i] <= seqs[i - 1]) {
        expect.fail(`${what}: ${topic} got ${seqs[i]} after ${seqs[i - 1]} (duplicate or reorder)`);
      }
    }
  }
}

/**
 * Publishes `count` messages round-robin over `topics` (QoS 0, `bytes` of padding each), at the
 * pace of the bridge: never more than 500 ahead of what it has received (`received`), so that
 * Mosquitto never drops any (it queues at most 1,000 per client).
 */
export async function flood(
  d: MqttClient,
  topics: string[],
  count: number,
  bytes: number,
  received: () => number,
  /** How many messages the flood may be ahead of `received`. */
  ahead = 500,
) {
  const pad = "x".repeat(bytes);
  const start = received();
  const every = Math.min(250, ahead);
  for (let s = 0; s < count; s++) {
    d.publish(topics[s % topics.length], JSON.stringify({ s, p: pad }), { qos: 0 });
    if (s % every === every - 1) {
      await waitFor(() => received() - start >= s - ahead, {
        intervalMs: 2,
        message: `${s - ahead} of the flood received`,
      });
    }
  }
  await waitFor(() => received() - start >= count, { message: "the bridge received the flood" });
}

/**
 * Every message of each topic was received or counted as `skipped` by a later one, exactly once:
 * topic `i` of `topics` had `published(i)` messages.
 */
export function expectAccounted(
  got: Got[],
  topics: string[],
  published: (index: number) => number,
): void {
  for (const [i, topic] of topics.entries()) {
    const mine = got.filter((g) => g.topic === topic);
    const total = mine.length + mine.reduce((sum, g) => sum + g.skipped, 0);
    expect(total, topic).to.equal(published(i));
  }
}

/** How many of `count` messages sent round-robin over `topics` went to topic `i`. */
export const roundRobin = (count: number, topics: number) => (i: number) =>
  Math.floor((count - 1 - i) / topics) + 1;
