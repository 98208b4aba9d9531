/**
 * The one publisher: 100-byte JSON payloads at QoS 0 to Mosquitto (MQTT.js, TCP_NODELAY), or, for
 * the raw Socket.IO server, the same payloads one per line on a plain TCP socket. Two modes:
 * - window: at most `window` messages not yet acknowledged by every receiver process (each acks
 *   the highest sequence number all its clients have), for `durationMs` — throughput;
 * - rate: a fixed rate for `durationMs`, open loop — latency (stops early, flagged, when more than
 *   `maxOutstanding` messages are unacknowledged: the system does not sustain the rate).
 * Options of the delivery benches: `burst` (messages written back to back in one TCP write: one
 * `write` of several lines, or MQTT.js PUBLISHes of one tick, which mqtt-packet corks into one
 * `writev`; in window mode each burst has a turn of the publisher's event loop of its own),
 * `bytes` (payload size) and `topics` (messages spread round-robin over `bench/fanout/<i>`).
 */
import net from "node:net";
import type { AddressInfo } from "node:net";
import type { MqttClient } from "mqtt";
import { serve } from "../lib/ipc";
import { connectNoDelay, hasNoDelay, whenConnected } from "../lib/mqtt";
import { makePayload, nowMicros, topicOf } from "../lib/payload";

/** Where messages go: one message, or several in one TCP write. */
interface Sink {
  send: (topic: string, payload: string) => void;
  sendMany: (messages: [topic: string, payload: string][]) => void;
  close: () => Promise<void>;
}

/** Open sinks by id (one per system under test). */
const sinks = new Map<string, Sink>();

// acknowledgements: receiver index → highest fully delivered sequence number, for `phase`
let phase = -1;
const lows = new Map<number, number>();
let onAck: () => void = () => undefined;

const ackServer = net.createServer({ noDelay: true }, (conn) => {
  conn.setEncoding("utf8");
  let idx = -1;
  let buffered = "";
  conn.on("data", (chunk: string) => {
    buffered += chunk;
    const lines = buffered.split("\n");
    buffered = lines.pop() ?? "";
    for (const line of lines) {
      const [a, b] = line.split(" ");
      if (a === "hello") idx = Number(b);
      else if (Number(a) === phase) {
        lows.set(idx, Math.max(lows.get(idx) ?? 0, Number(b)));
        onAck();
      }
    }
  });
  conn.on("error", () => conn.destroy());
});

async function closeSinks(): Promise<void> {
  await Promise.all([...sinks.values()].map((s) => s.close()));
  sinks.clear();
}

interface SinkArgs {
  id: string;
  kind: "mqtt" | "tcp";
  url: string;
}

interface RunArgs {
  /** the sink to publish to */
  sink: string;
  phase: number;
  mode: "window" | "rate";
  durationMs: number;
  /** receivers whose acks count (those with clients) */
  ackFrom: number[];
  window?: number;
  rate?: number;
  maxOutstanding?: number;
  /** window mode: give up when no acknowledgement came for this long */
  stallMs?: number;
  /** Messages per burst (see the file comment); without it, messages are sent one by one. */
  burst?: number;
  /** Payload bytes (default 100). */
  bytes?: number;
  /** Topics the messages are spread over (default 1: `bench/fanout`). */
  topics?: number;
}

export interface RunResult {
  sent: number;
  elapsedMs: number;
  /** window mode: acknowledgements stopped coming (losses) */
  stalled: boolean;
  /** rate mode: the backlog passed maxOutstanding */
  unsustained: boolean;
}

function run(a: RunArgs): Promise<RunResult> {
  const sink = sinks.get(a.sink);
  if (!sink) return Promise.reject(new Error(`no sink ${a.sink}`));
  const { send, sendMany } = sink;
  const bytes = a.bytes;
  const topics = a.topics ?? 1;
  phase = a.phase;
  lows.clear();
  const acked = () => {
    let min = Infinity;
    for (const i of a.ackFrom) min = Math.min(min, lows.get(i) ?? 0);
    return min;
  };
  const start = nowMicros();
  const deadline = start + a.durationMs * 1000;
  let seq = 0;
  let lastProgress = start;
  return new Promise((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    const finish = (r: Partial<RunResult>) => {
      clearInterval(timer);
      onAck = () => undefined;
      resolve({
        sent: seq,
        elapsedMs: (nowMicros() - start) / 1000,
        stalled: false,
        unsustained: false,
        ...r,
      });
    };
    /** Pumps on every ack; ends the run at the deadline, or when no ack came for `stallMicros`. */
    const watch = (pump: () => void, stallMicros: number) => {
      onAck = () => {
        lastProgress = nowMicros();
        pump();
      };
      timer = setInterval(() => {
        const now = nowMicros();
        if (now >= deadline) finish({});
        else if (now - lastProgress > stallMicros) finish({ stalled: true });
      }, 5);
      pump();
    };
    const emit = () => {
      const now = nowMicros();
      send(topicOf(seq, topics), makePayload(seq++, now, bytes));
    };
    const burst = (count: number) => {
      const now = nowMicros();
      const messages: [string, string][] = [];
      for (let i = 0; i < count; i++)
        messages.push([topicOf(seq, topics), makePayload(seq++, now, bytes)]);
      sendMany(messages);
    };
    if (a.mode === "window" && a.burst !== undefined) {
      const size = a.burst;
      const window = Math.max(size, a.window ?? 16);
      const stallMicros = (a.stallMs ?? 2000) * 1000;
      let waiting = false; // a burst was sent in this turn
      const next = () => {
        waiting = false;
        pump();
      };
      const pump = () => {
        if (waiting || nowMicros() >= deadline || acked() + window - seq < size) return;
        burst(size);
        waiting = true;
        setImmediate(next);
      };
      watch(pump, stallMicros);
    } else if (a.mode === "window") {
      const window = a.window ?? 16;
      const stallMicros = (a.stallMs ?? 2000) * 1000;
      const pump = () => {
        if (nowMicros() >= deadline) return;
        const limit = acked() + window;
        while (seq < limit) emit();
      };
      watch(pump, stallMicros);
    } else {
      const rate = a.rate ?? 100;
      const total = Math.round((rate * a.durationMs) / 1000);
      const maxOutstanding = a.maxOutstanding ?? Math.max(100, rate);
      // whole bursts: the first message of burst k is due at k × size / rate
      const size = a.burst ?? 1;
      timer = setInterval(() => {
        const bursts = Math.floor(((nowMicros() - start) * rate) / 1e6 / size) + 1;
        const due = Math.min(total, bursts * size);
        if (a.burst === undefined) while (seq < due) emit();
        else while (seq < due) burst(Math.min(size, due - seq));
        if (seq - acked() > maxOutstanding) finish({ unsustained: true });
        else if (seq >= total) finish({});
      }, 1);
    }
  });
}

serve(
  {
    async info() {
      if (!ackServer.listening) {
        await new Promise<void>((resolve) => ackServer.listen(0, "127.0.0.1", resolve));
      }
      return { ackPort: (ackServer.address() as AddressInfo).port };
    },
    async sink({ id, kind, url }: SinkArgs) {
      await sinks.get(id)?.close();
      if (kind === "mqtt") {
        const c: MqttClient = connectNoDelay(url, { reconnectPeriod: 0 });
        await whenConnected(c);
        const send = (topic: string, payload: string) => void c.publish(topic, payload, { qos: 0 });
        sinks.set(id, {
          send,
          // PUBLISHes of one tick: mqtt-packet corks the socket until the next tick
          sendMany: (messages) => {
            for (const [topic, payload] of messages) send(topic, payload);
          },
          close: () => c.endAsync(true).catch(() => undefined),
        });
        return { noDelay: hasNoDelay(c.stream) };
      }
      const { hostname, port } = new URL(url);
      const sock = net.createConnection({ host: hostname, port: Number(port), noDelay: true });
      await new Promise<void>((resolve, reject) => {
        sock.once("connect", resolve);
        sock.once("error", reject);
      });
      sinks.set(id, {
        send: (_topic, payload) => void sock.write(payload + "\n"),
        sendMany: (messages) => void sock.write(messages.map((m) => m[1] + "\n").join("")),
        close: () => Promise.resolve(void sock.destroy()),
      });
      return { noDelay: hasNoDelay(sock) };
    },
    run,
    closeSinks,
  },
  async () => {
    await closeSinks();
    ackServer.close();
  },
);
