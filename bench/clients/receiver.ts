/**
 * A pool of receiving clients in one process: Socket.IO sockets (bridge, raw, hand-written) or
 * MQTT.js clients on Mosquitto's WebSocket listener (browser-direct), in one group per system
 * (the systems of a room size are connected at once and measured in turn). All the clients of a
 * group are in the one room (or subscribed to the one topic). The process acknowledges the publisher's window: when
 * every local client has every message up to `low`, it writes `<phase> <low>` to the publisher's
 * ack socket (every `ackEvery` messages). During a latency phase it records now − send time.
 *
 * Join modes: `bridge` (`mqtt.subscribe` by hand), `event` (the raw and hand-written servers'
 * join event) and `helper` (the browser helper, `batch: true`: it asks for `mqtt.messages` frames
 * and unpacks them; its handler gets one message at a time). `stall`
 * stops some sockets of a group from reading (their TCP socket paused, as a client that no longer
 * reads): they leave the acknowledged and timed set and only count what reaches them later,
 * `skipped` counts included.
 */
import net from "node:net";
import mqtt from "mqtt";
import type { MqttClient } from "mqtt";
import { io as connectIo } from "socket.io-client";
import type { Socket } from "socket.io-client";
import type { Histogram } from "hdr-histogram-js";
import { serve } from "../lib/ipc";
import type { Stamp } from "../lib/payload";
import { MESSAGE_EVENT, ROOM, TOPIC, nowMicros } from "../lib/payload";
import { encodeHistogram, latencyHistogram } from "../lib/stats";
import { loadClient } from "../lib/build";

const RING = 1 << 16;
const MASK = RING - 1;
const CONNECT_BATCH = 50;

/** A Socket.IO client and whether it reads (a stalled one only accounts for what it gets). */
interface Member {
  socket: Socket;
  stalled: boolean;
  /** While stalled and after: messages received plus the `skipped` counts they carried. */
  accounted: number;
  /** `helper` mode: whether the server batches for it (its `mqtt.options` answer). */
  batching?: boolean;
}
type Message = { payload: Stamp; skipped?: number };

/** Client groups, one per system under test; only the group being measured receives messages. */
const groups = new Map<string, { sockets: Member[]; clients: MqttClient[] }>();
let local = 0; // clients of the measured group in this process
let ack: net.Socket | undefined;

// per phase
let phase = 0;
let received = 0;
let record = false;
let ackEvery = 1;
let low = 0;
let lastAcked = 0;
const counts = new Uint32Array(RING);
let hist: Histogram = latencyHistogram();

function onStamp(seq: number, t: number): void {
  received++;
  if (record) hist.recordValue(Math.max(1, nowMicros() - t));
  counts[seq & MASK]++;
  if (seq !== low) return;
  while (counts[low & MASK] === local) counts[low++ & MASK] = 0;
  if (low - lastAcked >= ackEvery) {
    lastAcked = low;
    ack?.write(`${phase} ${low}\n`);
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

async function socketIoClient(url: string, join: Join, filter: string): Promise<Member> {
  const socket = connectIo(url, { transports: ["websocket"], forceNew: true, reconnection: false });
  const member: Member = { socket, stalled: false, accounted: 0 };
  const onMessage = (m: Message) => {
    if (member.stalled) member.accounted += 1 + (m.skipped ?? 0);
    else onStamp(m.payload.seq, m.payload.t);
  };
  if (join === "helper") {
    // the helper asks for `mqtt.messages` frames on every connect and unpacks them
    const client = loadClient().mqttClient(socket, { batch: true });
    await withTimeout(
      new Promise<void>((r) => socket.once("connect", () => r())),
      10_000,
      "connect",
    );
    await withTimeout(client.subscribe(filter, onMessage), 10_000, "subscribe");
    member.batching = await batchingNow(socket);
    return member;
  }
  socket.on(MESSAGE_EVENT, onMessage);
  await withTimeout(new Promise<void>((r) => socket.once("connect", () => r())), 10_000, "connect");
  if (join === "bridge") {
    const res = (await socket.timeout(10_000).emitWithAck("mqtt.subscribe", filter)) as {
      ok: boolean;
    };
    if (!res.ok) throw new Error(`mqtt.subscribe refused: ${JSON.stringify(res)}`);
  } else {
    const ok = (await socket.timeout(10_000).emitWithAck("bench.join", ROOM)) as boolean;
    if (!ok) throw new Error("join refused");
  }
  return member;
}

/** What the server does for `socket` now: `mqtt.options {}` answers without changing anything. */
async function batchingNow(socket: Socket): Promise<boolean> {
  const ack = (await socket.timeout(10_000).emitWithAck("mqtt.options", {})) as {
    ok: boolean;
    batch?: boolean;
  };
  return ack.ok && ack.batch === true;
}

/** The client's WebSocket's TCP socket (engine.io-client over `ws` in Node). */
function tcpOf(socket: Socket): { pause(): void; resume(): void } {
  const engine = socket.io.engine as unknown as { transport: { ws?: { _socket?: unknown } } };
  const tcp = engine.transport.ws?._socket as { pause(): void; resume(): void } | undefined;
  if (!tcp) throw new Error("no WebSocket TCP socket to pause");
  return tcp;
}

async function mqttClient(url: string): Promise<MqttClient> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 10_000 });
  client.on("message", (_topic, buf) => {
    const p = JSON.parse(buf.toString()) as Stamp;
    onStamp(p.seq, p.t);
  });
  await withTimeout(client.subscribeAsync(TOPIC, { qos: 0 }), 10_000, "subscribe");
  return client;
}

type Join = "bridge" | "event" | "helper";

interface ConnectArgs {
  group: string;
  kind: "socketio" | "mqtt";
  /** Several URLs (the nodes of a cluster): the clients go to them in turn. */
  url: string | string[];
  count: number;
  join: Join;
  /** The filter the sockets subscribe to (bridge and helper modes; default `bench/fanout`). */
  filter?: string;
}

/** The clients of `group` that read. */
function readers(group: string): number {
  const g = groups.get(group);
  return g ? g.sockets.filter((m) => !m.stalled).length + g.clients.length : 0;
}

serve(
  {
    async ackTo({ port, idx }: { port: number; idx: number }) {
      const sock = net.createConnection({ host: "127.0.0.1", port, noDelay: true });
      await new Promise<void>((resolve, reject) => {
        sock.once("connect", resolve);
        sock.once("error", reject);
      });
      sock.write(`hello ${idx}\n`);
      ack = sock;
    },
    async connect({ group, kind, url, count, join, filter = TOPIC }: ConnectArgs) {
      const g = { sockets: [] as Member[], clients: [] as MqttClient[] };
      groups.set(group, g);
      for (let i = 0; i < count; i += CONNECT_BATCH) {
        const urls = typeof url === "string" ? [url] : url;
        const batch = Array.from({ length: Math.min(CONNECT_BATCH, count - i) }, (_, j) => {
          const to = urls[(i + j) % urls.length];
          return kind === "socketio" ? socketIoClient(to, join, filter) : mqttClient(to);
        });
        if (kind === "socketio") g.sockets.push(...(await Promise.all(batch as Promise<Member>[])));
        else g.clients.push(...(await Promise.all(batch as Promise<MqttClient>[])));
      }
      return {
        connected: g.sockets.length + g.clients.length,
        batching: g.sockets.filter((m) => m.batching).length,
      };
    },
    /** The last `count` sockets of `group` stop reading. */
    stall({ group, count }: { group: string; count: number }) {
      const sockets = groups.get(group)?.sockets ?? [];
      for (const m of sockets.slice(sockets.length - count)) {
        tcpOf(m.socket).pause();
        m.stalled = true;
        m.accounted = 0;
      }
    },
    /** The stalled sockets of `group` read again (they stay out of the measured set). */
    resume({ group }: { group: string }) {
      for (const m of groups.get(group)?.sockets ?? []) if (m.stalled) tcpOf(m.socket).resume();
    },
    /** What each stalled socket of `group` has accounted for since it stalled. */
    stalledStats({ group }: { group: string }) {
      return (groups.get(group)?.sockets ?? []).filter((m) => m.stalled).map((m) => m.accounted);
    },
    reset(args: { phase: number; group: string; record: boolean; ackEvery: number }) {
      local = readers(args.group);
      phase = args.phase;
      record = args.record;
      ackEvery = args.ackEvery;
      received = 0;
      low = 0;
      lastAcked = 0;
      counts.fill(0);
      hist = latencyHistogram();
    },
    stats({ histogram }: { histogram?: boolean }) {
      return { received, low, histogram: histogram ? encodeHistogram(hist) : undefined };
    },
    async disconnect() {
      for (const g of groups.values()) {
        for (const m of g.sockets) {
          if (m.stalled) tcpOf(m.socket).resume();
          m.socket.disconnect();
        }
        await Promise.all(g.clients.map((c) => c.endAsync(true).catch(() => undefined)));
      }
      groups.clear();
      local = 0;
    },
  },
  () => {
    ack?.destroy();
  },
);
