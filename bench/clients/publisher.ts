/**
 * The one publisher: 100-byte JSON payloads at QoS 0 to Mosquitto (MQTT.js, TCP_NODELAY), or, for
 * the raw Socket.IO server, the same payloads one per line on a plain TCP socket. Two modes:
 * - window: at most `window` messages not yet acknowledged by every receiver process (each acks
 *   the highest sequence number all its clients have), for `durationMs` — throughput;
 * - rate: a fixed rate for `durationMs`, open loop — latency (stops early, flagged, when more than
 *   `maxOutstanding` messages are unacknowledged: the system does not sustain the rate).
 */
import net from "node:net";
import type { AddressInfo } from "node:net";
import type { MqttClient } from "mqtt";
import { serve } from "../lib/ipc";
import { connectNoDelay, hasNoDelay, whenConnected } from "../lib/mqtt";
import { TOPIC, makePayload, nowMicros } from "../lib/payload";

/** Open sinks by id (one per system under test). */
const sinks = new Map<string, { send: (payload: string) => void; close: () => Promise<void> }>();

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
  const send = sink.send;
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
    const emit = () => {
      const now = nowMicros();
      send(makePayload(seq++, now));
    };
    if (a.mode === "window") {
      const window = a.window ?? 16;
      const stallMicros = (a.stallMs ?? 2000) * 1000;
      const pump = () => {
        if (nowMicros() >= deadline) return;
        const limit = acked() + window;
        while (seq < limit) emit();
      };
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
    } else {
      const rate = a.rate ?? 100;
      const total = Math.round((rate * a.durationMs) / 1000);
      const maxOutstanding = a.maxOutstanding ?? Math.max(100, rate);
      timer = setInterval(() => {
        const due = Math.min(total, Math.floor(((nowMicros() - start) * rate) / 1e6) + 1);
        while (seq < due) emit();
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
        sinks.set(id, {
          send: (payload) => void c.publish(TOPIC, payload, { qos: 0 }),
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
        send: (payload) => void sock.write(payload + "\n"),
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
