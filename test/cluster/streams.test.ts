/**
 * The embedded topology on @socket.io/redis-streams-adapter (0.3, with an ioredis client): 3 node
 * processes with connection state recovery on. Exactly-once delivery across the nodes, and
 * recovered sockets (on their node or on another one) keep their bridged rooms, hence their
 * broker subscriptions, without subscribing again.
 */
import { expect } from "chai";
import { ClusterFixture } from "../support/cluster-fixture";
import type { ClusterNode } from "../support/cluster";
import type { Receiver } from "../support/tally";
import { DeliveryReport, count, expectExactlyOnce, range, sum } from "../support/tally";
import { waitFor, withTimeout } from "../support/util";

describe("cluster: embedded topology, 3 node processes on @socket.io/redis-streams-adapter", function () {
  this.timeout(20_000);
  let f: ClusterFixture;
  const report = new DeliveryReport();

  before(async function () {
    this.timeout(30_000);
    f = await ClusterFixture.start({ nodes: 3, adapter: "streams", recovery: true });
  });
  afterEach(async () => f?.closeReceivers());
  after(async function () {
    this.timeout(15_000);
    report.print("cluster (embedded, @socket.io/redis-streams-adapter): deliveries per scenario");
    await f?.stop();
  });

  /** Waits until `node` holds socket `id` in `room` and has `subs` broker subscriptions. */
  async function holds(node: ClusterNode, id: string, room: string, subs: number): Promise<void> {
    await waitFor(
      async () => {
        const sockets = await node.request({ cmd: "sockets" });
        const s = sockets.find((x) => x.id === id);
        return !!s?.rooms.includes(room) && (await node.stats()).brokerSubscriptions === subs;
      },
      { timeoutMs: 5000, intervalMs: 20, message: `node ${node.index} holds ${id} in ${room}` },
    );
  }

  /**
   * Recovery needs an offset in the stream: only cluster-wide broadcasts get one (the bridge's
   * local emits do not), so the app broadcasts once and waits until `r` has it.
   */
  async function giveOffset(r: Receiver): Promise<void> {
    const b = Date.now();
    await f.nodes[0].request({ cmd: "broadcast", event: "app", data: { b } });
    await r.until(() => r.broadcasts.includes(b), 3000, "an app broadcast");
  }

  /** Drops the client's connection (not the session) and waits until it is back, on `url`. */
  async function dropAndReconnect(r: Receiver, url?: string): Promise<void> {
    if (url) {
      // socket.io-client's Manager keeps its URI private; moving it moves the reconnection
      (r.socket.io as unknown as { uri: string }).uri = url;
    }
    const back = new Promise<void>((resolve) => r.socket.once("connect", () => resolve()));
    r.socket.io.engine.close();
    await withTimeout(back, 5000, `${r.label} reconnected`);
  }

  const RECONNECTING = { reconnection: true, reconnectionDelay: 50, reconnectionDelayMax: 200 };

  it("delivers once to every socket of a room spread over the three nodes", async () => {
    const t = f.uniq("streams");
    const rs = await f.connect(6);
    for (const r of rs) await f.subscribe(r, t);
    await f.subscribe(rs[0], `${t}/#`); // and overlapping rooms on one node
    const seqs = range(0, 300);
    await f.stream(t, seqs);
    await f.barrierAll(t, rs);
    report.add("streams: spread", "6 sockets on 3 nodes", expectExactlyOnce(rs, t, seqs));
  });

  it("recovers a socket on its own node with its subscriptions (no re-subscribe)", async () => {
    const t = f.uniq("recover-same");
    const [r] = await f.connect(1, [1], RECONNECTING);
    const [other] = await f.connect(1, [1]); // keeps node 1 subscribed during the gap
    await f.subscribe(r, t);
    await f.subscribe(other, t);
    await giveOffset(r);
    const id = r.socket.id!;
    await dropAndReconnect(r);
    expect(r.socket.recovered, "recovered").to.equal(true);
    expect(r.socket.id).to.equal(id);
    await holds(f.nodes[1], id, `mqtt:${t}`, 1);
    const seqs = range(0, 100);
    await f.stream(t, seqs);
    await f.barrierAll(t, [r, other]);
    report.add("streams: recovery, same node", "recovered socket", expectExactlyOnce([r], t, seqs));
  });

  it("recovers a socket on another node, which subscribes the broker for it", async () => {
    const t = f.uniq("recover-move");
    const others = await f.connect(3); // every node has served a socket (bridge attached)
    const [r] = await f.connect(1, [1], RECONNECTING);
    await f.subscribe(r, t, `${t}/b`);
    await giveOffset(r);
    const id = r.socket.id!;
    await dropAndReconnect(r, f.nodes[2].url);
    expect(r.socket.recovered, "recovered").to.equal(true);
    expect(r.socket.id).to.equal(id);
    await holds(f.nodes[2], id, `mqtt:${t}`, 2);
    // node 1 released its subscriptions when the socket left it
    await waitFor(async () => (await f.nodes[1].stats()).brokerSubscriptions === 0, {
      timeoutMs: 5000,
      intervalMs: 20,
      message: "node 1 unsubscribed",
    });
    const seqs = range(0, 100);
    await f.stream((s) => (s % 2 ? `${t}/b` : t), seqs);
    await f.barrierAll(`${t}/b`, [r]);
    await f.barrierAll(t, [r]);
    const total = sum([
      expectExactlyOnce(
        [r],
        t,
        seqs.filter((s) => s % 2 === 0),
      ),
      expectExactlyOnce(
        [r],
        `${t}/b`,
        seqs.filter((s) => s % 2),
      ),
    ]);
    for (const o of others) expect(o.topics.size, o.label).to.equal(0);
    report.add("streams: recovery, other node", "recovered socket", total);
  });

  it("measures what a recovered socket missed while disconnected (local emits are not in the stream)", async () => {
    const t = f.uniq("recover-gap");
    const [r] = await f.connect(1, [1], RECONNECTING);
    const [other] = await f.connect(1, [1]);
    await f.subscribe(r, t);
    await f.subscribe(other, t);
    await giveOffset(r);
    // drop the connection and publish while the client is away (reconnection held back)
    r.socket.io.reconnection(false);
    const gone = new Promise<void>((resolve) => r.socket.once("disconnect", () => resolve()));
    r.socket.io.engine.close();
    await withTimeout(gone, 5000, "disconnected");
    const gap = range(0, 50);
    await f.stream(t, gap);
    await f.barrierAll(t, [other]);
    const back = new Promise<void>((resolve) => r.socket.once("connect", () => resolve()));
    r.socket.connect();
    await withTimeout(back, 5000, "reconnected");
    expect(r.socket.recovered).to.equal(true);
    await holds(f.nodes[1], r.socket.id!, `mqtt:${t}`, 1);
    const after = range(50, 100);
    await f.stream(t, after);
    await f.barrierAll(t, [r, other]);
    const missed = count(r.seqs(t), [...gap, ...after]);
    expect(count(r.seqs(t), after)).to.deep.include({ lost: 0, duplicates: 0, outOfOrder: 0 });
    report.add(
      "streams: recovery gap",
      "recovered socket",
      missed,
      `${gap.length} sent while disconnected; the bridge emits with nsp.local, which the cluster adapter does not store`,
    );
  });

  // recovered sockets skip io.use middlewares: node.ts calls bridge.attach(io) at startup (README)
  it("recovers a socket on a freshly started node", async () => {
    const t = f.uniq("recover-fresh");
    const [r] = await f.connect(1, [0], RECONNECTING);
    await f.subscribe(r, t);
    await giveOffset(r);
    const fresh = await f.cluster.add();
    try {
      await dropAndReconnect(r, fresh.url);
      expect(r.socket.recovered).to.equal(true);
      await holds(fresh, r.socket.id!, `mqtt:${t}`, 1);
      const seqs = range(0, 50);
      await f.stream(t, seqs);
      await f.barrierAll(t, [r]);
      expectExactlyOnce([r], t, seqs);
    } finally {
      await f.closeReceivers();
      await fresh.stop();
    }
  });
});
