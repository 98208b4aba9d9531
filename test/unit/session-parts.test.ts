/**
 * Unit tests for the parts of the broker session that need no broker: how a SUBACK is read
 * (lib/broker/broker-answers.ts), the redelivery filter of persistent sessions (lib/broker/redelivery.ts) and the
 * bounds of the outbox (lib/broker/outbox.ts). The broker-facing behaviour is tested against Mosquitto in
 * test/integration/session.test.ts.
 */
import { expect } from "chai";
import type { IPublishPacket } from "mqtt";
import { subackResult } from "../../lib/broker/broker-answers";
import { Deadlines } from "../../lib/broker/deadlines";
import { MqttBridgeError } from "../../lib/errors";
import type { OutboxLink } from "../../lib/broker/outbox";
import { Outbox } from "../../lib/broker/outbox";
import { REMEMBERED_MESSAGES, Redeliveries } from "../../lib/broker/redelivery";

function publish(id: number, dup: boolean, qos: 0 | 1 = 1): IPublishPacket {
  return {
    cmd: "publish",
    topic: "t",
    payload: Buffer.alloc(0),
    qos,
    dup,
    retain: false,
    messageId: id,
  };
}

describe("subackResult", () => {
  it("reads the granted QoS", () => {
    expect(subackResult(null, [{ topic: "a", qos: 1 }])).to.deep.equal([null, 1]);
  });

  it("takes an empty grant (MQTT.js sent no SUBSCRIBE) for a failure, not a success", () => {
    const [err] = subackResult(null, []);
    expect(err).to.be.instanceOf(MqttBridgeError);
    expect((err as MqttBridgeError).code).to.equal("BROKER_UNAVAILABLE");
    expect(subackResult(null, undefined)[0]).to.be.instanceOf(MqttBridgeError);
  });

  it("maps a refusal to BROKER_REJECTED with its reason code", () => {
    const refused = Object.assign(new Error("Subscribe error"), { packet: { granted: [0x97] } });
    const [err] = subackResult(refused, undefined);
    expect(err).to.deep.include({ code: "BROKER_REJECTED", reasonCode: 0x97 });
  });
});

describe("Redeliveries", () => {
  const payload = Buffer.from("hello");

  it("drops a DUP redelivery of a message of the previous connection, once", () => {
    const r = new Redeliveries();
    expect(r.redelivered("a", payload, publish(7, false))).to.equal(false);
    r.disconnected();
    expect(r.redelivered("a", payload, publish(7, true))).to.equal(true);
    r.disconnected();
    expect(r.redelivered("a", payload, publish(7, true))).to.equal(false);
  });

  it("keeps a DUP message that differs, one never seen, and every message without DUP", () => {
    const r = new Redeliveries();
    r.redelivered("a", payload, publish(1, false));
    r.redelivered("a", payload, publish(2, false));
    r.disconnected();
    expect(r.redelivered("b", payload, publish(1, true)), "other topic").to.equal(false);
    expect(r.redelivered("a", Buffer.from("hellO"), publish(2, true)), "other payload").to.equal(
      false,
    );
    expect(r.redelivered("a", payload, publish(3, true)), "never seen").to.equal(false);
    r.disconnected();
    expect(r.redelivered("a", payload, publish(3, false)), "no DUP").to.equal(false);
    expect(r.redelivered("a", payload, publish(4, true, 0)), "QoS 0").to.equal(false);
  });

  it("forgets everything when the session was not resumed, and remembers a bounded window", () => {
    const r = new Redeliveries();
    r.redelivered("a", payload, publish(1, false));
    r.disconnected();
    r.forget();
    expect(r.redelivered("a", payload, publish(1, true))).to.equal(false);
    for (let id = 1; id <= REMEMBERED_MESSAGES + 10; id++)
      r.redelivered("a", payload, publish(id, false));
    r.disconnected();
    expect(r.redelivered("a", payload, publish(5, true)), "older than the window").to.equal(false);
    expect(r.redelivered("a", payload, publish(REMEMBERED_MESSAGES + 10, true))).to.equal(true);
  });
});

describe("Outbox", () => {
  /** A link whose sends are answered by the test; `window` QoS 1/2 publishes at once. */
  function link(window: number) {
    const state = {
      up: true,
      closed: false,
      sent: [] as { topic: string; done: (e?: Error) => void }[],
    };
    const l: OutboxLink = {
      connected: () => state.up,
      window: () => window,
      closed: () => state.closed,
      send: (topic, _payload, _o, done) => state.sent.push({ topic, done }),
    };
    return { state, l };
  }
  const qos1 = { qos: 1, retain: false } as const;
  const none = Buffer.alloc(0);

  it("keeps QoS 1 publishes within the window, in order, and refuses past its queue bound", async () => {
    const { state, l } = link(2);
    const box = new Outbox(l, new Deadlines(10_000), { offline: 0, window: 3 }, 10_000);
    const results = Array.from({ length: 6 }, (_, i) =>
      box.publish(`t${i}`, none, qos1, false).then(
        () => "ok",
        (e: MqttBridgeError) => e.code,
      ),
    );
    expect(state.sent.map((s) => s.topic)).to.deep.equal(["t0", "t1"]);
    expect(box.size).to.equal(3);
    expect(await results[5]).to.equal("RATE_LIMITED");
    state.sent[0].done();
    expect(state.sent.map((s) => s.topic)).to.deep.equal(["t0", "t1", "t2"]);
    for (let i = 1; i < 5; i++) state.sent[i].done();
    expect(await Promise.all(results)).to.deep.equal([
      "ok",
      "ok",
      "ok",
      "ok",
      "ok",
      "RATE_LIMITED",
    ]);
    expect(box.inFlight).to.equal(0);
  });

  it("waits offline within limits.offlineQueue, drops what times out unsent, sends the rest on flush", async () => {
    const { state, l } = link(10);
    state.up = false;
    const box = new Outbox(l, new Deadlines(40), { offline: 2, window: 10 }, 40);
    const outcome = (p: Promise<void>) =>
      p.then(
        () => "ok",
        (e: MqttBridgeError) => e.code,
      );
    const queued = ["a", "b"].map((t) => outcome(box.publish(t, none, qos1, true)));
    expect(await outcome(box.publish("c", none, qos1, true))).to.equal("BROKER_UNAVAILABLE");
    expect(await outcome(box.publish("d", none, qos1, false))).to.equal("BROKER_UNAVAILABLE");
    expect(await Promise.all(queued)).to.deep.equal(["TIMEOUT", "TIMEOUT"]);
    expect(box.size).to.equal(0);
    expect(state.sent, "nothing sent for the publishes that timed out").to.deep.equal([]);
    const late = outcome(box.publish("late", none, qos1, true));
    state.up = true;
    box.flush();
    expect(state.sent.map((s) => s.topic)).to.deep.equal(["late"]);
    state.sent[0].done();
    expect(await late).to.equal("ok");
  });
});
