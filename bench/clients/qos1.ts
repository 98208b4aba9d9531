/**
 * Publishing clients for the publish bench: Socket.IO sockets emitting `mqtt.publish` at QoS 1
 * through the bridge (acked after the broker's PUBACK), or MQTT.js clients publishing QoS 1
 * directly to Mosquitto (TCP_NODELAY). Each client keeps `window` publishes unacknowledged.
 */
import type { MqttClient } from "mqtt";
import { io as connectIo } from "socket.io-client";
import type { Socket } from "socket.io-client";
import { serve } from "../lib/ipc";
import { connectNoDelay, whenConnected } from "../lib/mqtt";
import { makePayload, nowMicros } from "../lib/payload";

const TOPIC = "bench/publish";
type Publish = (payload: string, done: (ok: boolean) => void) => void;

/** Publishing clients by group (one group per path under test). */
const groups = new Map<string, Publish[]>();
let closers: (() => Promise<void>)[] = [];

async function socketPublisher(url: string): Promise<Publish> {
  const socket: Socket = connectIo(url, {
    transports: ["websocket"],
    forceNew: true,
    reconnection: false,
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("connect_error", reject);
  });
  closers.push(() => {
    socket.disconnect();
    return Promise.resolve();
  });
  return (payload, done) =>
    void socket.emit("mqtt.publish", { topic: TOPIC, payload, qos: 1 }, (r: { ok: boolean }) =>
      done(r.ok),
    );
}

async function mqttPublisher(url: string): Promise<Publish> {
  const client: MqttClient = connectNoDelay(url, { reconnectPeriod: 0 });
  await whenConnected(client);
  closers.push(() => client.endAsync(true).catch(() => undefined));
  return (payload, done) => void client.publish(TOPIC, payload, { qos: 1 }, (err) => done(!err));
}

serve({
  async connect(a: { group: string; kind: "socketio" | "mqtt"; url: string; count: number }) {
    const { kind, url, count } = a;
    const publishers = await Promise.all(
      Array.from({ length: count }, () =>
        kind === "socketio" ? socketPublisher(url) : mqttPublisher(url),
      ),
    );
    groups.set(a.group, publishers);
  },
  run({ group, window, durationMs }: { group: string; window: number; durationMs: number }) {
    const publishers = groups.get(group) ?? [];
    const start = nowMicros();
    const deadline = start + durationMs * 1000;
    let acked = 0;
    let refused = 0;
    let outstanding = 0;
    let seq = 0;
    return new Promise<{ acked: number; refused: number; seconds: number }>((resolve) => {
      const finish = () => resolve({ acked, refused, seconds: (nowMicros() - start) / 1e6 });
      const next = (publish: Publish) => {
        outstanding++;
        publish(makePayload(seq++, nowMicros()), (ok) => {
          outstanding--;
          if (ok) acked++;
          else refused++;
          if (nowMicros() < deadline) next(publish);
          else if (outstanding === 0) finish();
        });
      };
      for (const p of publishers) for (let i = 0; i < window; i++) next(p);
      // bounded: give up waiting for missing acks 10 s after the deadline
      setTimeout(finish, durationMs + 10_000).unref();
    });
  },
  async disconnect() {
    await Promise.all(closers.map((c) => c()));
    closers = [];
    groups.clear();
  },
});
