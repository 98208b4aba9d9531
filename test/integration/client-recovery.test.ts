/**
 * The browser helper (lib/client.ts) recovers its subscriptions after a reconnect, against the
 * real bridge on a real Mosquitto: each restore names the position its handlers reached
 * (`since`), the handlers get what they missed once, in order, before the live messages, and
 * `onRestore` / `sub.recovered` say whether nothing was missed. Also 100 seeded drops while a
 * publisher sends 200 msg/s, within the history's window and beyond it.
 *
 * Glossary: "client" is the socket.io-client socket the helper runs on; "device" publishes to
 * Mosquitto; `s` is the sequence number a device puts in each payload, per topic.
 */
import { expect } from "chai";
import type { MqttClient } from "mqtt";
import type { ServerOptions } from "socket.io";
import type { Socket as ClientSocket } from "socket.io-client";
import { mqttClient } from "../../lib/client";
import type { BridgeMessage, MqttClientOptions } from "../../lib/client";
import type { MqttBridgeOptions } from "../../lib";
import type { Harness } from "../support/harness";
import { onMosquitto5 } from "../support/mosquitto-suite";
import { prng } from "../support/prng";
import { offline, online } from "../support/stream";
import { onceEvent, sleep, waitFor } from "../support/util";

/** What a handler keeps of each message. */
interface Got {
  topic: string;
  s: number;
  retain: boolean;
}

/** A handler that keeps what it gets. */
function inbox() {
  const got: Got[] = [];
  const handler = (m: BridgeMessage) =>
    got.push({ topic: m.topic, s: (m.payload as { s: number }).s, retain: m.retain });
  const of = (topic: string) => got.filter((g) => g.topic === topic).map((g) => g.s);
  return { got, handler, of };
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

describe("browser helper: recovery across reconnects (Mosquitto, MQTT 5)", function () {
  this.timeout(20_000);
  const suite = onMosquitto5("crc");
  const { uniq } = suite;

  /** A bridge, a device, and a client with the helper, whose restores are logged. */
  async function setup(
    opts: MqttBridgeOptions = {},
    helper: MqttClientOptions = {},
    ioOpts: Partial<ServerOptions> = {},
  ) {
    const allow = { subscribe: ["#"], publish: ["#"] };
    const h: Harness = await suite.setup({ allow, ...opts }, ioOpts);
    const subscribes: unknown[] = [];
    h.io.on("connection", (s) => s.on("mqtt.subscribe", (req: unknown) => subscribes.push(req)));
    const c = await h.client();
    const restores: [string, boolean][] = [];
    const onRestore = (filter: string, recovered: boolean) => restores.push([filter, recovered]);
    const mqtt = mqttClient(c, { onRestore, ...helper });
    const d = await h.device();
    return { h, c, d, mqtt, restores, subscribes };
  }

  /** Publishes `s` = from … to - 1 on `topic` at QoS 1; resolves once the bridge numbered them. */
  async function publish(h: Harness, d: MqttClient, topic: string, from: number, to: number) {
    const before = h.stats().recovery.offset;
    for (const s of range(from, to)) await d.publishAsync(topic, JSON.stringify({ s }), { qos: 1 });
    await waitFor(() => h.stats().recovery.offset >= before + (to - from), {
      message: `the bridge numbered ${topic} ${from} to ${to - 1}`,
    });
  }

  it("restores from the position reached: what was missed once, in order, then live; onRestore and sub.recovered say so", async () => {
    const t = uniq();
    const { h, c, d, mqtt, restores, subscribes } = await setup();
    const box = inbox();
    const sub = await mqtt.subscribe(`${t}/#`, box.handler);
    expect(sub.recovered).to.equal(undefined);
    await publish(h, d, `${t}/a`, 0, 10);
    await waitFor(() => box.got.length === 10, { message: "the first ten" });
    await offline(c);
    await publish(h, d, `${t}/a`, 10, 30); // held by the lingering broker subscription
    await online(c);
    await waitFor(() => restores.length === 1, { message: "the restore" });
    expect(restores).to.deep.equal([[`${t}/#`, true]]);
    expect(sub.recovered).to.equal(true);
    expect(subscribes[1]).to.have.nested.property("since.epoch", h.stats().recovery.epoch);
    await publish(h, d, `${t}/a`, 30, 40);
    await waitFor(() => box.got.length >= 40, { message: "all forty" });
    expect(box.of(`${t}/a`)).to.deep.equal(range(0, 40));
    expect(h.stats().recovery).to.include({ recovered: 1, failed: 0, replayed: 20 });
  });

  it("gives each handler of overlapping filters every message once", async () => {
    const t = uniq();
    const { h, c, d, mqtt, restores } = await setup();
    const all = inbox();
    const one = inbox();
    await mqtt.subscribe(`${t}/#`, all.handler);
    await mqtt.subscribe(`${t}/a`, one.handler);
    await publish(h, d, `${t}/a`, 0, 5);
    await offline(c);
    await publish(h, d, `${t}/a`, 5, 15);
    await publish(h, d, `${t}/b`, 0, 10);
    await online(c);
    await waitFor(() => restores.length === 2, { message: "both restores" });
    expect(restores.map(([, r]) => r)).to.deep.equal([true, true]);
    await publish(h, d, `${t}/a`, 15, 20);
    await waitFor(() => one.got.length >= 20 && all.got.length >= 30, { message: "everything" });
    expect(all.of(`${t}/a`)).to.deep.equal(range(0, 20));
    expect(all.of(`${t}/b`)).to.deep.equal(range(0, 10));
    expect(one.of(`${t}/a`)).to.deep.equal(range(0, 20));
    expect(one.got).to.have.length(20);
  });

  it("says recovered: false and hands over the retained state when the history lost some", async () => {
    const t = uniq();
    const { h, c, d, mqtt, restores } = await setup({ recovery: { maxMessages: 5 } });
    await d.publishAsync(`${t}/state`, JSON.stringify({ s: 0 }), { qos: 1, retain: true });
    const box = inbox();
    const sub = await mqtt.subscribe(`${t}/#`, box.handler);
    await waitFor(() => box.got.length === 1, { message: "the retained state" });
    await offline(c);
    await publish(h, d, `${t}/a`, 0, 10); // more than the history keeps
    await d.publishAsync(`${t}/state`, JSON.stringify({ s: 1 }), { qos: 1, retain: true });
    await online(c);
    await waitFor(() => restores.length === 1, { message: "the restore" });
    expect(restores).to.deep.equal([[`${t}/#`, false]]);
    expect(sub.recovered).to.equal(false);
    await waitFor(() => box.of(`${t}/state`).length === 2, { message: "the new state" });
    expect(box.got.at(-1)).to.deep.equal({ topic: `${t}/state`, s: 1, retain: true });
    expect(box.of(`${t}/a`)).to.deep.equal([]); // nothing of what could not be told exactly
    // the next reconnect recovers from where this one left off
    await offline(c);
    await publish(h, d, `${t}/a`, 10, 13);
    await online(c);
    await waitFor(() => restores.length === 2, { message: "the second restore" });
    expect(restores[1]).to.deep.equal([`${t}/#`, true]);
    await waitFor(() => box.of(`${t}/a`).length === 3, { message: "the three missed" });
    expect(box.of(`${t}/a`)).to.deep.equal([10, 11, 12]);
  });

  it("with echo: false, leaves out of the replay what it published on its earlier connection", async () => {
    const t = uniq();
    const { h, c, d, mqtt, restores, subscribes } = await setup({ echo: false });
    const box = inbox();
    await mqtt.subscribe(`${t}/#`, box.handler);
    const first = c.id!;
    await publish(h, d, `${t}/a`, 0, 3);
    await waitFor(() => box.got.length === 3, { message: "the first three" });
    const before = h.stats().recovery.offset;
    await mqtt.publish(`${t}/a`, { s: 100 }, { qos: 1 }); // its own: never comes back
    await waitFor(() => h.stats().recovery.offset > before, { message: "its own numbered" });
    await offline(c);
    await publish(h, d, `${t}/a`, 3, 6);
    await online(c);
    await waitFor(() => restores.length === 1, { message: "the restore" });
    expect(subscribes[1]).to.have.nested.property("since.ids").that.includes(first);
    await publish(h, d, `${t}/a`, 6, 8);
    await waitFor(() => box.got.length >= 8, { message: "all eight" });
    expect(box.of(`${t}/a`)).to.deep.equal(range(0, 8));
  });

  it("does not subscribe again when Socket.IO recovered the connection, and says recovered", async () => {
    const t = uniq();
    const { h, c, d, mqtt, restores, subscribes } = await setup(
      {},
      {},
      { connectionStateRecovery: {} },
    );
    const box = inbox();
    const sub = await mqtt.subscribe(`${t}/#`, box.handler);
    await publish(h, d, `${t}/a`, 0, 3);
    // Socket.IO recovers from the last broadcast the client got
    await waitFor(() => box.got.length === 3, { message: "the first three" });
    const id = c.id!;
    await offline(c);
    // its session is kept once the server saw it go
    await waitFor(() => h.serverSocket(id) === undefined, { message: "the server saw it go" });
    // in one burst: the bridge may send them as one group (one frame) to no socket here
    const before = h.stats().recovery.offset;
    await Promise.all(
      range(3, 6).map((s) => d.publishAsync(`${t}/a`, JSON.stringify({ s }), { qos: 1 })),
    );
    await waitFor(() => h.stats().recovery.offset >= before + 3, { message: "3 to 5 numbered" });
    await online(c);
    expect(c.recovered).to.equal(true);
    expect(restores).to.deep.equal([[`${t}/#`, true]]);
    expect(sub.recovered).to.equal(true);
    await waitFor(() => box.got.length >= 6, { message: "all six" });
    expect(box.of(`${t}/a`)).to.deep.equal(range(0, 6));
    expect(subscribes).to.have.length(1);
  });

  describe("100 seeded drops while a publisher sends 200 msg/s", function () {
    this.timeout(120_000);
    const TOPICS = 4;
    const RATE = 200;

    /**
     * Publishes `{ s }` round-robin on `topics` at `RATE` msg/s (QoS 1, not awaited) until
     * stopped; `stop()` resolves with how many each topic got.
     */
    function publisher(d: MqttClient, topics: string[]) {
      const sent = topics.map(() => 0);
      let n = 0;
      const timer = setInterval(() => {
        for (let k = 0; k < RATE / 100; k++) {
          const i = n++ % topics.length;
          d.publish(topics[i], JSON.stringify({ s: sent[i]++ }), { qos: 1 });
        }
      }, 10);
      return {
        sent,
        stop: () => clearInterval(timer),
      };
    }

    /**
     * Runs `cycles` drops of the client's connection (at a seeded random moment, from either
     * side) while the publisher runs, each time waiting until every subscription is restored.
     */
    async function drops(h: Harness, c: ClientSocket, restores: unknown[], cycles: number) {
      const random = prng(0x5eed);
      const filters = 3;
      for (let i = 0; i < cycles; i++) {
        await sleep(50 + Math.floor(random() * 250)); // the workload's pace, not a wait for an event
        const expected = restores.length + filters;
        const gone = onceEvent(c, "disconnect", 5000);
        if (random() < 0.5) c.io.engine.close();
        else h.serverSocket(c.id!)!.conn.close(); // the server's end goes
        await gone;
        await waitFor(() => restores.length >= expected, {
          timeoutMs: 10_000,
          message: `cycle ${i}: every subscription restored`,
        });
      }
    }

    it("within the window: every handler gets every message once, in order, and every restore recovered", async () => {
      const t = uniq();
      const { h, c, d, mqtt, restores } = await setup();
      const topics = range(0, TOPICS).map((i) => `${t}/${i}`);
      const all = inbox();
      const one = inbox();
      const plus = inbox();
      await mqtt.subscribe(`${t}/#`, all.handler);
      await mqtt.subscribe(`${t}/1`, one.handler);
      await mqtt.subscribe(`${t}/+`, plus.handler);
      const pub = publisher(d, topics);
      try {
        await drops(h, c, restores, 100);
      } finally {
        pub.stop();
      }
      await waitFor(() => topics.every((topic, i) => all.of(topic).at(-1) === pub.sent[i] - 1), {
        timeoutMs: 10_000,
        message: "the last message of every topic",
      });
      await waitFor(() => one.of(topics[1]).at(-1) === pub.sent[1] - 1, { message: "t/1's last" });
      for (const [i, topic] of topics.entries()) {
        expect(all.of(topic), `${topic} on #`).to.deep.equal(range(0, pub.sent[i]));
        expect(plus.of(topic), `${topic} on +`).to.deep.equal(range(0, pub.sent[i]));
      }
      expect(one.of(topics[1])).to.deep.equal(range(0, pub.sent[1]));
      expect(one.got).to.have.length(pub.sent[1]);
      expect(restores).to.have.length(300);
      expect(restores.filter(([, r]) => !r)).to.deep.equal([]);
      expect(pub.sent[0]).to.be.greaterThan(1000);
    });

    it("beyond the window: recovered: false is reported and nothing is delivered twice or out of order", async () => {
      const t = uniq();
      const { h, c, d, mqtt, restores } = await setup({ recovery: { maxMessages: 20 } });
      const topics = range(0, TOPICS).map((i) => `${t}/${i}`);
      const all = inbox();
      await mqtt.subscribe(`${t}/#`, all.handler);
      await mqtt.subscribe(`${t}/1`, () => {});
      const pub = publisher(d, topics);
      try {
        for (let i = 0; i < 10; i++) {
          await offline(c);
          // away until more messages went by than the history keeps
          const from = h.stats().recovery.offset;
          await waitFor(() => h.stats().recovery.offset > from + 40, {
            message: `cycle ${i}: the history moved past the position`,
          });
          await online(c);
          await waitFor(() => restores.length === 2 * (i + 1), { message: `cycle ${i}: restored` });
        }
      } finally {
        pub.stop();
      }
      // one more message per topic, after the last restore: live, so it must come
      for (const [i, topic] of topics.entries()) {
        await d.publishAsync(topic, JSON.stringify({ s: pub.sent[i] }), { qos: 1 });
      }
      await waitFor(() => topics.every((topic, i) => all.of(topic).at(-1) === pub.sent[i]), {
        message: "the last message of every topic",
      });
      expect(restores.filter(([, r]) => r)).to.deep.equal([]);
      expect(all.got.length, "what went by while away").to.be.lessThan(pub.sent[0] * TOPICS);
      for (const topic of topics) {
        const seqs = all.of(topic);
        const increasing = seqs.every((s, k) => k === 0 || s > seqs[k - 1]);
        expect(increasing, `${topic}: once each, in order`).to.equal(true);
      }
    });
  });
});
