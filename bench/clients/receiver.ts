/**
 * A pool of receiving clients in one process: Socket.IO sockets (bridge, raw, hand-written) or
 * MQTT.js clients on Mosquitto's WebSocket listener (browser-direct), in one group per system
 * (the systems of a room size are connected at once and measured in turn). All the clients of a
 * group are in the one room (or subscribed to the one topic). The process acknowledges the publisher's window: when
 * every local client has every message up to `low`, it writes `<phase> <low>` to the publisher's
 * ack socket (every `ackEvery` messages). During a latency phase it records now − send time.
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

const RING = 1 << 16;
const MASK = RING - 1;
const CONNECT_BATCH = 50;

/** Client groups, one per system under test; only the group being measured receives messages. */
const groups = new Map<string, { sockets: Socket[]; clients: MqttClient[] }>();
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

async function socketIoClient(url: string, join: "bridge" | "event"): Promise<Socket> {
  const socket = connectIo(url, { transports: ["websocket"], forceNew: true, reconnection: false });
  socket.on(MESSAGE_EVENT, (m: { payload: Stamp }) => onStamp(m.payload.seq, m.payload.t));
  await withTimeout(new Promise<void>((r) => socket.once("connect", () => r())), 10_000, "connect");
  if (join === "bridge") {
    const res = (await socket.timeout(10_000).emitWithAck("mqtt.subscribe", TOPIC)) as {
      ok: boolean;
    };
    if (!res.ok) throw new Error(`mqtt.subscribe refused: ${JSON.stringify(res)}`);
  } else {
    const ok = (await socket.timeout(10_000).emitWithAck("bench.join", ROOM)) as boolean;
    if (!ok) throw new Error("join refused");
  }
  return socket;
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

interface ConnectArgs {
  group: string;
  kind: "socketio" | "mqtt";
  /** Several URLs (the nodes of a cluster): the clients go to them in turn. */
  url: string | string[];
  count: number;
  join: "bridge" | "event";
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
    async connect({ group, kind, url, count, join }: ConnectArgs) {
      const g = { sockets: [] as Socket[], clients: [] as MqttClient[] };
      groups.set(group, g);
      for (let i = 0; i < count; i += CONNECT_BATCH) {
        const urls = typeof url === "string" ? [url] : url;
        const batch = Array.from({ length: Math.min(CONNECT_BATCH, count - i) }, (_, j) => {
          const to = urls[(i + j) % urls.length];
          return kind === "socketio" ? socketIoClient(to, join) : mqttClient(to);
        });
        if (kind === "socketio") g.sockets.push(...(await Promise.all(batch as Promise<Socket>[])));
        else g.clients.push(...(await Promise.all(batch as Promise<MqttClient>[])));
      }
      return { connected: g.sockets.length + g.clients.length };
    },
    reset(args: { phase: number; group: string; record: boolean; ackEvery: number }) {
      const g = groups.get(args.group);
      local = g ? g.sockets.length + g.clients.length : 0;
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
        for (const s of g.sockets) s.disconnect();
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
