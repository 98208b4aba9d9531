/**
 * Socket.IO connection state recovery on one node (in-memory adapter) must not widen what a
 * socket receives: a recovered socket gets only what it would have received live, and nothing from
 * a room it may no longer be in (issue "guarantees", item 1).
 */
import { expect } from "chai";
import type { MqttClient } from "mqtt";
import type { Socket as ClientSocket } from "socket.io-client";
import type { MqttBridgeOptions } from "../../lib";
import type { Harness } from "../support/harness";
import { collect, request } from "../support/harness";
import { onMosquitto5 } from "../support/mosquitto-suite";
import { io as ioc } from "socket.io-client";
import { onceEvent, waitFor } from "../support/util";

const RECOVERY = { connectionStateRecovery: { maxDisconnectionDuration: 30_000 } };

describe("connection state recovery never widens delivery (Mosquitto, MQTT 5)", () => {
  const suite = onMosquitto5("csr");
  const uniq = suite.uniq;
  const setup = (opts: MqttBridgeOptions) => suite.setup(opts, RECOVERY);

  /** Cuts a client's transport; it stays offline until {@link recover} (no auto-reconnect). */
  async function cut(c: ClientSocket): Promise<void> {
    c.io.opts.reconnection = false;
    c.io.reconnection(false);
    const gone = onceEvent(c, "disconnect");
    c.io.engine.close();
    await gone;
  }

  /** Reconnects a client cut by {@link cut}; resolves once connected, with `recovered`. */
  async function recover(c: ClientSocket): Promise<boolean> {
    const back = onceEvent(c, "connect");
    c.connect();
    await back;
    return c.recovered;
  }

  async function publish(d: MqttClient, topic: string, payload: string): Promise<void> {
    await d.publishAsync(topic, payload, { qos: 1 });
  }

  /**
   * Socket E and a keeper (which keeps E's rooms alive while it is away) each `enter` their rooms,
   * E first; then E receives `first` on `topic` (an offset to recover from) and is cut off.
   */
  async function awayWithKeeper(
    hh: Harness,
    enter: (c: ClientSocket, isE: boolean) => Promise<unknown>,
    topic: string,
    first: string,
  ) {
    const d = await hh.device();
    const e = await hh.client();
    const keeper = await hh.client();
    const eBox = collect(e);
    await enter(e, true);
    await enter(keeper, false);
    await publish(d, topic, first);
    await waitFor(() => eBox.messages.length === 1);
    await cut(e);
    return { d, e, eBox };
  }

  const subscribed = async (c: ClientSocket, filter: string) =>
    expect((await request(c, "mqtt.subscribe", filter)).ok).to.equal(true);

  it("does not replay another user's messages once their room emptied", async () => {
    const t = uniq();
    const hh = await setup({ allow: { subscribe: ["#"], publish: ["#"] } });
    const d = await hh.device();
    const e = await hh.client();
    const eBox = collect(e);
    expect((await request(e, "mqtt.subscribe", `${t}/E/inbox`)).ok).to.equal(true);
    await publish(d, `${t}/E/inbox`, "e1"); // gives E an offset to recover from
    await waitFor(() => eBox.messages.length === 1);
    await cut(e);

    const v = await hh.client();
    const vBox = collect(v);
    expect((await request(v, "mqtt.subscribe", `${t}/V/inbox`)).ok).to.equal(true);
    for (const p of ["v1", "v2", "v3"]) await publish(d, `${t}/V/inbox`, p);
    await waitFor(() => vBox.messages.length === 3);
    expect((await request(v, "mqtt.unsubscribe", `${t}/V/inbox`)).ok).to.equal(true);
    // only E's inbox is left: it lingers for E (recovery.windowMs)
    await waitFor(() => hh.stats().brokerSubscriptions === 1);
    expect(hh.stats().recovery.lingering).to.equal(1);

    expect(await recover(e)).to.equal(true);
    await waitFor(() => hh.stats().brokerSubscriptions === 1);
    await publish(d, `${t}/E/inbox`, "e2"); // a sentinel: whatever was replayed came before it
    await waitFor(() => eBox.messages.some((m) => m.payload === "e2"));
    expect(eBox.messages.map((m) => m.payload)).to.deep.equal(["e1", "e2"]);
  });

  it("does not replay messages of a filter routed to the socket's room only later", async () => {
    const t = uniq();
    const hh = await setup({ allow: { subscribe: ["#"], publish: ["#"] } });
    const d = await hh.device();
    const x = await hh.client();
    const xBox = collect(x);
    const hello: unknown[] = [];
    x.on("hello", (m: unknown) => hello.push(m));
    const keeper = await hh.client(); // keeps "team" alive while X is away
    for (const c of [x, keeper]) void hh.serverSocket(c.id!)!.join("team");
    hh.io.to("team").emit("hello", 1); // gives X an offset to recover from
    await waitFor(() => hello.length === 1);
    await cut(x);

    const a = await hh.client();
    const aBox = collect(a);
    expect((await request(a, "mqtt.subscribe", `${t}/feed`)).ok).to.equal(true);
    await publish(d, `${t}/feed`, "before-route");
    await waitFor(() => aBox.messages.length === 1);
    hh.bridge.subscribe(`${t}/feed`, "team"); // from now on "team" gets the feed too

    expect(await recover(x)).to.equal(true);
    await publish(d, `${t}/feed`, "after-route");
    await waitFor(() => xBox.messages.some((m) => m.payload === "after-route"));
    expect(xBox.messages.map((m) => m.payload)).to.deep.equal(["after-route"]);
  });

  it("re-checks permissions before handing missed messages to a recovered socket", async () => {
    const t = uniq();
    let allowed = true;
    const hh = await setup({
      allow: { subscribe: (_s, f) => allowed || f.endsWith("/open"), publish: ["#"] },
    });
    const enter = async (c: ClientSocket, isE: boolean) => {
      await subscribed(c, `${t}/secret`);
      if (isE) await subscribed(c, `${t}/open`);
    };
    const { d, e, eBox } = await awayWithKeeper(hh, enter, `${t}/secret`, "s1");
    await publish(d, `${t}/secret`, "s2-missed");
    await publish(d, `${t}/open`, "o1-missed");
    allowed = false; // E's rights to the secret filter are revoked while it is away

    const notices: { filter: string; error: { code: string } }[] = [];
    e.on("mqtt.unsubscribed", (n: { filter: string; error: { code: string } }) => notices.push(n));
    expect(await recover(e)).to.equal(true);
    await publish(d, `${t}/open`, "o2");
    await waitFor(() => eBox.messages.some((m) => m.payload === "o2"));
    const seen = eBox.messages.map((m) => m.payload);
    expect(seen).to.not.include("s2-missed");
    // "open" had no other member: its broker subscription lingered after E left, so o1 was
    // broadcast to its empty room, kept by the adapter and recovered with E (which may have it)
    expect(seen).to.deep.equal(["s1", "o1-missed", "o2"]);
    expect(hh.serverSocket(e.id!)!.rooms.has(`mqtt:${t}/secret`)).to.equal(false);
    expect(notices.map((n) => [n.filter, n.error.code])).to.deep.equal([
      [`${t}/secret`, "FORBIDDEN"],
    ]);
    expect(hh.stats().recovered).to.deep.include({ sockets: 1, revoked: 1, withheld: 1 });
  });

  it("replays missed messages of rooms still allowed, in order, once", async () => {
    const t = uniq();
    const hh = await setup({
      allow: { subscribe: (_s, f) => Promise.resolve(f.startsWith(t)), publish: ["#"] },
    });
    const enter = (c: ClientSocket) => subscribed(c, `${t}/a`);
    const { d, e, eBox } = await awayWithKeeper(hh, enter, `${t}/a`, "m1");
    for (const p of ["m2", "m3", "m4"]) await publish(d, `${t}/a`, p);
    expect(await recover(e)).to.equal(true);
    await publish(d, `${t}/a`, "m5");
    await waitFor(() => eBox.messages.some((m) => m.payload === "m5")).catch((err: Error) => {
      throw new Error(
        `${err.message}; E got ${JSON.stringify(eBox.messages.map((m) => m.payload))}`,
      );
    });
    expect(eBox.messages.map((m) => m.payload)).to.deep.equal(["m1", "m2", "m3", "m4", "m5"]);
  });

  it("does not put a socket back into a room it unsubscribed while an async check ran", async () => {
    const t = uniq();
    const hh = await setup({
      allow: { subscribe: () => new Promise((r) => setTimeout(() => r(true), 150)), publish: [] },
    });
    const enter = (c: ClientSocket) => subscribed(c, `${t}/a`);
    const { e } = await awayWithKeeper(hh, enter, `${t}/a`, "m1");
    const back = onceEvent(e, "connect");
    e.connect();
    await back;
    // sent at once, while the recovery's re-check (150 ms) still runs
    expect((await request(e, "mqtt.unsubscribe", `${t}/a`)).ok).to.equal(true);
    await waitFor(() => hh.stats().recovered.sockets === 1);
    await new Promise((r) => setTimeout(r, 300)); // pacing: past the check
    expect(hh.serverSocket(e.id!)!.rooms.has(`mqtt:${t}/a`)).to.equal(false);
  });

  it("keeps a prefixed room that server code joined (not subject to allow rules) on recovery", async () => {
    const t = uniq();
    const hh = await setup({ allow: { subscribe: [`${t}/own/#`], publish: ["#"] } });
    const room = hh.bridge.room(`${t}/app`); // the app puts sockets in it itself
    const enter = async (c: ClientSocket, isE: boolean) => {
      await hh.serverSocket(c.id!)!.join(room);
      if (isE) await subscribed(c, `${t}/own/x`);
    };
    const { d, e, eBox } = await awayWithKeeper(hh, enter, `${t}/app`, "a1");
    await publish(d, `${t}/app`, "a2-missed");
    expect(await recover(e)).to.equal(true);
    await publish(d, `${t}/app`, "a3");
    await waitFor(() => eBox.messages.some((m) => m.payload === "a3"));
    expect(eBox.messages.map((m) => m.payload)).to.deep.equal(["a1", "a2-missed", "a3"]);
    expect(hh.serverSocket(e.id!)!.rooms.has(room)).to.equal(true);
    expect(hh.stats().recovered.revoked).to.equal(0);
  });

  it("keeps a server-joined prefixed room of a socket that never subscribed itself", async () => {
    const t = uniq();
    const hh = await setup({}); // deny everything: the app's joins are not governed by allow
    const room = hh.bridge.room(`${t}/app`);
    const enter = async (c: ClientSocket, isE: boolean) => {
      await hh.serverSocket(c.id!)!.join(room);
      // a join does not wait for the SUBACK
      if (!isE) await waitFor(() => hh.stats().brokerSubscriptions === 1);
    };
    const { d, e, eBox } = await awayWithKeeper(hh, enter, `${t}/app`, "a1");
    await publish(d, `${t}/app`, "a2-missed");
    expect(await recover(e)).to.equal(true);
    await publish(d, `${t}/app`, "a3");
    await waitFor(() => eBox.messages.some((m) => m.payload === "a3"));
    expect(eBox.messages.map((m) => m.payload)).to.deep.equal(["a1", "a2-missed", "a3"]);
    expect(hh.stats().recovered).to.deep.include({ revoked: 0, withheld: 0 });
  });

  it("gives each namespace a packet of its own (an adapter appends its offset to it)", async () => {
    const t = uniq();
    const hh = await setup({ allow: { subscribe: ["#"], publish: ["#"] } });
    hh.io.of("/b").use(hh.bridge);
    const url = `http://127.0.0.1:${hh.port}`;
    const [a, b] = ["/", "/b"].map((ns) => ioc(url + ns, { transports: ["websocket"] }));
    try {
      await Promise.all([onceEvent(a, "connect"), onceEvent(b, "connect")]);
      const got: Record<string, unknown[][]> = { a: [], b: [] };
      a.on("mqtt.message", (...args: unknown[]) => got.a.push(args));
      b.on("mqtt.message", (...args: unknown[]) => got.b.push(args));
      for (const c of [a, b]) {
        expect((await request(c, "mqtt.subscribe", `${t}/x`)).ok).to.equal(true);
      }
      const d = await hh.device();
      await publish(d, `${t}/x`, "m1");
      await waitFor(() => got.a.length === 1 && got.b.length === 1);
      expect(got.b[0].length).to.equal(got.a[0].length); // the message and its own offset
      const stored = (hh.io.of("/").adapter as unknown as { packets: { data: unknown[] }[] })
        .packets;
      expect(stored[stored.length - 1].data).to.have.length(3); // event, message, one offset
    } finally {
      a.close();
      b.close();
    }
  });
});
