/**
 * Missed-message recovery in clusters. Worker topology: the worker numbers the messages and keeps
 * the history, so a socket that comes back on another web node recovers there. Embedded topology:
 * each node has its own stream, so a socket recovers on the node that served it, and another node
 * answers `recovered: false` (with the retained state).
 */
import { expect } from "chai";
import type { MqttClient } from "mqtt";
import type { Socket as ClientSocket } from "socket.io-client";
import type { StreamPosition } from "../../lib";
import type { WorkerWorld } from "../support/cluster-worker";
import { useWorkerWorld } from "../support/cluster-worker";
import { redisAdapterFactory } from "../support/adapters";
import { createHarness, request } from "../support/harness";
import type { MosquittoHandle } from "../support/mosquitto";
import { startMosquitto } from "../support/mosquitto";
import type { RedisHandle } from "../support/redis";
import { startRedis } from "../support/redis";
import type { Ack, Got } from "../support/stream";
import { record } from "../support/stream";
import { waitFor } from "../support/util";

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);
const seqs = (got: Got[], topic: string) => got.filter((g) => g.topic === topic).map((g) => g.s);

/** Publishes `s` = from … to - 1 on `topic` at QoS 1, then waits until `numbered` reached them. */
async function publish(
  d: MqttClient,
  topic: string,
  from: number,
  to: number,
  offset: () => number,
): Promise<void> {
  const before = offset();
  for (const s of range(from, to)) await d.publishAsync(topic, JSON.stringify({ s }), { qos: 1 });
  await waitFor(() => offset() >= before + (to - from), {
    message: `the stream numbered ${topic} ${from} to ${to - 1}`,
  });
}

/**
 * Subscribes `c` to `filter`, lets it get messages 0..9 of `topic`, and disconnects it; resolves
 * with the position it reached.
 */
async function away(
  c: ClientSocket,
  d: MqttClient,
  filter: string,
  topic: string,
  offset: () => number,
): Promise<StreamPosition> {
  const got = record(c);
  const ack = await request<Ack>(c, "mqtt.subscribe", filter);
  expect(ack.ok, JSON.stringify(ack)).to.equal(true);
  expect(ack.position).to.be.an("object");
  await publish(d, topic, 0, 10, offset);
  await waitFor(() => got.length === 10, { message: "the first ten" });
  const reached = Math.max(ack.position!.offset, ...got.map((g) => g.offset ?? 0));
  c.disconnect();
  return { epoch: ack.position!.epoch, offset: reached };
}

describe("recovery in the worker topology (a worker and two web nodes, @socket.io/redis-adapter)", function () {
  this.timeout(30_000);
  let world: WorkerWorld;
  const getWorld = useWorkerWorld();
  before(() => {
    world = getWorld();
  });

  it("a socket that comes back on another web node recovers what it missed there, once, in order, then live", async () => {
    const worker = await world.startLocalWorker();
    const a = await world.startNode();
    const b = await world.startNode();
    await Promise.all([a.bridge.ready, b.bridge.ready]);
    const offset = () => worker.bridge.stats().recovery.offset;
    const t = `rcw${Date.now().toString(36)}`;
    const d = await world.device();
    const since = await away(await world.client(a), d, `${t}/#`, `${t}/a`, offset);
    // the worker holds the broker subscription while the socket is away (node a said "~")
    await waitFor(() => worker.bridge.stats().recovery.lingering === 1, { message: "lingering" });
    await publish(d, `${t}/a`, 10, 30, offset);
    const c = await world.client(b);
    const got = record(c);
    const ack = await request<Ack>(c, "mqtt.subscribe", { filter: `${t}/#`, since });
    expect(ack, JSON.stringify(ack)).to.include({ ok: true, recovered: true });
    expect(ack.position).to.deep.equal({ epoch: since.epoch, offset: offset() });
    await publish(d, `${t}/a`, 30, 40, offset);
    await waitFor(() => got.length >= 30, { message: "the missed and the live ones" });
    expect(seqs(got, `${t}/a`)).to.deep.equal(range(10, 40));
    expect(got.every((g) => !g.retain)).to.equal(true);
    expect(b.bridge.stats().recovery).to.include({ recovered: 1, replayed: 20, failed: 0 });
  });

  it("recovers while messages keep flowing: no gap and no duplicate between the replay and the live ones", async () => {
    const worker = await world.startLocalWorker();
    const a = await world.startNode();
    const b = await world.startNode();
    await Promise.all([a.bridge.ready, b.bridge.ready]);
    const offset = () => worker.bridge.stats().recovery.offset;
    const t = `rcf${Date.now().toString(36)}`;
    const d = await world.device();
    const since = await away(await world.client(a), d, `${t}/#`, `${t}/a`, offset);
    // 1,000 messages at about 1 per ms while the socket comes back on the other node
    let sent = 10;
    const flow = (async () => {
      while (sent < 1010) {
        d.publish(`${t}/a`, JSON.stringify({ s: sent++ }), { qos: 0 });
        if (sent % 10 === 0) await new Promise((r) => setTimeout(r, 10));
      }
    })();
    await waitFor(() => offset() > since.offset + 100, { message: "some went by" });
    const c = await world.client(b);
    const got = record(c);
    const ack = await request<Ack>(c, "mqtt.subscribe", { filter: `${t}/#`, since });
    expect(ack, JSON.stringify(ack)).to.include({ ok: true, recovered: true });
    await flow;
    await waitFor(() => seqs(got, `${t}/a`).at(-1) === 1009, {
      timeoutMs: 10_000,
      message: "the last one",
    });
    expect(seqs(got, `${t}/a`)).to.deep.equal(range(10, 1010));
  });

  it("does not replay to a socket whose rights a bridge.reauthorize() withdrew while the worker answered", async () => {
    const worker = await world.startLocalWorker();
    const a = await world.startNode({ subscribe: ["users/{data.userId}/#"] });
    await a.bridge.ready;
    a.io.on("connection", (s) => ((s.data as { userId?: string }).userId = "u1"));
    const offset = () => worker.bridge.stats().recovery.offset;
    const d = await world.device();
    const since = await away(await world.client(a), d, "users/u1/#", "users/u1/a", offset);
    await publish(d, "users/u1/a", 10, 20, offset);
    // the node's recovery request waits while the user logs out on this node
    const nsp = a.io.of("/");
    const emit = nsp.serverSideEmit.bind(nsp);
    let held: (() => void) | undefined;
    nsp.serverSideEmit = ((event: string, ...args: unknown[]) => {
      if (event !== "mqtt-bridge:recover") return emit(event, ...args);
      held = () => emit(event, ...args);
      return true;
    }) as typeof nsp.serverSideEmit;
    const c = await world.client(a);
    const got = record(c);
    const asked = request<Ack>(c, "mqtt.subscribe", { filter: "users/u1/#", since });
    await waitFor(() => held !== undefined, { message: "the recovery request held" });
    (nsp.sockets.get(c.id!)!.data as { userId?: string }).userId = undefined;
    expect(await a.bridge.reauthorize(a.io)).to.deep.equal([]); // not in the room yet
    held!();
    const ack = await asked;
    expect(ack.ok, JSON.stringify(ack)).to.equal(false);
    expect(ack.error?.code).to.equal("FORBIDDEN");
    await publish(d, "users/u1/a", 20, 21, offset);
    expect(got).to.deep.equal([]);
    expect(nsp.sockets.get(c.id!)!.rooms.has(a.bridge.room("users/u1/#"))).to.equal(false);
  });

  it("answers recovered: false with the retained state for another epoch (a new worker)", async () => {
    const worker = await world.startLocalWorker();
    const a = await world.startNode();
    await a.bridge.ready;
    const offset = () => worker.bridge.stats().recovery.offset;
    const t = `rcx${Date.now().toString(36)}`;
    const d = await world.device();
    await d.publishAsync(`${t}/state`, JSON.stringify({ s: 7 }), { qos: 1, retain: true });
    const c = await world.client(a);
    const got = record(c);
    const since = { epoch: "not-this-stream", offset: 3 };
    const ack = await request<Ack>(c, "mqtt.subscribe", { filter: `${t}/#`, since });
    expect(ack).to.include({ ok: true, recovered: false });
    expect(ack.position?.epoch).to.equal(worker.bridge.stats().recovery.epoch);
    await waitFor(() => got.length === 1, { message: "the retained state" });
    expect(got[0]).to.include({ s: 7, retain: true });
    await publish(d, `${t}/a`, 0, 3, offset);
    await waitFor(() => got.length === 4, { message: "live" });
    expect(seqs(got, `${t}/a`)).to.deep.equal([0, 1, 2]);
    expect(a.bridge.stats().recovery.failed).to.equal(1);
  });
});

describe("recovery in the embedded topology (2 in-process nodes, @socket.io/redis-adapter)", function () {
  this.timeout(30_000);
  let broker: MosquittoHandle;
  let redis: RedisHandle;
  before(async () => {
    [broker, redis] = await Promise.all([startMosquitto(), startRedis()]);
  });
  after(async () => Promise.all([broker?.stop(), redis?.stop()]));

  it("a socket recovers on the node that served it; the other node says recovered: false", async () => {
    const h = await createHarness(
      { name: "mosquitto v5", url: broker.url, version: 5 },
      { allow: { subscribe: ["#"], publish: ["#"] } },
      {},
      { nodes: 2, adapter: redisAdapterFactory(redis.url, "redis") },
    );
    try {
      const t = `rce${Date.now().toString(36)}`;
      const offset = () => h.bridges[0].stats().recovery.offset;
      const d = await h.device();
      const since = await away(await h.client({ node: 0 }), d, `${t}/#`, `${t}/a`, offset);
      await publish(d, `${t}/a`, 10, 20, offset);
      const same = await h.client({ node: 0 });
      const got = record(same);
      const ack = await request<Ack>(same, "mqtt.subscribe", { filter: `${t}/#`, since });
      expect(ack, JSON.stringify(ack)).to.include({ ok: true, recovered: true });
      await waitFor(() => got.length === 10, { message: "the ten missed" });
      expect(seqs(got, `${t}/a`)).to.deep.equal(range(10, 20));
      const other = await h.client({ node: 1 });
      const ack1 = await request<Ack>(other, "mqtt.subscribe", { filter: `${t}/#`, since });
      expect(ack1).to.include({ ok: true, recovered: false });
      expect(ack1.position?.epoch).to.not.equal(since.epoch);
    } finally {
      await h.close();
    }
  });
});
