/**
 * Limits that a client must not be able to bypass or amplify, and the order of one socket's
 * operations (issue "guarantees", items 5, 9 and 10), against Mosquitto over MQTT 5.
 */
import { expect } from "chai";
import type { Socket as ClientSocket } from "socket.io-client";
import { collect, request } from "../support/harness";
import { onMosquitto5 } from "../support/mosquitto-suite";
import { sleep, waitFor } from "../support/util";

type Ack = { ok: boolean; error?: { code: string; reasonCode?: number } };

describe("limits and ordering under hostile or hasty clients (Mosquitto, MQTT 5)", () => {
  const { setup, uniq } = onMosquitto5("lim");
  const OPEN = { allow: { subscribe: ["#"], publish: ["#"], retain: ["#"] } };

  /** Sends every request in one go (one read on the server), then collects the acks. */
  function burst(c: ClientSocket, event: string, args: unknown[]): Promise<Ack[]> {
    return Promise.all(args.map((a) => request<Ack>(c, event, a)));
  }

  const codes = (acks: Ack[]) => acks.map((a) => (a.ok ? "ok" : a.error!.code));
  const count = (acks: Ack[], code: string) => codes(acks).filter((c) => c === code).length;

  it("keeps the per-socket subscription cap exact under a burst of subscribes", async () => {
    const t = uniq();
    const hh = await setup({
      ...OPEN,
      // an authorization hook that answers later: every request of the burst is in flight at once
      allow: { ...OPEN.allow, subscribe: () => Promise.resolve(true) },
      limits: { subscriptionsPerSocket: 10, subscribeBurst: 1000 },
    });
    const c = await hh.client();
    const filters = Array.from({ length: 60 }, (_, i) => `${t}/${i}`);
    const acks = await burst(c, "mqtt.subscribe", filters);
    expect(count(acks, "ok")).to.equal(10);
    expect(count(acks, "TOO_MANY_SUBSCRIPTIONS")).to.equal(50);
    const rooms = [...hh.serverSocket(c.id!)!.rooms].filter((r) => r.startsWith("mqtt:"));
    expect(rooms).to.have.length(10);
    await waitFor(() => hh.stats().brokerSubscriptions === 10);
  });

  it("rate-limits subscribe and unsubscribe churn with RATE_LIMITED", async () => {
    const t = uniq();
    const hh = await setup({ ...OPEN, limits: { subscribeRate: 1, subscribeBurst: 6 } });
    const c = await hh.client();
    const subs = await burst(c, "mqtt.subscribe", [`${t}/a`, `${t}/b`, `${t}/c`, `${t}/d`]);
    const unsubs = await burst(c, "mqtt.unsubscribe", [`${t}/a`, `${t}/b`, `${t}/c`, `${t}/d`]);
    expect(codes(subs)).to.deep.equal(["ok", "ok", "ok", "ok"]);
    expect(codes(unsubs)).to.deep.equal(["ok", "ok", "RATE_LIMITED", "RATE_LIMITED"]);
    const limited = unsubs[3];
    expect(limited.error!.reasonCode).to.equal(0x96);
    expect(hh.stats().rejected.RATE_LIMITED).to.equal(2);
  });

  it("bounds the requests in progress when an authorization hook never answers", async () => {
    const t = uniq();
    const hh = await setup({
      allow: { subscribe: () => new Promise<boolean>(() => undefined) }, // never settles
      limits: { subscribeRate: 1000, subscribeBurst: 5 },
    });
    const c = await hh.client();
    for (let i = 0; i < 5; i++) c.emit("mqtt.subscribe", `${t}/${i}`, () => undefined);
    await sleep(50); // pacing: the bucket refills (1,000/s); only the bound on requests is left
    const more = await burst(c, "mqtt.subscribe", [`${t}/a`, `${t}/b`]);
    expect(codes(more)).to.deep.equal(["RATE_LIMITED", "RATE_LIMITED"]);
  });

  it("bounds the distinct broker subscriptions of the bridge, across sockets", async () => {
    const t = uniq();
    const hh = await setup({
      ...OPEN,
      allow: { ...OPEN.allow, subscribe: () => Promise.resolve(true) },
      limits: { brokerSubscriptions: 3 },
    });
    const [a, b] = [await hh.client(), await hh.client()];
    const [fromA, fromB] = await Promise.all([
      burst(a, "mqtt.subscribe", [`${t}/1`, `${t}/2`, `${t}/3`]),
      burst(b, "mqtt.subscribe", [`${t}/4`, `${t}/5`, `${t}/6`]),
    ]);
    const all = [...fromA, ...fromB];
    expect(count(all, "ok")).to.equal(3);
    expect(count(all, "TOO_MANY_SUBSCRIPTIONS")).to.equal(3);
    await waitFor(() => hh.stats().brokerSubscriptions === 3);
    // a filter already held is not a new broker subscription: still allowed at the cap
    const held = [`${t}/1`, `${t}/2`, `${t}/3`, `${t}/4`, `${t}/5`, `${t}/6`].find(
      (_, i) => all[i].ok,
    )!;
    const other = fromA.some((x) => x.ok) ? b : a;
    expect((await request(other, "mqtt.subscribe", held)).ok).to.equal(true);
  });

  it("applies one socket's subscribe and unsubscribe of a filter in the order sent", async () => {
    const t = uniq();
    const hh = await setup({
      ...OPEN,
      allow: { ...OPEN.allow, subscribe: () => sleep(50).then(() => true) },
    });
    const c = await hh.client();
    const [sub, unsub] = await Promise.all([
      request<Ack>(c, "mqtt.subscribe", `${t}/x`),
      request<Ack>(c, "mqtt.unsubscribe", `${t}/x`),
    ]);
    expect([sub.ok, unsub.ok]).to.deep.equal([true, true]);
    expect(hh.serverSocket(c.id!)!.rooms.has(`mqtt:${t}/x`)).to.equal(false);
    await waitFor(() => hh.stats().brokerSubscriptions === 0 && hh.stats().rooms === 0);
  });

  it("authorizes a subscribe also when server code already put the socket in the room", async () => {
    const t = uniq();
    const hh = await setup({ allow: { subscribe: [`${t}/open/#`] }, limits: { subscribeQos: 2 } });
    const c = await hh.client();
    await hh.serverSocket(c.id!)!.join(hh.bridge.room(`${t}/#`)); // the app's decision
    const ack = await request<Ack>(c, "mqtt.subscribe", { filter: `${t}/#`, qos: 2 });
    expect(ack.error?.code).to.equal("FORBIDDEN"); // and no QoS upgrade of that subscription
    expect(hh.serverSocket(c.id!)!.rooms.has(`mqtt:${t}/#`)).to.equal(true); // the app's join stays
  });

  it("grants a socket's subscription at most limits.subscribeQos (default 1)", async () => {
    const t = uniq();
    const hh = await setup(OPEN);
    const c = await hh.client();
    const ack = await request<Ack & { qos?: number }>(c, "mqtt.subscribe", {
      filter: `${t}/q`,
      qos: 2,
    });
    expect(ack).to.deep.include({ ok: true, qos: 1 });
    const d = await hh.device();
    const box = collect(c);
    await d.publishAsync(`${t}/q`, "two", { qos: 2 });
    await waitFor(() => box.messages.length === 1);
    expect(box.messages[0].qos).to.equal(1);
  });

  it("delivers every live retained publish, even when it repeats the state (a heartbeat)", async () => {
    const t = uniq();
    const hh = await setup(OPEN);
    const c = await hh.client();
    const box = collect(c);
    expect((await request(c, "mqtt.subscribe", `${t}/hb`)).ok).to.equal(true);
    const d = await hh.device();
    for (let i = 0; i < 3; i++) await d.publishAsync(`${t}/hb`, "alive", { qos: 1, retain: true });
    await waitFor(() => box.messages.length === 3);
    expect(box.messages.map((m) => m.payload)).to.deep.equal(["alive", "alive", "alive"]);
    expect(hh.stats().messages.retainedUnchanged).to.equal(0);
    await d.publishAsync(`${t}/hb`, "", { qos: 1, retain: true });
  });

  it("delivers a heartbeat that follows the replay an overlapping SUBSCRIBE brought", async () => {
    const t = uniq();
    const hh = await setup(OPEN);
    const d = await hh.device();
    await d.publishAsync(`${t}/hb/x`, "beat", { qos: 1, retain: true });
    const [a, b] = [await hh.client(), await hh.client()];
    const boxA = collect(a);
    const boxB = collect(b);
    expect((await request(a, "mqtt.subscribe", `${t}/hb/#`)).ok).to.equal(true);
    await waitFor(() => boxA.messages.length === 1); // the retained state
    // an overlapping filter: the broker replays hb/x for it (a copy the bridge drops: A has it)
    expect((await request(b, "mqtt.subscribe", `${t}/hb/+`)).ok).to.equal(true);
    await waitFor(() => boxB.messages.length === 1); // B's state, from the cache
    await d.publishAsync(`${t}/hb/x`, "beat", { qos: 1, retain: true }); // live, the same state
    await d.publishAsync(`${t}/hb/y`, "sentinel", { qos: 1 });
    await waitFor(() => boxA.messages.some((m) => m.payload === "sentinel"));
    expect(boxA.messages.map((m) => m.payload)).to.deep.equal(["beat", "beat", "sentinel"]);
    await d.publishAsync(`${t}/hb/x`, "", { qos: 1, retain: true });
  });

  it("does not take a replay whose expiry the broker rewrote for a new state", async () => {
    const t = uniq();
    const hh = await setup(OPEN);
    const a = await hh.client();
    const boxA = collect(a);
    const d = await hh.device();
    await d.publishAsync(`${t}/s/1`, "state", {
      qos: 1,
      retain: true,
      properties: { messageExpiryInterval: 60 },
    });
    expect((await request(a, "mqtt.subscribe", `${t}/s/#`)).ok).to.equal(true);
    await waitFor(() => boxA.messages.length === 1);
    await sleep(1100); // pacing: the broker counts the expiry down in whole seconds
    // a client taking over the bridge's client id drops its connection; the bridge reconnects,
    // subscribes again, and the broker replays s/1 with what is left of its expiry
    const thief = await hh.device({ clientId: hh.bridge.stats().clientId, reconnectPeriod: 0 });
    await waitFor(() => hh.stats().connects === 2 && hh.stats().brokerSubscriptions === 1);
    await thief.endAsync(true);
    await d.publishAsync(`${t}/s/2`, "sentinel", { qos: 1 });
    await waitFor(() => boxA.messages.some((m) => m.payload === "sentinel"));
    expect(boxA.messages.map((m) => m.payload)).to.deep.equal(["state", "sentinel"]);
    expect(hh.stats().messages.retainedUnchanged).to.equal(1);
    await d.publishAsync(`${t}/s/1`, "", { qos: 1, retain: true });
  });
});
