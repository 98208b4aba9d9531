/**
 * The delivery stage in clusters: the embedded topology on 3 in-process nodes joined by
 * @socket.io/redis-adapter (slow sockets on one node only), and the worker topology (a worker and
 * two forward web nodes in this process), where the web nodes deliver the worker's messages
 * themselves: batching and slow sockets are handled by the node that holds the sockets.
 */
import { expect } from "chai";
import type { WorkerWorld } from "../support/cluster-worker";
import { useWorkerWorld } from "../support/cluster-worker";
import { redisAdapterFactory } from "../support/adapters";
import {
  expectAccounted,
  expectIncreasing,
  flood,
  record,
  roundRobin,
  tcpOf,
} from "../support/delivery";
import type { Harness } from "../support/harness";
import { createHarness, request } from "../support/harness";
import type { MosquittoHandle } from "../support/mosquitto";
import { startMosquitto } from "../support/mosquitto";
import type { RedisHandle } from "../support/redis";
import { startRedis } from "../support/redis";
import { waitFor } from "../support/util";

const SLOW = { highWaterMark: 65_536, checkMs: 10 };

describe("delivery on 3 in-process nodes (@socket.io/redis-adapter, embedded topology)", function () {
  this.timeout(30_000);
  let broker: MosquittoHandle;
  let redis: RedisHandle;
  let h: Harness | undefined;
  const resumes: (() => void)[] = [];
  before(async () => {
    [broker, redis] = await Promise.all([startMosquitto(), startRedis()]);
  });
  after(async () => Promise.all([broker?.stop(), redis?.stop()]));
  afterEach(async () => {
    for (const resume of resumes.splice(0)) resume();
    await h?.close();
    h = undefined;
  });

  it("slow sockets on one node are conflated there; every other socket on every node gets the whole flood in order", async () => {
    h = await createHarness(
      { name: "mosquitto v5", url: broker.url, version: 5 },
      // readers share this process's event loop with 3 servers: a 64 KiB mark took one for slow
      // on a loaded machine; the stalled ones fall behind by megabytes
      { allow: { subscribe: ["#"] }, delivery: { ...SLOW, highWaterMark: 262_144 } },
      {},
      { nodes: 3, adapter: redisAdapterFactory(redis.url, "redis") },
    );
    const harness = h;
    const t = `dlvc${Date.now().toString(36)}`;
    const join = async (node: number, batch: boolean) => {
      const c = await harness.client({ node });
      expect(await request(c, "mqtt.options", { batch })).to.deep.equal({ ok: true, batch });
      const box = record(c);
      expect((await request(c, "mqtt.subscribe", `${t}/#`)).ok).to.equal(true);
      return { c, box };
    };
    const readers = [await join(0, true), await join(1, false), await join(2, true)];
    const stalled = [await join(0, true), await join(0, false)];
    for (const s of stalled) {
      const tcp = tcpOf(s.c);
      tcp.pause();
      resumes.push(() => tcp.resume());
    }
    const topics = Array.from({ length: 8 }, (_, i) => `${t}/s${i}`);
    const n = 6000;
    // paced by the slowest reader (they share this process's event loop with 3 servers): a reader
    // left 500 messages behind (paced by the bridges alone) had 1 MB waiting for it, past the
    // 256 KiB mark, and was rightly taken for slow now and then; 50 behind is 100 kB
    const readersGot = () => Math.min(...readers.map((r) => r.box.got.length));
    await flood(await h.device(), topics, n, 2048, readersGot, 50);
    await waitFor(() => readers.every((r) => r.box.got.length === n), {
      timeoutMs: 20_000,
      message: "every reading socket got the flood",
    });
    for (const r of readers) expectIncreasing(r.box.got, "reader");
    const slow = h.bridges.map((b) => b.stats().delivery.slow);
    expect(slow).to.deep.equal([2, 0, 0]);
    for (const s of stalled) tcpOf(s.c).resume();
    await waitFor(() => h!.bridges[0].stats().delivery.slow === 0, { message: "caught up" });
    for (const s of stalled) {
      await waitFor(
        () => topics.every((topic) => s.box.got.some((g) => g.topic === topic && g.seq >= n - 8)),
        { message: "the latest message of every topic" },
      );
      expectIncreasing(s.box.got, "stalled");
      expectAccounted(s.box.got, topics, roundRobin(n, topics.length));
    }
    expect(h.stats().delivery.disconnected).to.equal(0);
  });
});

describe("delivery in the worker topology (a worker and 2 forward web nodes in this process)", function () {
  this.timeout(30_000);
  let world: WorkerWorld;
  const resumes: (() => void)[] = [];
  // before the world's own clean-up: paused sockets are resumed first
  afterEach(() => {
    for (const resume of resumes.splice(0)) resume();
  });
  const getWorld = useWorkerWorld();
  before(() => {
    world = getWorld();
  });

  it("batches on every web node; a web node conflates its slow sockets (it delivers the worker's messages itself) while every other socket gets the whole flood in order", async () => {
    const worker = await world.startLocalWorker();
    const a = await world.startNode(undefined, { delivery: SLOW });
    const b = await world.startNode(undefined, { delivery: SLOW });
    await Promise.all([a.bridge.ready, b.bridge.ready]);
    const t = `dlvw${Date.now().toString(36)}`;
    const join = async (node: { url: string }, batch: boolean) => {
      const c = await world.client(node);
      expect(await request(c, "mqtt.options", { batch })).to.deep.equal({ ok: true, batch });
      const box = record(c);
      expect((await request(c, "mqtt.subscribe", `${t}/#`)).ok).to.equal(true);
      return { c, box };
    };
    const readers = [await join(a, true), await join(b, false), await join(b, true)];
    const stalled = [await join(b, true), await join(b, false)];
    for (const s of stalled) {
      const tcp = tcpOf(s.c);
      tcp.pause();
      resumes.push(() => tcp.resume());
    }
    const topics = [`${t}/x`, `${t}/y`, `${t}/z`];
    const n = 4000;
    await waitFor(() => worker.bridge.stats().brokerSubscriptions === 1);
    // paced by the readers (in this process, as are the servers): the stalled ones fall behind
    const readersGot = () => Math.min(...readers.map((r) => r.box.got.length));
    await flood(await world.device(), topics, n, 2048, readersGot, 50);
    await waitFor(() => readers.every((r) => r.box.got.length === n), {
      timeoutMs: 20_000,
      message: "every reading socket got the flood",
    });
    for (const r of readers) expectIncreasing(r.box.got, "reader");
    for (const r of [readers[0], readers[2]]) {
      expect(r.box.frames, "frames of a batching socket").to.be.lessThan(n);
    }
    expect(readers[1].box.frames).to.equal(n);
    expect(b.bridge.stats().delivery.slow, "slow sockets on node b").to.equal(2);
    expect(a.bridge.stats().delivery.slow, "slow sockets on node a").to.equal(0);
    for (const s of stalled) tcpOf(s.c).resume();
    await waitFor(() => b.bridge.stats().delivery.slow === 0, { message: "caught up" });
    for (const s of stalled) {
      await waitFor(
        () => topics.every((topic) => s.box.got.some((g) => g.topic === topic && g.seq >= n - 3)),
        { message: "the latest message of every topic" },
      );
      expectIncreasing(s.box.got, "stalled");
      expectAccounted(s.box.got, topics, roundRobin(n, topics.length));
    }
    expect(b.bridge.stats().delivery.conflated).to.be.greaterThan(0);
    for (const node of [a, b]) {
      expect(node.bridge.stats().delivery.disconnected).to.equal(0);
      expect(node.bridge.stats().delivery.messagesPerFrame).to.be.greaterThan(1);
    }
  });

  it("carries binary payloads and MQTT 5 properties from the worker to a web node's sockets intact", async () => {
    await world.startLocalWorker();
    const a = await world.startNode();
    await a.bridge.ready;
    const c = await world.client(a);
    const got: { topic: string; payload: unknown; properties?: Record<string, unknown> }[] = [];
    c.on("mqtt.message", (m: (typeof got)[number]) => got.push(m));
    const t = `dlvb${Date.now().toString(36)}`;
    expect((await request(c, "mqtt.subscribe", `${t}/#`)).ok).to.equal(true);
    const d = await world.device();
    const bytes = Buffer.from([0, 1, 2, 0xfe, 0xff]);
    await d.publishAsync(`${t}/bin`, bytes, { qos: 1 });
    await d.publishAsync(`${t}/json`, JSON.stringify({ v: 1 }), {
      qos: 1,
      properties: { correlationData: Buffer.from([9, 9]), userProperties: { k: "v" } },
    });
    await waitFor(() => got.length === 2, { message: "both messages" });
    expect(Buffer.isBuffer(got[0].payload)).to.equal(true);
    expect([...(got[0].payload as Buffer)]).to.deep.equal([...bytes]);
    expect(got[1].payload).to.deep.equal({ v: 1 });
    expect([...(got[1].properties!.correlationData as Buffer)]).to.deep.equal([9, 9]);
    expect(got[1].properties!.userProperties).to.deep.equal({ k: "v" });
  });
});
