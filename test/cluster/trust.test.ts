/**
 * Repair and trust in the worker topology: a lost room report is repaired by the periodic sync
 * on a node whose reports keep flowing, malformed cluster messages are dropped (and counted)
 * without hurting the worker, and a frozen web node slows nobody else. The worker runs in this
 * process where a test reads its `stats()`, as a process otherwise.
 */
import { performance } from "node:perf_hooks";
import { expect } from "chai";
import { Redis } from "ioredis";
import type { Namespace } from "socket.io";
import type { WorkerWorld } from "../support/cluster-worker";
import { TIMING, useWorkerWorld } from "../support/cluster-worker";
import { collect, request } from "../support/harness";
import { waitFor } from "../support/util";

const ROOMS = "mqtt-bridge:rooms";

/** Drops the next room report of `nsp` that `match` selects; resolves once it dropped one. */
function dropReport(nsp: Namespace, match: (op: unknown[]) => boolean): Promise<void> {
  const emit = nsp.serverSideEmit.bind(nsp) as (ev: string, ...args: unknown[]) => boolean;
  return new Promise((resolve) => {
    nsp.serverSideEmit = ((ev: string, ...args: unknown[]) => {
      const report = args[0] as { ops?: unknown[][] } | undefined;
      if (ev === ROOMS && report?.ops?.some(match)) {
        nsp.serverSideEmit = emit as Namespace["serverSideEmit"]; // once
        resolve();
        return true;
      }
      return emit(ev, ...args);
    }) as Namespace["serverSideEmit"];
  });
}

describe("worker topology: repair and trust", function () {
  this.timeout(30_000);
  let world: WorkerWorld;

  const getWorld = useWorkerWorld();
  before(() => {
    world = getWorld();
  });

  it("repairs a lost report on a node whose reports keep flowing, within a few syncs: no broker subscription leaks or goes missing", async () => {
    const SYNC = 300;
    const worker = await world.startLocalWorker({ cluster: { ...TIMING, syncIntervalMs: SYNC } });
    const subs = () => worker.bridge.stats().brokerSubscriptions;
    const node = await world.startNode();
    await node.bridge.ready;
    // another node that answers the worker's sync late, as a busy one does
    const slow = world.bareServer();
    slow.io.of("/").on("mqtt-bridge:sync", (ack: (r: null) => void) => {
      setTimeout(() => ack(null), 150);
    });
    const client = await world.client(node);
    const box = collect(client);
    const nsp = node.io.of("/");
    const socket = nsp.sockets.get(client.id!)!;
    void socket.join("mqtt:base/x");
    await waitFor(() => subs() === 1, { message: "the worker subscribes base/x" });

    // busy: a room routed to base/x appears and goes every 5 ms, each a report
    node.bridge.subscribe("base/x", "churn");
    let on = false;
    const churn = setInterval(() => {
      on = !on;
      if (on) void socket.join("churn");
      else void socket.leave("churn");
    }, 5);
    try {
      void socket.join("mqtt:leak/x");
      await waitFor(() => subs() === 2, { message: "the worker subscribes leak/x" });
      const lost = dropReport(nsp, (op) => op[0] === "-" && op[1] === "mqtt:leak/x");
      void socket.leave("mqtt:leak/x");
      await lost;
      const leakAt = performance.now();
      await waitFor(() => subs() === 1, {
        timeoutMs: 6 * SYNC,
        message: `the leaked leak/x released within 6 syncs (${SYNC} ms) while reports flow`,
      });
      const leakMs = performance.now() - leakAt;

      const missed = dropReport(nsp, (op) => op[0] === "+" && op[1] === "mqtt:miss/x");
      void socket.join("mqtt:miss/x");
      await missed;
      const missAt = performance.now();
      await waitFor(() => subs() === 2, {
        timeoutMs: 6 * SYNC,
        message: `the missing miss/x subscribed within 6 syncs (${SYNC} ms) while reports flow`,
      });
      const missMs = performance.now() - missAt;
      const d = await world.device();
      await d.publishAsync("miss/x", "found", { qos: 1 });
      await waitFor(() => box.messages.some((m) => m.payload === "found"), {
        message: "the socket gets miss/x",
      });
      if (process.env.CLUSTER_REPORT) {
        console.log(
          `      repaired a lost release in ${leakMs.toFixed(0)} ms, a lost acquire in ${missMs.toFixed(0)} ms (sync every ${SYNC} ms)`,
        );
      }
      expect(worker.bridge.stats().cluster.repaired).to.be.at.least(2);
    } finally {
      clearInterval(churn);
    }
    void socket.leave("churn");
    void socket.leave("mqtt:base/x");
    void socket.leave("mqtt:miss/x");
    await waitFor(() => subs() === 0, { message: "no room left: no broker subscription" });
  });

  it("drops malformed cluster messages, counts them, and keeps serving", async () => {
    // a listener that throws rejects the adapter's async handler: nothing may reach here
    const rejections: string[] = [];
    const onRejection = (reason: unknown) => rejections.push(String(reason));
    process.on("unhandledRejection", onRejection);
    after(() => process.off("unhandledRejection", onRejection));
    const worker = await world.startLocalWorker({ cluster: { ...TIMING, syncIntervalMs: 250 } });
    const node = await world.startNode();
    await node.bridge.ready;
    const rogue = world.bareServer().io.of("/");
    // the rogue also answers the worker's sync with a malformed snapshot
    let snapshots = 0;
    const badSnapshots: unknown[] = [
      { node: "r", seq: 1, rooms: 5 },
      { node: "r", seq: 2, rooms: [["room", "a/#/b"]] },
      { node: "r", seq: 3, rooms: [[7, ["a"]]] },
      JSON.parse('{"node":"__proto__","seq":4,"rooms":[["__proto__",["a/#/b"]]]}'),
    ];
    rogue.on("mqtt-bridge:sync", (ack: (r: unknown) => void) => {
      ack(badSnapshots[snapshots++ % badSnapshots.length]);
    });
    const huge = Array.from({ length: 200_001 }, () => ["+", "r", "a", 0]);
    const reports: unknown[] = [
      null,
      42,
      "rooms",
      [],
      { node: 1, seq: 1, ops: [] },
      { node: "x", seq: "1", ops: [] },
      { node: "x", seq: 1, ops: 5 },
      { node: "x", seq: 2, ops: [["+"]] },
      { node: "x", seq: 3, ops: [["+", "mqtt:a/#/b", "a/#/b", 0]] },
      { node: "x", seq: 4, ops: [["+", 5, "a", 0]] },
      { node: "x", seq: 5, ops: [["+", "r", "a", 7]] },
      { node: "x", seq: 6, ops: [["*", "r", "a"]] },
      { node: "x", seq: 7, ops: [], joins: [{ socket: 1, filters: "x" }] },
      { node: "x", seq: 8, ops: [], joins: [{ socket: "s", filters: [null], others: [] }] },
      { node: "x", seq: 9, ops: huge },
      JSON.parse(
        '{"node":"x","seq":10,"ops":[["+","__proto__","__proto__",7]],"__proto__":{"ops":[]}}',
      ),
    ];
    const publishes: unknown[] = [
      null,
      { topic: "a/#", payload: "", qos: 0, retain: false },
      { topic: 5, payload: "", qos: 0, retain: false },
      { topic: "t", payload: 5, qos: 0, retain: false },
      { topic: "t", payload: "", qos: 3, retain: false },
      { topic: "t", payload: "", qos: 0, retain: "yes" },
      JSON.parse(
        '{"topic":"t","payload":"","qos":0,"retain":false,"properties":{"__proto__":{"contentType":"x"}}}',
      ),
      { topic: "t", payload: "", qos: 0, retain: false, properties: { topicAlias: 3 } },
    ];
    const subscribes: unknown[] = [
      null,
      { filter: "a/#/b", qos: 0 },
      { filter: 1 },
      { filter: "ok/x", qos: 9 },
    ];
    // each request without its frame (dropped), and framed (answered with an error)
    const replies: { ok: boolean; error?: { code: string } }[] = [];
    rogue.on("mqtt-bridge:reply", (r: { to: string; res: (typeof replies)[number] }) => {
      if (r.to === "rogue") replies.push(r.res);
    });
    let id = 0;
    const emit = (event: string, body: unknown) => {
      rogue.serverSideEmit(event, body);
      rogue.serverSideEmit(event, { node: "rogue", id: ++id, body });
    };
    for (const r of reports) rogue.serverSideEmit(ROOMS, r);
    for (const p of publishes) emit("mqtt-bridge:publish", p);
    for (const s of subscribes) emit("mqtt-bridge:subscribe", s);
    rogue.serverSideEmit("mqtt-bridge:ping", "pong?");
    // bytes that are no adapter message at all
    const raw = new Redis(world.redis.url, { maxRetriesPerRequest: 1 });
    try {
      await raw.publish(`${world.key}-request#/#`, "{not json");
      await raw.publish(`${world.key}-request#/#`, Buffer.from([0xc1, 0xff]));
    } finally {
      raw.disconnect();
    }
    const sent = reports.length + 2 * (publishes.length + subscribes.length) + 1;
    await waitFor(() => worker.bridge.stats().cluster.invalid >= sent + badSnapshots.length, {
      timeoutMs: 6000,
      message: `the worker counted ${sent} malformed messages and ${badSnapshots.length} snapshots`,
    });

    // still serving, over the same broker connection, and nothing of the above was subscribed
    expect(rejections, "errors thrown by cluster message handlers").to.deep.equal([]);
    await waitFor(() => replies.length === id, { message: "the framed requests answered" });
    for (const r of replies) {
      expect(r.ok).to.equal(false);
      expect(r.error!.code).to.be.oneOf(["INVALID_ARGUMENT", "INVALID_TOPIC", "INVALID_FILTER"]);
    }
    const stats = worker.bridge.stats();
    expect(stats.disconnects, "the broker never dropped the worker").to.equal(0);
    expect(stats.brokerSubscriptions).to.equal(0);
    const client = await world.client(node);
    const box = collect(client);
    expect((await request(client, "mqtt.subscribe", "ok/#")).ok).to.equal(true);
    // malformed message frames for the web node's sockets: dropped and counted there
    const room = node.bridge.room("ok/#");
    const frame = { rooms: [room], except: [], sizes: [1] };
    const frames: unknown[] = [
      null,
      { ...frame, rooms: room, body: "[]" },
      { ...frame, sizes: [-1], body: "[]" },
      { ...frame, body: "{not json" },
      { ...frame, body: '[{"topic":5,"payload":0,"qos":0,"retain":false}]' },
      { ...frame, body: '[{"topic":"ok/1","payload":7,"qos":0,"retain":false,"b":1}]' },
    ];
    for (const f of frames) rogue.serverSideEmit("mqtt-bridge:deliver", f);
    await waitFor(() => node.bridge.stats().cluster.invalid === frames.length, {
      message: `the web node counted ${frames.length} malformed frames`,
    });
    const d = await world.device();
    await d.publishAsync("ok/1", "still here", { qos: 1 });
    await waitFor(() => box.messages.length === 1, { message: "the socket gets ok/1" });
    expect(
      await request(client, "mqtt.publish", { topic: "ok/2", payload: 1, qos: 1 }),
    ).to.deep.equal({ ok: true });
    expect(worker.bridge.stats().brokerSubscriptions).to.equal(1);
  });

  it("answers a web node promptly while another web node is frozen (SIGSTOP)", async () => {
    await world.startWorker();
    const [a, b] = await world.startWebNodes(2);
    const client = await world.client(a);
    expect((await request(client, "mqtt.subscribe", "warm/x")).ok).to.equal(true);
    process.kill(b.pid, "SIGSTOP");
    try {
      let t = performance.now();
      const published = await request(client, "mqtt.publish", {
        topic: "frozen/x",
        payload: 1,
        qos: 1,
      });
      const publishMs = performance.now() - t;
      t = performance.now();
      const subscribed = await request(client, "mqtt.subscribe", "frozen/#");
      const subscribeMs = performance.now() - t;
      if (process.env.CLUSTER_REPORT) {
        console.log(
          `      with a frozen node: publish acked in ${publishMs.toFixed(0)} ms, subscribe in ${subscribeMs.toFixed(0)} ms`,
        );
      }
      expect(published, `publish ack after ${publishMs.toFixed(0)} ms`).to.deep.equal({ ok: true });
      expect(publishMs, "the publish ack waits for no frozen node").to.be.below(2000);
      expect(subscribed.ok, `subscribe ack after ${subscribeMs.toFixed(0)} ms`).to.equal(true);
      expect(subscribeMs, "the subscribe ack waits for no frozen node").to.be.below(2000);
    } finally {
      process.kill(b.pid, "SIGCONT");
    }
  });
});
