/**
 * Recovery in the worker topology when the worker changes under a connected socket: a new worker
 * takes over (a new epoch, its offsets starting again from 1) while the browser helper stays
 * connected to its web node. The old worker stops as one that lost its lock does (fenced: it says
 * nothing more), a new one starts and rebuilds the rooms from the node.
 *
 * Glossary: "client" is the socket.io-client socket the helper runs on; "device" publishes to
 * Mosquitto; `s` is the sequence number a device puts in each payload, per topic.
 */
import { expect } from "chai";
import type { MqttClient } from "mqtt";
import { fenceWorker } from "../../lib/cluster/worker";
import { mqttClient } from "../../lib/client";
import type { BridgeMessage } from "../../lib/client";
import type { LocalWorker, WebNode, WorkerWorld } from "../support/cluster-worker";
import { useWorkerWorld } from "../support/cluster-worker";
import { request } from "../support/harness";
import type { Ack } from "../support/stream";
import { offline, online, record } from "../support/stream";
import { waitFor } from "../support/util";

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

/** A handler that keeps what it gets. */
function inbox() {
  const got: { topic: string; s: number; retain: boolean }[] = [];
  const handler = (m: BridgeMessage) =>
    got.push({ topic: m.topic, s: (m.payload as { s: number }).s, retain: m.retain });
  const of = (topic: string) => got.filter((g) => g.topic === topic).map((g) => g.s);
  return { got, handler, of };
}

describe("recovery across a worker takeover (web node, two workers in turn, Redis, Mosquitto)", function () {
  this.timeout(30_000);
  let world: WorkerWorld;
  const getWorld = useWorkerWorld();
  before(() => {
    world = getWorld();
  });

  /** The worker serving now, and what it numbered. */
  let worker: LocalWorker;
  const offset = () => worker.bridge.stats().recovery.offset;
  const epoch = () => worker.bridge.stats().recovery.epoch;

  /** Publishes `s` = from … to - 1 on `topic` at QoS 1; resolves once the worker numbered them. */
  async function publish(d: MqttClient, topic: string, from: number, to: number, retain = false) {
    const before = offset();
    for (const s of range(from, to)) {
      await d.publishAsync(topic, JSON.stringify({ s }), { qos: 1, retain });
    }
    await waitFor(() => offset() >= before + (to - from), {
      message: `the worker numbered ${topic} ${from} to ${to - 1}`,
    });
  }

  /**
   * The serving worker stops as one that lost its lock (fenced, then closed) and a new one takes
   * over; resolves once the new one holds the node's `filters` broker subscriptions again.
   */
  async function takeOver(node: WebNode, filters: number): Promise<void> {
    const old = epoch();
    expect(fenceWorker(worker.io.of("/"))).to.equal(true);
    await worker.close();
    worker = await world.startLocalWorker();
    expect(epoch()).to.be.a("string").and.not.equal(old);
    await waitFor(
      () => worker.bridge.stats().brokerSubscriptions === filters && node.bridge.connected,
      { message: "the new worker holds the node's subscriptions" },
    );
  }

  /** A web node, a device, and a client on the node with the helper, whose restores are logged. */
  async function setup() {
    worker = await world.startLocalWorker();
    const node = await world.startNode();
    await node.bridge.ready;
    const d = await world.device();
    const c = await world.client(node);
    const raw = record(c);
    const restores: [string, boolean][] = [];
    const mqtt = mqttClient(c, { onRestore: (filter, r) => restores.push([filter, r]) });
    const t = `rct${process.pid}x${Date.now().toString(36)}`;
    return { node, d, c, raw, restores, mqtt, t };
  }

  it("the new worker's messages reach the connected helper live; after a reconnect it recovers from their position", async () => {
    const { node, d, c, raw, restores, mqtt, t } = await setup();
    const box = inbox();
    const sub = await mqtt.subscribe(`${t}/#`, box.handler);
    await publish(d, `${t}/a`, 0, 30);
    await waitFor(() => box.got.length === 30, { message: "the old worker's thirty" });
    const before = Math.max(...raw.map((g) => g.offset ?? 0));

    await takeOver(node, 1);
    await publish(d, `${t}/a`, 30, 40);
    await waitFor(() => box.got.length === 40, { message: "the new worker's ten, live" });
    // numbered in the new stream, below the offsets the helper saw in the old one
    const fresh = raw.filter((g) => g.s >= 30);
    expect(fresh.map((g) => g.epoch)).to.deep.equal(range(30, 40).map(() => epoch()));
    expect(Math.max(...fresh.map((g) => g.offset ?? Infinity))).to.be.below(before);

    await offline(c);
    await waitFor(() => worker.bridge.stats().recovery.lingering === 1, { message: "lingering" });
    await publish(d, `${t}/a`, 40, 50);
    await online(c);
    await waitFor(() => restores.length === 1, { message: "the restore" });
    expect(restores).to.deep.equal([[`${t}/#`, true]]);
    expect(sub.recovered).to.equal(true);
    await publish(d, `${t}/a`, 50, 60);
    await waitFor(() => box.got.length >= 60, { message: "all sixty" });
    expect(box.of(`${t}/a`)).to.deep.equal(range(0, 60));
    expect(box.got.every((g) => !g.retain)).to.equal(true);
  });

  it("a filter the helper got nothing of from the new worker restores with recovered: false and the retained state; one it did recovers; nothing twice", async () => {
    const { node, d, c, restores, mqtt, t } = await setup();
    const live = inbox();
    const state = inbox();
    await mqtt.subscribe(`${t}/live`, live.handler);
    const quiet = await mqtt.subscribe(`${t}/state/#`, state.handler);
    await publish(d, `${t}/live`, 0, 10);
    await publish(d, `${t}/state/x`, 0, 3);
    await waitFor(() => live.got.length === 10 && state.got.length === 3, { message: "the old" });

    await takeOver(node, 2);
    await publish(d, `${t}/live`, 10, 15); // only this filter gets a position in the new stream
    await waitFor(() => live.got.length === 15, { message: "the new worker's five" });

    await offline(c);
    await waitFor(() => worker.bridge.stats().recovery.lingering === 2, { message: "lingering" });
    await publish(d, `${t}/live`, 15, 20);
    await publish(d, `${t}/state/x`, 3, 6);
    await publish(d, `${t}/state/x`, 6, 7, true); // the retained state the restore hands over
    await online(c);
    await waitFor(() => restores.length === 2, { message: "both restores" });
    expect(Object.fromEntries(restores)).to.deep.equal({
      [`${t}/live`]: true,
      [`${t}/state/#`]: false,
    });
    expect(quiet.recovered).to.equal(false);
    await waitFor(() => state.got.length === 4, { message: "the retained state" });
    expect(state.got[3]).to.deep.equal({ topic: `${t}/state/x`, s: 6, retain: true });
    await publish(d, `${t}/live`, 20, 25);
    await publish(d, `${t}/state/x`, 7, 9);
    await waitFor(() => live.got.length >= 25 && state.got.length >= 6, { message: "live again" });
    expect(live.of(`${t}/live`)).to.deep.equal(range(0, 25));
    expect(state.of(`${t}/state/x`)).to.deep.equal([0, 1, 2, 6, 7, 8]);
  });

  it("a raw socket that stayed in a room through the takeover is not replayed what it got there", async () => {
    const { node, d, c, raw, t } = await setup();
    const other = await world.client(node); // holds the broker subscription of ${t}/# all along
    expect((await request<Ack>(other, "mqtt.subscribe", `${t}/#`)).ok).to.equal(true);
    await publish(d, `${t}/b`, 0, 30); // the old stream's offsets run ahead of the new one's
    expect((await request<Ack>(c, "mqtt.subscribe", `${t}/a`)).ok).to.equal(true);
    await takeOver(node, 2);
    await publish(d, `${t}/a`, 0, 5);
    await waitFor(() => raw.length === 5, { message: "the new worker's five, through the room" });
    // a replay of the new stream from its start: what came through the room is left out
    const since = { epoch: epoch(), offset: 0 };
    const ack = await request<Ack>(c, "mqtt.subscribe", { filter: `${t}/#`, since });
    expect(ack, JSON.stringify(ack)).to.include({ ok: true, recovered: true });
    await publish(d, `${t}/a`, 5, 7);
    await waitFor(() => raw.length >= 7, { message: "live again" });
    expect(raw.map((g) => g.s)).to.deep.equal([0, 1, 2, 3, 4, 5, 6]);
  });
});
