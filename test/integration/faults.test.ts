/**
 * Fault tests (issue 2, points 2, 6, 9, 10 and "Fault tests"): a real Socket.IO server with the
 * bridge, real socket.io-client sockets and a private Mosquitto (ephemeral loopback port) that is
 * killed, stopped and restarted on the same port. Every wait is bounded; "nothing happened" is
 * proven with a barrier message, never with a sleep. See test/support/harness.ts for the glossary.
 *
 * Set FAULTS_REPORT=1 to print the measured counts of each test.
 */
import net from "node:net";
import type { AddressInfo } from "node:net";
import { expect } from "chai";
import mqtt from "mqtt";
import type { MqttClient } from "mqtt";
import type { MqttBridge, MqttBridgeOptions } from "../../lib";
import { mqttBridge } from "../../lib";
import type { Harness } from "../support/harness";
import { collect, createHarness, request } from "../support/harness";
import type { MosquittoHandle } from "../support/mosquitto";
import { startMosquitto } from "../support/mosquitto";
import { freePort, onceEvent, waitFor, withTimeout } from "../support/util";
import type { AckLike, Outcome } from "../support/faults";
import { FAST_RECONNECT, OPEN, noop, reporter, target, uniqueTopics } from "../support/faults";
import { Stream, nextEvent, settle, tally, useCleanups } from "../support/faults";

const uniq = uniqueTopics("faults");
const report = reporter("faults");

/** How `bridge.ready` settled within `ms`: "resolved", the rejection, or "pending". */
async function readyOutcome(
  bridge: MqttBridge,
  ms: number,
): Promise<"resolved" | "pending" | Error> {
  try {
    await withTimeout(bridge.ready, ms, "bridge.ready");
    return "resolved";
  } catch (err) {
    if (err instanceof Error && err.message.startsWith("bridge.ready timed out")) return "pending";
    return err as Error;
  }
}

describe("fault tests (Mosquitto killed, restarted, hostile clients, close)", function () {
  this.timeout(20_000);

  const { cleanups, broker } = useCleanups(15_000, 5000);

  async function setup(b: MosquittoHandle, opts: MqttBridgeOptions): Promise<Harness> {
    const h = await createHarness(target(b), opts);
    cleanups.push(() => h.close());
    return h;
  }

  /** A device from the harness that survives broker restarts (an 'error' listener). */
  async function device(h: Harness, opts: Parameters<Harness["device"]>[0] = {}) {
    const d = await h.device({ reconnectPeriod: 100, ...opts });
    d.on("error", noop); // ECONNREFUSED while the broker is down
    return d;
  }

  function bridge(opts: MqttBridgeOptions): MqttBridge {
    const b = mqttBridge(opts);
    b.on("error", noop);
    cleanups.push(() => b.close());
    return b;
  }

  describe("broker killed (SIGKILL) mid-stream and restarted on the same port", () => {
    it("goes offline, refuses promptly, restores subscriptions and delivers again in order; no publish hangs", async function () {
      this.timeout(30_000);
      const ackTimeoutMs = 2000;
      const b = await broker();
      const port = b.port;
      const h = await setup(b, { ...OPEN, ackTimeoutMs, reconnect: FAST_RECONNECT });
      const t = uniq();
      const c = await h.client();
      const box = collect<number>(c);
      expect((await request(c, "mqtt.subscribe", { filter: `${t}/stream`, qos: 1 })).ok).to.equal(
        true,
      );
      expect((await request(c, "mqtt.subscribe", `${t}/other/+`)).ok).to.equal(true);
      const subsBefore = h.bridge.stats().brokerSubscriptions;
      expect(subsBefore).to.equal(2);

      const d = await device(h);
      const stream = new Stream(d, `${t}/stream`);
      const streamed = () => box.messages.filter((m) => m.topic === `${t}/stream`);
      await waitFor(() => streamed().length >= 20, {
        message: "20 stream messages before the kill",
      });

      // QoS 1 client publishes around the kill: 50 fired without awaiting just before the broker
      // is frozen (SIGSTOP), then 50 more that surely wait for a PUBACK when it is killed (SIGKILL)
      const fire = (from: number) =>
        Array.from({ length: 50 }, (_, i) =>
          settle(
            c,
            "mqtt.publish",
            [{ topic: `${t}/up`, payload: from + i, qos: 1 }],
            ackTimeoutMs + 3000,
          ),
        );
      const base = h.bridge.stats().publishes.received;
      const racing = fire(0);
      process.kill(b.pid, "SIGSTOP");
      const frozen = fire(50);
      await waitFor(() => h.bridge.stats().publishes.received === base + 100, {
        message: "the bridge handled the 100 publishes",
      });
      await waitFor(() => h.bridge.stats().inFlight >= 50, {
        message: "the frozen broker's 50 publishes in flight",
      });
      const offline = nextEvent(h.bridge, "offline");
      await b.kill("SIGKILL");
      await offline;
      const receivedBeforeKill = streamed().length;
      expect(h.bridge.connected).to.equal(false);
      expect(h.bridge.stats().connected).to.equal(false);
      expect(h.bridge.stats().brokerSubscriptions).to.equal(0);

      // while down: publishes and new subscriptions are refused at once, not after a timeout
      const refusedPublishes: Outcome[] = [];
      for (const qos of [0, 1, 2]) {
        refusedPublishes.push(
          await settle(
            c,
            "mqtt.publish",
            [{ topic: `${t}/up`, payload: "down", qos }],
            ackTimeoutMs / 2,
          ),
        );
      }
      for (const o of refusedPublishes) {
        expect(o.hung, "publish while down answered before ackTimeoutMs/2").to.equal(false);
        expect(o.res).to.deep.include({ ok: false });
        expect(o.res!.error!.code).to.equal("BROKER_UNAVAILABLE");
      }
      const newSub = await settle(c, "mqtt.subscribe", [`${t}/new/#`], ackTimeoutMs / 2);
      expect(newSub.hung, "subscribe while down answered before ackTimeoutMs/2").to.equal(false);
      expect(newSub.res!.error!.code).to.equal("BROKER_UNAVAILABLE");
      const server = h.io.sockets.sockets.get(c.id!)!;
      expect(server.rooms.has(h.bridge.room(`${t}/new/#`))).to.equal(false);

      // restart on the same port; the bridge reconnects and restores both subscriptions
      const reconnected = nextEvent(h.bridge, "connect", 10_000);
      await b.restart();
      expect(b.port).to.equal(port);
      await reconnected;
      await waitFor(() => h.bridge.stats().brokerSubscriptions === subsBefore, {
        message: "subscriptions restored",
      });
      expect(h.bridge.stats()).to.deep.include({ connects: 2, disconnects: 1 });

      // every device message published from now on reaches the client, in order
      const mark = stream.next;
      stream.stopAt = mark + 30;
      await withTimeout(stream.done, 10_000, "device stream finished");
      expect(stream.error, "device stream error").to.equal(undefined);
      await waitFor(() => streamed().some((m) => m.payload === mark + 29), {
        timeoutMs: 5000,
        message: "the stream's last message after the restart",
      });
      const got = streamed().map((m) => m.payload);
      for (let i = 1; i < got.length; i++) {
        expect(got[i], `order at ${i}: ${got[i - 1]} then ${got[i]}`).to.be.at.least(got[i - 1]);
      }
      const tail = got.slice(got.indexOf(mark));
      expect(tail).to.deep.equal(Array.from({ length: 30 }, (_, i) => mark + i));
      expect(stream.next).to.equal(mark + 30);

      // the publishes around the kill: each answered within ackTimeoutMs + margin, none hangs
      const racingOutcomes = await Promise.all(racing);
      const frozenOutcomes = await Promise.all(frozen);
      const outcomes = [...racingOutcomes, ...frozenOutcomes];
      const counts = tally(outcomes);
      expect(counts.hung ?? 0, "hung publishes").to.equal(0);
      for (const o of outcomes) {
        if (!o.res!.ok) expect(o.res!.error!.code).to.be.oneOf(["BROKER_UNAVAILABLE", "TIMEOUT"]);
      }
      expect(h.bridge.stats().inFlight).to.equal(0);
      const unique = new Set(got);
      report("kill/restart", {
        firedBeforeFreeze: { sent: racingOutcomes.length, ...tally(racingOutcomes) },
        inFlightAtKill: { sent: frozenOutcomes.length, ...tally(frozenOutcomes) },
        maxAckMs: Math.round(Math.max(...outcomes.map((o) => o.ms))),
        refusedWhileDown: refusedPublishes.map(
          (o) => `${o.res?.error?.code} in ${Math.round(o.ms)} ms`,
        ),
        stream: {
          published: stream.next,
          received: got.length,
          distinct: unique.size,
          lostDuringOutage: stream.next - unique.size,
          duplicates: got.length - unique.size,
          receivedBeforeKill,
        },
      });
    });
  });

  describe("broker killed and not restarted", () => {
    it("answers every in-flight publish with TIMEOUT after ackTimeoutMs, none hangs", async function () {
      const ackTimeoutMs = 500;
      const b = await broker();
      const h = await setup(b, { ...OPEN, ackTimeoutMs, reconnect: FAST_RECONNECT });
      const c = await h.client();
      const t = uniq();
      process.kill(b.pid, "SIGSTOP"); // frozen: no PUBACK will come
      const pending = Array.from({ length: 20 }, (_, i) =>
        settle(c, "mqtt.publish", [{ topic: `${t}/x`, payload: i, qos: 1 }], ackTimeoutMs + 2000),
      );
      await waitFor(() => h.bridge.stats().inFlight === 20, { message: "20 publishes in flight" });
      const offline = nextEvent(h.bridge, "offline");
      await b.kill("SIGKILL");
      await offline;
      const outcomes = await Promise.all(pending);
      const counts = tally(outcomes);
      expect(counts).to.deep.equal({ TIMEOUT: 20 });
      expect(h.bridge.stats().rejected.TIMEOUT).to.equal(20);
      expect(h.bridge.stats().inFlight).to.equal(0);
      report("in flight, broker stays down", {
        sent: 20,
        ...counts,
        maxAckMs: Math.round(Math.max(...outcomes.map((o) => o.ms))),
      });
    });

    it("answers a re-subscribe to a filter the socket holds while the broker is down", async function () {
      const ackTimeoutMs = 1000;
      const b = await broker();
      const h = await setup(b, { ...OPEN, ackTimeoutMs, reconnect: FAST_RECONNECT });
      const c = await h.client();
      const filter = `${uniq()}/held`;
      expect((await request(c, "mqtt.subscribe", filter)).ok).to.equal(true);
      const offline = nextEvent(h.bridge, "offline");
      await b.kill("SIGKILL");
      await offline;
      for (const arg of [filter, { filter, qos: 1 }]) {
        const o = await settle(c, "mqtt.subscribe", [arg], ackTimeoutMs + 1000);
        expect(o.hung, `re-subscribe ${JSON.stringify(arg)} answered`).to.equal(false);
        expect(o.res!.error?.code).to.be.oneOf(["BROKER_UNAVAILABLE", "TIMEOUT"]);
      }
    });
  });

  describe("reconnect backoff", () => {
    it("spaces reconnect attempts with a growing, capped delay", async function () {
      const b = await broker();
      const maxDelayMs = 400;
      const br = bridge({ mqtt: b.url, reconnect: { minDelayMs: 50, maxDelayMs } });
      await withTimeout(br.ready, 5000, "bridge connected");
      const stamps: number[] = [];
      const sevenAttempts = withTimeout(
        new Promise<void>((resolve) => {
          const on = (): void => {
            stamps.push(performance.now());
            if (stamps.length < 7) return;
            br.off("reconnect", on);
            resolve();
          };
          br.on("reconnect", on);
        }),
        8000,
        "7 reconnect attempts",
      );
      const offline = nextEvent(br, "offline");
      await b.kill("SIGKILL");
      await offline;
      await sevenAttempts;
      expect(br.connected).to.equal(false);
      const gaps = stamps.slice(1).map((s, i) => Math.round(s - stamps[i]));
      report("reconnect gaps (ms)", gaps);
      expect(gaps).to.have.length(6);
      expect(gaps[5]).to.be.greaterThan(gaps[0]);
      expect(gaps[2]).to.be.greaterThan(gaps[0]);
      for (const g of gaps) {
        expect(g).to.be.at.least(30);
        expect(g).to.be.at.most(maxDelayMs * 1.2 + 150);
      }
      expect(Math.max(...gaps)).to.be.at.least(maxDelayMs * 0.8 - 50); // the cap is reached
      await withTimeout(br.close(), 3000, "close");
    });
  });

  describe("offline queue", () => {
    it("queues up to limits.offlineQueue publishes while down, refuses the rest at once", async function () {
      // persistence: the device's session (and the messages queued for it) survives the restart,
      // so it receives the bridge's queued publishes whoever reconnects first
      const b = await broker({ persistence: true });
      const h = await setup(b, {
        ...OPEN,
        limits: { offlineQueue: 2 },
        ackTimeoutMs: 5000,
        reconnect: FAST_RECONNECT,
      });
      const t = uniq();
      const d = await device(h, {
        clean: false,
        clientId: `dev-${t}`,
        properties: { sessionExpiryInterval: 60 },
      });
      await d.subscribeAsync(`${t}/q`, { qos: 1 });
      const got: string[] = [];
      d.on("message", (topic, payload) => {
        if (topic === `${t}/q`) got.push(payload.toString());
      });
      const c = await h.client();

      const offline = nextEvent(h.bridge, "offline");
      await b.stop(); // SIGTERM: Mosquitto saves its persistence
      await offline;
      const first = settle(c, "mqtt.publish", [{ topic: `${t}/q`, payload: "one", qos: 1 }], 9000);
      const second = settle(c, "mqtt.publish", [{ topic: `${t}/q`, payload: "two", qos: 1 }], 9000);
      const third = await settle(
        c,
        "mqtt.publish",
        [{ topic: `${t}/q`, payload: "three", qos: 1 }],
        1000,
      );
      expect(third.hung, "third publish answered at once").to.equal(false);
      expect(third.res!.error!.code).to.equal("BROKER_UNAVAILABLE");
      // the third ack came after the first two were handled: both wait for the broker
      expect(h.bridge.stats().inFlight).to.equal(2);
      expect(b.running).to.equal(false);

      const reconnected = nextEvent(h.bridge, "connect", 10_000);
      await b.restart();
      await reconnected;
      const acks = await Promise.all([first, second]);
      expect(acks.map((a) => a.res)).to.deep.equal([{ ok: true }, { ok: true }]);
      await waitFor(() => got.length >= 2, { message: "device received the queued publishes" });
      expect(got).to.deep.equal(["one", "two"]);
      expect(h.bridge.stats().rejected.BROKER_UNAVAILABLE).to.equal(1);
      expect(h.bridge.stats().inFlight).to.equal(0);
      report("offline queue", { acks: acks.map((a) => a.res), third: third.res, device: got });
    });
  });

  describe("hostile and flooding sockets (shared broker)", () => {
    let shared: MosquittoHandle;
    before(async () => {
      shared = await startMosquitto();
    });
    after(async () => shared.stop());

    it("answers 1,000 malformed events with codes and leaves the other sockets unaffected", async function () {
      this.timeout(30_000);
      const PAYLOAD_LIMIT = 4096;
      const h = await setup(shared, {
        ...OPEN,
        limits: { payloadBytes: PAYLOAD_LIMIT, publishRate: 100_000, publishBurst: 100_000 },
      });
      const t = uniq();
      const T = `${t}/bad`; // a valid topic: each case below is malformed in one other way
      const [a, bSock] = [await h.client(), await h.client()];
      const boxB = collect<number | string>(bSock);
      expect((await request(bSock, "mqtt.subscribe", { filter: `${t}/ok/#`, qos: 1 })).ok).to.equal(
        true,
      );
      const d = await device(h);

      const big = "x".repeat(65_536);
      const manyUserProperties: Record<string, string> = {};
      for (let i = 0; i < 50_000; i++) manyUserProperties[`u${i}`] = "v";
      const json = (s: string): unknown => JSON.parse(s) as unknown; // own "__proto__" keys
      const badPublish: unknown[] = [
        null,
        0,
        42,
        -1.5,
        true,
        "a/b",
        [],
        [1, 2],
        [{ topic: T, payload: 1 }],
        {},
        { topic: "", payload: 1 },
        { topic: "a/#", payload: 1 },
        { topic: "a/+/b", payload: 1 },
        { topic: "#", payload: 1 },
        { topic: "a\u0000b", payload: 1 },
        { topic: "a/\uD800", payload: 1 },
        { topic: "\uDC00/x", payload: 1 },
        { topic: big, payload: 1 },
        { topic: "a/".repeat(40) + "b", payload: 1 },
        { topic: 42, payload: 1 },
        { topic: null, payload: 1 },
        { topic: ["a"], payload: 1 },
        { topic: { toString: "a" }, payload: 1 },
        { topic: T, payload: 1, qos: 3 },
        { topic: T, payload: 1, qos: -1 },
        { topic: T, payload: 1, qos: "1" },
        { topic: T, payload: 1, qos: 1.5 },
        { topic: T, payload: 1, qos: null },
        { topic: T, payload: 1, retain: "true" },
        { topic: T, payload: 1, retain: 1 },
        { topic: T },
        { topic: T, payload: "\uDC00" },
        { topic: T, payload: "x".repeat(PAYLOAD_LIMIT + 1) },
        { topic: T, payload: new Uint8Array(PAYLOAD_LIMIT + 1) },
        { topic: T, payload: 1, properties: { topicAlias: 1 } },
        { topic: T, payload: 1, properties: { subscriptionIdentifier: 7 } },
        { topic: T, payload: 1, properties: "p" },
        { topic: T, payload: 1, properties: [] },
        { topic: T, payload: 1, properties: { userProperties: manyUserProperties } },
        { topic: T, payload: 1, properties: { userProperties: { a: 1 } } },
        { topic: T, payload: 1, properties: { userProperties: "a" } },
        { topic: T, payload: 1, properties: { messageExpiryInterval: -1 } },
        { topic: T, payload: 1, properties: { responseTopic: "r/#" } },
        { topic: T, payload: 1, properties: { correlationData: "c" } },
        { topic: T, payload: 1, properties: { contentType: 5 } },
        { topic: T, payload: 1, properties: { payloadFormatIndicator: "yes" } },
        {
          topic: T,
          payload: new Uint8Array([0xff, 0xfe]),
          properties: { payloadFormatIndicator: true },
        },
        json(`{"__proto__":{"topic":${JSON.stringify(T)}},"payload":1}`),
        json(
          `{"topic":${JSON.stringify(T)},"payload":1,"properties":{"__proto__":{"contentType":"x"}}}`,
        ),
        json(
          `{"topic":${JSON.stringify(T)},"payload":1,"properties":{"userProperties":{"__proto__":1}}}`,
        ),
      ];
      const badFilter: unknown[] = [
        "",
        "a/#/b",
        "a+",
        "+a/b",
        "#/a",
        "$share/g/x",
        "$share/g",
        "$queue/x",
        "a\u0000b",
        "\uD800",
        big,
        "a/".repeat(40) + "b",
        null,
        42,
        true,
        [],
        ["a"],
        {},
        { filter: "a", qos: 3 },
        { filter: "a", qos: -1 },
        { filter: "a", qos: "1" },
        { filter: "a", nl: true },
        { filter: 42 },
        { filter: "" },
        json(`{"__proto__":{"filter":"a"}}`),
        json(`{"filter":"a","__proto__":{"qos":1}}`),
      ];
      const badUnsubscribe: unknown[] = [
        null,
        42,
        "",
        "a/#/b",
        "$share/g/x",
        "\uD800",
        { filter: "a" },
        [],
        big,
      ];
      const NON_FUNCTIONS: unknown[] = [42, "ack", { cb: true }, null];
      const ALLOWED = [
        "INVALID_ARGUMENT",
        "INVALID_TOPIC",
        "INVALID_FILTER",
        "PAYLOAD_TOO_LARGE",
        "RATE_LIMITED",
        "FORBIDDEN",
      ];

      const N = 1000;
      const BATCH = 100;
      const DEVICE_PER_BATCH = 10;
      const outcomes: Outcome[] = [];
      const byEvent: Record<string, number> = {};
      let withoutAck = 0;
      let published = 0;
      const counters = { publish: 0, subscribe: 0, unsubscribe: 0 };
      for (let start = 0; start < N; start += BATCH) {
        const batch: Promise<Outcome>[] = [];
        for (let i = start; i < start + BATCH; i++) {
          const kind = i % 5 < 3 ? "publish" : i % 5 === 3 ? "subscribe" : "unsubscribe";
          const list =
            kind === "publish" ? badPublish : kind === "subscribe" ? badFilter : badUnsubscribe;
          const arg = list[counters[kind]++ % list.length];
          const event = `mqtt.${kind}`;
          byEvent[event] = (byEvent[event] ?? 0) + 1;
          if (i % 50 === 0) {
            batch.push(settle(a, event, [], 10_000)); // no argument at all, only the callback
          } else if (i % 50 === 25) {
            a.emit(event); // nothing at all
            withoutAck++;
          } else if (i % 10 === 3) {
            a.emit(event, arg); // no ack callback
            withoutAck++;
          } else if (i % 10 === 7) {
            a.emit(event, arg, NON_FUNCTIONS[i % NON_FUNCTIONS.length]); // a non-function last
            withoutAck++;
          } else {
            batch.push(settle(a, event, [arg], 10_000));
          }
        }
        for (let k = 0; k < DEVICE_PER_BATCH; k++) {
          d.publish(`${t}/ok/seq`, String(published++), { qos: 1 });
        }
        outcomes.push(...(await Promise.all(batch)));
      }

      // every event with a callback got an error code of API.md, none hung
      const counts = tally(outcomes);
      expect(counts.hung ?? 0, "hung").to.equal(0);
      expect(counts.ok ?? 0, "accepted").to.equal(0);
      for (const o of outcomes) {
        expect(o.res).to.have.property("ok", false);
        expect(o.res!.error!.code).to.be.oneOf(ALLOWED);
      }
      // B got every device message, in order (the device publishes end with a barrier)
      await d.publishAsync(`${t}/ok/barrier`, "barrier", { qos: 1 });
      await waitFor(() => boxB.messages.some((m) => m.topic === `${t}/ok/barrier`), {
        timeoutMs: 10_000,
        message: "barrier message at B",
      });
      const seqAtB = boxB.messages.filter((m) => m.topic === `${t}/ok/seq`).map((m) => m.payload);
      expect(seqAtB).to.deep.equal(Array.from({ length: published }, (_, i) => i));

      // the hostile socket is still connected and served; the broker connection never dropped
      expect(a.connected).to.equal(true);
      const valid = await request(a, "mqtt.publish", {
        topic: `${t}/ok/final`,
        payload: "fin",
        qos: 1,
      });
      expect(valid).to.deep.equal({ ok: true });
      await waitFor(() => boxB.messages.some((m) => m.topic === `${t}/ok/final`), {
        message: "a valid publish from the hostile socket",
      });
      const stats = h.bridge.stats();
      expect(stats.connects).to.equal(1);
      expect(stats.disconnects).to.equal(0);
      expect(stats.connected).to.equal(true);
      // the last ack'd event was handled after every earlier one: the counters are complete
      expect(stats.noAckCallback).to.equal(withoutAck);
      const rejected = Object.values(stats.rejected).reduce((x, y) => x + y, 0);
      expect(rejected, "every malformed event refused").to.equal(N);
      expect(stats.publishes.received).to.equal(byEvent["mqtt.publish"] + 1);
      expect(({} as Record<string, unknown>).topic).to.equal(undefined); // no prototype pollution
      expect(({} as Record<string, unknown>).qos).to.equal(undefined);
      report("1,000 malformed", {
        sent: N,
        withAck: outcomes.length,
        withoutAck,
        byEvent,
        acks: counts,
        rejectedByCode: Object.fromEntries(Object.entries(stats.rejected).filter(([, n]) => n > 0)),
        noAckCallback: stats.noAckCallback,
        deviceMessagesAtB: seqAtB.length,
      });
    });

    it("a flooding socket does not slow the others", async function () {
      const h = await setup(shared, { ...OPEN, limits: { publishRate: 50, publishBurst: 50 } });
      const t = uniq();
      const [a, b, sub] = [await h.client(), await h.client(), await h.client()];
      const box = collect<number>(sub);
      expect((await request(sub, "mqtt.subscribe", `${t}/b`)).ok).to.equal(true);

      const FLOOD = 2000;
      const flood = Array.from({ length: FLOOD }, (_, i) =>
        settle(a, "mqtt.publish", [{ topic: `${t}/a`, payload: i }], 15_000),
      );
      const bAcks: AckLike[] = [];
      for (let i = 0; i < 20; i++) {
        bAcks.push(
          await request(b, "mqtt.publish", { topic: `${t}/b`, payload: i, qos: 1 }, 10_000),
        );
      }
      expect(bAcks).to.deep.equal(Array.from({ length: 20 }, () => ({ ok: true })));
      const outcomes = await Promise.all(flood);
      const counts = tally(outcomes);
      expect(counts.hung ?? 0).to.equal(0);
      expect(Object.keys(counts).sort()).to.deep.equal(["RATE_LIMITED", "ok"]);
      expect(counts.RATE_LIMITED).to.be.at.least(1900);
      await waitFor(() => box.messages.length >= 20, {
        message: "B's 20 messages at the subscriber",
      });
      expect(box.messages.map((m) => m.payload)).to.deep.equal(
        Array.from({ length: 20 }, (_, i) => i),
      );
      const stats = h.bridge.stats();
      expect(stats.rejected.RATE_LIMITED).to.equal(counts.RATE_LIMITED);
      expect(stats.publishes.received).to.equal(FLOOD + 20);
      report("flood", {
        sent: FLOOD,
        ...counts,
        bAcked: bAcks.length,
        delivered: box.messages.length,
      });
    });

    it("close() while connected: prompt, idempotent, connected false afterwards", async function () {
      const h = await setup(shared, OPEN);
      const c = await h.client();
      expect((await request(c, "mqtt.subscribe", `${uniq()}/x`)).ok).to.equal(true);
      await withTimeout(Promise.all([h.bridge.close(), h.bridge.close()]), 3000, "close x2");
      await withTimeout(h.bridge.close(), 3000, "close again");
      expect(h.bridge.connected).to.equal(false);
      expect(h.bridge.stats().connected).to.equal(false);
    });

    it("close() leaves an MQTT client passed in open, and ends it with closeClient", async function () {
      for (const closeClient of [false, true]) {
        const client = await borrowedClient();
        const listeners = () =>
          ["connect", "message", "offline", "reconnect", "close"].map((e) =>
            client.listenerCount(e as "close"),
          );
        const before = listeners();
        const br = bridge({ ...OPEN, mqtt: client, closeClient });
        await withTimeout(Promise.all([br.close(), br.close()]), 3000, "close x2");
        expect(listeners(), "the bridge removed its listeners").to.deep.equal(before);
        if (closeClient) {
          expect(client.connected).to.equal(false);
          expect(client.disconnected).to.equal(true);
        } else {
          expect(client.connected, "a client passed in stays open").to.equal(true);
          await withTimeout(client.endAsync(), 3000, "end the client");
        }
      }
    });

    /** A connected MQTT client of the test's own, to pass to a bridge; ended after the test. */
    async function borrowedClient(): Promise<MqttClient> {
      const client = await withTimeout(
        mqtt.connectAsync(shared.url, { protocolVersion: 5, reconnectPeriod: 100 }),
        5000,
        "client connected",
      );
      client.on("error", noop);
      cleanups.push(() => client.endAsync(true));
      return client;
    }

    it("bridge.connected is false after close() also with a client passed in", async function () {
      const client = await borrowedClient();
      const br = bridge({ ...OPEN, mqtt: client });
      await withTimeout(br.close(), 3000, "close");
      expect(client.connected).to.equal(true);
      expect(br.connected).to.equal(false);
    });

    it("bridge.ready resolves for a client passed in that is connected already", async function () {
      const client = await borrowedClient();
      const br = bridge({ ...OPEN, mqtt: client });
      expect(await readyOutcome(br, 2000)).to.equal("resolved");
      expect(br.connected).to.equal(true);
    });

    it("close() leaves no listener on an MQTT client passed in", async function () {
      const client = await borrowedClient();
      const before = client.listenerCount("error");
      const br = bridge({ ...OPEN, mqtt: client });
      await withTimeout(br.close(), 3000, "close");
      expect(client.listenerCount("error")).to.equal(before);
    });
  });

  describe("close() against a dead or silent broker", () => {
    it("resolves promptly and idempotently while reconnecting to a dead broker", async function () {
      const b = await broker();
      const br = bridge({ ...OPEN, mqtt: b.url, reconnect: FAST_RECONNECT });
      await withTimeout(br.ready, 5000, "bridge connected");
      const offline = nextEvent(br, "offline");
      await b.kill("SIGKILL");
      await offline;
      await nextEvent(br, "reconnect", 3000); // it is reconnecting now
      await withTimeout(Promise.all([br.close(), br.close()]), 3000, "close x2");
      await withTimeout(br.close(), 3000, "close again");
      expect(br.connected).to.equal(false);
    });

    it("resolves promptly when nothing ever listened; ready rejects", async function () {
      const port = await freePort();
      const br = bridge({ ...OPEN, mqtt: `mqtt://127.0.0.1:${port}`, reconnect: FAST_RECONNECT });
      await nextEvent(br, "reconnect", 3000); // refused, retrying
      await withTimeout(Promise.all([br.close(), br.close()]), 3000, "close x2");
      await withTimeout(br.close(), 3000, "close again");
      expect(br.connected).to.equal(false);
      const ready = await readyOutcome(br, 1000);
      expect(ready).to.be.instanceOf(Error);
      expect((ready as Error & { code?: string }).code).to.equal("BROKER_UNAVAILABLE");
    });

    it("resolves promptly when the broker accepts TCP but never answers CONNECT", async function () {
      const accepted = new Set<net.Socket>();
      const server = net.createServer((s) => {
        accepted.add(s);
        s.on("data", noop); // swallow the CONNECT
        s.on("error", noop);
        s.on("close", () => accepted.delete(s));
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      cleanups.push(
        () =>
          new Promise<void>((resolve) => {
            for (const s of accepted) s.destroy();
            server.close(() => resolve());
          }),
      );
      const { port } = server.address() as AddressInfo;
      const connection = onceEvent<[net.Socket]>(server, "connection", 3000);
      const br = bridge({ ...OPEN, mqtt: `mqtt://127.0.0.1:${port}`, reconnect: FAST_RECONNECT });
      const [sock] = await connection;
      const sockClosed = onceEvent(sock, "close", 3000);
      await withTimeout(Promise.all([br.close(), br.close()]), 3000, "close x2");
      await withTimeout(br.close(), 3000, "close again");
      expect(br.connected).to.equal(false);
      await sockClosed; // the bridge dropped the half-open connection
      const ready = await readyOutcome(br, 1000);
      expect(ready).to.be.instanceOf(Error);
      expect((ready as Error & { code?: string }).code).to.equal("BROKER_UNAVAILABLE");
    });
  });
});
