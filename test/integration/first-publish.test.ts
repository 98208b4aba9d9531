/**
 * A server-side `bridge.publish()` made before the bridge's FIRST broker connection (as the
 * README's minimal server does, on the line after `mqttBridge()`) waits for that connection, up to
 * `ackTimeoutMs`, as MQTT.js users expect; later publishes while offline are refused at once as
 * before. Embedded topology against a Mosquitto started after the bridge, and forward topology
 * against a worker process started after the web node. Glossary: "device" = a plain MQTT.js
 * client; "worker" = the `socket.io-mqtt-bridge worker` process (lib/cli.ts); "web node" = a
 * Socket.IO server of this process with `topology: "forward"`.
 */
import { createServer } from "node:http";
import path from "node:path";
import { createAdapter } from "@socket.io/redis-adapter";
import { expect } from "chai";
import { Redis } from "ioredis";
import mqtt from "mqtt";
import type { IPublishPacket } from "mqtt";
import { Server } from "socket.io";
import type { MqttBridge } from "../../lib";
import { MqttBridgeError, mqttBridge } from "../../lib";
import type { ManagedChild } from "../support/child";
import { LogRing, spawnManaged } from "../support/child";
import type { MosquittoHandle } from "../support/mosquitto";
import { startMosquitto } from "../support/mosquitto";
import type { RedisHandle } from "../support/redis";
import { startRedis } from "../support/redis";
import { freePort, withTimeout } from "../support/util";

const ROOT = path.resolve(__dirname, "../..");

/** What a publish settled with: "ok", or the error. */
function outcome(p: Promise<void>): Promise<"ok" | MqttBridgeError> {
  return p.then(
    () => "ok" as const,
    (err: MqttBridgeError) => err,
  );
}

/** The retained message of `topic` at the broker, as a device that subscribes sees it. */
async function retainedAt(url: string, topic: string): Promise<IPublishPacket> {
  const device = await mqtt.connectAsync(url, { protocolVersion: 5, reconnectPeriod: 0 });
  try {
    const got = new Promise<IPublishPacket>((resolve) =>
      device.on("message", (_t, _p, packet) => resolve(packet)),
    );
    await device.subscribeAsync(topic, { qos: 1 });
    return await withTimeout(got, 3000, `the retained message of ${topic}`);
  } finally {
    await device.endAsync(true);
  }
}

describe("a server publish before the first broker connection", function () {
  this.timeout(20_000);
  const cleanups: (() => Promise<unknown> | void)[] = [];
  afterEach(async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn();
  });

  describe("embedded topology", () => {
    function bridgeOn(port: number, ackTimeoutMs: number): MqttBridge {
      const bridge = mqttBridge({
        mqtt: `mqtt://127.0.0.1:${port}`,
        ackTimeoutMs,
        reconnect: { minDelayMs: 100, maxDelayMs: 200 },
      });
      bridge.on("error", () => undefined); // connection refused until the broker is up
      cleanups.push(() => bridge.close());
      return bridge;
    }

    it("waits for the connection, then is acknowledged (the broker has it)", async () => {
      const port = await freePort();
      const bridge = bridgeOn(port, 8000);
      const published = outcome(bridge.publish("first/run", { n: 1 }, { qos: 1, retain: true }));
      const broker: MosquittoHandle = await startMosquitto({ port });
      cleanups.push(() => broker.stop());
      expect(await withTimeout(published, 8000, "the publish")).to.equal("ok");
      expect(bridge.stats().publishes.server).to.equal(1);
      const packet = await retainedAt(broker.url, "first/run");
      expect(JSON.parse(packet.payload.toString())).to.deep.equal({ n: 1 });
    });

    it("gives up with BROKER_UNAVAILABLE after ackTimeoutMs when no broker comes", async () => {
      const bridge = bridgeOn(await freePort(), 400);
      const started = Date.now();
      const result = await withTimeout(outcome(bridge.publish("first/run", 1)), 5000, "publish");
      const elapsed = Date.now() - started;
      expect(result).to.be.instanceOf(MqttBridgeError);
      expect((result as MqttBridgeError).code).to.equal("BROKER_UNAVAILABLE");
      expect(elapsed, "waited for the connection").to.be.at.least(350);
      expect(elapsed, "bounded by ackTimeoutMs").to.be.below(2000);
    });

    it("is refused with BROKER_UNAVAILABLE at once when the bridge closes meanwhile", async () => {
      const bridge = bridgeOn(await freePort(), 10_000);
      const result = outcome(bridge.publish("first/run", 1));
      const started = Date.now();
      await bridge.close();
      const settled = await withTimeout(result, 3000, "the publish after close()");
      expect(settled).to.be.instanceOf(MqttBridgeError);
      expect((settled as MqttBridgeError).code).to.equal("BROKER_UNAVAILABLE");
      expect(Date.now() - started).to.be.below(3000);
    });

    it("refuses an invalid topic at once, without waiting for the broker", async () => {
      const bridge = bridgeOn(await freePort(), 10_000);
      const started = Date.now();
      const result = await withTimeout(outcome(bridge.publish("a/+/b", 1)), 1000, "publish");
      expect((result as MqttBridgeError).code).to.equal("INVALID_TOPIC");
      expect(Date.now() - started).to.be.below(500);
    });
  });

  describe("forward topology (a worker process started after the web node)", () => {
    let redis: RedisHandle;
    let broker: MosquittoHandle;
    before(async () => {
      [redis, broker] = await Promise.all([startRedis(), startMosquitto()]);
    });
    after(async () => {
      await Promise.all([redis.stop(), broker.stop()]);
    });

    it("waits for a worker with a broker connection (bridge.ready), then is acknowledged", async () => {
      const key = `first${process.pid}`;
      const pub = new Redis(redis.url, { maxRetriesPerRequest: 1 });
      const sub = pub.duplicate();
      for (const c of [pub, sub]) c.on("error", () => undefined);
      const io = new Server(createServer(), { adapter: createAdapter(pub, sub, { key }) });
      const bridge = mqttBridge({
        topology: "forward",
        ackTimeoutMs: 12_000,
        cluster: { heartbeatMs: 200, workerTimeoutMs: 900 },
      });
      bridge.on("error", () => undefined);
      bridge.attach(io);
      cleanups.push(async () => {
        await bridge.close();
        await io.close();
        pub.disconnect();
        sub.disconnect();
      });

      const published = outcome(
        bridge.publish("first/forward", { n: 2 }, { qos: 1, retain: true }),
      );
      // no worker yet: the publish must still be waiting when the worker starts
      const log = new LogRing(200);
      let serving!: () => void;
      const connected = new Promise<void>((resolve) => (serving = resolve));
      const worker: ManagedChild = spawnManaged(
        process.execPath,
        [
          ...["--import", "tsx", "lib/cli.ts", "worker"],
          ...["--mqtt", broker.url, "--redis", redis.url, "--key", key],
        ],
        { cwd: ROOT, ring: log, onOutput: (s) => s.includes("connected to") && serving() },
      );
      cleanups.push(() => worker.stop(3000));
      await withTimeout(connected, 10_000, "the worker connected").catch((err: Error) => {
        throw new Error(`${err.message}\n${log.toString()}`);
      });
      expect(await withTimeout(published, 12_000, "the publish")).to.equal("ok");
      const packet = await retainedAt(broker.url, "first/forward");
      expect(JSON.parse(packet.payload.toString())).to.deep.equal({ n: 2 });
    });
  });
});
