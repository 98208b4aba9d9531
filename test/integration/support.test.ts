/**
 * Proves the test-support helpers in test/support against the real binaries
 * (mosquitto 2.0, redis-server) and the in-process aedes broker, and records
 * how aedes answers an MQTT 5 CONNECT (the bridge's v5 -> v4 fallback relies on it).
 */
import { existsSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import mqtt from "mqtt";
import type { IClientOptions, MqttClient } from "mqtt";
// chai 6 is ESM-only: import its types statically, the module itself dynamically.
import type { expect as chaiExpect } from "chai" with { "resolution-mode": "import" };
import { startAedes } from "../support/aedes";
import type { AedesHandle } from "../support/aedes";
import { startMosquitto } from "../support/mosquitto";
import type { MosquittoHandle } from "../support/mosquitto";
import { redisPing, startRedis } from "../support/redis";
import type { RedisHandle } from "../support/redis";
import { cleanupTmp, freePort, onceEvent, tmpDir, waitFor, withTimeout } from "../support/util";

let expect: typeof chaiExpect;

/** Whether a process with this PID exists. */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("test support", function () {
  const clients: MqttClient[] = [];
  let topicSeq = 0;
  const topic = (): string => `support-test/${process.pid}/${++topicSeq}`;

  /** Connects with bounded waits and remembers the client for cleanup. */
  async function connect(url: string, opts: IClientOptions): Promise<MqttClient> {
    const client = await withTimeout(
      mqtt.connectAsync(url, { connectTimeout: 3000, reconnectPeriod: 0, ...opts }),
      5000,
      `MQTT v${opts.protocolVersion ?? 4} connect to ${url}`,
    );
    clients.push(client);
    return client;
  }

  /** Subscribes `sub`, publishes from `pub` and expects the message back. */
  async function roundTrip(sub: MqttClient, pub: MqttClient, payload: string): Promise<void> {
    const t = topic();
    await withTimeout(sub.subscribeAsync(t, { qos: 1 }), 3000, "subscribe");
    const received = onceEvent<[string, Buffer]>(sub, "message", 3000);
    await withTimeout(pub.publishAsync(t, payload, { qos: 1 }), 3000, "publish");
    const [gotTopic, gotPayload] = await received;
    expect(gotTopic).to.equal(t);
    expect(gotPayload.toString()).to.equal(payload);
  }

  before(async function () {
    ({ expect } = await import("chai"));
  });

  afterEach(async function () {
    const ending = clients.splice(0).map((c) => withTimeout(c.endAsync(true), 2000, "mqtt end"));
    await Promise.all(ending);
  });

  after(async function () {
    await cleanupTmp();
  });

  describe("util", function () {
    it("waitFor resolves once the predicate holds and rejects with a clear message", async function () {
      let n = 0;
      await waitFor(() => ++n >= 3, { intervalMs: 1 });
      expect(n).to.equal(3);
      const err = await waitFor(() => false, { timeoutMs: 30, message: "the moon" }).then(
        () => null,
        (e: Error) => e,
      );
      expect(err?.message).to.match(/timed out after 30 ms waiting for the moon/);
    });

    it("withTimeout and onceEvent are bounded", async function () {
      expect(await withTimeout(Promise.resolve(7), 100, "x")).to.equal(7);
      const never = new Promise<never>(() => undefined);
      const err = await withTimeout(never, 20, "never").then(
        () => null,
        (e: Error) => e,
      );
      expect(err?.message).to.equal("never timed out after 20 ms");

      const server = net.createServer();
      const listening = onceEvent<[]>(server, "listening");
      server.listen(0, "127.0.0.1");
      expect(await listening).to.deep.equal([]);
      await new Promise<void>((resolve) => server.close(() => resolve()));
      const timeout = await onceEvent(server, "nope", 20).then(
        () => null,
        (e: Error) => e,
      );
      expect(timeout?.message).to.equal('event "nope" not emitted within 20 ms');
      expect(server.listenerCount("nope")).to.equal(0);
    });

    it("freePort and tmpDir", async function () {
      const port = await freePort();
      expect(port).to.be.within(1024, 65535);
      const dir = await tmpDir("support-test-");
      expect(existsSync(dir)).to.equal(true);
      await cleanupTmp();
      expect(existsSync(dir)).to.equal(false);
    });
  });

  describe("mosquitto", function () {
    let broker: MosquittoHandle;

    before(async function () {
      broker = await startMosquitto({ websockets: true });
    });

    after(async function () {
      await broker?.stop();
    });

    it("starts on an ephemeral loopback port", function () {
      expect(broker.port).to.not.equal(1883);
      expect(broker.url).to.equal(`mqtt://127.0.0.1:${broker.port}`);
      expect(broker.wsUrl).to.equal(`ws://127.0.0.1:${broker.wsPort}`);
      expect(isAlive(broker.pid)).to.equal(true);
      expect(broker.logs()).to.match(/mosquitto version \S+ running/);
    });

    it("round-trips between an MQTT 5 and an MQTT 3.1.1 client", async function () {
      const v5 = await connect(broker.url, { protocolVersion: 5 });
      const v4 = await connect(broker.url, { protocolVersion: 4 });
      await roundTrip(v5, v4, "from v4");
      await roundTrip(v4, v5, "from v5");
    });

    it("accepts MQTT over WebSocket", async function () {
      const ws = await connect(broker.wsUrl!, { protocolVersion: 4 });
      const tcp = await connect(broker.url, { protocolVersion: 5 });
      await roundTrip(ws, tcp, "over ws");
    });

    it("kill + restart keeps the port and a client reconnects and resubscribes", async function () {
      const sub = await connect(broker.url, { protocolVersion: 5, reconnectPeriod: 100 });
      const pub = await connect(broker.url, { protocolVersion: 4, reconnectPeriod: 100 });
      const t = topic();
      await sub.subscribeAsync(t, { qos: 1 });

      const oldPid = broker.pid;
      const closed = onceEvent(sub, "close");
      await broker.kill();
      expect(broker.running).to.equal(false);
      expect(isAlive(oldPid)).to.equal(false);
      await closed;

      const subBack = onceEvent(sub, "connect", 5000);
      const pubBack = onceEvent(pub, "connect", 5000);
      const port = broker.port;
      await broker.restart();
      expect(broker.port).to.equal(port);
      expect(broker.pid).to.not.equal(oldPid);
      await Promise.all([subBack, pubBack]);

      // MQTT.js re-sends its subscriptions after reconnecting (resubscribe: true);
      // publish until the re-subscription is in place.
      let got: string | undefined;
      sub.on("message", (_t: string, p: Buffer) => (got = p.toString()));
      await waitFor(
        async () => {
          if (got === undefined) await pub.publishAsync(t, "after restart", { qos: 1 });
          return got !== undefined;
        },
        { intervalMs: 100, message: "message after restart" },
      );
      expect(got).to.equal("after restart");
    });

    it("stop() terminates the process", async function () {
      const other = await startMosquitto();
      const pid = other.pid;
      await other.stop();
      expect(other.running).to.equal(false);
      expect(isAlive(pid)).to.equal(false);
      await other.stop(); // idempotent
    });

    it("persistence keeps retained messages across stop + restart", async function () {
      const persistent = await startMosquitto({ persistence: true });
      try {
        const t = topic();
        const pub = await connect(persistent.url, { protocolVersion: 4 });
        await pub.publishAsync(t, "kept", { qos: 1, retain: true });
        await persistent.stop(); // SIGTERM: mosquitto saves its database
        expect(existsSync(path.join(path.dirname(persistent.configPath), "mosquitto.db"))).to.equal(
          true,
        );
        await persistent.restart();
        const sub = await connect(persistent.url, { protocolVersion: 5 });
        const received = onceEvent<[string, Buffer]>(sub, "message", 3000);
        await sub.subscribeAsync(t, { qos: 1 });
        const [, payload] = await received;
        expect(payload.toString()).to.equal("kept");
      } finally {
        await persistent.stop();
      }
    });

    it("rejects clearly when an explicit port is already taken", async function () {
      const blocker = net.createServer();
      const port = await freePort();
      await new Promise<void>((resolve) => blocker.listen(port, "127.0.0.1", resolve));
      try {
        const err = await startMosquitto({ port }).then(
          (h) => h.stop().then(() => null),
          (e: Error) => e,
        );
        expect(err?.message).to.match(/address already in use/i);
      } finally {
        await new Promise<void>((resolve) => blocker.close(() => resolve()));
      }
    });
  });

  describe("redis", function () {
    let redis: RedisHandle;

    before(async function () {
      redis = await startRedis();
    });

    after(async function () {
      await redis?.stop();
    });

    it("answers PING, and again after kill + restart on the same port", async function () {
      expect(redis.port).to.not.equal(6379);
      expect(redis.url).to.equal(`redis://127.0.0.1:${redis.port}`);
      expect(await redisPing(redis.port)).to.equal("+PONG");

      const oldPid = redis.pid;
      await redis.kill();
      expect(isAlive(oldPid)).to.equal(false);
      const down = await redisPing(redis.port).then(
        () => null,
        (e: Error) => e,
      );
      expect(down).to.be.instanceOf(Error);

      const port = redis.port;
      await redis.restart();
      expect(redis.port).to.equal(port);
      expect(redis.pid).to.not.equal(oldPid);
      expect(await redisPing(redis.port)).to.equal("+PONG");
    });
  });

  describe("aedes", function () {
    let aedes: AedesHandle;

    before(async function () {
      aedes = await startAedes();
    });

    after(async function () {
      await aedes?.close();
    });

    it("round-trips with MQTT 3.1.1 clients", async function () {
      const a = await connect(aedes.url, { protocolVersion: 4 });
      const b = await connect(aedes.url, { protocolVersion: 4 });
      await roundTrip(a, b, "via aedes");
    });

    it("refuses an MQTT 5 CONNECT", async function () {
      // Observed with aedes 1.2.0 + MQTT.js 5.16: aedes answers the v5 CONNECT
      // with a 2-byte (3.1.1-style) CONNACK, return code 1, and closes the
      // socket; broker emits "connectionError" with Error("unacceptable protocol
      // version"). MQTT.js reads it as reasonCode 1 and emits on the client:
      //   "error": ErrorWithReasonCode { name: "ErrorWithReasonCode", code: 1,
      //            message: "Connection refused: Unacceptable protocol version" }
      //   then "close". It does NOT reconnect (CONNACK refusals suppress
      //   reconnects unless reconnectOnConnackError is set); client.connected
      //   stays false and the client is not ended. mqtt.connectAsync() rejects
      //   with that same error (code 1) and ends the client.
      // ErrorWithReasonCode is not exported by "mqtt": match on code === 1.
      const brokerError = onceEvent<[unknown, Error]>(aedes.broker, "connectionError");
      const client = mqtt.connect(aedes.url, {
        protocolVersion: 5,
        reconnectPeriod: 100,
        connectTimeout: 3000,
      });
      clients.push(client);
      const closed = onceEvent(client, "close");
      const [err] = await onceEvent<[Error & { code?: number }]>(client, "error");
      expect(err.name).to.equal("ErrorWithReasonCode");
      expect(err.code).to.equal(1);
      expect(err.message).to.equal("Connection refused: Unacceptable protocol version");
      await closed;
      expect(client.connected).to.equal(false);
      expect(client.reconnecting).to.equal(false);
      const [, brokerErr] = await brokerError;
      expect(brokerErr.message).to.equal("unacceptable protocol version");

      const rejected = await withTimeout(
        mqtt.connectAsync(aedes.url, { protocolVersion: 5, connectTimeout: 3000 }),
        5000,
        "connectAsync v5 to aedes",
      ).then(
        (c) => {
          clients.push(c);
          return null;
        },
        (e: Error & { code?: number }) => e,
      );
      expect(rejected?.code).to.equal(1);
      expect(rejected?.message).to.equal("Connection refused: Unacceptable protocol version");
    });

    it("restarts on the same port", async function () {
      const port = aedes.port;
      const before = aedes.broker;
      await aedes.restart();
      expect(aedes.port).to.equal(port);
      expect(aedes.broker).to.not.equal(before);
      const a = await connect(aedes.url, { protocolVersion: 4 });
      const b = await connect(aedes.url, { protocolVersion: 4 });
      await roundTrip(a, b, "after aedes restart");
    });
  });
});
