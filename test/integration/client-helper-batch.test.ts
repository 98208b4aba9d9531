/**
 * The browser helper (lib/client.ts) and batched frames, against the real bridge on a real
 * Mosquitto: it asks for `mqtt.messages` on every connect and unpacks them, so handlers see every
 * message once, in order, whichever event carried it. Also against a bare Socket.IO server that
 * plays an older bridge (no `mqtt.options`).
 *
 * Glossary: "client" is the socket.io-client socket the helper runs on; "frames" are the
 * `mqtt.message` / `mqtt.messages` events that socket receives; "device" publishes to Mosquitto.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { expect } from "chai";
import type { MqttClient } from "mqtt";
import { Server } from "socket.io";
import type { ServerOptions } from "socket.io";
import { io as ioc } from "socket.io-client";
import type { Socket as ClientSocket } from "socket.io-client";
import { mqttClient } from "../../lib/client";
import type { BridgeMessage, MqttClientOptions } from "../../lib/client";
import type { MqttBridgeOptions } from "../../lib";
import { flood } from "../support/delivery";
import type { Harness } from "../support/harness";
import { request } from "../support/harness";
import { onMosquitto5 } from "../support/mosquitto-suite";
import { onceEvent, waitFor } from "../support/util";

/** A handler that keeps each message's sequence number (the flood's `payload.s`) and topic. */
function inbox() {
  const got: Got[] = [];
  const handler = (m: BridgeMessage) =>
    got.push({ topic: m.topic, s: (m.payload as { s: number }).s });
  return { got, handler, seqs: () => got.map((g) => g.s) };
}

/** What {@link inbox} keeps of a message. */
interface Got {
  topic: string;
  s: number;
}

/**
 * After a flood of `n`, one more message per topic (`s` = n, n + 1, …) at QoS 1; resolves once
 * `box` has them all: a duplicate of the flood would have come before (order per topic).
 */
async function sentinels(d: MqttClient, topics: string[], n: number, box: { got: Got[] }) {
  for (const [i, topic] of topics.entries()) {
    await d.publishAsync(topic, JSON.stringify({ s: n + i }), { qos: 1 });
  }
  await waitFor(() => topics.every((_topic, i) => box.got.some((g) => g.s === n + i)), {
    timeoutMs: 10_000,
    message: "the sentinel of every topic",
  });
}

/** The frames `c` receives, by event. */
function frames(c: ClientSocket) {
  const box = { single: 0, batch: 0 };
  c.on("mqtt.message", () => box.single++);
  c.on("mqtt.messages", () => box.batch++);
  return box;
}

const range = (from: number, to: number, step = 1) =>
  Array.from({ length: Math.ceil((to - from) / step) }, (_, i) => from + i * step);

/** Drops the client's transport and waits until it is connected again. */
async function reconnect(c: ClientSocket): Promise<void> {
  const back = onceEvent(c, "connect", 5000);
  c.io.engine.close();
  await back;
}

describe("browser helper with batched frames (Mosquitto, MQTT 5)", function () {
  this.timeout(20_000);
  const suite = onMosquitto5("chb");
  const { uniq } = suite;

  /**
   * A bridge whose server sockets log the events they receive (`[socket id, event]`), and a
   * connected client with the helper on it.
   */
  async function setup(
    opts: MqttBridgeOptions = {},
    helper: MqttClientOptions = {},
    ioOpts: Partial<ServerOptions> = {},
  ) {
    const h: Harness = await suite.setup({ allow: { subscribe: ["#"] }, ...opts }, ioOpts);
    const log: [string, string][] = [];
    h.io.on("connection", (s) => s.onAny((event: string) => log.push([s.id, event])));
    const c = await h.client();
    const mqtt = mqttClient(c, helper);
    return { h, c, mqtt, log, box: frames(c) };
  }

  /** The events of `log` named `event`, as the ids of the sockets that sent them. */
  const sent = (log: [string, string][], event: string) =>
    log.filter(([, e]) => e === event).map(([id]) => id);

  it("asks for batching on connect and again after a reconnect, before restoring", async () => {
    const t = uniq();
    const { h, c, mqtt, log } = await setup();
    await mqtt.subscribe(`${t}/#`, () => {});
    const first = c.id!;
    expect(log).to.deep.equal([
      [first, "mqtt.options"],
      [first, "mqtt.subscribe"],
    ]);
    await reconnect(c);
    await waitFor(() => sent(log, "mqtt.subscribe").length === 2, { message: "the restore" });
    expect(c.id).to.not.equal(first);
    expect(log.slice(2)).to.deep.equal([
      [c.id, "mqtt.options"],
      [c.id, "mqtt.subscribe"],
    ]);
    // the server now batches for the new socket ({} asks without changing anything)
    expect(await request(c, "mqtt.options", {})).to.deep.equal({ ok: true, batch: true });
    expect(h.stats().delivery.slow).to.equal(0);
  });

  it("asks once the socket connects, when created before the connection", async () => {
    const h = await suite.setup({ allow: { subscribe: ["#"] } });
    const c = ioc(`http://127.0.0.1:${h.port}`, { transports: ["websocket"], forceNew: true });
    try {
      mqttClient(c);
      await onceEvent(c, "connect", 5000);
      expect(await request(c, "mqtt.options", {})).to.deep.equal({ ok: true, batch: true });
    } finally {
      c.disconnect();
    }
  });

  it("asks again on a connection Socket.IO recovered (the server resets its batching then)", async () => {
    const t = uniq();
    const recovery = { connectionStateRecovery: { maxDisconnectionDuration: 30_000 } };
    const { h, c, mqtt, log } = await setup({}, {}, recovery);
    const d = await h.device();
    const a = inbox();
    await mqtt.subscribe(`${t}/#`, a.handler);
    await d.publishAsync(`${t}/x`, JSON.stringify({ s: 0 }), { qos: 1 }); // an offset to recover
    await waitFor(() => a.got.length === 1);
    await reconnect(c);
    expect(c.recovered).to.equal(true);
    await waitFor(() => sent(log, "mqtt.options").length === 2, { message: "asked again" });
    expect(sent(log, "mqtt.subscribe")).to.have.length(1); // the server kept the room
    expect(await request(c, "mqtt.options", {})).to.deep.equal({ ok: true, batch: true });
    await d.publishAsync(`${t}/x`, JSON.stringify({ s: 1 }), { qos: 1 });
    await waitFor(() => a.got.length === 2);
    expect(a.seqs()).to.deep.equal([0, 1]);
  });

  it("brings a burst in fewer frames than messages; the handler sees each message once, in order", async () => {
    const t = uniq();
    const { h, mqtt, box } = await setup();
    const a = inbox();
    await mqtt.subscribe(`${t}/#`, a.handler);
    const n = 3000;
    const topics = [`${t}/a`, `${t}/b`, `${t}/c`];
    const d = await h.device();
    await flood(d, topics, n, 100, () => a.got.length);
    await sentinels(d, topics, n, a);
    // one publisher, one MQTT subscription, one room: the order of the whole burst holds
    expect(a.seqs()).to.deep.equal(range(0, n + 3));
    expect(a.got.map((g) => g.topic)).to.deep.equal(range(0, n + 3).map((s) => topics[s % 3]));
    expect(box.batch).to.be.greaterThan(0);
    expect(box.single + box.batch).to.be.lessThan(n / 2);
  });

  it("dispatches to overlapping filters once per handler, in order, from batched frames", async () => {
    const t = uniq();
    const { h, mqtt, box } = await setup();
    const all = inbox(); // on `#` and `+`: each message once all the same
    const onA = inbox();
    const onLevel = inbox();
    await mqtt.subscribe(`${t}/#`, all.handler);
    await mqtt.subscribe(`${t}/+`, all.handler);
    await mqtt.subscribe(`${t}/a`, onA.handler);
    await mqtt.subscribe(`${t}/+`, onLevel.handler);
    const n = 1500;
    const topics = [`${t}/a`, `${t}/b`, `${t}/c/d`];
    const d = await h.device();
    await flood(d, topics, n, 100, () => all.got.length);
    await sentinels(d, topics, n, all);
    // per topic in order, once (messages of different room sets may be grouped: the contract is
    // the order per topic)
    const perTopic = (got: Got[], topic: string) =>
      got.filter((g) => g.topic === topic).map((g) => g.s);
    for (const [i, topic] of topics.entries()) {
      expect(perTopic(all.got, topic), topic).to.deep.equal(range(i, n + 3, 3));
    }
    expect(all.got).to.have.length(n + 3);
    expect(onA.got.map((g) => g.s)).to.deep.equal(range(0, n + 3, 3));
    expect(perTopic(onLevel.got, topics[0])).to.deep.equal(range(0, n + 3, 3));
    expect(perTopic(onLevel.got, topics[1])).to.deep.equal(range(1, n + 3, 3));
    expect(onLevel.got).to.have.length(((n + 3) / 3) * 2);
    expect(box.batch).to.be.greaterThan(0);
    expect(box.single + box.batch).to.be.lessThan(n);
  });

  it("with batch: false sends no mqtt.options, also after a reconnect, and gets single frames", async () => {
    const t = uniq();
    const { h, c, mqtt, log, box } = await setup({}, { batch: false });
    const a = inbox();
    await mqtt.subscribe(`${t}/#`, a.handler);
    await reconnect(c);
    await waitFor(() => sent(log, "mqtt.subscribe").length === 2, { message: "the restore" });
    const n = 500;
    await flood(await h.device(), [`${t}/a`, `${t}/b`], n, 10, () => a.got.length);
    expect(a.seqs()).to.deep.equal(range(0, n));
    expect(sent(log, "mqtt.options")).to.deep.equal([]);
    expect(box).to.deep.equal({ single: n, batch: 0 });
  });

  it("works with a server whose delivery.batch is off: asks, is told no, gets single frames", async () => {
    const t = uniq();
    const { h, c, mqtt, log, box } = await setup({ delivery: { batch: false } });
    const a = inbox();
    await mqtt.subscribe(`${t}/#`, a.handler);
    expect(sent(log, "mqtt.options")).to.deep.equal([c.id]);
    expect(await request(c, "mqtt.options", {})).to.deep.equal({ ok: true, batch: false });
    const n = 500;
    await flood(await h.device(), [`${t}/a`, `${t}/b`], n, 10, () => a.got.length);
    expect(a.seqs()).to.deep.equal(range(0, n));
    expect(box).to.deep.equal({ single: n, batch: 0 });
  });

  it("close() asks the server to stop batching", async () => {
    const { c, mqtt } = await setup();
    expect(await request(c, "mqtt.options", {})).to.deep.equal({ ok: true, batch: true });
    mqtt.close();
    expect(await request(c, "mqtt.options", {})).to.deep.equal({ ok: true, batch: false });
  });
});

describe("browser helper on a server without mqtt.options (an older bridge)", function () {
  // well below the helper's 10 s ack timeout: nothing may wait for the options' answer
  this.timeout(5000);
  const servers: Server[] = [];
  const clients: ClientSocket[] = [];
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  before(() => process.on("unhandledRejection", onUnhandled));
  after(() => process.off("unhandledRejection", onUnhandled));
  afterEach(async () => {
    for (const c of clients.splice(0)) c.disconnect();
    await Promise.all(servers.splice(0).map((s) => s.close()));
    expect(unhandled).to.deep.equal([]);
  });

  /**
   * A bare Socket.IO server that subscribes, publishes to the rooms and answers `mqtt.options` as
   * `answer` says: never, with a refusal, or with something that is not an acknowledgement.
   */
  async function oldServer(answer: "never" | "refuse" | "garbage") {
    const io = new Server(createServer().listen(0, "127.0.0.1"));
    servers.push(io);
    const subscribes: string[] = [];
    io.on("connection", (s) => {
      s.on("mqtt.subscribe", (filter: string, ack: (res: unknown) => void) => {
        subscribes.push(filter);
        void s.join(`mqtt:${filter}`);
        ack({ ok: true, room: `mqtt:${filter}`, qos: 0 });
      });
      if (answer === "refuse") {
        const error = { code: "INVALID_ARGUMENT", message: "unknown event" };
        s.on("mqtt.options", (_o: unknown, ack?: (r: unknown) => void) =>
          ack?.({ ok: false, error }),
        );
      } else if (answer === "garbage") {
        s.on("mqtt.options", (_o: unknown, ack?: (r: unknown) => void) => ack?.("what?"));
      }
    });
    const http = io.httpServer;
    if (!http.listening) await onceEvent(http, "listening");
    const c = ioc(`http://127.0.0.1:${(http.address() as AddressInfo).port}`, {
      transports: ["websocket"],
      forceNew: true,
      reconnectionDelay: 20,
      reconnectionDelayMax: 50,
    });
    clients.push(c);
    await onceEvent(c, "connect");
    return { io, c, subscribes };
  }

  for (const answer of ["never", "refuse", "garbage"] as const) {
    it(`subscribes, restores at once after a reconnect and dispatches (options answered: ${answer})`, async () => {
      const { io, c, subscribes } = await oldServer(answer);
      const mqtt = mqttClient(c);
      const a = inbox();
      await mqtt.subscribe("x/#", a.handler);
      await reconnect(c);
      await waitFor(() => subscribes.length === 2, { timeoutMs: 2000, message: "the restore" });
      await waitFor(() => io.of("/").adapter.rooms.has("mqtt:x/#"), { timeoutMs: 2000 });
      io.to("mqtt:x/#").emit("mqtt.message", {
        topic: "x/1",
        payload: { s: 7 },
        qos: 0,
        retain: false,
      });
      await waitFor(() => a.got.length === 1, { timeoutMs: 2000, message: "the message" });
      expect(a.seqs()).to.deep.equal([7]);
      mqtt.close();
    });
  }
});
