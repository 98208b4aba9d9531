/**
 * MQTT 5 request / response: its bounds, MQTT 3.1.1 brokers, broker restarts and several bridges
 * on one broker. Glossary as in request.test.ts: "client" = a socket.io-client socket,
 * "responder" = a plain MQTT.js client answering requests (test/support/responder.ts).
 */
import { expect } from "chai";
import type { Socket as ClientSocket } from "socket.io-client";
import { MqttBridgeClientError, mqttClient } from "../../lib/client";
import type { MqttBridgeError, RequestAck } from "../../lib";
import type { AedesHandle } from "../support/aedes";
import { startAedes } from "../support/aedes";
import type { Harness } from "../support/harness";
import { createHarness, request } from "../support/harness";
import type { MosquittoHandle } from "../support/mosquitto";
import { startMosquitto } from "../support/mosquitto";
import { onMosquitto5 } from "../support/mosquitto-suite";
import type { IncomingRequest } from "../support/responder";
import { respond } from "../support/responder";
import { waitFor } from "../support/util";

const ask = (c: ClientSocket, arg: unknown, timeoutMs = 8000) =>
  request<RequestAck>(c, "mqtt.request", arg, timeoutMs);
const codeOf = (ack: RequestAck) => (ack.ok ? "ok" : ack.error.code);

describe("request / response: bounds (Mosquitto, MQTT 5)", () => {
  const { setup, uniq } = onMosquitto5("rqb");

  it("bounds the requests in flight per socket and per bridge with RATE_LIMITED", async () => {
    const t = uniq();
    const h = await setup({
      allow: { request: ["#"] },
      limits: { requestsPerSocket: 2, requestsInFlight: 3 },
    });
    const d = await h.device();
    const held: IncomingRequest[] = [];
    await respond(d, `${t}/#`, (req) => void held.push(req));
    const [a, b] = [await h.client(), await h.client()];
    const fromA = [0, 1, 2].map((i) => ask(a, { topic: `${t}/a`, payload: `a${i}` }));
    const third = await fromA[2];
    expect(codeOf(third)).to.equal("RATE_LIMITED");
    expect(third.ok === false && third.error.reasonCode).to.equal(0x97);
    await waitFor(() => held.length === 2, { message: "A's two requests reach the responder" });
    const fromB = [0, 1].map((i) => ask(b, { topic: `${t}/b`, payload: `b${i}` }));
    await waitFor(() => held.length === 3, { message: "B's first request" });
    const overBridge = await fromB[1]; // the bridge holds 3 already
    expect(codeOf(overBridge)).to.equal("RATE_LIMITED");
    expect(overBridge.ok === false && overBridge.error.message).to.match(/3 requests in flight/);
    expect(h.bridge.stats().requests.inFlight).to.equal(3);
    for (const req of held) await req.reply(`reply:${req.text}`);
    const answered = await Promise.all([fromA[0], fromA[1], fromB[0]]);
    expect(answered.map((x) => x.ok && x.reply.payload)).to.deep.equal([
      "reply:a0",
      "reply:a1",
      "reply:b0",
    ]);
    // the places are free again
    expect(codeOf(await ask(a, { topic: `${t}/a`, payload: "again", timeoutMs: 200 }))).to.equal(
      "TIMEOUT",
    );
    expect(h.bridge.stats().rejected.RATE_LIMITED).to.equal(2);
  });

  it("refuses a bad request before it reaches the broker, with the publish rules and its own", async () => {
    const t = uniq();
    const h = await setup({
      allow: { request: ["#"] },
      limits: { requestTimeoutMs: 1000, payloadBytes: 16 },
    });
    const d = await h.device();
    const r = await respond(d, `${t}/#`);
    const c = await h.client();
    const bad: [unknown, string][] = [
      [{ topic: `${t}/x`, payload: 1, timeoutMs: 1001 }, "INVALID_ARGUMENT"],
      [{ topic: `${t}/x`, payload: 1, timeoutMs: 0 }, "INVALID_ARGUMENT"],
      [{ topic: `${t}/x`, payload: 1, timeoutMs: "5" }, "INVALID_ARGUMENT"],
      [{ topic: `${t}/x`, payload: 1, retain: true }, "INVALID_ARGUMENT"],
      [{ topic: `${t}/x`, payload: 1, qos: 3 }, "INVALID_ARGUMENT"],
      [
        { topic: `${t}/x`, payload: 1, properties: { responseTopic: `${t}/r` } },
        "INVALID_ARGUMENT",
      ],
      [{ topic: `${t}/x`, payload: 1, properties: { correlationData: "x" } }, "INVALID_ARGUMENT"],
      [
        { topic: `${t}/x`, payload: 1, properties: { messageExpiryInterval: 5 } },
        "INVALID_ARGUMENT",
      ],
      [{ topic: `${t}/+`, payload: 1 }, "INVALID_TOPIC"],
      [{ topic: "", payload: 1 }, "INVALID_TOPIC"],
      [{ topic: `${t}/x`, payload: "x".repeat(17) }, "PAYLOAD_TOO_LARGE"],
      ["not an object", "INVALID_ARGUMENT"],
    ];
    for (const [arg, code] of bad) {
      expect(codeOf(await ask(c, arg)), JSON.stringify(arg)).to.equal(code);
    }
    // server code: the same request rules (its payloads are held to MQTT's bound only)
    const refused = await h.bridge.request(`${t}/x`, 1, { timeoutMs: 5000 }).then(
      () => undefined,
      (err: MqttBridgeError) => err.code,
    );
    expect(refused).to.equal("INVALID_ARGUMENT");
    expect(r.requests).to.deep.equal([]);
    // no request without an ack callback crashes anything (counted instead)
    c.emit("mqtt.request", { topic: `${t}/noack`, payload: 1 });
    await waitFor(() => h.bridge.stats().noAckCallback === 1);
    expect(h.bridge.stats().requests.inFlight).to.equal(0);
  });

  it("lets server code give a request up with an AbortSignal", async () => {
    const t = uniq();
    const h = await setup({});
    const d = await h.device();
    const r = await respond(d, `${t}/#`, () => undefined);
    const controller = new AbortController();
    const pending = h.bridge.request(`${t}/abort`, 1, { signal: controller.signal });
    await waitFor(() => r.requests.length === 1);
    controller.abort(new Error("changed my mind"));
    const err = await pending.then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).to.equal("changed my mind");
    expect(h.bridge.stats().requests).to.include({ cancelled: 1, inFlight: 0, server: 1 });
  });
});

describe("request / response over MQTT 3.1.1 (aedes)", () => {
  let broker: AedesHandle;
  let h: Harness | undefined;
  before(async () => {
    broker = await startAedes();
  });
  after(async () => broker.close());
  afterEach(async () => h?.close());

  it("refuses requests with MQTT5_REQUIRED: sockets, server code and the helper", async () => {
    h = await createHarness(
      { name: "aedes", url: broker.url, version: 4 },
      { allow: { request: ["#"] } },
    );
    await waitFor(() => h!.bridge.stats().protocolVersion === 4);
    const c = await h.client();
    const ack = await ask(c, { topic: "a/b", payload: 1 });
    expect(ack.ok === false && ack.error.code).to.equal("MQTT5_REQUIRED");
    expect(ack.ok === false && ack.error.message).to.match(/MQTT 5/);
    const server = await h.bridge.request("a/b", 1).then(
      () => undefined,
      (err: MqttBridgeError) => err.code,
    );
    expect(server).to.equal("MQTT5_REQUIRED");
    const helper = mqttClient(c);
    const err = await helper.request("a/b", 1).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).to.be.instanceOf(MqttBridgeClientError);
    expect((err as MqttBridgeClientError).code).to.equal("MQTT5_REQUIRED");
    helper.close();
    const stats = h.bridge.stats();
    expect(stats.rejected.MQTT5_REQUIRED).to.equal(2);
    expect(stats.requests).to.include({ sent: 0, inFlight: 0 });
    expect(stats.requests.responseTopic).to.equal(undefined); // nothing subscribed
  });
});

describe("request / response across broker restarts and bridges (Mosquitto, MQTT 5)", () => {
  let broker: MosquittoHandle;
  let h: Harness | undefined;
  before(async () => {
    broker = await startMosquitto();
  });
  after(async () => broker.stop());
  afterEach(async () => h?.close());

  it("subscribes the response topic again after the broker restarts", async () => {
    h = await createHarness(
      { name: "mosquitto v5", url: broker.url, version: 5 },
      { allow: { request: ["#"] } },
    );
    const d = await h.device(); // MQTT.js restores the responder's subscription itself
    await respond(d, "rr/#");
    const c = await h.client();
    expect(codeOf(await ask(c, { topic: "rr/1", payload: 1 }))).to.equal("ok");
    const before = h.bridge.stats().connects;
    await broker.restart(); // a fresh broker: no session, no subscription survives
    await waitFor(() => h!.bridge.stats().connects > before && h!.bridge.connected, {
      timeoutMs: 10_000,
      message: "the bridge reconnected",
    });
    await waitFor(() => d.connected, { timeoutMs: 10_000, message: "the responder reconnected" });
    // subscribed again on connect, before any new request: a stray message there is heard
    const responseTopic = h.bridge.stats().requests.responseTopic!;
    await waitFor(
      async () => {
        await d.publishAsync(responseTopic, "stray", { qos: 1 });
        return h!.bridge.stats().requests.ignored > 0;
      },
      { timeoutMs: 5000, intervalMs: 50, message: "the response topic subscribed again" },
    );
    expect(h.bridge.stats().requests.received).to.equal(1);
    // the responder's SUBSCRIBE may still be on its way: retry until it answers
    let ack: RequestAck | undefined;
    await waitFor(
      async () => (ack = await ask(c, { topic: "rr/2", payload: 2, timeoutMs: 300 })).ok,
      { timeoutMs: 10_000, message: "a request answered after the restart" },
    );
    expect(ack!.ok && ack!.reply.payload).to.equal("reply:2");
  });

  it("gives each bridge on a broker a response topic of its own: replies never cross", async () => {
    h = await createHarness(
      { name: "mosquitto v5", url: broker.url, version: 5 },
      { allow: { request: ["#"] } },
      {},
      { nodes: 2 },
    );
    const d = await h.device();
    await respond(d, "nodes/#");
    const [c0, c1] = [await h.client({ node: 0 }), await h.client({ node: 1 })];
    const acks = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        ask(i % 2 ? c1 : c0, { topic: `nodes/${i}`, payload: `n${i}` }),
      ),
    );
    expect(acks.map((a) => a.ok && a.reply.payload)).to.deep.equal(
      Array.from({ length: 20 }, (_, i) => `reply:n${i}`),
    );
    const [s0, s1] = h.bridges.map((b) => b.stats());
    expect(s0.requests.responseTopic).not.to.equal(s1.requests.responseTopic);
    for (const s of [s0, s1]) expect(s.requests).to.include({ answered: 10, ignored: 0 });
  });
});
