/**
 * The browser helper (lib/client.ts) against a tiny fake bridge built on a real socket.io Server:
 * subscribe joins "mqtt:" + filter, publish emits `mqtt.message` to every room whose filter
 * matches. The real server side is tested elsewhere.
 */
import { EventEmitter } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { expect } from "chai";
import { Server } from "socket.io";
import { io as ioc } from "socket.io-client";
import type { Socket as ClientSocket } from "socket.io-client";
import { MqttBridgeClientError, mqttClient } from "../../lib/client";
import type { BridgeMessage, MessageHandler } from "../../lib/client";
import type {
  BridgeClientToServerEvents,
  BridgeServerToClientEvents,
  PublishRequest,
  SubscribeRequest,
} from "../../lib/protocol";
import { matches } from "../../lib/topic";

type FakeIo = Server<BridgeClientToServerEvents, BridgeServerToClientEvents>;

interface Fake {
  io: FakeIo;
  url: string;
  /** Emits "subscribe" (request), "unsubscribe" (filter) and "publish" (request). */
  bus: EventEmitter;
  subscribes: SubscribeRequest[];
  unsubscribes: string[];
  /** When true every subscribe is refused with FORBIDDEN. */
  forbidAll: boolean;
  /** The next this many subscribes are refused with BROKER_UNAVAILABLE. */
  unavailable: number;
  /** The next this many subscribes are refused with BROKER_REJECTED and mqtt.unsubscribed. */
  quotaRefusals: number;
}

async function startFake(opts: { neverAck?: boolean; recovery?: boolean } = {}): Promise<Fake> {
  const http = createServer();
  const io: FakeIo = new Server(http, opts.recovery ? { connectionStateRecovery: {} } : {});
  const bus = new EventEmitter();
  const fake: Fake = {
    io,
    url: "",
    bus,
    subscribes: [],
    unsubscribes: [],
    forbidAll: false,
    unavailable: 0,
    quotaRefusals: 0,
  };
  const forbidden = (code: "FORBIDDEN") => ({
    ok: false as const,
    error: { code, message: "not allowed", reasonCode: 0x87 },
  });
  io.on("connection", (socket) => {
    socket.on("mqtt.subscribe", (req, ack) => {
      fake.subscribes.push(req);
      fake.bus.emit("subscribe", req);
      if (opts.neverAck || !ack) return;
      const filter = typeof req === "string" ? req : req.filter;
      const qos = typeof req === "string" ? 0 : (req.qos ?? 0);
      if (fake.forbidAll || filter.startsWith("forbidden/")) return ack(forbidden("FORBIDDEN"));
      if (fake.quotaRefusals > 0) {
        // as the bridge does on a refused SUBSCRIBE: the room's members are told, then the ack
        fake.quotaRefusals--;
        const error = { code: "BROKER_REJECTED" as const, message: "quota", reasonCode: 0x97 };
        socket.emit("mqtt.unsubscribed", { filter, room: "mqtt:" + filter, error });
        return ack({ ok: false, error });
      }
      if (fake.unavailable > 0) {
        fake.unavailable--;
        return ack({ ok: false, error: { code: "BROKER_UNAVAILABLE", message: "down" } });
      }
      if (filter.startsWith("malformed/")) return (ack as unknown as (x: unknown) => void)("yes");
      if (filter.startsWith("late/")) {
        // the server subscribes, but acknowledges after the helper gave up waiting
        void socket.join("mqtt:" + filter);
        setTimeout(() => ack({ ok: true, room: "mqtt:" + filter, qos }), 300);
        return;
      }
      void socket.join("mqtt:" + filter);
      if (filter.startsWith("retained/")) {
        // replayed before the ack: the helper must not lose it
        socket.emit("mqtt.message", { topic: "retained/x", payload: 1, qos: 0, retain: true });
      }
      ack({ ok: true, room: "mqtt:" + filter, qos });
    });
    socket.on("mqtt.unsubscribe", (filter, ack) => {
      fake.unsubscribes.push(filter);
      fake.bus.emit("unsubscribe", filter);
      void socket.leave("mqtt:" + filter);
      if (opts.neverAck) return;
      setImmediate(() => {
        // acknowledged a little later, as a real server's async unsubscribe would
        ack?.({ ok: true });
        fake.bus.emit("unsubscribed", filter);
      });
    });
    socket.on("mqtt.publish", (req: PublishRequest, ack) => {
      fake.bus.emit("publish", req);
      if (opts.neverAck) return;
      if (req.topic.startsWith("forbidden/")) return ack?.(forbidden("FORBIDDEN"));
      ack?.({ ok: true });
      const rooms = [...io.of("/").adapter.rooms.keys()].filter(
        (room) => room.startsWith("mqtt:") && matches(room.slice(5), req.topic),
      );
      const { topic, payload, qos = 0, properties } = req;
      const message: BridgeMessage = { topic, payload, qos, retain: false };
      if (properties) message.properties = properties;
      if (rooms.length > 0) io.to(rooms).emit("mqtt.message", message);
    });
  });
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  fake.url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  return fake;
}

/** Resolves with what `executor` resolves, or rejects after `ms`. */
function within<T = void>(
  ms: number,
  what: string,
  executor: (resolve: (value: T) => void) => void,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
    executor((value) => {
      clearTimeout(timer);
      resolve(value);
    });
  });
}

/** A handler that records messages and can wait for the n-th. */
function inbox() {
  const got: BridgeMessage[] = [];
  const waiters: (() => void)[] = [];
  const handler: MessageHandler = (message) => {
    got.push(message);
    for (const check of waiters.splice(0)) check();
  };
  const count = (n: number, ms = 2000) =>
    within(ms, `${n} message(s)`, (resolve) => {
      const check = () => (got.length >= n ? resolve() : waiters.push(check));
      check();
    });
  return { got, handler, count, topics: () => got.map((m) => m.topic) };
}

async function expectRejection(promise: Promise<unknown>): Promise<MqttBridgeClientError> {
  try {
    await promise;
  } catch (error) {
    expect(error).to.be.instanceOf(MqttBridgeClientError);
    return error as MqttBridgeClientError;
  }
  throw new Error("expected a rejection");
}

describe("browser helper (socket.io-mqtt-bridge/client)", () => {
  let fake: Fake | undefined;
  const clients: ClientSocket[] = [];

  async function setup(opts: { neverAck?: boolean; recovery?: boolean } = {}) {
    fake = await startFake(opts);
    const socket = ioc(fake.url, {
      transports: ["websocket"],
      forceNew: true,
      reconnectionDelay: 20,
      reconnectionDelayMax: 50,
    });
    clients.push(socket);
    await within(2000, "connect", (resolve) => socket.once("connect", resolve));
    return { fake, socket };
  }

  /** Drops the transport and waits until the socket is connected again. */
  async function forceReconnect(socket: ClientSocket) {
    const reconnected = within(3000, "reconnect", (resolve) => socket.once("connect", resolve));
    socket.io.engine.close();
    await reconnected;
  }

  afterEach(async () => {
    for (const socket of clients.splice(0)) socket.disconnect();
    await fake?.io.close();
    fake = undefined;
  });

  it("dispatches each message to every matching handler, each handler once", async () => {
    const { fake, socket } = await setup();
    // a socket typed with the protocol's event maps is accepted as well
    const typed: ClientSocket<BridgeServerToClientEvents, BridgeClientToServerEvents> = socket;
    const mqtt = mqttClient(typed);
    const a = inbox();
    const b = inbox();
    const other = inbox();
    const end = inbox();
    await mqtt.subscribe("sensors/#", a.handler);
    await mqtt.subscribe("sensors/+/temp", a.handler); // same handler, overlapping filter
    await mqtt.subscribe("sensors/+/temp", b.handler);
    await mqtt.subscribe("other/#", other.handler);
    await mqtt.subscribe("end", end.handler);
    expect(fake.subscribes).to.deep.equal(["sensors/#", "sensors/+/temp", "other/#", "end"]);
    expect(mqtt.filters()).to.deep.equal(["sensors/#", "sensors/+/temp", "other/#", "end"]);

    await mqtt.publish("sensors/a/temp", { celsius: 21 }, { qos: 1 });
    await mqtt.publish("sensors/b/hum", "40%");
    await mqtt.publish("end", null); // order is kept: once it arrives, duplicates would have too
    await end.count(1);

    expect(a.topics()).to.deep.equal(["sensors/a/temp", "sensors/b/hum"]);
    expect(a.got[0]).to.deep.equal({
      topic: "sensors/a/temp",
      payload: { celsius: 21 },
      qos: 1,
      retain: false,
    });
    expect(b.topics()).to.deep.equal(["sensors/a/temp"]);
    expect(other.got).to.have.length(0);
  });

  it("sends publish options and omits undefined fields", async () => {
    const { fake, socket } = await setup();
    const mqtt = mqttClient(socket);
    const seen: PublishRequest[] = [];
    fake.bus.on("publish", (req: PublishRequest) => seen.push(req));
    const properties = { contentType: "text/plain", userProperties: { a: "1" } };
    await mqtt.publish("chat/lobby", "hi");
    await mqtt.publish("chat/lobby", { text: "hi" }, { qos: 2, retain: true, properties });
    expect(seen).to.deep.equal([
      { topic: "chat/lobby", payload: "hi" },
      { topic: "chat/lobby", payload: { text: "hi" }, qos: 2, retain: true, properties },
    ]);
    expect(Object.keys(seen[0])).to.deep.equal(["topic", "payload"]);
  });

  it("shares one server subscription per filter and unsubscribes with the last one", async () => {
    const { fake, socket } = await setup();
    const mqtt = mqttClient(socket);
    const [one, two, three] = [inbox(), inbox(), inbox()];
    const [s1, s2] = await Promise.all([
      mqtt.subscribe("chat/+", one.handler, { qos: 1 }),
      mqtt.subscribe("chat/+", two.handler),
    ]);
    const s3 = await mqtt.subscribe("chat/+", three.handler);
    expect(fake.subscribes).to.deep.equal([{ filter: "chat/+", qos: 1 }]);
    expect([s1.filter, s1.room, s1.qos]).to.deep.equal(["chat/+", "mqtt:chat/+", 1]);
    expect([s3.room, s3.qos]).to.deep.equal(["mqtt:chat/+", 1]);

    await s1.unsubscribe();
    await s1.unsubscribe(); // idempotent
    expect(fake.unsubscribes).to.deep.equal([]);
    await mqtt.publish("chat/a", "x");
    await three.count(1);
    expect(one.got).to.have.length(0);
    expect(two.topics()).to.deep.equal(["chat/a"]);

    await s2.unsubscribe();
    expect(fake.unsubscribes).to.deep.equal([]);
    await s3.unsubscribe();
    await s3.unsubscribe();
    expect(fake.unsubscribes).to.deep.equal(["chat/+"]);
    expect(mqtt.filters()).to.deep.equal([]);
    expect(fake.io.of("/").adapter.rooms.has("mqtt:chat/+")).to.equal(false);

    // a fresh subscription after the last unsubscribe goes to the server again
    const s4 = await mqtt.subscribe("chat/+", one.handler);
    expect(fake.subscribes).to.have.length(2);
    await mqtt.publish("chat/b", "y");
    await one.count(1);
    await s4.unsubscribe();
  });

  it("sends a new subscribe only after an in-flight unsubscribe of the same filter", async () => {
    const { fake, socket } = await setup();
    const mqtt = mqttClient(socket);
    const order: string[] = [];
    fake.bus.on("subscribe", (req: SubscribeRequest) => order.push(`sub ${req as string}`));
    fake.bus.on("unsubscribe", (filter: string) => order.push(`unsub ${filter}`));
    fake.bus.on("unsubscribed", (filter: string) => order.push(`acked ${filter}`));
    const h = inbox();
    const s1 = await mqtt.subscribe("chat/+", () => {});
    const leaving = s1.unsubscribe();
    const s2 = await mqtt.subscribe("chat/+", h.handler);
    await leaving;
    expect(order).to.deep.equal(["sub chat/+", "unsub chat/+", "acked chat/+", "sub chat/+"]);
    expect(s2.room).to.equal("mqtt:chat/+");
    await mqtt.publish("chat/a", 1);
    await h.count(1);
  });

  it("rejects with the server's error code and leaves nothing registered", async () => {
    const { fake, socket } = await setup();
    const mqtt = mqttClient(socket);
    const h = inbox();
    const err = await expectRejection(mqtt.subscribe("forbidden/#", h.handler));
    expect(err.code).to.equal("FORBIDDEN");
    expect(err.reasonCode).to.equal(0x87);
    expect(err.message).to.equal("not allowed");
    expect(mqtt.filters()).to.deep.equal([]);
    // nothing cached: a second attempt asks the server again
    await expectRejection(mqtt.subscribe("forbidden/#", h.handler));
    expect(fake.subscribes).to.deep.equal(["forbidden/#", "forbidden/#"]);

    expect((await expectRejection(mqtt.publish("forbidden/x", 1))).code).to.equal("FORBIDDEN");

    // an acknowledgement that is not part of the protocol: outcome unknown, i.e. TIMEOUT
    const bad = await expectRejection(mqtt.subscribe("malformed/#", h.handler));
    expect(bad.code).to.equal("TIMEOUT");
    expect(bad.message).to.match(/malformed/);
    expect(mqtt.filters()).to.deep.equal([]);
    expect(h.got).to.have.length(0);
  });

  it("turns a missing acknowledgement into TIMEOUT", async () => {
    const { socket } = await setup({ neverAck: true });
    const mqtt = mqttClient(socket, { timeoutMs: 200 });
    const started = Date.now();
    const [sub, pub] = await Promise.all([
      expectRejection(mqtt.subscribe("sensors/#", () => {})),
      expectRejection(mqtt.publish("chat/lobby", "hi", { qos: 1 })),
    ]);
    expect(sub.code).to.equal("TIMEOUT");
    expect(pub.code).to.equal("TIMEOUT");
    expect(Date.now() - started).to.be.within(150, 3000);
    expect(mqtt.filters()).to.deep.equal([]);
  });

  it("undoes a subscribe whose acknowledgement came too late (no orphan room on the server)", async () => {
    const { fake, socket } = await setup();
    const mqtt = mqttClient(socket, { timeoutMs: 100 });
    const undone = within(2000, "unsubscribe", (resolve) => fake.bus.once("unsubscribe", resolve));
    expect((await expectRejection(mqtt.subscribe("late/#", () => {}))).code).to.equal("TIMEOUT");
    expect(await undone).to.equal("late/#");
    expect(mqtt.filters()).to.deep.equal([]);
    await within(2000, "the room left", (resolve) => {
      const check = () =>
        fake.io.of("/").adapter.rooms.has("mqtt:late/#") ? setTimeout(check, 5) : resolve();
      check();
    });
  });

  it("delivers retained messages the server replays before its acknowledgement", async () => {
    const { socket } = await setup();
    const mqtt = mqttClient(socket);
    const h = inbox();
    await mqtt.subscribe("retained/#", h.handler);
    await h.count(1);
    expect(h.got[0]).to.include({ topic: "retained/x", retain: true });
  });

  it("restores its subscriptions after a reconnect", async () => {
    const { fake, socket } = await setup();
    const mqtt = mqttClient(socket);
    const h = inbox();
    await mqtt.subscribe("sensors/#", h.handler, { qos: 1 });
    const restored = within(3000, "re-subscribe", (resolve) => fake.bus.once("subscribe", resolve));
    await forceReconnect(socket);
    await restored;
    expect(socket.recovered).to.not.equal(true);
    expect(fake.subscribes).to.deep.equal([
      { filter: "sensors/#", qos: 1 },
      { filter: "sensors/#", qos: 1 },
    ]);
    await mqtt.publish("sensors/a", 1);
    await h.count(1);
    expect(mqtt.filters()).to.deep.equal(["sensors/#"]);
  });

  it("does not re-subscribe when Socket.IO recovered the connection state", async () => {
    const { fake, socket } = await setup({ recovery: true });
    const mqtt = mqttClient(socket);
    const h = inbox();
    await mqtt.subscribe("sensors/#", h.handler);
    await mqtt.publish("sensors/a", 1); // recovery needs a received offset
    await h.count(1);
    await forceReconnect(socket);
    expect(socket.recovered).to.equal(true);
    await mqtt.publish("sensors/b", 2);
    await h.count(2);
    expect(fake.subscribes).to.deep.equal(["sensors/#"]);
  });

  it("reports a failed restore to onError and keeps the subscription", async () => {
    const { fake, socket } = await setup();
    const failures: [string, string][] = [];
    let failed: () => void = () => {};
    const mqtt = mqttClient(socket, {
      onError: (error, filter) => {
        failures.push([error.code, filter]);
        failed();
      },
    });
    const h = inbox();
    await mqtt.subscribe("sensors/#", h.handler);
    fake.forbidAll = true;
    const reported = within(3000, "onError", (resolve) => (failed = resolve));
    await forceReconnect(socket);
    await reported;
    expect(failures).to.deep.equal([["FORBIDDEN", "sensors/#"]]);
    expect(mqtt.filters()).to.deep.equal(["sensors/#"]);

    // restored again on the next reconnect
    fake.forbidAll = false;
    const restored = within(3000, "re-subscribe", (resolve) => fake.bus.once("subscribe", resolve));
    await forceReconnect(socket);
    await restored;
    await mqtt.publish("sensors/a", 1);
    await h.count(1);
  });

  it("retries a failed restore with backoff until it succeeds", async () => {
    const { fake, socket } = await setup();
    const failures: string[] = [];
    const mqtt = mqttClient(socket, {
      retry: { minDelayMs: 20, maxDelayMs: 100 },
      onError: (error) => failures.push(error.code),
    });
    const h = inbox();
    await mqtt.subscribe("sensors/#", h.handler);
    fake.unavailable = 2;
    const restored = within(3000, "three restore attempts", (resolve) =>
      fake.bus.on("subscribe", () => fake.subscribes.length === 4 && resolve()),
    );
    await forceReconnect(socket);
    await restored;
    expect(failures).to.deep.equal(["BROKER_UNAVAILABLE", "BROKER_UNAVAILABLE"]);
    await mqtt.publish("sensors/a", 1);
    await h.count(1);
  });

  it("keeps one retry per subscription when a refused restore also brings mqtt.unsubscribed", async () => {
    const { fake, socket } = await setup();
    const failures: string[] = [];
    const mqtt = mqttClient(socket, {
      retry: { minDelayMs: 20, maxDelayMs: 40 },
      onError: (error) => failures.push(error.code),
    });
    await mqtt.subscribe("sensors/#", () => {});
    fake.quotaRefusals = 6;
    const done = within(5000, "the restore after 6 refusals", (resolve) =>
      fake.bus.on("subscribe", () => fake.subscribes.length === 8 && resolve()),
    );
    await forceReconnect(socket);
    await done;
    await new Promise((resolve) => setTimeout(resolve, 300)); // pacing: room for stray retries
    expect(fake.subscribes).to.have.length(8); // the first, 6 refused restores, the good one
    expect(failures).to.deep.equal(Array(6).fill("BROKER_REJECTED"));
  });

  it("follows mqtt.unsubscribed: subscribes again after BROKER_REJECTED, drops on FORBIDDEN", async () => {
    const { fake, socket } = await setup();
    const failures: [string, string][] = [];
    const mqtt = mqttClient(socket, {
      retry: { minDelayMs: 20, maxDelayMs: 100 },
      onError: (error, filter) => failures.push([error.code, filter]),
    });
    const h = inbox();
    await mqtt.subscribe("sensors/#", h.handler);
    await mqtt.subscribe("secret/#", h.handler);
    const again = within(3000, "re-subscribe", (resolve) => fake.bus.once("subscribe", resolve));
    const server = fake.io.of("/").sockets.get(socket.id!)!;
    await server.leave("mqtt:sensors/#");
    server.emit("mqtt.unsubscribed", {
      filter: "sensors/#",
      room: "mqtt:sensors/#",
      error: { code: "BROKER_REJECTED", message: "quota", reasonCode: 0x97 },
    });
    expect(await again).to.equal("sensors/#");
    await server.leave("mqtt:secret/#");
    server.emit("mqtt.unsubscribed", {
      filter: "secret/#",
      room: "mqtt:secret/#",
      error: { code: "FORBIDDEN", message: "revoked" },
    });
    await within(2000, "the filter dropped", (resolve) => {
      const check = () => (mqtt.filters().length === 1 ? resolve() : setTimeout(check, 5));
      check();
    });
    expect(mqtt.filters()).to.deep.equal(["sensors/#"]);
    expect(failures).to.deep.equal([
      ["BROKER_REJECTED", "sensors/#"],
      ["FORBIDDEN", "secret/#"],
    ]);
    await mqtt.publish("sensors/a", 1);
    await h.count(1);
  });

  it("keeps dispatching when a handler throws and rethrows its error asynchronously", async () => {
    const { socket } = await setup();
    const mqtt = mqttClient(socket);
    const h = inbox();
    const boom = new Error("boom");
    await mqtt.subscribe("chat/+", () => {
      throw boom;
    });
    await mqtt.subscribe("chat/#", h.handler);
    const saved = process.listeners("uncaughtException");
    process.removeAllListeners("uncaughtException");
    try {
      const uncaught = within<unknown>(2000, "uncaught error", (resolve) =>
        process.once("uncaughtException", resolve),
      );
      await mqtt.publish("chat/a", 1);
      await h.count(1);
      expect(await uncaught).to.equal(boom);
    } finally {
      process.removeAllListeners("uncaughtException");
      for (const listener of saved) process.on("uncaughtException", listener);
    }
  });

  it("close() removes its listeners, drops handlers and leaves the rooms", async () => {
    const { fake, socket } = await setup();
    const counts = () =>
      ["mqtt.message", "mqtt.messages", "mqtt.unsubscribed", "connect", "disconnect"].map(
        (e) => socket.listeners(e).length,
      );
    const before = counts();
    const mqtt = mqttClient(socket);
    expect(counts()).to.deep.equal(before.map((n) => n + 1));
    const h = inbox();
    await mqtt.subscribe("sensors/#", h.handler);
    await mqtt.subscribe("chat/+", h.handler);

    const left = within(2000, "unsubscribes", (resolve) =>
      fake.bus.on("unsubscribe", () => fake.unsubscribes.length === 2 && resolve()),
    );
    mqtt.close();
    mqtt.close();
    expect(counts()).to.deep.equal(before);
    expect(mqtt.filters()).to.deep.equal([]);
    await left;
    expect(fake.unsubscribes).to.have.members(["sensors/#", "chat/+"]);

    // a message still reaching the socket is not dispatched any more
    const raw = within(2000, "raw message", (resolve) => socket.once("mqtt.message", resolve));
    fake.io.emit("mqtt.message", { topic: "sensors/a", payload: 1, qos: 0, retain: false });
    await raw;
    expect(h.got).to.have.length(0);

    expect((await expectRejection(mqtt.subscribe("x", () => {}))).code).to.equal(
      "INVALID_ARGUMENT",
    );
    await expectRejection(mqtt.publish("x", 1));
  });

  it("uses renamed events", async () => {
    const { fake, socket } = await setup();
    const mqtt = mqttClient(socket, { events: { message: "m" } });
    const h = inbox();
    await mqtt.subscribe("a/#", h.handler);
    fake.io.emit("mqtt.message", { topic: "a/1", payload: 1, qos: 0, retain: false });
    (fake.io as unknown as Server).emit("m", { topic: "a/2", payload: 2, qos: 0, retain: false });
    await h.count(1);
    expect(h.topics()).to.deep.equal(["a/2"]);
  });
});
