/**
 * Fencing of the worker topology: at most one worker serves at any time. Each worker reaches the
 * broker through a proxy of its own (test/support/cluster-proxy.ts), which shows to the
 * millisecond when each one holds a broker connection; the serving worker also reaches Redis
 * through a proxy that the test turns into a black hole, the worst partition: its lock renewal
 * hangs instead of failing.
 */
import { performance } from "node:perf_hooks";
import { expect } from "chai";
import { TcpProxy } from "../support/cluster-proxy";
import type { WorkerWorld } from "../support/cluster-worker";
import { useWorkerWorld } from "../support/cluster-worker";
import { collect, request } from "../support/harness";
import { sleep, waitFor } from "../support/util";

const TTL = 1500;

describe("worker fencing (2 worker processes, a web node, Redis and broker behind proxies)", function () {
  this.timeout(40_000);
  let world: WorkerWorld;
  const proxies: TcpProxy[] = [];

  const getWorld = useWorkerWorld();
  before(() => {
    world = getWorld();
  });
  afterEach(async () => {
    await Promise.all(proxies.splice(0).map((p) => p.close()));
  });

  async function proxy(port: number): Promise<TcpProxy> {
    const p = await TcpProxy.start(port);
    proxies.push(p);
    return p;
  }

  it("stops serving before the lock expires when cut off from Redis; the standby serves only after, and the first takes over again once healed", async () => {
    const [redisA, mqttA, mqttB] = await Promise.all([
      proxy(world.redis.port),
      proxy(world.broker.port),
      proxy(world.broker.port),
    ]);
    const ttl = ["--lock-ttl", String(TTL)];
    const a = await world.startWorker({
      extra: ttl,
      redisUrl: redisA.url("redis"),
      mqttUrl: mqttA.url("mqtt"),
    });
    const b = await world.startWorker({ extra: ttl, mqttUrl: mqttB.url("mqtt"), until: "standby" });
    expect(mqttB.events, "the standby holds no broker connection").to.deep.equal([]);
    const [node] = await world.startWebNodes(1);
    const socket = await world.client(node);
    const box = collect(socket);
    expect((await request(socket, "mqtt.subscribe", "fence/x")).ok).to.equal(true);
    const d = await world.device();
    await d.publishAsync("fence/x", "before", { qos: 1 });
    await waitFor(() => box.messages.length === 1, { message: "delivery through worker A" });

    const cutAt = performance.now();
    redisA.pause();
    await waitFor(() => mqttB.firstAfter("open") !== undefined, {
      timeoutMs: 3 * TTL,
      message: "the standby connects to the broker",
    });
    const bOpened = mqttB.firstAfter("open")!.at;
    // A must have let go already; give it 2 TTLs more to show how late it is when it has not
    await waitFor(() => mqttA.open === 0, { timeoutMs: 2 * TTL }).catch(() => undefined);
    const aClosed = mqttA.firstAfter("close")?.at;
    const overlap =
      aClosed === undefined
        ? `still open ${2 * TTL} ms later`
        : `${(aClosed - bOpened).toFixed(0)} ms`;
    if (process.env.CLUSTER_REPORT && aClosed !== undefined) {
      console.log(
        `      A stopped ${(aClosed - cutAt).toFixed(0)} ms after the cut, ` +
          `B connected ${(bOpened - aClosed).toFixed(0)} ms after that (ttl ${TTL} ms)`,
      );
    }
    expect(
      aClosed,
      `worker A's broker connection closed before B's opened (overlap: ${overlap})\n${a.log.toString()}`,
    ).to.be.a("number");
    expect(aClosed!, `A closed before B opened (overlap: ${overlap})`).to.be.below(bOpened);
    // the watchdog: no successful renewal for 2/3 of the TTL stops the worker, whatever hangs
    expect(aClosed! - cutAt, "A stopped within the TTL").to.be.below(TTL);
    expect(a.running, "A stays up, as a standby").to.equal(true);

    let i = 0;
    const resumes = async (what: string) => {
      const mark = box.messages.length;
      await waitFor(
        async () => {
          await d.publishAsync("fence/x", `m${++i}`, { qos: 1 });
          return box.messages.length > mark;
        },
        { timeoutMs: 8000, intervalMs: 100, message: `delivery resumes through ${what}` },
      );
    };
    await resumes("worker B");

    // healed, A reconnects to Redis and waits as a standby while B holds the lock
    const redisOpens = redisA.events.length;
    redisA.restore();
    await waitFor(() => redisA.firstAfter("open", redisOpens) !== undefined, {
      message: "A reconnects to Redis",
    });
    await sleep(TTL / 2); // an observation window: A tries the lock every TTL/3
    expect(mqttA.open, "A stays off the broker while B serves").to.equal(0);
    const opensBefore = mqttA.events.filter((e) => e.kind === "open").length;
    await b.kill("SIGKILL");
    await waitFor(() => mqttA.events.filter((e) => e.kind === "open").length > opensBefore, {
      timeoutMs: 3 * TTL,
      message: "A connects to the broker again",
    });
    await resumes("worker A again");
    expect(socket.connected).to.equal(true);
    expect(a.log.toString()).to.match(/lost the worker lock \(.+\); stopped serving/);
  });
});
