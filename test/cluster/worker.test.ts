/**
 * The worker topology: one `socket.io-mqtt-bridge worker` process holds the only broker
 * connection; web nodes run `mqttBridge({ topology: "forward" })` and reach it through the Redis
 * adapter. Glossary: "worker" = the CLI process; "web node" = a node process of
 * test/cluster/node.ts in forward mode (or, where a test needs its own `allow` rules, a Socket.IO
 * server of the test process); "client" = a socket.io-client; "device" = a plain MQTT.js client.
 */
import { resolve } from "node:path";
import { expect } from "chai";
import type { Socket as ClientSocket } from "socket.io-client";
import { LogRing, spawnManaged } from "../support/child";
import type { WorkerProcess, WorkerWorld } from "../support/cluster-worker";
import { useWorkerWorld } from "../support/cluster-worker";
import { collect, request } from "../support/harness";
import { waitFor, withTimeout } from "../support/util";

describe("worker topology (1 worker process, 2 web nodes, Redis, Mosquitto)", function () {
  this.timeout(20_000);
  let world: WorkerWorld;
  let worker: WorkerProcess;

  const getWorld = useWorkerWorld();
  before(() => {
    world = getWorld();
  });

  const startWorker = (extra: string[] = [], until?: string) =>
    world.startWorker({ extra, ...(until ? { until } : {}) });
  const startNode = (...args: Parameters<WorkerWorld["startNode"]>) => world.startNode(...args);
  const startWebNodes = () => world.startWebNodes();
  const client = (node: { url: string }): Promise<ClientSocket> => world.client(node);
  const device = () => world.device();

  it("serves web nodes: subscriptions, exactly-once delivery across nodes, publishes with acks", async () => {
    worker = await startWorker();
    const [a, b] = await startWebNodes(); // ready once the worker answered
    const stats = await a.stats();
    expect(stats.connected).to.equal(true);
    expect(stats.protocolVersion).to.equal(5);
    const [ca, cb, cb2] = [await client(a), await client(b), await client(b)];
    const boxes = [collect(ca), collect(cb), collect(cb2)];
    expect(await request(ca, "mqtt.subscribe", "w/#")).to.deep.include({
      ok: true,
      room: "mqtt:w/#",
    });
    expect((await request(cb, "mqtt.subscribe", "w/+")).ok).to.equal(true);
    expect((await request(cb, "mqtt.subscribe", "w/x")).ok).to.equal(true); // overlaps on one socket
    expect((await request(cb2, "mqtt.subscribe", "w/x")).ok).to.equal(true);
    const d = await device();
    for (let i = 0; i < 30; i++) d.publish("w/x", String(i), { qos: 1 });
    await d.publishAsync("w/x", "end", { qos: 1 });
    const expected = [...Array.from({ length: 30 }, (_, i) => i), "end"];
    await waitFor(() => boxes.every((box) => box.messages.length >= expected.length));
    for (const box of boxes) expect(box.messages.map((m) => m.payload)).to.deep.equal(expected);
    // publish from a socket on node b reaches the device, acked after the broker's PUBACK
    await d.subscribeAsync("up/#", { qos: 1 });
    const got = new Promise<string>((r) =>
      d.on("message", (t, p) => t === "up/1" && r(p.toString())),
    );
    expect(
      await request(cb, "mqtt.publish", { topic: "up/1", payload: "from b", qos: 1 }),
    ).to.deep.equal({
      ok: true,
    });
    expect(await got).to.equal("from b");
  });

  it("authorizes on the web node and carries the worker's refusals back to the socket", async () => {
    worker = await startWorker();
    const a = await startNode({
      subscribe: ["open/#"],
      publish: ["open/#", "closed/#"],
      retain: [],
    });
    await a.bridge.ready;
    const c = await client(a);
    expect((await request(c, "mqtt.subscribe", "secret/x")).error!.code).to.equal("FORBIDDEN");
    expect(
      (await request(c, "mqtt.publish", { topic: "secret/x", payload: 1 })).error!.code,
    ).to.equal("FORBIDDEN");
    expect(
      (await request(c, "mqtt.publish", { topic: "open/x", payload: 1, qos: 3 })).error!.code,
    ).to.equal("INVALID_ARGUMENT");
  });

  it("replays retained state to a joining socket on any node, once", async () => {
    worker = await startWorker();
    const [a, b] = await startWebNodes();
    const d = await device();
    await d.publishAsync("state/1", "on", { qos: 1, retain: true });
    const ca = await client(a);
    const boxA = collect(ca);
    expect((await request(ca, "mqtt.subscribe", "state/#")).ok).to.equal(true);
    await waitFor(() => boxA.messages.length === 1, { message: "A gets the broker's replay" });
    const cb = await client(b);
    const boxB = collect(cb);
    expect((await request(cb, "mqtt.subscribe", "state/#")).ok).to.equal(true);
    await waitFor(() => boxB.messages.length === 1, { message: "B gets the cached state" });
    expect(boxB.messages[0]).to.deep.include({ topic: "state/1", payload: "on", retain: true });
    await d.publishAsync("state/barrier", "b", { qos: 1 });
    await waitFor(() => boxA.messages.length === 2 && boxB.messages.length === 2, {
      message: "both get the barrier",
    });
    expect(boxA.messages.map((m) => m.payload)).to.deep.equal(["on", "b"]);
    await d.publishAsync("state/1", "", { qos: 1, retain: true });
  });

  it("survives a worker SIGKILL: refuses while none is up, a new worker restores everything", async () => {
    worker = await startWorker(["--lock-ttl", "500"]);
    const [a, b] = await startWebNodes();
    const [ca, cb] = [await client(a), await client(b)];
    const [boxA, boxB] = [collect(ca), collect(cb)];
    expect((await request(ca, "mqtt.subscribe", "f/x")).ok).to.equal(true);
    expect((await request(cb, "mqtt.subscribe", "f/#")).ok).to.equal(true);
    const d = await device();
    await d.publishAsync("f/x", "before", { qos: 1 });
    await waitFor(() => boxA.messages.length === 1 && boxB.messages.length === 1);

    const killedAt = Date.now();
    await worker.kill("SIGKILL");
    await waitFor(async () => !(await a.stats()).connected, {
      timeoutMs: 8000,
      intervalMs: 50,
      message: "web node notices the worker is gone",
    });
    const noticedMs = Date.now() - killedAt;
    const refused = await request(ca, "mqtt.publish", { topic: "f/y", payload: 1, qos: 1 });
    expect(refused.error!.code).to.equal("BROKER_UNAVAILABLE");

    const startedAt = Date.now();
    worker = await startWorker(["--lock-ttl", "500"]);
    // the new worker rebuilt the rooms from the nodes: messages flow without any client reconnecting
    let delivered = 0;
    await waitFor(
      async () => {
        await d.publishAsync("f/x", `after-${++delivered}`, { qos: 1 });
        return boxA.messages.length > 1 && boxB.messages.length > 1;
      },
      { timeoutMs: 8000, intervalMs: 100 },
    );
    const failoverMs = Date.now() - startedAt;
    if (process.env.CLUSTER_REPORT) {
      console.log(
        `      worker gone noticed after ${noticedMs} ms; new worker serving after ${failoverMs} ms`,
      );
    }
    expect(ca.connected && cb.connected).to.equal(true);
    expect((await request(cb, "mqtt.publish", { topic: "f/z", payload: 1, qos: 1 })).ok).to.equal(
      true,
    );
  });

  it("fails over to a standby worker that holds the lock next, within seconds", async () => {
    worker = await startWorker(["--lock-ttl", "1000"]);
    await startWorker(["--lock-ttl", "1000"], "standby");
    const [a] = await startWebNodes();
    const ca = await client(a);
    const box = collect(ca);
    await request(ca, "mqtt.subscribe", "s/x");
    const d = await device();
    await d.publishAsync("s/x", "one", { qos: 1 });
    await waitFor(() => box.messages.length === 1);
    const killedAt = Date.now();
    await worker.kill("SIGKILL");
    // the web node may notice the worker is gone (offline, then connect) or, when the standby is
    // quicker than cluster.workerTimeoutMs, just see a new worker: delivery resuming is the proof
    let i = 0;
    await waitFor(
      async () => {
        await d.publishAsync("s/x", `again-${++i}`, { qos: 1 });
        return box.messages.length > 1;
      },
      { timeoutMs: 8000, intervalMs: 100 },
    );
    if (process.env.CLUSTER_REPORT) {
      console.log(`      standby serving ${Date.now() - killedAt} ms after the worker's SIGKILL`);
    }
    expect(ca.connected).to.equal(true);
  });

  it("documents its flags in --help and stops cleanly on SIGTERM", async () => {
    const ring = new LogRing(50);
    const help = spawnManaged(process.execPath, ["--import", "tsx", "lib/cli.ts", "--help"], {
      cwd: resolve(__dirname, "../.."),
      ring,
    });
    const info = await withTimeout(help.exited, 10_000, "--help exits");
    expect(info.code).to.equal(0);
    for (const flag of ["--mqtt", "--redis", "--namespace", "--config", "MQTT_URL", "REDIS_URL"]) {
      expect(ring.toString()).to.include(flag);
    }
    worker = await startWorker();
    await worker.kill("SIGTERM", 5000);
    expect((await worker.exited).code).to.equal(0);
  });
});
