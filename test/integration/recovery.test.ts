/**
 * Missed-message recovery (lib/routing/history.ts, lib/sockets/recovery.ts) on the raw socket
 * protocol, with real sockets on a real Mosquitto: stream positions, `since` replays exactly once
 * and in order, and every case where the bridge cannot tell what was missed.
 */
import { expect } from "chai";
import type { MqttClient } from "mqtt";
import type { MqttBridgeOptions } from "../../lib";
import type { Harness } from "../support/harness";
import { request } from "../support/harness";
import { onMosquitto5 } from "../support/mosquitto-suite";
import type { Ack, Got } from "../support/stream";
import { record } from "../support/stream";
import { waitFor } from "../support/util";

/** The last offset a client got, or its ack's position when later. */
function reached(got: Got[], ack: Ack): number {
  return Math.max(ack.position!.offset, ...got.map((g) => g.offset ?? 0));
}

const ALLOW = { subscribe: ["#"], publish: ["#"] };

describe("recovery: missed messages across reconnects (raw protocol)", function () {
  this.timeout(20_000);
  const { setup, uniq } = onMosquitto5("rcv");

  async function publish(h: Harness, d: MqttClient, topic: string, from: number, to: number) {
    const before = h.stats().recovery.offset;
    for (let s = from; s < to; s++) await d.publishAsync(topic, JSON.stringify({ s }), { qos: 1 });
    await waitFor(() => h.stats().recovery.offset >= before + (to - from), {
      message: `the bridge numbered messages ${from} to ${to - 1}`,
    });
  }

  /** A client subscribed to `filter` that got messages 0..9, then disconnected. */
  async function away(h: Harness, filter: string, topic: string) {
    const c = await h.client();
    const got = record(c);
    const ack = await request<Ack>(c, "mqtt.subscribe", filter);
    expect(ack.ok).to.equal(true);
    const d = await h.device();
    await publish(h, d, topic, 0, 10);
    await waitFor(() => got.length === 10, { message: "the first ten messages" });
    const position = { epoch: ack.position!.epoch, offset: reached(got, ack) };
    const id = c.id!;
    c.disconnect();
    return { d, position, id, got };
  }

  it("numbers messages in one stream per bridge, named on each message, and tells each subscriber where it is", async () => {
    const t = uniq();
    const h = await setup({ allow: ALLOW });
    const c = await h.client();
    const got = record(c);
    const ack = await request<Ack>(c, "mqtt.subscribe", `${t}/#`);
    expect(ack.position!.epoch).to.be.a("string").with.length.greaterThan(8);
    expect(ack.position!.offset).to.be.a("number");
    const d = await h.device();
    await publish(h, d, `${t}/a`, 0, 5);
    await waitFor(() => got.length === 5);
    const offsets = got.map((g) => g.offset!);
    expect(offsets[0]).to.be.greaterThan(ack.position!.offset);
    for (let i = 1; i < offsets.length; i++) expect(offsets[i]).to.be.greaterThan(offsets[i - 1]);
    expect(new Set(got.map((g) => g.epoch))).to.deep.equal(new Set([ack.position!.epoch]));
    const other = await setup({ allow: ALLOW });
    const c2 = await other.client();
    const ack2 = await request<Ack>(c2, "mqtt.subscribe", `${t}/#`);
    expect(ack2.position!.epoch, "another bridge, another stream").to.not.equal(
      ack.position!.epoch,
    );
    expect(h.stats().recovery).to.include({ epoch: ack.position!.epoch });
    expect(h.stats().recovery.messages).to.be.at.least(5);
  });

  it("replays what a socket missed while away exactly once, in order, before live messages", async () => {
    const t = uniq();
    const h = await setup({ allow: ALLOW });
    const { d, position } = await away(h, `${t}/#`, `${t}/a`);
    await waitFor(() => h.stats().recovery.lingering === 1, {
      message: "the subscription lingers",
    });
    expect(h.stats().brokerSubscriptions).to.equal(1);
    await publish(h, d, `${t}/a`, 10, 30);
    const c = await h.client();
    const got = record(c);
    const ack = await request<Ack>(c, "mqtt.subscribe", {
      filter: `${t}/#`,
      since: position,
    });
    expect(ack).to.include({ ok: true, recovered: true });
    await publish(h, d, `${t}/a`, 30, 40);
    await waitFor(() => got.length >= 30, { message: "missed and live messages" });
    expect(got.map((g) => g.s)).to.deep.equal(Array.from({ length: 30 }, (_, i) => i + 10));
    expect(got.every((g) => !g.retain)).to.equal(true);
    const offsets = got.map((g) => g.offset!);
    for (let i = 1; i < offsets.length; i++) expect(offsets[i]).to.be.greaterThan(offsets[i - 1]);
    expect(h.stats().recovery).to.include({ recovered: 1, replayed: 20, failed: 0 });
  });

  it("answers recovered: false, with the retained state, for another epoch, a future offset or an overflowed history", async () => {
    const t = uniq();
    const h = await setup({ allow: ALLOW, recovery: { maxMessages: 5 } });
    const { d, position } = await away(h, `${t}/#`, `${t}/a`);
    await d.publishAsync(`${t}/state`, JSON.stringify({ s: -1 }), { qos: 1, retain: true });
    await publish(h, d, `${t}/a`, 10, 20); // 11 messages since: more than the history keeps
    for (const since of [
      { epoch: "another", offset: position.offset },
      { epoch: position.epoch, offset: position.offset + 1_000_000 },
      position,
    ]) {
      const c = await h.client();
      const got = record(c);
      const ack = await request<Ack>(c, "mqtt.subscribe", { filter: `${t}/#`, since });
      expect(ack, JSON.stringify(since)).to.include({ ok: true, recovered: false });
      await waitFor(() => got.length === 1, { message: "the retained state" });
      expect(got[0]).to.include({ topic: `${t}/state`, s: -1, retain: true });
    }
    expect(h.stats().recovery.failed).to.equal(3);
    // the messages kept never exceed the bound
    expect(h.stats().recovery.messages).to.equal(5);
  });

  it("lets a lingering subscription go after windowMs; then a socket cannot recover", async () => {
    const t = uniq();
    const h = await setup({ allow: ALLOW, recovery: { windowMs: 300 } });
    const { position } = await away(h, `${t}/#`, `${t}/a`);
    await waitFor(() => h.stats().recovery.lingering === 1, { message: "it lingers" });
    await waitFor(() => h.stats().brokerSubscriptions === 0, {
      timeoutMs: 3000,
      message: "the broker subscription went after the window",
    });
    expect(h.stats().recovery.lingering).to.equal(0);
    const c = await h.client();
    const ack = await request<Ack>(c, "mqtt.subscribe", { filter: `${t}/#`, since: position });
    expect(ack).to.include({ ok: true, recovered: false });
  });

  it("holds at most maxLingering subscriptions; others go at once (counted)", async () => {
    const t = uniq();
    const h = await setup({ allow: ALLOW, recovery: { maxLingering: 1 } });
    const [a, b] = [await h.client(), await h.client()];
    expect((await request<Ack>(a, "mqtt.subscribe", `${t}/a`)).ok).to.equal(true);
    expect((await request<Ack>(b, "mqtt.subscribe", `${t}/b`)).ok).to.equal(true);
    a.disconnect();
    b.disconnect();
    await waitFor(() => h.stats().recovery.lingerRefused === 1, { message: "one refused" });
    expect(h.stats().recovery.lingering).to.equal(1);
    await waitFor(() => h.stats().brokerSubscriptions === 1, { message: "one let go at once" });
  });

  it("authorizes the filter again: a socket whose rights were withdrawn gets nothing", async () => {
    const t = uniq();
    let allowed = true;
    const h = await setup({
      allow: { subscribe: () => allowed, publish: ["#"] },
    });
    const { d, position } = await away(h, `${t}/#`, `${t}/a`);
    await publish(h, d, `${t}/a`, 10, 15);
    allowed = false;
    const c = await h.client();
    const got = record(c);
    const ack = await request<Ack>(c, "mqtt.subscribe", { filter: `${t}/#`, since: position });
    expect(ack.ok).to.equal(false);
    expect(ack.error!.code).to.equal("FORBIDDEN");
    expect(h.stats().recovery.replayed).to.equal(0);
    expect(got).to.deep.equal([]);
  });

  it("with echo: false, leaves out what the socket published, on this connection and on those it names", async () => {
    const t = uniq();
    const opts: MqttBridgeOptions = { allow: ALLOW, echo: false };
    const h = await setup(opts);
    const c1 = await h.client();
    const got1 = record(c1);
    const ack1 = await request<Ack>(c1, "mqtt.subscribe", `${t}/#`);
    const own = { topic: `${t}/own`, payload: { s: 100 }, qos: 1 };
    expect((await request(c1, "mqtt.publish", own)).ok).to.equal(true);
    const d = await h.device();
    await publish(h, d, `${t}/x`, 0, 1);
    await waitFor(() => got1.length === 1, { message: "the device's message" });
    expect(got1[0].s).to.equal(0);
    // it reached the device's message: its own (numbered before) is not missed
    const position = { epoch: ack1.position!.epoch, offset: ack1.position!.offset };
    const oldId = c1.id!;
    c1.disconnect();
    await publish(h, d, `${t}/x`, 1, 2);
    for (const [ids, expected] of [
      [[oldId], [0, 1]],
      [undefined, [100, 0, 1]],
    ] as const) {
      const c = await h.client();
      const got = record(c);
      const since = ids ? { ...position, ids: [...ids] } : position;
      const ack = await request<Ack>(c, "mqtt.subscribe", { filter: `${t}/#`, since });
      expect(ack).to.include({ ok: true, recovered: true });
      await waitFor(() => got.length === expected.length, { message: `${expected.length} missed` });
      expect(got.map((g) => g.s)).to.deep.equal([...expected]);
      c.disconnect();
    }
  });

  it("sends nothing twice across overlapping filters restored together", async () => {
    const t = uniq();
    const h = await setup({ allow: ALLOW });
    const c1 = await h.client();
    const got1 = record(c1);
    const ack1 = await request<Ack>(c1, "mqtt.subscribe", `${t}/#`);
    expect((await request<Ack>(c1, "mqtt.subscribe", `${t}/a/#`)).ok).to.equal(true);
    const d = await h.device();
    await publish(h, d, `${t}/a/1`, 0, 3);
    await waitFor(() => got1.length === 3);
    const position = { epoch: ack1.position!.epoch, offset: reached(got1, ack1) };
    c1.disconnect();
    await publish(h, d, `${t}/a/1`, 3, 6);
    await publish(h, d, `${t}/b`, 6, 8);
    const c = await h.client();
    const got = record(c);
    for (const filter of [`${t}/a/#`, `${t}/#`]) {
      const ack = await request<Ack>(c, "mqtt.subscribe", { filter, since: position });
      expect(ack, filter).to.include({ ok: true, recovered: true });
    }
    await publish(h, d, `${t}/a/1`, 8, 10);
    await waitFor(() => got.length >= 7);
    expect(got.map((g) => g.s)).to.deep.equal([3, 4, 5, 6, 7, 8, 9]);
  });

  it("says recovered: true and replays nothing to a socket already in the room", async () => {
    const t = uniq();
    const h = await setup({ allow: ALLOW });
    const c = await h.client();
    const got = record(c);
    const ack = await request<Ack>(c, "mqtt.subscribe", `${t}/#`);
    const again = await request<Ack>(c, "mqtt.subscribe", {
      filter: `${t}/#`,
      since: { epoch: ack.position!.epoch, offset: 0 },
    });
    expect(again).to.include({ ok: true, recovered: true });
    expect(got).to.deep.equal([]);
  });

  it("with recovery: false, numbers nothing, keeps nothing, and answers recovered: false", async () => {
    const t = uniq();
    const h = await setup({ allow: ALLOW, recovery: false });
    const c = await h.client();
    const got = record(c);
    const ack = await request<Ack>(c, "mqtt.subscribe", `${t}/#`);
    expect(ack.ok).to.equal(true);
    expect(ack).to.not.have.property("position");
    const d = await h.device();
    await d.publishAsync(`${t}/a`, JSON.stringify({ s: 1 }), { qos: 1 });
    await waitFor(() => got.length === 1);
    expect(got[0].offset).to.equal(undefined);
    const c2 = await h.client();
    const ack2 = await request<Ack>(c2, "mqtt.subscribe", {
      filter: `${t}/#`,
      since: { epoch: "x", offset: 0 },
    });
    expect(ack2).to.include({ ok: true, recovered: false });
    c.disconnect();
    c2.disconnect();
    await waitFor(() => h.stats().brokerSubscriptions === 0, { message: "no lingering" });
    expect(h.stats().recovery).to.include({ epoch: undefined, messages: 0, lingering: 0 });
  });

  it("refuses a malformed since with INVALID_ARGUMENT", async () => {
    const t = uniq();
    const h = await setup({ allow: ALLOW });
    const c = await h.client();
    for (const since of [
      null,
      5,
      { epoch: "", offset: 0 },
      { epoch: "e", offset: -1 },
      { epoch: "e", offset: 1.5 },
      { epoch: "e" },
      { epoch: "e", offset: 0, ids: "x" },
      { epoch: "e", offset: 0, ids: Array.from({ length: 17 }, (_, i) => `id${i}`) },
      { epoch: "e", offset: 0, later: true },
      { epoch: "x".repeat(65), offset: 0 },
    ]) {
      const ack = await request<Ack>(c, "mqtt.subscribe", { filter: `${t}/#`, since });
      expect(ack.ok, JSON.stringify(since)).to.equal(false);
      expect(ack.error!.code).to.equal("INVALID_ARGUMENT");
    }
  });
});
