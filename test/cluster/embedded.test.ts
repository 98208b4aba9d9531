/**
 * The embedded topology across node PROCESSES: 3 Socket.IO nodes (test/cluster/node.ts), each with
 * its own bridge and broker connection, joined by @socket.io/redis-adapter on one private
 * redis-server; one private Mosquitto. Every delivery is counted per socket (see
 * test/support/tally.ts): each socket must get each MQTT message exactly once, in order.
 * `CLUSTER_REPORT=1` prints the counts of every scenario.
 */
import { expect } from "chai";
import type { MqttClient } from "mqtt";
import type { NodeStats } from "../support/cluster";
import { ClusterFixture, TAKEOVER, bridgeClientIds } from "../support/cluster-fixture";
import type { Receiver } from "../support/tally";
import { DeliveryReport, count, expectExactlyOnce, range, sum } from "../support/tally";
import { waitFor, withTimeout } from "../support/util";

/** Latest values of some retained `$SYS` topics, with event-driven waits on them. */
class SysWatcher {
  readonly values = new Map<string, number>();
  private readonly waiters = new Set<() => void>();

  constructor(readonly client: MqttClient) {
    client.on("message", (topic, payload) => {
      this.values.set(topic, Number(payload.toString()));
      for (const w of [...this.waiters]) w();
    });
  }

  static async start(f: ClusterFixture, topics: string[]): Promise<SysWatcher> {
    const w = new SysWatcher(await f.mqtt("test-sys"));
    await withTimeout(w.client.subscribeAsync(topics, { qos: 0 }), 5000, "SUBACK of $SYS topics");
    return w;
  }

  /** Resolves once `topic`'s value satisfies `predicate` (checked on every update). */
  until(topic: string, predicate: (v: number) => boolean, timeoutMs: number): Promise<number> {
    const ok = () => {
      const v = this.values.get(topic);
      return v !== undefined && predicate(v);
    };
    if (ok()) return Promise.resolve(this.values.get(topic)!);
    let check!: () => void;
    const p = new Promise<number>((resolve) => {
      check = () => {
        if (ok()) resolve(this.values.get(topic)!);
      };
      this.waiters.add(check);
    });
    return withTimeout(p, timeoutMs, `${topic} (last ${this.values.get(topic)})`).finally(() =>
      this.waiters.delete(check),
    );
  }
}

const SUBS = "$SYS/broker/subscriptions/count";
const CONNECTED = "$SYS/broker/clients/connected";

describe("cluster: embedded topology, 3 node processes on @socket.io/redis-adapter", function () {
  this.timeout(20_000);
  let f: ClusterFixture;
  const report = new DeliveryReport();

  before(async function () {
    this.timeout(30_000);
    f = await ClusterFixture.start({ nodes: 3, adapter: "redis" });
  });
  afterEach(async () => f?.closeReceivers());
  after(async function () {
    this.timeout(15_000);
    report.print("cluster (embedded, @socket.io/redis-adapter): deliveries per scenario");
    await f?.stop();
  });

  it("two nodes never share an MQTT client id", async () => {
    const stats = await Promise.all(f.nodes.map((n) => n.stats()));
    // the broker's log of new connections: every client id but the tests' own
    const seen = bridgeClientIds(f.broker.logs());
    expect(seen).to.have.length(3);
    expect(new Set(seen).size).to.equal(3);
    if (stats.every((s) => typeof s.clientId === "string")) {
      // and what each bridge says it uses
      expect(stats.map((s) => s.clientId).sort()).to.deep.equal([...seen].sort());
    }
    expect(f.broker.logs()).to.not.match(TAKEOVER);
    for (const s of stats) expect(s).to.deep.include({ connects: 1, disconnects: 0 });
  });

  it("delivers once to every socket of a room spread over the three nodes, without Redis", async () => {
    const t = f.uniq("spread");
    const rs = await f.connect(6);
    for (const r of rs) await f.subscribe(r, t);
    const stats = await Promise.all(f.nodes.map((n) => n.stats()));
    expect(stats.map((s) => s.brokerSubscriptions)).to.deep.equal([1, 1, 1]);
    const publishesBefore = await f.redisCalls("publish");
    const seqs = range(0, 300);
    await f.stream(t, seqs);
    await f.barrierAll(t, rs);
    const total = expectExactlyOnce(rs, t, seqs);
    // MQTT traffic never crosses Redis: the nodes emit to their own sockets (nsp.local)
    expect(await f.redisCalls("publish")).to.equal(publishesBefore);
    report.add("spread", "6 sockets on 3 nodes", total);
  });

  it("delivers once with filters overlapping on one node and across nodes", async () => {
    const t = f.uniq("overlap");
    const [A, B, C] = [`${t}/k/x`, `${t}/z/x`, `${t}/k/y`];
    const [r0, r1, r2, r3, r4, r5] = await f.connect(6); // nodes 0 1 2 0 1 2
    await f.subscribe(r0, `${t}/#`, `${t}/+/x`, `${t}/k/x`); // one socket, three overlapping rooms
    await f.subscribe(r3, `${t}/+/x`); // overlaps r0's on the same node
    await f.subscribe(r1, `${t}/#`);
    await f.subscribe(r4, `${t}/k/+`);
    // a server route into an app room, overlapping r4's own room on node 1
    const appRoom = `app-${t}`;
    for (const n of f.nodes)
      await n.request({ cmd: "bridgeSubscribe", filter: `${t}/k/#`, room: appRoom });
    await f.nodes[1].request({ cmd: "socketsJoin", socketId: r4.socket.id!, room: appRoom });
    await f.subscribe(r2, `${t}/k/x`);
    await f.subscribe(r5, `${t}/+/x`, `${t}/k/x`);
    await waitFor(async () => (await f.nodes[1].stats()).brokerSubscriptions === 3, {
      timeoutMs: 5000,
      message: "node 1 subscribed to #, k/+ and k/#",
    });
    const expected: [Receiver, string[]][] = [
      [r0, [A, B, C]],
      [r1, [A, B, C]],
      [r2, [A]],
      [r3, [A, B]],
      [r4, [A, C]],
      [r5, [A, B]],
    ];
    const topics = [A, B, C];
    const seqs = range(0, 150);
    await f.stream((s) => topics[s % 3], seqs);
    await f.barrier(B, "end-b");
    await f.barrier(C, "end-c");
    await f.barrierAll(A, [r0, r1, r2, r3, r4, r5]); // A last: every socket has A
    const totals = [];
    for (const [r, wanted] of expected) {
      for (const topic of topics) {
        if (wanted.includes(topic)) {
          if (topic !== A) await r.barrier(topic, topic === B ? "end-b" : "end-c");
          totals.push(
            expectExactlyOnce(
              [r],
              topic,
              seqs.filter((s) => topics[s % 3] === topic),
            ),
          );
        } else {
          expect(r.seqs(topic), `${r.label} must get nothing on ${topic}`).to.deep.equal([]);
        }
      }
    }
    const dups = (await Promise.all(f.nodes.map((n) => n.stats()))).map(
      (s) => s.messages.duplicates,
    );
    report.add(
      "overlap",
      "6 sockets, 3 topics",
      sum(totals),
      `bridge dropped ${dups.join("/")} copies`,
    );
    for (const n of f.nodes)
      await n.request({ cmd: "bridgeUnsubscribe", filter: `${t}/k/#`, room: appRoom });
  });

  it("delivers once to sockets joined to bridged rooms by another node (socketsJoin)", async () => {
    const t = f.uniq("join");
    const room = `mqtt:${t}`; // the room of a client subscription to `t`
    const appRoom = `app-${t}`;
    const rs = await f.connect(3); // nodes 0 1 2
    // each socket is joined by a node that does not hold it
    await f.nodes[0].request({ cmd: "socketsJoin", socketId: rs[1].socket.id!, room });
    await f.nodes[1].request({ cmd: "socketsJoin", socketId: rs[2].socket.id!, room });
    await f.nodes[2].request({ cmd: "socketsJoin", socketId: rs[0].socket.id!, room });
    for (const n of f.nodes)
      await n.request({ cmd: "bridgeSubscribe", filter: `${t}/app`, room: appRoom });
    await f.nodes[2].request({ cmd: "socketsJoin", socketId: rs[1].socket.id!, room: appRoom });
    const want = [1, 2, 1];
    await waitFor(
      async () => {
        const s = await Promise.all(f.nodes.map((n) => n.stats()));
        return s.every((x, i) => x.brokerSubscriptions === want[i]);
      },
      { timeoutMs: 5000, intervalMs: 20, message: "the holding nodes subscribed" },
    );
    const seqs = range(0, 100);
    await f.stream((s) => (s % 2 ? `${t}/app` : t), seqs);
    await f.barrierAll(`${t}/app`, [rs[1]]);
    await f.barrierAll(t, rs);
    const even = seqs.filter((s) => s % 2 === 0);
    const total = sum([
      expectExactlyOnce(rs, t, even),
      expectExactlyOnce(
        [rs[1]],
        `${t}/app`,
        seqs.filter((s) => s % 2),
      ),
    ]);
    expect(rs[0].seqs(`${t}/app`)).to.deep.equal([]);
    expect(rs[2].seqs(`${t}/app`)).to.deep.equal([]);
    report.add("socketsJoin", "3 sockets joined remotely", total);
    // and a remote socketsLeave releases the holding node's broker subscription
    await f.nodes[0].request({ cmd: "socketsLeave", socketId: rs[1].socket.id!, room });
    await waitFor(async () => (await f.nodes[1].stats()).brokerSubscriptions === 1, {
      timeoutMs: 5000,
      intervalMs: 20,
      message: "node 1 unsubscribed after a remote socketsLeave",
    });
    for (const n of f.nodes)
      await n.request({ cmd: "bridgeUnsubscribe", filter: `${t}/app`, room: appRoom });
  });

  it("keeps delivering MQTT while Redis is killed and restarted; the adapter reconnects", async function () {
    this.timeout(30_000);
    const t = f.uniq("redis");
    const rs = await f.connect(6);
    for (const r of rs) await f.subscribe(r, t);
    const remote = rs.filter((r) => r.node !== 0);
    const local = rs.filter((r) => r.node === 0);

    // the app's own cross-node broadcasts, from node 0, every ~20 ms while the stream runs
    let b = 0;
    await f.nodes[0].request({ cmd: "broadcast", event: "app", data: { b } });
    await Promise.all(rs.map((r) => r.until(() => r.broadcasts.includes(0), 3000, "broadcast 0")));
    let phase: "before" | "outage" | "after" = "before";
    const sentIn = { before: [] as number[], outage: [] as number[], after: [] as number[] };
    let streaming = true;
    const broadcaster = (async () => {
      for (let k = 0; k < 1000 && streaming; k++) {
        b++;
        sentIn[phase].push(b);
        await f.nodes[0].request({ cmd: "broadcast", event: "app", data: { b } });
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();

    // ~500 messages/s; Redis is down from message #150 until #650 has arrived (about 1 s)
    const seqs = range(0, 900);
    const watch = remote[0];
    const faults = (async () => {
      await watch.until(() => watch.seqs(t).length >= 150, 10_000, "150 messages before the kill");
      await f.redis.kill("SIGKILL");
      const killedAt = watch.seqs(t).length;
      const killTime = Date.now();
      phase = "outage";
      await watch.until(() => watch.seqs(t).length >= 650, 10_000, "650 messages by the restart");
      await f.redis.restart();
      phase = "after";
      return { killedAt, restartedAt: watch.seqs(t).length, killTime, restartTime: Date.now() };
    })();
    await f.stream(t, seqs, { every: 10, ms: 20 });
    const marks = await faults;
    await f.barrierAll(t, rs);
    streaming = false;
    await broadcaster;

    // MQTT → socket never went through Redis: nothing lost, nothing twice, in order
    const mqttTotal = expectExactlyOnce(rs, t, seqs);
    report.add(
      "redis kill+restart",
      "MQTT, 6 sockets",
      mqttTotal,
      `Redis down ${marks.restartTime - marks.killTime} ms: from #${marks.killedAt} to #${marks.restartedAt}`,
    );

    // the adapter reconnects: a cross-node broadcast reaches every socket again (bounded retries)
    let reachedAll = -1;
    for (let k = 0; k < 40 && Date.now() - marks.restartTime < 15_000; k++) {
      b++;
      sentIn.after.push(b);
      const mark = b;
      await f.nodes[0].request({ cmd: "broadcast", event: "app", data: { b: mark } });
      try {
        await Promise.all(
          rs.map((r) => r.until(() => r.broadcasts.includes(mark), 500, `broadcast ${mark}`)),
        );
        reachedAll = mark;
        break;
      } catch {
        // not yet: the adapter's subscriber is still reconnecting
      }
    }
    expect(reachedAll, "a broadcast reached every socket after the restart").to.be.greaterThan(0);
    // when the remote sockets got cross-node broadcasts again, counted from the restart
    const back = Math.max(
      ...remote.map((r) => {
        const after = [...r.broadcastAt.values()].filter((at) => at >= marks.restartTime);
        return after.length ? Math.min(...after) - marks.restartTime : Infinity;
      }),
    );

    for (const [what, group] of [
      ["local (node 0)", local],
      ["remote (nodes 1, 2)", remote],
    ] as const) {
      for (const p of ["before", "outage", "after"] as const) {
        const sent = p === "after" ? sentIn.after.filter((x) => x <= reachedAll) : sentIn[p];
        const c = sum(
          group.map((r) =>
            count(
              r.broadcasts.filter((x) => sent.includes(x)),
              sent,
            ),
          ),
        );
        report.add("redis kill+restart", `app broadcasts ${p}, ${what}`, c);
        if (what.startsWith("local")) expect(c.lost, "node 0's own sockets").to.equal(0);
      }
    }
    const stats = await Promise.all(f.nodes.map((n) => n.stats()));
    report.note(
      "redis kill+restart",
      `remote sockets got cross-node broadcasts again ${back} ms after redis-server was back; ` +
        `unhandled rejections per node ${stats.map((s) => s.unhandledRejections).join("/")}, ` +
        `redis client errors ${stats.map((s) => s.redisErrors).join("/")}`,
    );
    for (const n of f.nodes) expect(n.running).to.equal(true);
    for (const s of stats) expect(s.connects, "the broker connection never dropped").to.equal(1);
  });

  it("loses nothing on the other nodes when one is SIGKILLed mid-stream; its subscriptions go", async function () {
    this.timeout(30_000);
    const t = f.uniq("kill");
    const victim = f.nodes[2];
    const rs = await f.connect(6); // nodes 0 1 2 0 1 2
    for (const r of rs) await f.subscribe(r, t);
    const dead = rs.filter((r) => r.node === victim.index);
    const alive = rs.filter((r) => r.node !== victim.index);
    await f.subscribe(dead[0], `${t}/extra/#`); // the victim holds two broker subscriptions
    const sys = await SysWatcher.start(f, [SUBS, CONNECTED]);
    try {
      let stats: NodeStats[] = [];
      // the broker's count: the bridges' subscriptions + the watcher's two (updated every second)
      await waitFor(
        async () => {
          stats = await Promise.all(f.nodes.map((n) => n.stats()));
          const total = stats.reduce((a, s) => a + s.brokerSubscriptions, 0) + 2;
          return sys.values.get(SUBS) === total;
        },
        { timeoutMs: 5000, intervalMs: 50, message: "$SYS subscription count settled" },
      );
      const subsBefore = sys.values.get(SUBS)!;
      const connectedBefore = await sys.until(CONNECTED, () => true, 3000);
      const victimSubs = stats[victim.index].brokerSubscriptions;
      expect(victimSubs).to.equal(2);

      const closed = dead.map(
        (r) => new Promise<void>((resolve) => r.socket.once("disconnect", () => resolve())),
      );
      const seqs = range(0, 600);
      const watch = alive[0];
      const kill = (async () => {
        await watch.until(
          () => watch.seqs(t).length >= 200,
          10_000,
          "200 messages before the kill",
        );
        await victim.kill("SIGKILL");
        return watch.seqs(t).length;
      })();
      await f.stream(t, seqs, { every: 10, ms: 20 });
      const killedAt = await kill;
      await f.barrierAll(t, alive);
      report.add(
        "node SIGKILL",
        "sockets on the 2 other nodes",
        expectExactlyOnce(alive, t, seqs),
        `killed at #${killedAt}`,
      );
      await withTimeout(Promise.all(closed), 5000, "the killed node's sockets disconnected");
      for (const r of dead) {
        const c = count(r.seqs(t), seqs);
        // what reached them before the kill came once and in order
        expect(c.duplicates + c.outOfOrder, r.label).to.equal(0);
        expect(r.seqs(t), r.label).to.deep.equal(range(0, c.received));
        report.add("node SIGKILL", `${r.label} (killed node)`, c, "disconnected");
      }

      // the killed node's broker session went away with its connection (clean session)
      await sys.until(SUBS, (v) => v === subsBefore - victimSubs, 5000);
      await sys.until(CONNECTED, (v) => v === connectedBefore - 1, 5000);
      const victimId =
        stats[victim.index].clientId ??
        bridgeClientIds(f.broker.logs()).find((id) => id.includes(`-${victim.pid}-`));
      if (victimId !== undefined) {
        expect(f.broker.logs()).to.match(
          new RegExp(
            `Client ${victimId.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} (closed its connection|disconnected)`,
          ),
        );
      }
      expect(f.broker.logs()).to.not.match(TAKEOVER);
      report.note(
        "node SIGKILL",
        `broker $SYS/broker/subscriptions/count ${subsBefore} -> ${sys.values.get(SUBS)}, ` +
          `clients/connected ${connectedBefore} -> ${sys.values.get(CONNECTED)}` +
          (victimId ? `; log: client ${victimId} closed` : ""),
      );
    } finally {
      await sys.client.endAsync(true);
    }
  });
});
