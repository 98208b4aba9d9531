/**
 * Wiring and options beyond the shared suite: a borrowed MQTT client, `attach()`, several
 * namespaces, renamed events and room prefix, decoders. See test/support/harness.ts for the glossary.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { expect } from "chai";
import mqtt from "mqtt";
import { Server } from "socket.io";
import type { Socket as ClientSocket } from "socket.io-client";
import { io as ioc } from "socket.io-client";
import { mqttBridge } from "../../lib";
import type { MqttBridge } from "../../lib";
import { collect, createHarness, request } from "../support/harness";
import type { Harness } from "../support/harness";
import type { MosquittoHandle } from "../support/mosquitto";
import { startMosquitto } from "../support/mosquitto";
import { waitFor, withTimeout } from "../support/util";

describe("lifecycle and wiring", () => {
  let broker: MosquittoHandle;
  const cleanups: (() => Promise<void> | void)[] = [];
  before(async () => {
    broker = await startMosquitto();
  });
  after(async () => broker.stop());
  afterEach(async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn();
  });

  async function server(bridge: MqttBridge): Promise<{ io: Server; url: string }> {
    const http = createServer();
    const io = new Server(http);
    await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
    cleanups.push(() => io.close());
    cleanups.push(() => bridge.close());
    await withTimeout(bridge.ready, 5000, "bridge connected"); // subscribes need the broker
    return { io, url: `http://127.0.0.1:${(http.address() as AddressInfo).port}` };
  }

  async function client(url: string): Promise<ClientSocket> {
    const socket = ioc(url, { transports: ["websocket"], forceNew: true });
    cleanups.push(() => void socket.disconnect());
    await withTimeout(
      new Promise<void>((resolve) => socket.once("connect", () => resolve())),
      5000,
      "client connected",
    );
    return socket;
  }

  it("borrows a connected MQTT client: ready resolves, and close() leaves it open", async () => {
    const own = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
    cleanups.push(() => own.endAsync(true));
    const bridge = mqttBridge({ mqtt: own, allow: { subscribe: ["#"] } });
    await withTimeout(bridge.ready, 2000, "ready");
    const { io, url } = await server(bridge);
    io.use(bridge);
    const c = await client(url);
    const box = collect(c);
    expect((await request(c, "mqtt.subscribe", "borrowed/x")).ok).to.equal(true);
    await own.publishAsync("borrowed/x", "hi", { qos: 1 });
    await waitFor(() => box.messages.length === 1);
    await bridge.close();
    expect(own.connected).to.equal(true);
  });

  it("attach() serves sockets that connected before the bridge existed", async () => {
    const http = createServer();
    const io = new Server(http);
    await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
    cleanups.push(() => io.close());
    const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
    const early = await client(url);
    const bridge = mqttBridge({ mqtt: broker.url, allow: { subscribe: ["#"] } });
    cleanups.push(() => bridge.close());
    await bridge.ready;
    bridge.attach(io);
    expect((await request(early, "mqtt.subscribe", "early/x")).ok).to.equal(true);
  });

  it("serves several namespaces with one broker subscription per filter", async () => {
    const bridge = mqttBridge({ mqtt: broker.url, allow: { subscribe: ["#"] } });
    const { io, url } = await server(bridge);
    io.of("/a").use(bridge);
    io.of("/b").use(bridge);
    const a = ioc(`${url}/a`, { transports: ["websocket"], forceNew: true });
    const b = ioc(`${url}/b`, { transports: ["websocket"], forceNew: true });
    cleanups.push(
      () => void a.disconnect(),
      () => void b.disconnect(),
    );
    const [boxA, boxB] = [collect(a), collect(b)];
    expect((await request(a, "mqtt.subscribe", "ns/x")).ok).to.equal(true);
    expect((await request(b, "mqtt.subscribe", "ns/x")).ok).to.equal(true);
    expect(bridge.stats().brokerSubscriptions).to.equal(1);
    const d = await mqtt.connectAsync(broker.url);
    cleanups.push(() => d.endAsync(true));
    await d.publishAsync("ns/x", "both", { qos: 1 });
    await waitFor(() => boxA.messages.length === 1 && boxB.messages.length === 1);
    a.disconnect();
    await waitFor(() => bridge.stats().rooms === 1);
    expect(bridge.stats().brokerSubscriptions).to.equal(1);
  });

  describe("options", () => {
    let h: Harness | undefined;
    afterEach(async () => h?.close());
    const target = () => ({ name: "mosquitto v5", url: broker.url, version: 5 as const });

    it("subscribes the broker with the highest QoS asked for a filter", async () => {
      h = await createHarness(target(), {
        allow: { subscribe: ["#"] },
        limits: { subscribeQos: 2 },
      });
      const [a, b] = [await h.client(), await h.client()];
      const boxB = collect(b);
      expect(await request(a, "mqtt.subscribe", { filter: "qos/x", qos: 1 })).to.deep.include({
        ok: true,
        qos: 1,
      });
      expect(await request(b, "mqtt.subscribe", { filter: "qos/x", qos: 2 })).to.deep.include({
        ok: true,
        qos: 2,
      });
      const d = await h.device();
      await d.publishAsync("qos/x", "two", { qos: 2 });
      await waitFor(() => boxB.messages.length === 1);
      expect(boxB.messages[0].qos).to.equal(2);
    });

    it("renames events and the room prefix", async () => {
      h = await createHarness(target(), {
        allow: { subscribe: ["#"], publish: ["#"] },
        events: { message: "m", publish: "p", subscribe: "s", unsubscribe: "u" },
        roomPrefix: "topic#",
      });
      const c = await h.client();
      const box = collect(c, "m");
      const ack = await request(c, "s", "renamed/x");
      expect(ack).to.deep.include({ ok: true, room: "topic#renamed/x" });
      expect((await request(c, "p", { topic: "renamed/x", payload: "hey" })).ok).to.equal(true);
      await waitFor(() => box.messages.length === 1);
      expect((await request(c, "u", "renamed/x")).ok).to.equal(true);
      expect(h.bridge.room("a/b")).to.equal("topic#a/b");
    });

    for (const [decode, raw, expected] of [
      ["text", '{"a":1}', '{"a":1}'],
      ["json", "not json", Buffer.from("not json")],
      ["binary", "abc", Buffer.from("abc")],
    ] as const) {
      it(`decodes with decode: "${decode}"`, async () => {
        h = await createHarness(target(), { allow: { subscribe: ["#"] }, decode });
        const c = await h.client();
        const box = collect(c);
        await request(c, "mqtt.subscribe", `decode/${decode}`);
        const d = await h.device();
        await d.publishAsync(`decode/${decode}`, raw, { qos: 1 });
        await waitFor(() => box.messages.length === 1);
        const got = box.messages[0].payload;
        if (Buffer.isBuffer(expected)) {
          expect(Buffer.from(got as ArrayBuffer)).to.deep.equal(expected);
        } else {
          expect(got).to.equal(expected);
        }
      });
    }

    it("runs a custom decoder and passes bytes on when it throws", async () => {
      h = await createHarness(target(), {
        allow: { subscribe: ["#"] },
        decode: (payload) => {
          if (payload.toString() === "boom") throw new Error("boom");
          return payload.toString().toUpperCase();
        },
      });
      const c = await h.client();
      const box = collect(c);
      await request(c, "mqtt.subscribe", "custom/x");
      const d = await h.device();
      await d.publishAsync("custom/x", "ok", { qos: 1 });
      await d.publishAsync("custom/x", "boom", { qos: 1 });
      await waitFor(() => box.messages.length === 2);
      expect(box.messages[0].payload).to.equal("OK");
      expect(Buffer.from(box.messages[1].payload as ArrayBuffer).toString()).to.equal("boom");
      expect(h.bridge.stats().messages.decodeFallbacks).to.equal(1);
    });
  });
});
