/**
 * The bridge's behaviour, written once and run against several brokers (Mosquitto over MQTT 5,
 * Mosquitto over 3.1.1, aedes), on one Socket.IO node or on an in-process cluster of several
 * (test/cluster/suite.test.ts). See test/support/harness.ts for the glossary.
 */
import { isMarker } from "../../lib/delivery/markers";
import { expect } from "chai";
import type { MqttClient } from "mqtt";
import type { MqttBridgeOptions } from "../../lib";
import type { BrokerTarget, Harness, HarnessTopology } from "../support/harness";
import { collect, createHarness, request } from "../support/harness";
import { waitFor } from "../support/util";

let seq = 0;
/** A topic prefix of its own for each test, so retained state never leaks between tests. */
function uniq(): string {
  return `t${process.pid}x${Date.now().toString(36)}x${++seq}`;
}

const OPEN: MqttBridgeOptions = { allow: { subscribe: ["#"], publish: ["#"], retain: ["#"] } };

/** Publishes from a device and waits for the broker's ack (QoS 1). */
async function devicePublish(
  d: MqttClient,
  topic: string,
  payload: string | Buffer,
  o: Parameters<MqttClient["publishAsync"]>[2] = {},
): Promise<void> {
  await d.publishAsync(topic, payload, { qos: 1, ...o });
}

/**
 * Runs the shared behaviour suite against one broker; on one node, or on the nodes `getTopology`
 * describes (called for every harness, so each can get an adapter of its own).
 */
export function bridgeSuite(
  getTarget: () => BrokerTarget,
  getTopology: () => HarnessTopology = () => ({}),
): void {
  let h: Harness | undefined;
  const harnesses: Harness[] = [];
  const clustered = () => (getTopology().nodes ?? 1) > 1;
  async function setup(opts: MqttBridgeOptions = OPEN, ioOpts = {}): Promise<Harness> {
    const created = await createHarness(getTarget(), opts, ioOpts, getTopology());
    harnesses.push(created);
    return created;
  }
  afterEach(async () => {
    await Promise.all(harnesses.splice(0).map((x) => x.close()));
    h = undefined;
  });

  describe("broker session", () => {
    it("connects when created, with the expected protocol version", async () => {
      h = await setup();
      for (const bridge of h.bridges) {
        expect(bridge.connected).to.equal(true);
        expect(bridge.stats().protocolVersion).to.equal(getTarget().version);
        expect(bridge.stats().connects).to.equal(1);
      }
    });
  });

  describe("rooms drive subscriptions", () => {
    it("delivers device messages to a subscribed client, decoded", async () => {
      h = await setup();
      const c = await h.client();
      const box = collect(c);
      const t = uniq();
      const ack = await request(c, "mqtt.subscribe", `${t}/+`);
      expect(ack).to.deep.include({ ok: true, room: `mqtt:${t}/+`, qos: 0 });
      const d = await h.device();
      await devicePublish(d, `${t}/a`, JSON.stringify({ v: 1 }));
      await devicePublish(d, `${t}/b`, "plain text");
      await waitFor(() => box.messages.length === 2);
      expect(box.messages[0]).to.deep.include({
        topic: `${t}/a`,
        payload: { v: 1 },
        retain: false,
      });
      expect(box.messages[1]).to.deep.include({ topic: `${t}/b`, payload: "plain text" });
    });

    it("holds a broker subscription exactly while its room has members", async () => {
      h = await setup();
      const [a, b] = [await h.client(), await h.client()];
      const t = uniq();
      await request(a, "mqtt.subscribe", t);
      await request(b, "mqtt.subscribe", t);
      // one broker subscription per node with members (a cluster may hold a and b on two nodes)
      const nodes = new Set([h.nodeOf(a), h.nodeOf(b)]).size;
      expect(h.stats().brokerSubscriptions).to.equal(nodes);
      await request(a, "mqtt.unsubscribe", t);
      expect(h.stats().brokerSubscriptions).to.equal(1);
      // leaving by unsubscribing (a disconnect lets it linger: test/integration/recovery.test.ts)
      await request(b, "mqtt.unsubscribe", t);
      await waitFor(() => h!.stats().rooms === 0);
      expect(h.stats().brokerSubscriptions).to.equal(0);
      // the broker no longer sends: a barrier topic proves the first publish was not received
      const c = await h.client();
      await request(c, "mqtt.subscribe", `${t}/barrier`);
      const before = h.stats().messages.in;
      const d = await h.device();
      await devicePublish(d, t, "nobody listens");
      await devicePublish(d, `${t}/barrier`, "x");
      await waitFor(() => h!.stats().messages.in > before);
      expect(h.stats().messages.in).to.equal(before + 1);
    });

    it("bridges rooms joined by server code: socket.join, socketsJoin and bridge.subscribe", async () => {
      h = await setup();
      const t = uniq();
      const [a, b, c] = [await h.client(), await h.client(), await h.client()];
      const boxes = [collect(a), collect(b), collect(c)];
      const sa = h.serverSocket(a.id!)!;
      await sa.join(h.bridge.room(`${t}/a`));
      // from node 0: on a cluster, the adapter carries it to the node holding the socket
      h.io.in(b.id!).socketsJoin(h.bridge.room(`${t}/b`));
      // server routes are per bridge: an app routes on every node
      for (const bridge of h.bridges) bridge.subscribe(`${t}/c`, "app-room");
      h.io.in(c.id!).socketsJoin("app-room");
      await waitFor(() => h!.stats().brokerSubscriptions === 3);
      const d = await h.device();
      for (const x of ["a", "b", "c"]) await devicePublish(d, `${t}/${x}`, x);
      await waitFor(() => boxes.every((box) => box.messages.length === 1));
      expect(boxes.map((box) => box.messages[0].payload)).to.deep.equal(["a", "b", "c"]);
      for (const bridge of h.bridges) bridge.unsubscribe(`${t}/c`, "app-room");
      await waitFor(() => h!.stats().brokerSubscriptions === 2);
    });

    it("never bridges a socket-id room, whatever a client asks", async () => {
      h = await setup();
      const [a, b] = [await h.client(), await h.client()];
      const ack = await request(a, "mqtt.subscribe", b.id);
      expect(ack.ok).to.equal(true);
      const sa = h.serverSocket(a.id!)!;
      expect([...sa.rooms].filter((r) => !isMarker(r)).sort()).to.deep.equal(
        [a.id, `mqtt:${b.id}`].sort(),
      );
    });

    it("delivers each message once to a socket in overlapping rooms, in order", async () => {
      h = await setup();
      const t = uniq();
      const a = await h.client();
      const b = await h.client();
      const [boxA, boxB] = [collect(a), collect(b)];
      for (const f of [`${t}/#`, `${t}/+/x`, `${t}/k/x`]) {
        expect((await request(a, "mqtt.subscribe", f)).ok).to.equal(true);
      }
      expect((await request(b, "mqtt.subscribe", `${t}/k/+`)).ok).to.equal(true);
      for (const bridge of h.bridges) bridge.subscribe(`${t}/k/#`, "app-room");
      h.io.in(b.id!).socketsJoin("app-room");
      await waitFor(() => h!.stats().brokerSubscriptions === 5);
      const d = await h.device();
      const n = 50;
      for (let i = 0; i < n; i++) d.publish(`${t}/k/x`, String(i), { qos: 1 });
      await devicePublish(d, `${t}/k/x`, "end");
      await waitFor(() => boxA.messages.length >= n + 1 && boxB.messages.length >= n + 1);
      const expected = [...Array.from({ length: n }, (_, i) => i), "end"];
      expect(boxA.messages.map((m) => m.payload)).to.deep.equal(expected);
      expect(boxB.messages.map((m) => m.payload)).to.deep.equal(expected);
      // Mosquitto over MQTT 5 sends each bridge one copy per matching subscription: the bridge
      // drops the extras (5 subscriptions: 4 extras on one node; one fewer per extra node used)
      if (getTarget().name === "mosquitto v5") {
        const busy = h.bridges.filter((x) => x.stats().brokerSubscriptions > 0).length;
        expect(h.stats().messages.duplicates).to.equal((5 - busy) * (n + 1));
      }
    });
  });

  describe("authorization", () => {
    it("denies everything by default", async () => {
      h = await setup({});
      const c = await h.client();
      const sub = await request(c, "mqtt.subscribe", "a/b");
      expect(sub).to.deep.include({ ok: false });
      expect(sub.error!.code).to.equal("FORBIDDEN");
      const pub = await request(c, "mqtt.publish", { topic: "a/b", payload: "x" });
      expect(pub.error!.code).to.equal("FORBIDDEN");
      expect(h.stats().rejected.FORBIDDEN).to.equal(2);
    });

    it("allows a filter only when a rule covers every topic it can match", async () => {
      h = await setup({ allow: { subscribe: ["sensors/#"] } });
      const c = await h.client();
      for (const [f, ok] of [
        ["sensors/#", true],
        ["sensors/+/temp", true],
        ["#", false],
        ["+/temp", false],
        ["other", false],
      ] as const) {
        const ack = await request(c, "mqtt.subscribe", f);
        expect(ack.ok, f).to.equal(ok);
      }
    });

    it("fills placeholders from the socket and never widens a rule", async () => {
      h = await setup({
        allow: { subscribe: ["users/{data.userId}/#"], publish: ["users/{data.userId}/out"] },
      });
      for (const io of h.ios) {
        io.use((socket, next) => {
          (socket.data as { userId?: unknown }).userId = (
            socket.handshake.auth as { user?: unknown }
          ).user;
          next();
        });
      }
      const bob = await h.client({ auth: { user: "bob" } });
      const plus = await h.client({ auth: { user: "+" } });
      const hash = await h.client({ auth: { user: "#" } });
      expect((await request(bob, "mqtt.subscribe", "users/bob/#")).ok).to.equal(true);
      expect((await request(bob, "mqtt.subscribe", "users/alice/#")).ok).to.equal(false);
      expect((await request(plus, "mqtt.subscribe", "users/+/#")).ok).to.equal(false);
      expect((await request(plus, "mqtt.subscribe", "users/bob/#")).ok).to.equal(false);
      expect((await request(hash, "mqtt.subscribe", "users/#")).ok).to.equal(false);
      expect(
        (await request(bob, "mqtt.publish", { topic: "users/bob/out", payload: 1 })).ok,
      ).to.equal(true);
      expect(
        (await request(plus, "mqtt.publish", { topic: "users/+/out", payload: 1 })).ok,
      ).to.equal(false);
    });

    it("takes async hooks and re-checks publish permission on every publish", async () => {
      let open = true;
      h = await setup({
        allow: {
          subscribe: async (_s, f) => Promise.resolve(f.startsWith("ok/")),
          publish: (_s, topic) => open && topic.startsWith("ok/"),
        },
      });
      const c = await h.client();
      expect((await request(c, "mqtt.subscribe", "ok/x")).ok).to.equal(true);
      expect((await request(c, "mqtt.subscribe", "no/x")).ok).to.equal(false);
      expect((await request(c, "mqtt.publish", { topic: "ok/x", payload: 1 })).ok).to.equal(true);
      open = false;
      expect(
        (await request(c, "mqtt.publish", { topic: "ok/x", payload: 1 })).error!.code,
      ).to.equal("FORBIDDEN");
    });

    it("needs its own permission for retain", async () => {
      h = await setup({ allow: { publish: ["#"], retain: ["state/#"] } });
      const c = await h.client();
      const t = uniq();
      const bad = await request(c, "mqtt.publish", { topic: `${t}/x`, payload: 1, retain: true });
      expect(bad.error!.code).to.equal("FORBIDDEN");
      const good = await request(c, "mqtt.publish", {
        topic: `state/${t}`,
        payload: 1,
        retain: true,
      });
      expect(good.ok).to.equal(true);
      // clean up the retained message
      await request(c, "mqtt.publish", { topic: `state/${t}`, payload: "", retain: true });
    });
    it("refuses an MQTT 5 responseTopic the socket may not publish to (no confused deputy)", async function () {
      if (getTarget().version !== 5) return this.skip();
      h = await setup({ allow: { publish: ["ok/#"] } });
      const c = await h.client();
      const ack = await request(c, "mqtt.publish", {
        topic: "ok/x",
        payload: "x",
        properties: { responseTopic: "secret/replies" },
      });
      expect(ack.ok).to.equal(false);
      expect(ack.error).to.deep.include({ code: "FORBIDDEN", reasonCode: 0x87 });
      const fine = await request(c, "mqtt.publish", {
        topic: "ok/x",
        payload: "x",
        properties: { responseTopic: "ok/replies" },
      });
      expect(fine).to.deep.equal({ ok: true });
    });
  });

  describe("publish from the server", () => {
    it("bridge.publish() reaches devices and sockets, whatever the socket rules, and is counted", async () => {
      h = await setup({ allow: { subscribe: ["#"] } }); // no publish rule for sockets
      const t = uniq();
      const c = await h.client();
      const box = collect(c);
      expect((await request(c, "mqtt.subscribe", `${t}/out`)).ok).to.equal(true);
      const d = await h.device();
      await d.subscribeAsync(`${t}/out`, { qos: 1 });
      const got = new Promise<string>((resolve) => d.on("message", (_t, p) => resolve(String(p))));
      await h.bridge.publish(`${t}/out`, { a: 1 }, { qos: 1 });
      expect(JSON.parse(await got)).to.deep.equal({ a: 1 });
      await waitFor(() => box.messages.length === 1);
      expect(box.messages[0].payload).to.deep.equal({ a: 1 });
      expect(h.bridge.stats().publishes.server).to.equal(1);
    });
  });

  describe("publish from sockets", () => {
    it("acks after the broker's acknowledgement and delivers exact bytes both ways", async () => {
      h = await setup();
      const c = await h.client();
      const box = collect(c);
      const d = await h.device();
      const t = uniq();
      await d.subscribeAsync(`${t}/up`, { qos: 1 });
      const got = new Promise<Buffer>((resolve) => d.on("message", (_t, p) => resolve(p)));
      const bytes = Buffer.from([0xff, 0xfe, 0x00, 0xc3, 0x28]);
      for (const qos of [0, 1, 2]) {
        const ack = await request(c, "mqtt.publish", { topic: `${t}/up`, payload: bytes, qos });
        expect(ack, `qos ${qos}`).to.deep.equal({ ok: true });
      }
      expect(Buffer.compare(await got, bytes)).to.equal(0);
      await request(c, "mqtt.subscribe", `${t}/down`);
      await devicePublish(d, `${t}/down`, bytes);
      await waitFor(() => box.messages.length === 1);
      expect(Buffer.compare(Buffer.from(box.messages[0].payload as ArrayBuffer), bytes)).to.equal(
        0,
      );
      expect(h.stats().publishes.acked).to.equal(3);
    });

    it("answers every malformed input with a code and never drops the broker connection", async () => {
      h = await setup({
        ...OPEN,
        limits: { payloadBytes: 1000, publishBurst: 1000, publishRate: 1000 },
      });
      const c = await h.client();
      const cases: [unknown, string][] = [
        [null, "INVALID_ARGUMENT"],
        ["a/b", "INVALID_ARGUMENT"],
        [{ topic: "", payload: 1 }, "INVALID_TOPIC"],
        [{ topic: "a/#", payload: 1 }, "INVALID_TOPIC"],
        [{ topic: "a/+", payload: 1 }, "INVALID_TOPIC"],
        [{ topic: "a\u0000b", payload: 1 }, "INVALID_TOPIC"],
        [{ topic: "a/\uD800", payload: 1 }, "INVALID_TOPIC"],
        [{ topic: "x".repeat(65536), payload: 1 }, "INVALID_TOPIC"],
        [{ topic: "a/".repeat(200) + "b", payload: 1 }, "INVALID_TOPIC"],
        [{ topic: 42, payload: 1 }, "INVALID_TOPIC"],
        [{ topic: "a", payload: 1, qos: 3 }, "INVALID_ARGUMENT"],
        [{ topic: "a", payload: 1, qos: "1" }, "INVALID_ARGUMENT"],
        [{ topic: "a", payload: 1, retain: "true" }, "INVALID_ARGUMENT"],
        [{ topic: "a" }, "INVALID_ARGUMENT"],
        [{ topic: "a", payload: "x".repeat(1001) }, "PAYLOAD_TOO_LARGE"],
        [{ topic: "a", payload: "\uDC00" }, "INVALID_ARGUMENT"],
        [{ topic: "a", payload: 1, properties: { topicAlias: 1 } }, "INVALID_ARGUMENT"],
        [{ topic: "a", payload: 1, properties: { subscriptionIdentifier: 1 } }, "INVALID_ARGUMENT"],
        [{ topic: "a", payload: 1, properties: { messageExpiryInterval: -1 } }, "INVALID_ARGUMENT"],
        [{ topic: "a", payload: 1, properties: { responseTopic: "r/#" } }, "INVALID_TOPIC"],
      ];
      for (const [input, code] of cases) {
        const ack = await request(c, "mqtt.publish", input);
        expect(ack.error?.code, JSON.stringify(input)?.slice(0, 60)).to.equal(code);
      }
      const filters: [unknown, string][] = [
        ["", "INVALID_FILTER"],
        ["a/#/b", "INVALID_FILTER"],
        ["a+", "INVALID_FILTER"],
        ["a/\u0000", "INVALID_FILTER"],
        ["$share/g/a", "INVALID_FILTER"],
        [{ filter: "a", qos: 3 }, "INVALID_ARGUMENT"],
        [{ filter: "a", nl: true }, "INVALID_ARGUMENT"],
        [42, "INVALID_ARGUMENT"],
      ];
      for (const [input, code] of filters) {
        const ack = await request(c, "mqtt.subscribe", input);
        expect(ack.error?.code, JSON.stringify(input)).to.equal(code);
      }
      // still one connection per bridge, and it works
      for (const bridge of h.bridges) {
        expect(bridge.stats().connects).to.equal(1);
        expect(bridge.stats().disconnects).to.equal(0);
      }
      expect(
        (await request(c, "mqtt.publish", { topic: uniq(), payload: "ok", qos: 1 })).ok,
      ).to.equal(true);
    });
  });

  describe("last-known state (retained)", () => {
    it("replays retained state to each joiner once, never to members already in", async () => {
      h = await setup();
      const t = uniq();
      const d = await h.device();
      await devicePublish(d, `${t}/s`, "on", { retain: true });
      const a = await h.client();
      const boxA = collect(a);
      await request(a, "mqtt.subscribe", `${t}/#`);
      await waitFor(() => boxA.messages.length === 1);
      expect(boxA.messages[0]).to.deep.include({ topic: `${t}/s`, payload: "on", retain: true });
      const b = await h.client();
      const boxB = collect(b);
      await request(b, "mqtt.subscribe", `${t}/s`);
      await waitFor(() => boxB.messages.length === 1);
      expect(boxB.messages[0]).to.deep.include({ payload: "on", retain: true });
      // a second socket joining A's room (on A's node) gets the state; A does not get it again
      const c = await h.client({ node: h.nodeOf(a) });
      const boxC = collect(c);
      await request(c, "mqtt.subscribe", `${t}/#`);
      await waitFor(() => boxC.messages.length === 1);
      await devicePublish(d, `${t}/barrier`, "b");
      await waitFor(() => boxA.messages.length >= 2 && boxC.messages.length >= 2);
      expect(boxA.messages.map((m) => m.payload)).to.deep.equal(["on", "b"]);
      expect(boxB.messages.map((m) => m.payload)).to.deep.equal(["on"]);
      expect(boxC.messages.map((m) => m.payload)).to.deep.equal(["on", "b"]);
      expect(h.stats().retained.replayed).to.be.greaterThan(0);
    });

    it("keeps the state current and clears it with an empty retained payload", async () => {
      h = await setup();
      const t = uniq();
      const d = await h.device();
      await devicePublish(d, `${t}/s`, "on", { retain: true });
      const a = await h.client();
      const boxA = collect(a);
      await request(a, "mqtt.subscribe", `${t}/+`);
      await waitFor(() => boxA.messages.length === 1);
      await devicePublish(d, `${t}/s`, "off", { retain: true });
      await waitFor(() => boxA.messages.length === 2);
      // a live update of the state is state too: retain-as-published over MQTT 5, and over 3.1.1
      // (which clears the flag on live messages) because the bridge takes it as the new state
      expect(boxA.messages[1].retain, "a live update of the state").to.equal(true);
      const b = await h.client();
      const boxB = collect(b);
      await request(b, "mqtt.subscribe", `${t}/+`);
      await waitFor(() => boxB.messages.length === 1);
      expect(boxB.messages[0]).to.deep.include({ payload: "off", retain: true });
      await devicePublish(d, `${t}/s`, "", { retain: true });
      await waitFor(() => boxA.messages.length === 3);
      const c = await h.client();
      const boxC = collect(c);
      await request(c, "mqtt.subscribe", `${t}/+`);
      await devicePublish(d, `${t}/barrier`, "b");
      await waitFor(() => boxC.messages.length >= 1);
      expect(boxC.messages.map((m) => m.payload)).to.deep.equal(["b"]);
    });

    it("does not replay when retained: false", async () => {
      h = await setup({ ...OPEN, retained: false });
      const t = uniq();
      const d = await h.device();
      await devicePublish(d, `${t}/s`, "on", { retain: true });
      const a = await h.client();
      const boxA = collect(a);
      await request(a, "mqtt.subscribe", `${t}/#`);
      await waitFor(() => boxA.messages.length === 1); // the broker's replay to the new room
      // on A's node: a node subscribing afresh gets the broker's own replay
      const b = await h.client({ node: h.nodeOf(a) });
      const boxB = collect(b);
      await request(b, "mqtt.subscribe", `${t}/#`);
      await devicePublish(d, `${t}/barrier`, "b");
      await waitFor(() => boxB.messages.length >= 1 && boxA.messages.length >= 2);
      // the broker's own replay reaches the room that caused the subscription; nothing is cached
      expect(boxB.messages.map((m) => m.payload)).to.deep.equal(["b"]);
      await devicePublish(d, `${t}/s`, "", { retain: true });
    });
  });

  describe("echo", () => {
    it("leaves out the publishing socket with echo: false over MQTT 5 (3.1.1: the sender gets it back)", async () => {
      h = await setup({ ...OPEN, echo: false });
      const t = uniq();
      const [a, b] = [await h.client(), await h.client()];
      const [boxA, boxB] = [collect(a), collect(b)];
      await request(a, "mqtt.subscribe", t);
      await request(b, "mqtt.subscribe", t);
      expect(
        (await request(a, "mqtt.publish", { topic: t, payload: "from a", qos: 1 })).ok,
      ).to.equal(true);
      const d = await h.device();
      await devicePublish(d, t, "barrier");
      await waitFor(() => boxA.messages.some((m) => m.payload === "barrier"));
      await waitFor(() => boxB.messages.length === 2);
      expect(boxB.messages.map((m) => m.payload)).to.deep.equal(["from a", "barrier"]);
      const expected = getTarget().version === 5 ? ["barrier"] : ["from a", "barrier"];
      expect(boxA.messages.map((m) => m.payload)).to.deep.equal(expected);
      // the bridge's origin marker never reaches sockets
      for (const m of boxB.messages)
        expect(JSON.stringify(m.properties ?? {})).to.not.include("origin");
    });

    it("echoes by default, as MQTT does", async () => {
      h = await setup();
      const t = uniq();
      const a = await h.client();
      const boxA = collect(a);
      await request(a, "mqtt.subscribe", t);
      await request(a, "mqtt.publish", { topic: t, payload: "mine", qos: 1 });
      await waitFor(() => boxA.messages.length === 1);
      expect(boxA.messages[0].payload).to.equal("mine");
    });
  });

  describe("MQTT 5 properties", () => {
    it("pass through in both directions", async function () {
      if (getTarget().version !== 5) return this.skip();
      h = await setup();
      const t = uniq();
      const c = await h.client();
      const box = collect(c);
      await request(c, "mqtt.subscribe", `${t}/down`);
      const d = await h.device();
      await d.publishAsync(`${t}/down`, "x", {
        qos: 1,
        properties: {
          contentType: "text/plain",
          userProperties: { a: "1", b: ["x", "y"], __proto__: "data" },
          correlationData: Buffer.from([1, 2, 3]),
          responseTopic: `${t}/reply`,
          payloadFormatIndicator: true,
        },
      });
      await waitFor(() => box.messages.length === 1);
      const p = box.messages[0].properties!;
      expect(p.contentType).to.equal("text/plain");
      expect(p.responseTopic).to.equal(`${t}/reply`);
      expect(p.payloadFormatIndicator).to.equal(true);
      expect(Buffer.from(p.correlationData as ArrayBuffer)).to.deep.equal(Buffer.from([1, 2, 3]));
      expect(p.userProperties).to.deep.include({ a: "1", b: ["x", "y"] });
      await d.subscribeAsync(`${t}/up`, { qos: 1 });
      const got = new Promise<Record<string, unknown>>((resolve) =>
        d.on("message", (_t, _p, packet) => resolve(packet.properties as Record<string, unknown>)),
      );
      const ack = await request(c, "mqtt.publish", {
        topic: `${t}/up`,
        payload: "y",
        qos: 1,
        properties: {
          contentType: "application/json",
          userProperties: { k: "v", r: ["1", "2"] },
          messageExpiryInterval: 60,
          correlationData: Buffer.from("id-1"),
          responseTopic: `${t}/reply`,
        },
      });
      expect(ack).to.deep.equal({ ok: true });
      const props = await got;
      expect(props.contentType).to.equal("application/json");
      expect({ ...(props.userProperties as object) }).to.deep.equal({ k: "v", r: ["1", "2"] });
      expect(String(props.correlationData)).to.equal("id-1");
      expect(props.responseTopic).to.equal(`${t}/reply`);
    });

    it("are refused over 3.1.1 with a clear code", async function () {
      if (getTarget().version !== 4) return this.skip();
      h = await setup();
      const c = await h.client();
      const ack = await request(c, "mqtt.publish", {
        topic: "a",
        payload: 1,
        properties: { contentType: "x" },
      });
      expect(ack.error!.code).to.equal("INVALID_ARGUMENT");
    });
  });

  describe("limits", () => {
    it("caps subscriptions per socket", async () => {
      h = await setup({ ...OPEN, limits: { subscriptionsPerSocket: 2 } });
      const c = await h.client();
      const t = uniq();
      expect((await request(c, "mqtt.subscribe", `${t}/1`)).ok).to.equal(true);
      expect((await request(c, "mqtt.subscribe", `${t}/2`)).ok).to.equal(true);
      expect((await request(c, "mqtt.subscribe", `${t}/2`)).ok).to.equal(true); // already in: no new slot
      const ack = await request(c, "mqtt.subscribe", `${t}/3`);
      expect(ack.error!.code).to.equal("TOO_MANY_SUBSCRIPTIONS");
      await request(c, "mqtt.unsubscribe", `${t}/1`);
      expect((await request(c, "mqtt.subscribe", `${t}/3`)).ok).to.equal(true);
    });

    it("refuses payloads over the limit and publishes beyond the rate", async () => {
      h = await setup({ ...OPEN, limits: { payloadBytes: 10, publishRate: 1, publishBurst: 3 } });
      const c = await h.client();
      const big = await request(c, "mqtt.publish", { topic: "a", payload: "x".repeat(11) });
      expect(big.error!.code).to.equal("PAYLOAD_TOO_LARGE");
      const codes: string[] = [];
      for (let i = 0; i < 4; i++) {
        const ack = await request(c, "mqtt.publish", { topic: uniq(), payload: "ok" });
        codes.push(ack.ok ? "ok" : ack.error!.code);
      }
      // the oversized publish took a token too
      expect(codes).to.deep.equal(["ok", "ok", "RATE_LIMITED", "RATE_LIMITED"]);
    });
  });

  describe("connection state recovery", () => {
    it("keeps handlers and subscriptions of recovered sockets, and re-checks permissions", async function () {
      // cluster: no recovery on the redis adapter; streams adapter: test/cluster/streams.test.ts
      if (clustered()) return this.skip();
      let allowed = true;
      h = await setup(
        { allow: { subscribe: (_s, f) => allowed || f.endsWith("/keep"), publish: ["#"] } },
        { connectionStateRecovery: { maxDisconnectionDuration: 10_000 } },
      );
      const t = uniq();
      const c = await h.client();
      const box = collect(c);
      await request(c, "mqtt.subscribe", `${t}/keep`);
      await request(c, "mqtt.subscribe", `${t}/drop`);
      // recovery needs an offset: the client must have received a broadcast first
      const d = await h.device();
      await devicePublish(d, `${t}/keep`, "before");
      await waitFor(() => box.messages.length === 1);
      allowed = false;
      const reconnected = new Promise<void>((resolve) => c.once("connect", () => resolve()));
      c.io.engine.close();
      await reconnected;
      expect(c.recovered).to.equal(true);
      await waitFor(() => h!.stats().brokerSubscriptions === 1);
      await devicePublish(d, `${t}/drop`, "dropped");
      await devicePublish(d, `${t}/keep`, "kept");
      await waitFor(() => box.messages.length >= 2);
      expect(box.messages.map((m) => m.payload)).to.deep.equal(["before", "kept"]);
      expect((await request(c, "mqtt.publish", { topic: `${t}/keep`, payload: 1 })).ok).to.equal(
        true,
      );
    });
  });
}
