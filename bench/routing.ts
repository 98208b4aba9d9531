/**
 * Routing cost per broker message with 10, 1,000 and 100,000 active filters, in one process,
 * through the public API only: `mqttBridge({ mqtt: fakeClient })` attached to a Socket.IO server
 * (the bridge is the tsc build of lib/, see lib/build.ts).
 * The fake MqttClient (connected, MQTT 5) acknowledges every SUBSCRIBE at once and is the source
 * of the PUBLISHes: the bench emits its `message` event as MQTT.js does after parsing a packet.
 *
 * What "routed" measures: MQTT.js `message` event → Session → Router.handle: the trie match, the
 * exactly-once check (the packet carries the subscription identifier Mosquitto would send), the
 * JSON decode of the 100-byte payload, the message object, and the emit to the matched room
 * (`nsp.local.to(rooms).emit`: Socket.IO encodes the packet once and walks the room's members).
 * Each room has one member, a socket id with no socket behind it (`adapter.addAll`), so nothing
 * is written to a network: it is the per-message cost that does not depend on fan-out. No broker
 * and no MQTT parsing. What "unmatched" measures: the same path for a topic no filter matches
 * (trie walk, then counted as unrouted): the match alone.
 *
 * Filters: F − 2 exact filters `bench/<i>/value` plus 2 wildcard filters (`bench/+/alarm`,
 * `other/#`) that the message topics never match but the walk visits; each filter is its own
 * room `mqtt:<filter>`. The messages go to every exact filter's topic in a shuffled order (at
 * 100,000 filters, 100,000 distinct topics), so lookups miss CPU caches and any route cache.
 * "Same 8 topics" sends every message to the topics of the first 8 exact filters, which every size
 * has, so that only the number of filters differs between sizes: what routing costs per filter
 * held. "Hand-written" times the usual hand-written handler on the same rooms and messages (its
 * own EventEmitter as the client; rooms named by topic), so bridge − hand-written is what the
 * bridge adds per message. The three
 * bridges live side by side and are timed in rotating rounds; reported: the median over rounds of
 * ns per message.
 */
import { EventEmitter } from "node:events";
import type { IPublishPacket, MqttClient } from "mqtt";
import { Server } from "socket.io";
import { loadBridge } from "./lib/build";
import { serve } from "./lib/ipc";
import { makePayload, nowMicros } from "./lib/payload";
import { median } from "./lib/stats";
import { runParse } from "./parse";

export interface RoutingResult {
  filters: number;
  /** ns per routed message (match + decode + emit), random topics */
  routedNs: number;
  /** the same, every message to one of the 8 topics every size has: only the filter count differs */
  sameNs: number;
  /**
   * The hand-written bridge's handler on the same rooms and messages (random topics):
   * `io.to(topic).emit("mqtt.message", { topic, payload: JSON.parse(payload.toString()), … })`.
   */
  handwrittenNs: number;
  /** the hand-written handler on the "same 8 topics" messages */
  handwrittenSameNs: number;
  /** ns per message whose topic no filter matches (match only) */
  unmatchedNs: number;
}

/** Just enough of an MqttClient for the bridge's session; SUBSCRIBEs are granted at once. */
class FakeClient extends EventEmitter {
  connected = true;
  options = { protocolVersion: 5 };
  serverProperties = {};
  /** filter → subscription identifier the bridge gave it */
  readonly ids = new Map<string, number>();
  subscribe(
    filter: string,
    opts: { qos: number; properties?: { subscriptionIdentifier?: number } },
    cb: (err: Error | null, granted: { topic: string; qos: number }[]) => void,
  ): this {
    this.ids.set(filter, opts.properties?.subscriptionIdentifier ?? 0);
    queueMicrotask(() => cb(null, [{ topic: filter, qos: opts.qos }]));
    return this;
  }
  unsubscribe(_filter: string, cb: (err?: Error) => void): this {
    queueMicrotask(() => cb());
    return this;
  }
  publish(_t: string, _p: Buffer, _o: unknown, cb: (err?: Error) => void): this {
    queueMicrotask(() => cb());
    return this;
  }
  end(_force?: boolean, cb?: () => void): this {
    this.connected = false;
    if (cb) queueMicrotask(cb);
    return this;
  }
}

/** At least this many messages in a list (fewer filters: their topics repeat). */
const MIN_MESSAGES = 4096;
/** The topics of the "same 8 topics" messages: those of the exact filters 0–7 (every size has them). */
const SAME_TOPICS = 8;

type Message = [topic: string, packet: IPublishPacket];

/** One bridge with `filters` active filters, and the messages to time it with. */
export interface Setup {
  filters: number;
  client: FakeClient;
  /** the hand-written bridge's MQTT.js client stand-in */
  handwritten: EventEmitter;
  bridge: ReturnType<ReturnType<typeof loadBridge>["mqttBridge"]>;
  routed: Message[];
  same: Message[];
  unmatched: Message[];
}

/** Builds a bridge (of the bench build, or `mqttBridge` of another build) with `filters` filters. */
export async function setup(filters: number, mqttBridge = loadBridge().mqttBridge): Promise<Setup> {
  const client = new FakeClient();
  const bridge = mqttBridge({ mqtt: client as unknown as MqttClient, allow: { subscribe: ["#"] } });
  const io = new Server(); // never listening: nothing to close
  bridge.attach(io);
  await bridge.ready;
  const nsp = io.of("/");
  const exact = filters - 2;
  const rooms = ["mqtt:bench/+/alarm", "mqtt:other/#"];
  for (let i = 0; i < exact; i++) rooms.push(`mqtt:bench/${i}/value`);
  for (const [i, room] of rooms.entries())
    void nsp.adapter.addAll(`no-socket-${i}`, new Set([room]));
  const deadline = Date.now() + 60_000;
  while (bridge.stats().brokerSubscriptions < filters) {
    if (Date.now() > deadline) throw new Error("subscriptions not confirmed within 60 s");
    await new Promise((r) => setTimeout(r, 10));
  }
  // payloads as the fan-out bench sends them: a 6-digit sequence number, a µs timestamp
  const message = (topic: string, id: number, seq: number): Message => [
    topic,
    {
      cmd: "publish",
      topic,
      payload: Buffer.from(makePayload(100_000 + seq, nowMicros())),
      qos: 0,
      retain: false,
      dup: false,
      properties: { subscriptionIdentifier: id },
    },
  ];
  // every exact filter's topic at least once, in random order: at 100,000 filters the messages
  // touch 100,000 distinct topics (no cache of any size keeps them all warm)
  const order = Array.from({ length: Math.max(MIN_MESSAGES, exact) }, (_, i) => i % exact);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const routed: Message[] = [];
  const unmatched: Message[] = [];
  for (const [i, k] of order.entries()) {
    routed.push(message(`bench/${k}/value`, client.ids.get(`bench/${k}/value`)!, i));
    unmatched.push(message(`bench/${k}/other`, 1, i));
  }
  const same = routed.map((_, i) => {
    const k = order[i] % SAME_TOPICS;
    return message(`bench/${k}/value`, client.ids.get(`bench/${k}/value`)!, i);
  });
  const handwritten = new EventEmitter();
  handwritten.on("message", (topic: string, buf: Buffer, packet: IPublishPacket) => {
    nsp.to(topic).emit("mqtt.message", {
      topic,
      payload: JSON.parse(buf.toString()) as unknown,
      qos: packet.qos,
      retain: packet.retain,
    });
  });
  return { filters, client, handwritten, bridge, routed, same, unmatched };
}

/** ns per message, `messages` messages from `list` through `client`'s `message` event. */
export function time(client: EventEmitter, list: Message[], messages: number): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < messages; i++) {
    const [topic, packet] = list[i % list.length];
    client.emit("message", topic, packet.payload, packet);
  }
  return Number(process.hrtime.bigint() - t0) / messages;
}

/**
 * Builds one bridge per filter count, warms each up, then times them in rounds with a rotating
 * order (so drift on a shared machine hits every filter count alike); medians over the rounds.
 */
export async function runRouting(
  filterCounts: number[],
  messages: number,
  rounds: number,
): Promise<RoutingResult[]> {
  const setups: Setup[] = [];
  for (const f of filterCounts) setups.push(await setup(f));
  type Samples = { r: number[]; s: number[]; u: number[]; w: number[]; ws: number[] };
  const samples = new Map<Setup, Samples>(
    setups.map((s) => [s, { r: [], s: [], u: [], w: [], ws: [] }]),
  );
  // hand-written: the same messages, each to the room named by its topic (mqtt:<filter>)
  const toRooms = (list: Message[]) => list.map(([t, p]): Message => [`mqtt:${t}`, p]);
  const byRoom = new Map(setups.map((s) => [s, [toRooms(s.routed), toRooms(s.same)]]));
  const measure = (s: Setup, x?: Samples) => {
    const [rooms, sameRooms] = byRoom.get(s)!;
    const r = time(s.client, s.routed, messages);
    const u = time(s.client, s.unmatched, messages);
    const same = time(s.client, s.same, messages);
    const w = time(s.handwritten, rooms, messages);
    const ws = time(s.handwritten, sameRooms, messages);
    if (!x) return; // warm-up
    x.r.push(r);
    x.u.push(u);
    x.s.push(same);
    x.w.push(w);
    x.ws.push(ws);
  };
  for (const s of setups) measure(s); // warm-up
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < setups.length; i++) {
      const s = setups[(i + round) % setups.length];
      measure(s, samples.get(s));
    }
  }
  const out: RoutingResult[] = [];
  for (const s of setups) {
    const stats = s.bridge.stats().messages;
    const expected = messages * (rounds + 1);
    if (stats.delivered !== 2 * expected || stats.unrouted !== expected || stats.duplicates !== 0) {
      throw new Error(`unexpected routing: ${JSON.stringify(stats)}`);
    }
    await s.bridge.close();
    const x = samples.get(s)!;
    out.push({
      filters: s.filters,
      routedNs: median(x.r),
      sameNs: median(x.s),
      handwrittenNs: median(x.w),
      handwrittenSameNs: median(x.ws),
      unmatchedNs: median(x.u),
    });
  }
  return out;
}

if (require.main === module) {
  if (process.send) {
    serve({
      run: (a: { filters: number[]; messages: number; rounds: number }) =>
        runRouting(a.filters, a.messages, a.rounds),
      parse: (a: { rounds: number; repeats: number }) => runParse(a.rounds, a.repeats),
    });
  } else {
    void runRouting([10, 1000, 100_000], 50_000, 5).then((results) => {
      for (const r of results) {
        console.log(
          `${r.filters} filters: routed ${r.routedNs.toFixed(0)} ns/message, same 8 topics ` +
            `${r.sameNs.toFixed(0)} ns, unmatched ${r.unmatchedNs.toFixed(0)} ns, hand-written ` +
            `${r.handwrittenNs.toFixed(0)} / ${r.handwrittenSameNs.toFixed(0)} ns`,
        );
      }
    });
  }
}
