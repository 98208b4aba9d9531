/**
 * The world of a cluster test file: one private redis-server, one private Mosquitto, N Socket.IO
 * node processes joined by a Redis adapter, a "device" (a plain MQTT client publishing the
 * streams) and counting socket.io-client sockets. Everything bounded; everything stopped by
 * `stop()` (and killed at process exit by the launchers' exit hooks).
 */
import { expect } from "chai";
import { Redis } from "ioredis";
import mqtt from "mqtt";
import type { MqttClient } from "mqtt";
import type { AdapterKind } from "./adapters";
import { closeRedisClient } from "./adapters";
import type { Cluster, ClusterNode } from "./cluster";
import { startCluster } from "./cluster";
import type { MosquittoHandle } from "./mosquitto";
import { startMosquitto } from "./mosquitto";
import type { RedisHandle } from "./redis";
import { startRedis } from "./redis";
import type { Receiver } from "./tally";
import { connectReceiver } from "./tally";
import { sleep, waitFor, withTimeout } from "./util";

/** Options of {@link ClusterFixture.start}. */
export interface FixtureOptions {
  nodes: number;
  adapter: AdapterKind;
  recovery?: boolean;
}

/** Pacing of a published stream: `every` messages, wait `ms` (a rate, not a wait for an event). */
export interface Pace {
  every: number;
  ms: number;
}

export class ClusterFixture {
  redis!: RedisHandle;
  broker!: MosquittoHandle;
  cluster!: Cluster;
  /** Publishes the test streams (QoS 1, one connection: per-topic order is the publish order). */
  device!: MqttClient;
  /** Reads Redis' own counters (INFO); never used by the nodes. */
  private inspector: Redis | undefined;
  readonly receivers: Receiver[] = [];
  private seq = 0;

  static async start(opts: FixtureOptions): Promise<ClusterFixture> {
    const f = new ClusterFixture();
    try {
      [f.redis, f.broker] = await Promise.all([
        startRedis(),
        // $SYS counters every second: lets a test watch the broker's subscription count
        startMosquitto({ extraConfig: ["sys_interval 1"] }),
      ]);
      f.cluster = await startCluster({
        nodes: opts.nodes,
        redisUrl: f.redis.url,
        mqttUrl: f.broker.url,
        adapter: opts.adapter,
        recovery: opts.recovery ?? false,
      });
      f.device = await f.mqtt("test-device");
    } catch (err) {
      await f.stop();
      throw err;
    }
    return f;
  }

  get nodes(): ClusterNode[] {
    return this.cluster.nodes;
  }

  /** A topic (or prefix) of its own for each use. */
  uniq(prefix: string): string {
    return `${prefix}/${process.pid}-${++this.seq}`;
  }

  /** A plain MQTT 5 client with a client id starting with `test-` (told apart from the bridges). */
  async mqtt(name: string): Promise<MqttClient> {
    return withTimeout(
      mqtt.connectAsync(this.broker.url, {
        protocolVersion: 5,
        clientId: `${name}-${process.pid}-${++this.seq}`,
        reconnectPeriod: 0,
      }),
      5000,
      `${name} connected to mosquitto`,
    );
  }

  /** `count` sockets, round-robin over the given (default: every running) nodes. */
  async connect(
    count: number,
    nodes?: number[],
    opts: Parameters<typeof connectReceiver>[3] = {},
  ): Promise<Receiver[]> {
    const on = nodes ?? this.nodes.filter((n) => n.running).map((n) => n.index);
    const made = await Promise.all(
      Array.from({ length: count }, (_, k) => {
        const index = on[k % on.length];
        const label = `s${this.receivers.length + k}@n${index}`;
        return connectReceiver(this.nodes[index].url, index, label, opts);
      }),
    );
    this.receivers.push(...made);
    return made;
  }

  /** `mqtt.subscribe` from a socket; asserts the ack is ok (the node got its SUBACK). */
  async subscribe(r: Receiver, ...filters: string[]): Promise<void> {
    for (const filter of filters) {
      const ack = (await r.socket.timeout(5000).emitWithAck("mqtt.subscribe", filter)) as {
        ok: boolean;
      };
      expect(ack.ok, `${r.label} subscribes ${filter}: ${JSON.stringify(ack)}`).to.equal(true);
    }
  }

  /** Publishes `{ s }` for each sequence number on `topic`, QoS 1, each acked before the next. */
  async stream(topic: string | ((s: number) => string), seqs: number[], pace?: Pace) {
    let k = 0;
    for (const s of seqs) {
      const t = typeof topic === "string" ? topic : topic(s);
      await withTimeout(
        this.device.publishAsync(t, JSON.stringify({ s }), { qos: 1 }),
        5000,
        `PUBACK of #${s} on ${t}`,
      );
      if (pace && ++k % pace.every === 0) await sleep(pace.ms);
    }
  }

  /** Publishes barrier `end` on `topic`. */
  async barrier(topic: string, end: string): Promise<void> {
    await withTimeout(
      this.device.publishAsync(topic, JSON.stringify({ end }), { qos: 1 }),
      5000,
      `PUBACK of barrier ${end} on ${topic}`,
    );
  }

  /** Publishes a barrier on `topic` and waits until every receiver in `rs` got it. */
  async barrierAll(topic: string, rs: Receiver[], timeoutMs = 5000): Promise<void> {
    const end = `b${++this.seq}`;
    await this.barrier(topic, end);
    await Promise.all(rs.map((r) => r.barrier(topic, end, timeoutMs)));
  }

  /** How many times Redis executed `command` so far (INFO commandstats). */
  async redisCalls(command: string): Promise<number> {
    if (!this.inspector) {
      this.inspector = new Redis(this.redis.url, { maxRetriesPerRequest: 1 });
      this.inspector.on("error", () => undefined);
    }
    const info = await withTimeout(this.inspector.info("commandstats"), 2000, "INFO");
    const m = new RegExp(`^cmdstat_${command}:calls=(\\d+)`, "m").exec(info);
    return m ? Number(m[1]) : 0;
  }

  /** Closes every receiver, then waits until no running node has a socket or bridged room left. */
  async closeReceivers(): Promise<void> {
    for (const r of this.receivers.splice(0)) {
      r.socket.io.reconnection(false);
      r.socket.disconnect();
    }
    await waitFor(
      async () => {
        for (const n of this.nodes.filter((x) => x.running)) {
          const s = await n.stats();
          // subscriptions held for sockets that disconnected (recovery) are not in use
          if (s.rooms !== 0 || s.brokerSubscriptions !== s.recovery.lingering) return false;
          if ((await n.request({ cmd: "sockets" })).length !== 0) return false;
        }
        return true;
      },
      { timeoutMs: 5000, intervalMs: 20, message: "every node idle" },
    );
  }

  async stop(): Promise<void> {
    for (const r of this.receivers.splice(0)) r.socket.disconnect();
    await this.device?.endAsync(true).catch(() => undefined);
    if (this.inspector) await closeRedisClient(this.inspector);
    await this.cluster?.stop();
    await Promise.all([this.broker?.stop(), this.redis?.stop()]);
  }
}

/** The client ids the broker saw connect (from its log), without the tests' own `test-` clients. */
export function bridgeClientIds(brokerLogs: string): string[] {
  const ids: string[] = [];
  for (const m of brokerLogs.matchAll(/New client connected from \S+ as (\S+) \(/g)) {
    if (!m[1].startsWith("test-")) ids.push(m[1]);
  }
  return ids;
}

/** Mosquitto's log line when a client id takes over another connection's session. */
export const TAKEOVER = /Client (\S+) already connected, closing old connection/;
