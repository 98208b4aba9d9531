/**
 * MQTT 5 request / response (`mqtt.request`, `bridge.request`, the helper's `request`) against a
 * real Mosquitto, with a real MQTT.js responder. Glossary: "client" = a socket.io-client socket;
 * "responder" = a plain MQTT.js client (test/support/responder.ts) that answers requests on the
 * response topic they name; "bridge" = the bridge under test.
 */
import { expect } from "chai";
import type { Socket as ClientSocket } from "socket.io-client";
import { mqttClient } from "../../lib/client";
import type { BridgeMessage, RequestAck } from "../../lib";
import { collect, request } from "../support/harness";
import { onMosquitto5 } from "../support/mosquitto-suite";
import type { IncomingRequest } from "../support/responder";
import { respond } from "../support/responder";
import { waitFor } from "../support/util";

const PREFIX = "socket.io-mqtt-bridge/replies/";

/** Sends a request from a client and waits (bounded) for its acknowledgement. */
const ask = (c: ClientSocket, arg: unknown, timeoutMs = 8000) =>
  request<RequestAck>(c, "mqtt.request", arg, timeoutMs);

const codeOf = (ack: RequestAck) => (ack.ok ? "ok" : ack.error.code);

describe("request / response (Mosquitto, MQTT 5)", () => {
  const { setup, uniq } = onMosquitto5("rq");
  const OPEN = { allow: { request: ["#"] } };

  it("answers a request with the first reply, through a response topic of the bridge's own", async () => {
    const t = uniq();
    const h = await setup(OPEN);
    const d = await h.device();
    const r = await respond(d, `${t}/#`, (req) =>
      req.reply(JSON.stringify({ pong: req.text }), { status: "200" }),
    );
    const c = await h.client();
    const ack = await ask(c, {
      topic: `${t}/ping`,
      payload: "hello",
      timeoutMs: 2500,
      properties: { userProperties: { trace: "abc" }, contentType: "text/plain" },
    });
    if (!ack.ok) throw new Error(`refused: ${ack.error.code}`);
    const reply = ack.reply;
    const stats = h.bridge.stats();
    expect(reply.topic).to.equal(stats.requests.responseTopic);
    expect(reply.topic.startsWith(PREFIX)).to.equal(true);
    expect(reply.payload).to.deep.equal({ pong: "hello" });
    expect(reply.properties?.userProperties).to.deep.equal({ status: "200" });
    expect(reply.properties).not.to.have.property("correlationData");
    // what the responder got: the bridge's response topic, 16 random bytes, expiry = timeout
    const [req] = r.requests;
    expect(req.responseTopic).to.equal(reply.topic);
    expect(req.correlationData).to.have.length(16);
    expect(req.packet.properties?.messageExpiryInterval).to.equal(3); // 2.5 s, rounded up
    expect(req.packet.qos).to.equal(1); // the default QoS of a request
    expect(req.packet.properties?.userProperties).to.deep.equal({ trace: "abc" });
    expect(req.packet.properties?.contentType).to.equal("text/plain");
    expect(stats.requests).to.include({ received: 1, sent: 1, answered: 1, inFlight: 0 });
    expect(stats.requests.ignored).to.equal(0);
    // the response topic is the bridge's own business: not a room's broker subscription
    expect(stats.brokerSubscriptions).to.equal(0);

    // server side and the browser helper, on the same response topic
    const fromServer = await h.bridge.request<string>(`${t}/server`, "s", { timeoutMs: 2000 });
    expect(fromServer.payload).to.deep.equal({ pong: "s" });
    const helper = mqttClient(c);
    const fromHelper: BridgeMessage = await helper.request(`${t}/helper`, { n: 1 });
    expect(fromHelper.payload).to.deep.equal({ pong: '{"n":1}' });
    helper.close();
    expect(new Set(r.requests.map((x) => x.responseTopic)).size).to.equal(1);
    expect(h.bridge.stats().requests).to.include({ server: 1, answered: 3, inFlight: 0 });
  });

  it("keeps concurrent requests apart: 60 in flight from 3 sockets, replies in reverse order", async () => {
    const t = uniq();
    const h = await setup({ ...OPEN, limits: { requestsPerSocket: 20 } });
    const d = await h.device();
    const held: IncomingRequest[] = [];
    await respond(d, `${t}/#`, async (req) => {
      held.push(req);
      if (held.length < 60) return;
      // every request is waiting now: answer them last first
      for (const x of held.reverse()) await x.reply(`reply:${x.text}`);
    });
    const clients = [await h.client(), await h.client(), await h.client()];
    const acks = await Promise.all(
      clients.flatMap((c, i) =>
        Array.from({ length: 20 }, (_, j) =>
          ask(c, { topic: `${t}/dev/${j % 4}`, payload: `c${i}-${j}`, qos: j % 2 }),
        ),
      ),
    );
    const payloads = acks.map((a) => (a.ok ? a.reply.payload : a.error.code));
    const expected = clients.flatMap((_, i) =>
      Array.from({ length: 20 }, (_, j) => `reply:c${i}-${j}`),
    );
    expect(payloads).to.deep.equal(expected);
    const stats = h.bridge.stats();
    expect(stats.requests).to.include({ received: 60, answered: 60, inFlight: 0, ignored: 0 });
  });

  it("answers TIMEOUT when no reply comes in time, and ignores a reply that comes later", async () => {
    const t = uniq();
    const h = await setup(OPEN);
    const d = await h.device();
    const r = await respond(d, `${t}/#`, () => undefined); // never answers by itself
    const c = await h.client();
    const started = Date.now();
    const ack = await ask(c, { topic: `${t}/slow`, payload: 1, timeoutMs: 300 });
    const took = Date.now() - started;
    expect(codeOf(ack)).to.equal("TIMEOUT");
    expect(took).to.be.within(290, 2000);
    let stats = h.bridge.stats();
    expect(stats.requests).to.include({ timedOut: 1, inFlight: 0, answered: 0 });
    expect(stats.rejected.TIMEOUT).to.equal(1);
    expect(r.requests[0].packet.properties?.messageExpiryInterval).to.equal(1);
    await r.requests[0].reply("too late");
    await waitFor(() => h.bridge.stats().requests.ignored === 1, { message: "the late reply" });
    stats = h.bridge.stats();
    expect(stats.requests.answered).to.equal(0);
  });

  it("refuses requests the rules do not allow: deny by default, lists with placeholders, a function", async () => {
    const t = uniq();
    const none = await setup({ allow: { publish: ["#"], subscribe: ["#"] } });
    const d = await none.device();
    const r = await respond(d, `${t}/#`);
    const c0 = await none.client();
    const denied = await ask(c0, { topic: `${t}/x`, payload: 1 });
    expect(denied).to.deep.include({ ok: false });
    expect(denied.ok === false && denied.error).to.include({ code: "FORBIDDEN", reasonCode: 0x87 });

    const h = await setup({
      allow: {
        request: (socket, topic, message) =>
          topic.startsWith(`${t}/fn/`) && message.payload === "please" && socket.connected,
      },
    });
    const c1 = await h.client();
    expect(codeOf(await ask(c1, { topic: `${t}/fn/a`, payload: "please" }))).to.equal("ok");
    expect(codeOf(await ask(c1, { topic: `${t}/fn/a`, payload: "now" }))).to.equal("FORBIDDEN");
    expect(codeOf(await ask(c1, { topic: `${t}/other`, payload: "please" }))).to.equal("FORBIDDEN");

    const lists = await setup({ allow: { request: [`${t}/users/{handshake.auth.user}/#`] } });
    const ann = await lists.client({ auth: { user: "ann" } });
    expect(codeOf(await ask(ann, { topic: `${t}/users/ann/cmd`, payload: 1 }))).to.equal("ok");
    expect(codeOf(await ask(ann, { topic: `${t}/users/bob/cmd`, payload: 1 }))).to.equal(
      "FORBIDDEN",
    );
    // only the allowed requests reached the responder
    expect(r.requests.map((x) => x.topic)).to.deep.equal([`${t}/fn/a`, `${t}/users/ann/cmd`]);
    expect(none.bridge.stats().rejected.FORBIDDEN).to.equal(1);
  });

  it("takes the first reply of a responder that answers twice, and ignores the second", async () => {
    const t = uniq();
    const h = await setup(OPEN);
    const d = await h.device();
    await respond(d, `${t}/#`, async (req) => {
      await req.reply("first");
      await req.reply("second");
    });
    const c = await h.client();
    const ack = await ask(c, { topic: `${t}/twice`, payload: 1 });
    expect(ack.ok && ack.reply.payload).to.equal("first");
    await waitFor(() => h.bridge.stats().requests.ignored === 1, { message: "the second reply" });
    expect(h.bridge.stats().requests.answered).to.equal(1);
  });

  it("ignores spoofed replies: other correlation data, or none", async () => {
    const t = uniq();
    const h = await setup(OPEN);
    const d = await h.device();
    await respond(d, `${t}/#`, async (req) => {
      const wrong = Buffer.from(req.correlationData!);
      wrong[0] ^= 0xff;
      await req.spoof("spoofed", wrong);
      await req.spoof("no correlation data", undefined);
      await req.reply("genuine");
    });
    const c = await h.client();
    const ack = await ask(c, { topic: `${t}/spoof`, payload: 1 });
    expect(ack.ok && ack.reply.payload).to.equal("genuine");
    expect(h.bridge.stats().requests).to.include({ ignored: 2, answered: 1 });
  });

  it("gives up the requests of a socket that disconnects, leaving nothing behind", async () => {
    const t = uniq();
    const h = await setup(OPEN);
    const d = await h.device();
    const r = await respond(d, `${t}/#`, () => undefined);
    const c = await h.client();
    for (let i = 0; i < 3; i++) {
      c.emit("mqtt.request", { topic: `${t}/gone`, payload: i, timeoutMs: 30_000 }, () => {
        throw new Error("no ack reaches a disconnected socket");
      });
    }
    await waitFor(() => r.requests.length === 3, { message: "the responder got every request" });
    expect(h.bridge.stats().requests.inFlight).to.equal(3);
    c.disconnect();
    // long before any timeout: the socket's requests are gone, their timers cleared
    await waitFor(() => h.bridge.stats().requests.inFlight === 0, { timeoutMs: 2000 });
    expect(h.bridge.stats().requests.cancelled).to.equal(3);
    for (const req of r.requests) await req.reply("nobody waits");
    await waitFor(() => h.bridge.stats().requests.ignored === 3, { message: "replies ignored" });
    const stats = h.bridge.stats();
    expect(stats.requests).to.include({ answered: 0, timedOut: 0 });
    expect(Object.values(stats.rejected).reduce((a, b) => a + b, 0)).to.equal(0);
  });

  it("never hands a reply to a room: a socket subscribed to # sees none, and it answers once", async () => {
    const t = uniq();
    const h = await setup({ allow: { request: ["#"], subscribe: ["#"] } });
    const d = await h.device();
    await respond(d, `${t}/#`);
    const watcher = await h.client();
    const box = collect(watcher);
    expect((await request(watcher, "mqtt.subscribe", "#")).ok).to.equal(true);
    const c = await h.client();
    const ack = await ask(c, { topic: `${t}/seen`, payload: "x" });
    expect(ack.ok && ack.reply.payload).to.equal("reply:x");
    // the watcher sees the request itself (it is an ordinary publish), never the reply
    await waitFor(() => box.messages.some((m) => m.topic === `${t}/seen`));
    await d.publishAsync(`${t}/barrier`, "b", { qos: 1 });
    await waitFor(() => box.messages.some((m) => m.topic === `${t}/barrier`));
    expect(box.messages.filter((m) => m.topic.startsWith(PREFIX))).to.deep.equal([]);
    const stats = h.bridge.stats();
    expect(stats.requests).to.include({ answered: 1, ignored: 0 });
    // Mosquitto sent the reply twice (for # and for the response topic): the room's copy dropped
    expect(stats.messages.duplicates).to.equal(1);
  });
});
