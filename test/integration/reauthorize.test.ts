/**
 * `bridge.reauthorize()` (lib/sockets/reauthorize.ts): revoking rights at once, against a real
 * Mosquitto over MQTT 5. Words as in test/support/harness.ts ("client": a socket.io-client socket,
 * "device": a plain MQTT.js client). Each test changes what a rule answers (a function rule's
 * input, or the `socket.data` value a placeholder rule reads), calls `reauthorize`, and checks
 * that the socket got `mqtt.unsubscribed` (`FORBIDDEN`) and, in its own order of events, nothing of
 * the removed room after that notice, while sockets whose rights did not change lose nothing.
 * "Nothing after the notice" is checked behind a fence: a witness socket still allowed in the room
 * gets the room's message and then a fence message; the client under test gets the fence too.
 */
import { expect } from "chai";
import mqtt from "mqtt";
import type { MqttClient } from "mqtt";
import type { Socket as ServerSocket } from "socket.io";
import type { Socket as ClientSocket } from "socket.io-client";
import { io as ioc } from "socket.io-client";
import type { RevokedSubscription, SubscribeRule } from "../../lib";
import { MqttBridgeError, matches } from "../../lib";
import { mqttClient } from "../../lib/client";
import type { MqttBridgeClientError } from "../../lib/client";
import { DelayProxy } from "../support/delay-proxy";
import { tcpOf } from "../support/delivery";
import type { Harness } from "../support/harness";
import { request } from "../support/harness";
import { onMosquitto5 } from "../support/mosquitto-suite";
import { onceEvent, waitFor, withTimeout } from "../support/util";

/** What the tests keep in `socket.data`. */
interface Data {
  role?: string;
  userId?: string;
  mode?: "ok" | "throw" | "reject";
}
const data = (s: ServerSocket) => s.data as Data;

/** One thing a client received: a message (through either event) or a notice. */
interface Entry {
  kind: "message" | "unsubscribed";
  topic?: string;
  filter?: string;
  code?: string;
  seq?: number;
}

/** Everything a client receives, in the order it received it. */
function journal(c: ClientSocket): Entry[] {
  const log: Entry[] = [];
  const take = (m: { topic: string; payload: unknown }) =>
    log.push({
      kind: "message",
      topic: m.topic,
      seq: (m.payload as { s?: number } | null)?.s,
    });
  c.on("mqtt.message", take);
  c.on("mqtt.messages", (list: { topic: string; payload: unknown }[]) => list.forEach(take));
  c.on("mqtt.unsubscribed", (n: { filter: string; error: { code: string } }) =>
    log.push({ kind: "unsubscribed", filter: n.filter, code: n.error.code }),
  );
  return log;
}

const got = (log: Entry[], topic: string) =>
  log.some((e) => e.kind === "message" && e.topic === topic);

/** The topics of `filter` a client received after its `mqtt.unsubscribed` of `filter`. */
function afterNotice(log: Entry[], filter: string): string[] {
  const i = log.findIndex((e) => e.kind === "unsubscribed" && e.filter === filter);
  expect(i, `an mqtt.unsubscribed of ${filter}`).to.be.greaterThan(-1);
  expect(log[i].code).to.equal("FORBIDDEN");
  return log
    .slice(i + 1)
    .filter((e) => e.kind === "message" && matches(filter, e.topic!))
    .map((e) => e.topic!);
}

async function subscribe(c: ClientSocket, filter: string | object): Promise<void> {
  const ack = await request(c, "mqtt.subscribe", filter);
  expect(ack.ok, JSON.stringify(ack)).to.equal(true);
}

/** The server-side socket of a client. */
function serverOf(h: Harness, c: ClientSocket): ServerSocket {
  const s = h.serverSocket(c.id!);
  if (!s) throw new Error(`no server socket for ${c.id}`);
  return s;
}

/** A promise with its resolve function. */
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe("bridge.reauthorize(): revoking rights at once", function () {
  this.timeout(20_000);
  const { setup, uniq, url } = onMosquitto5("rea");
  /** Run after each test (own clients, proxies, paused sockets). */
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn();
  });

  /**
   * Publishes `before` (QoS 1, in order), then `fence`, and waits until `witness` got all of them
   * and every one of `others` got the fence: what `before` brought them has arrived by then.
   */
  async function fenced(
    d: MqttClient,
    before: string[],
    fence: string,
    witness: Entry[],
    others: Entry[][],
  ): Promise<void> {
    for (const topic of before) await d.publishAsync(topic, JSON.stringify({ s: 0 }), { qos: 1 });
    await d.publishAsync(fence, JSON.stringify({ s: 0 }), { qos: 1 });
    await waitFor(
      () => [...before, fence].every((t) => got(witness, t)) && others.every((l) => got(l, fence)),
      { message: `the fence ${fence}` },
    );
  }

  describe("function rules", () => {
    it("takes a socket out of the rooms the rule no longer allows, tells it, counts it and resolves with what it removed", async () => {
      const t = uniq();
      const calls: string[] = [];
      const rule: SubscribeRule = (socket, filter) => {
        calls.push(filter);
        return !filter.startsWith(`${t}/admin/`) || data(socket).role === "admin";
      };
      const h = await setup({ allow: { subscribe: rule } });
      const a = await h.client();
      const w = await h.client();
      data(serverOf(h, a)).role = "admin";
      data(serverOf(h, w)).role = "admin";
      const [la, lw] = [journal(a), journal(w)];
      for (const c of [a, w]) {
        await subscribe(c, `${t}/admin/#`);
        await subscribe(c, `${t}/public/#`);
      }
      calls.length = 0;

      data(serverOf(h, a)).role = "guest"; // a role change
      const removed = await h.bridge.reauthorize(serverOf(h, a));
      expect(removed).to.deep.equal([
        { socket: a.id, namespace: "/", filter: `${t}/admin/#`, room: `mqtt:${t}/admin/#` },
      ]);
      expect(calls.sort()).to.deep.equal([`${t}/admin/#`, `${t}/public/#`]); // called again
      expect(serverOf(h, a).rooms.has(`mqtt:${t}/admin/#`)).to.equal(false);
      expect(h.stats().subscribes.revoked).to.equal(1);

      const d = await h.device();
      await fenced(d, [`${t}/admin/x`], `${t}/public/x`, lw, [la]);
      expect(afterNotice(la, `${t}/admin/#`)).to.deep.equal([]);
      expect(la.filter((e) => e.kind === "unsubscribed")).to.have.length(1);

      // nothing changed since: nothing more to take away
      expect(await h.bridge.reauthorize(serverOf(h, a))).to.deep.equal([]);
      expect(h.stats().subscribes.revoked).to.equal(1);
    });

    it("counts a rule that throws or rejects as a denial, and nothing crashes", async () => {
      const t = uniq();
      const rule: SubscribeRule = (socket) => {
        const mode = data(socket).mode;
        if (mode === "throw") throw new Error("rule failed");
        if (mode === "reject") return Promise.reject(new Error("rule failed later"));
        return mode === "ok";
      };
      const h = await setup({ allow: { subscribe: rule } });
      const [x, y, z] = [await h.client(), await h.client(), await h.client()];
      for (const c of [x, y, z]) {
        data(serverOf(h, c)).mode = "ok";
        await subscribe(c, `${t}/a`);
      }
      data(serverOf(h, x)).mode = "throw";
      data(serverOf(h, y)).mode = "reject";
      const removed = await h.bridge.reauthorize(h.io); // server form
      expect(removed.map((r) => r.socket).sort()).to.deep.equal([x.id, y.id].sort());
      expect(h.stats().subscribes.revoked).to.equal(2);
      // the socket whose rule still answers true is in the room and the server still serves
      expect(serverOf(h, z).rooms.has(`mqtt:${t}/a`)).to.equal(true);
      await subscribe(z, `${t}/b`);
    });

    it("keeps delivering to sockets whose rights did not change, without a gap, while it runs", async () => {
      const t = uniq();
      // an async rule: the check takes several turns while messages flow
      const rule: SubscribeRule = (socket) =>
        new Promise((resolve) => setImmediate(() => resolve(data(socket).role === "admin")));
      const h = await setup({ allow: { subscribe: rule } });
      const [a, b] = [await h.client(), await h.client()];
      for (const c of [a, b]) data(serverOf(h, c)).role = "admin";
      const [la, lb] = [journal(a), journal(b)];
      await subscribe(a, `${t}/s`);
      await subscribe(b, `${t}/s`);
      const d = await h.device();
      const n = 300;
      let revoked: Promise<RevokedSubscription[]> | undefined;
      for (let s = 0; s < n; s++) {
        await d.publishAsync(`${t}/s`, JSON.stringify({ s }), { qos: 1 });
        if (s === n / 2) {
          data(serverOf(h, b)).role = "guest";
          revoked = h.bridge.reauthorize(h.io.of("/"));
        }
      }
      expect((await revoked!).map((r) => r.socket)).to.deep.equal([b.id]);
      await waitFor(() => la.length === n, { message: `a got all ${n}` });
      expect(la.map((e) => e.seq)).to.deep.equal(Array.from({ length: n }, (_, s) => s));
      expect(afterNotice(lb, `${t}/s`)).to.deep.equal([]);
    });
  });

  describe("placeholder rules", () => {
    it("takes the old value's rooms away when socket.data changes; the new value's are allowed", async () => {
      const t = uniq();
      const h = await setup({
        allow: { subscribe: [`${t}/users/{data.userId}/#`, `${t}/public/#`] },
      });
      const a = await h.client();
      const w = await h.client();
      data(serverOf(h, a)).userId = "u1";
      data(serverOf(h, w)).userId = "u1";
      const [la, lw] = [journal(a), journal(w)];
      await subscribe(a, `${t}/users/u1/#`);
      await subscribe(a, `${t}/users/u1/inbox`);
      await subscribe(a, `${t}/public/#`);
      await subscribe(w, `${t}/users/u1/#`);
      await subscribe(w, `${t}/public/#`);

      data(serverOf(h, a)).userId = "u2"; // another user logged in on this connection
      const removed = await h.bridge.reauthorize(h.io.of("/")); // namespace form
      expect(removed.map((r) => r.filter).sort()).to.deep.equal([
        `${t}/users/u1/#`,
        `${t}/users/u1/inbox`,
      ]);
      expect(removed.every((r) => r.socket === a.id)).to.equal(true);
      expect(h.stats().subscribes.revoked).to.equal(2);

      const refused = await request(a, "mqtt.subscribe", `${t}/users/u1/#`);
      expect(refused.error?.code).to.equal("FORBIDDEN");
      await subscribe(a, `${t}/users/u2/#`);
      const d = await h.device();
      await fenced(d, [`${t}/users/u1/inbox`], `${t}/public/fence`, lw, [la]);
      expect(afterNotice(la, `${t}/users/u1/#`)).to.deep.equal([]);
      expect(afterNotice(la, `${t}/users/u1/inbox`)).to.deep.equal([]);
    });

    it("still checks every subscription of a socket whose socket.data object the app replaced", async () => {
      const t = uniq();
      const h = await setup({ allow: { subscribe: [`${t}/users/{data.userId}/#`] } });
      const a = await h.client();
      data(serverOf(h, a)).userId = "u1";
      await subscribe(a, `${t}/users/u1/#`);
      serverOf(h, a).data = { userId: "u2" } satisfies Data; // replaced, not changed
      await subscribe(a, `${t}/users/u2/#`);
      const removed = await h.bridge.reauthorize(serverOf(h, a));
      expect(removed.map((r) => r.filter)).to.deep.equal([`${t}/users/u1/#`]);
    });

    it("leaves prefixed rooms that server code joined the socket to (the app's, not governed by allow)", async () => {
      const t = uniq();
      const h = await setup({ allow: { subscribe: [`${t}/users/{data.userId}/#`] } });
      const a = await h.client();
      const s = serverOf(h, a);
      data(s).userId = "u1";
      await subscribe(a, `${t}/users/u1/#`);
      await s.join(h.bridge.room(`${t}/staff/#`));
      data(s).userId = "u2";
      const removed = await h.bridge.reauthorize(s);
      expect(removed.map((r) => r.filter)).to.deep.equal([`${t}/users/u1/#`]);
      expect(s.rooms.has(`mqtt:${t}/staff/#`)).to.equal(true);
    });
  });

  describe("which sockets", () => {
    it("server form: every namespace the bridge serves in this process; namespace form: that one; others untouched", async () => {
      const t = uniq();
      const h = await setup({ allow: { subscribe: [`${t}/users/{data.userId}/#`] } });
      h.io.of("/other").use(h.bridge);
      const plain = h.io.of("/plain"); // not bridged
      const connect = async (nsp: string) => {
        const c = ioc(`http://127.0.0.1:${h.port}${nsp}`, {
          transports: ["websocket"],
          forceNew: true,
        });
        cleanups.push(() => c.disconnect());
        await onceEvent(c, "connect");
        return c;
      };
      const a = await h.client();
      const b = await connect("/other");
      const p = await connect("/plain");
      const sa = serverOf(h, a);
      const sb = h.io.of("/other").sockets.get(b.id!)!;
      const sp = plain.sockets.get(p.id!)!;
      for (const s of [sa, sb, sp]) data(s).userId = "u1";
      await subscribe(a, `${t}/users/u1/#`);
      await subscribe(b, `${t}/users/u1/#`);
      await sp.join(`mqtt:${t}/users/u1/#`);
      for (const s of [sa, sb, sp]) data(s).userId = "u2";

      const other = await h.bridge.reauthorize(h.io.of("/other"));
      expect(other).to.deep.equal([
        {
          socket: b.id,
          namespace: "/other",
          filter: `${t}/users/u1/#`,
          room: `mqtt:${t}/users/u1/#`,
        },
      ]);
      expect(sa.rooms.has(`mqtt:${t}/users/u1/#`)).to.equal(true);
      const all = await h.bridge.reauthorize(h.io);
      expect(all.map((r) => [r.namespace, r.socket])).to.deep.equal([["/", a.id]]);
      expect(sp.rooms.has(`mqtt:${t}/users/u1/#`)).to.equal(true);
      expect(await h.bridge.reauthorize(sp)).to.deep.equal([]); // not a socket the bridge serves
    });

    it("rejects with INVALID_ARGUMENT what is not a socket, a namespace or a server", async () => {
      const h = await setup({ allow: { subscribe: ["#"] } });
      for (const bad of [undefined, null, "/", {}, { id: "x", rooms: new Set() }]) {
        const err: unknown = await h.bridge.reauthorize(bad as never).then(
          () => expect.fail(`resolved for ${JSON.stringify(bad)}`),
          (e: unknown) => e,
        );
        expect(err).to.be.instanceOf(MqttBridgeError);
        expect((err as MqttBridgeError).code).to.equal("INVALID_ARGUMENT");
      }
    });
  });

  describe("nothing of a removed room afterwards", () => {
    it("not from a batched frame still pending in this turn", async () => {
      const t = uniq();
      // the bridge's MQTT client is the test's, so a listener of ours runs right after the
      // bridge's own in the turn a message arrives: the message then waits in the delivery stage
      const client = await mqtt.connectAsync(url(), { protocolVersion: 5, reconnectPeriod: 100 });
      cleanups.push(() => client.endAsync(true));
      const h = await setup({ mqtt: client, allow: { subscribe: [`${t}/users/{data.userId}/#`] } });
      const a = await h.client();
      const w = await h.client();
      for (const c of [a, w]) {
        expect((await request(c, "mqtt.options", { batch: true })).ok).to.equal(true);
        data(serverOf(h, c)).userId = "u1";
      }
      const [la, lw] = [journal(a), journal(w)];
      await subscribe(a, `${t}/users/u1/#`);
      await subscribe(w, `${t}/users/u1/#`);
      let pendingAt: { in: number; delivered: number } | undefined;
      let removed: Promise<RevokedSubscription[]> | undefined;
      client.on("message", (topic) => {
        if (topic !== `${t}/users/u1/pending` || removed) return;
        const s = h.bridge.stats();
        pendingAt = { in: s.messages.in, delivered: s.delivery.messages };
        data(serverOf(h, a)).userId = "u2";
        removed = h.bridge.reauthorize(serverOf(h, a));
      });
      const d = await h.device();
      await d.publishAsync(`${t}/users/u1/pending`, JSON.stringify({ s: 1 }), { qos: 1 });
      await waitFor(() => got(lw, `${t}/users/u1/pending`), { message: "the witness got it" });
      expect((await removed!).map((r) => r.filter)).to.deep.equal([`${t}/users/u1/#`]);
      // the bridge had the message, and had not sent it yet, when reauthorize was called
      const after = h.bridge.stats();
      expect(pendingAt!.in).to.equal(after.messages.in);
      expect(after.delivery.messages).to.be.greaterThan(pendingAt!.delivered);
      await fenced(d, [], `${t}/users/u1/fence`, lw, []);
      expect(la.filter((e) => e.kind === "message")).to.deep.equal([]);
      expect(afterNotice(la, `${t}/users/u1/#`)).to.deep.equal([]);
    });

    /** A slow socket with messages of `users/u1/#` held for it loses those rights. */
    async function slowCase(letBackIn: boolean): Promise<void> {
      const t = uniq();
      const h = await setup({
        allow: { subscribe: [`${t}/users/{data.userId}/#`, `${t}/public/#`] },
        delivery: { highWaterMark: 65_536, checkMs: 10 },
        recovery: false,
      });
      const a = await h.client();
      const s = serverOf(h, a);
      data(s).userId = "u1";
      const la = journal(a);
      await subscribe(a, `${t}/users/u1/#`);
      await subscribe(a, `${t}/public/#`);
      const tcp = tcpOf(a);
      tcp.pause();
      let paused = true;
      cleanups.push(() => paused && tcp.resume());
      const d = await h.device();
      const pad = "x".repeat(32_768);
      for (let i = 0; h.stats().delivery.slow === 0; i++) {
        expect(i, "the socket turned slow").to.be.lessThan(2_000);
        await d.publishAsync(`${t}/users/u1/bulk`, JSON.stringify({ s: i, pad }), { qos: 1 });
      }
      // held for it now: the latest per topic, the earlier ones conflated
      for (let i = 0; i < 3; i++) {
        await d.publishAsync(`${t}/users/u1/held`, JSON.stringify({ s: i }), { qos: 1 });
      }
      await waitFor(() => h.stats().delivery.conflated >= 2, { message: "held messages" });

      data(s).userId = "u2";
      const removed = await h.bridge.reauthorize(s);
      expect(removed.map((r) => r.filter)).to.deep.equal([`${t}/users/u1/#`]);
      if (letBackIn) {
        // allowed again and subscribed again while still slow: what waited from before the
        // revocation is not handed over at the catch-up
        data(s).userId = "u1";
        a.emit("mqtt.subscribe", `${t}/users/u1/#`);
        await waitFor(() => s.rooms.has(`mqtt:${t}/users/u1/#`), { message: "back in" });
      } else {
        await d.publishAsync(`${t}/users/u1/held`, JSON.stringify({ s: 9 }), { qos: 1 });
      }
      await d.publishAsync(`${t}/public/held`, JSON.stringify({ s: 0 }), { qos: 1 });
      tcp.resume();
      paused = false;
      await waitFor(() => h.stats().delivery.slow === 0, { message: "caught up" });
      await waitFor(() => got(la, `${t}/public/held`), { message: "the public message" });
      expect(afterNotice(la, `${t}/users/u1/#`)).to.deep.equal([]);
      expect(got(la, `${t}/users/u1/held`)).to.equal(false);
    }

    it("not from what waits for a slow socket (conflated while it does not read)", () =>
      slowCase(false));

    it("not from what waited for a slow socket, even when it is let in again before it catches up", () =>
      slowCase(true));

    it("not from a recovery replay: a subscribe with since is authorized again and refused", async () => {
      const t = uniq();
      const h = await setup({
        allow: { subscribe: [`${t}/users/{data.userId}/#`, `${t}/public/#`] },
      });
      const a = await h.client();
      const w = await h.client();
      for (const c of [a, w]) data(serverOf(h, c)).userId = "u1";
      const [la, lw] = [journal(a), journal(w)];
      const ack = await request<{ ok: boolean; position?: { epoch: string; offset: number } }>(
        a,
        "mqtt.subscribe",
        `${t}/users/u1/#`,
      );
      expect(ack.position).to.not.equal(undefined);
      await subscribe(a, `${t}/public/#`);
      await subscribe(w, `${t}/users/u1/#`);
      await subscribe(w, `${t}/public/#`);
      const d = await h.device();
      await fenced(d, [`${t}/users/u1/a`], `${t}/public/f1`, lw, [la]);
      data(serverOf(h, a)).userId = "u2";
      expect(await h.bridge.reauthorize(serverOf(h, a))).to.have.length(1);
      await fenced(d, [`${t}/users/u1/b`], `${t}/public/f2`, lw, [la]);
      const replayed = h.stats().recovery.replayed;
      const again = await request(a, "mqtt.subscribe", {
        filter: `${t}/users/u1/#`,
        since: ack.position,
      });
      expect(again.error?.code).to.equal("FORBIDDEN");
      await fenced(d, [], `${t}/public/f3`, lw, [la]);
      expect(h.stats().recovery.replayed).to.equal(replayed);
      expect(afterNotice(la, `${t}/users/u1/#`)).to.deep.equal([]);
      expect(got(la, `${t}/users/u1/b`)).to.equal(false);
    });
  });

  describe("a subscribe of the same socket and filter in flight", () => {
    /**
     * A function rule whose next answers on `t/admin/…` can be held back (`gates`); each answer is
     * the rights at the call, as a rule that looks them up and then waits for something would give.
     */
    function gatedRule(t: string) {
      const gates: Promise<void>[] = [];
      const calls: boolean[] = [];
      const rule: SubscribeRule = (socket, filter) => {
        const ok = !filter.startsWith(`${t}/admin/`) || data(socket).role === "admin";
        calls.push(ok);
        const gate = filter.startsWith(`${t}/admin/`) ? gates.shift() : undefined;
        return gate ? gate.then(() => ok) : ok;
      };
      return { rule, gates, calls };
    }

    it("a grant answered with the old rights while reauthorize ran is asked again and refused", async () => {
      const t = uniq();
      const { rule, gates, calls } = gatedRule(t);
      const h = await setup({ allow: { subscribe: rule } });
      const a = await h.client();
      const s = serverOf(h, a);
      data(s).role = "admin";
      const gate = deferred();
      gates.push(gate.promise);
      const ack = request(a, "mqtt.subscribe", `${t}/admin/#`);
      await waitFor(() => calls.length === 1, { message: "the rule was asked" });
      data(s).role = "guest";
      expect(await h.bridge.reauthorize(s)).to.deep.equal([]); // not in the room yet
      gate.resolve(); // the answer from before the change: true
      expect((await ack).error?.code).to.equal("FORBIDDEN");
      expect(calls).to.deep.equal([true, false]); // asked again
      expect(s.rooms.has(`mqtt:${t}/admin/#`)).to.equal(false);
    });

    it("a socket reauthorize reported removed stays out when its pending subscribe of the filter was granted with the old rights", async () => {
      const t = uniq();
      const { rule, gates, calls } = gatedRule(t);
      const h = await setup({ allow: { subscribe: rule } });
      const a = await h.client();
      const w = await h.client();
      const s = serverOf(h, a);
      data(s).role = "admin";
      data(serverOf(h, w)).role = "admin";
      const [la, lw] = [journal(a), journal(w)];
      await subscribe(a, `${t}/admin/#`);
      await subscribe(a, `${t}/public/#`);
      await subscribe(w, `${t}/admin/#`);
      await subscribe(w, `${t}/public/#`);
      const gate = deferred();
      gates.push(gate.promise);
      calls.length = 0;
      const ack = request(a, "mqtt.subscribe", { filter: `${t}/admin/#`, qos: 1 });
      await waitFor(() => calls.length === 1, { message: "the rule was asked" });
      data(s).role = "guest";
      const removed = await h.bridge.reauthorize(s);
      expect(removed.map((r) => r.filter)).to.deep.equal([`${t}/admin/#`]);
      gate.resolve();
      expect((await ack).error?.code).to.equal("FORBIDDEN");
      expect(s.rooms.has(`mqtt:${t}/admin/#`)).to.equal(false);
      const d = await h.device();
      await fenced(d, [`${t}/admin/x`], `${t}/public/x`, lw, [la]);
      expect(afterNotice(la, `${t}/admin/#`)).to.deep.equal([]);
    });

    it("a recovered socket's room still being checked again is not given back with the old answer", async () => {
      const t = uniq();
      const { rule, gates, calls } = gatedRule(t);
      const h = await setup(
        { allow: { subscribe: rule } },
        { connectionStateRecovery: { maxDisconnectionDuration: 30_000 } },
      );
      const a = await h.client();
      const w = await h.client(); // keeps the room alive while a is away
      data(serverOf(h, a)).role = "admin";
      data(serverOf(h, w)).role = "admin";
      const [la, lw] = [journal(a), journal(w)];
      for (const c of [a, w]) {
        await subscribe(c, `${t}/admin/#`);
        await subscribe(c, `${t}/public/#`);
      }
      // a client recovers from the offset of the last broadcast it got
      const d = await h.device();
      await fenced(d, [], `${t}/public/before`, lw, [la]);
      a.io.opts.reconnection = false;
      a.io.reconnection(false);
      const gone = onceEvent(a, "disconnect");
      a.io.engine.close();
      await gone;
      const gate = deferred();
      gates.push(gate.promise);
      calls.length = 0;
      const back = onceEvent(a, "connect");
      a.connect();
      await back;
      expect(a.recovered).to.equal(true);
      await waitFor(() => calls.length === 2, { message: "its rooms asked again" });
      const s = serverOf(h, a);
      expect(s.rooms.has(`mqtt:${t}/admin/#`)).to.equal(false); // out while its rule answers
      data(s).role = "guest";
      expect(await h.bridge.reauthorize(s)).to.deep.equal([]); // it cannot see that room
      gate.resolve(); // the answer from before the change: true
      await waitFor(() => la.some((e) => e.kind === "unsubscribed"), { message: "the notice" });
      expect(calls).to.include(false); // asked again
      expect(s.rooms.has(`mqtt:${t}/admin/#`)).to.equal(false);
      expect(h.stats().recovered.revoked).to.equal(1);
      await fenced(d, [`${t}/admin/x`], `${t}/public/x`, lw, [la]);
      expect(afterNotice(la, `${t}/admin/#`)).to.deep.equal([]);
    });

    it("a subscribe waiting for the broker's SUBACK is checked too, and refused", async () => {
      const t = uniq();
      const proxy = await DelayProxy.start(Number(new URL(url()).port));
      cleanups.push(() => proxy.close());
      const h = await setup({
        mqtt: proxy.url,
        allow: { subscribe: [`${t}/users/{data.userId}/#`] },
      });
      const a = await h.client();
      const s = serverOf(h, a);
      data(s).userId = "u1";
      const la = journal(a);
      proxy.delayMs = 400; // the SUBACK comes late
      const ack = request(a, "mqtt.subscribe", `${t}/users/u1/#`);
      await waitFor(() => s.rooms.has(`mqtt:${t}/users/u1/#`), { message: "joined" });
      data(s).userId = "u2";
      const removed = await h.bridge.reauthorize(s);
      expect(removed.map((r) => r.filter)).to.deep.equal([`${t}/users/u1/#`]);
      expect((await withTimeout(ack, 5000, "the subscribe ack")).error?.code).to.equal("FORBIDDEN");
      expect(s.rooms.has(`mqtt:${t}/users/u1/#`)).to.equal(false);
      expect(la.filter((e) => e.kind === "unsubscribed")).to.have.length(1);
    });
  });

  it("the browser helper drops the subscription and reports FORBIDDEN, and does not restore it after a reconnect", async () => {
    const t = uniq();
    const h = await setup({
      allow: { subscribe: [`${t}/users/{data.userId}/#`, `${t}/public/#`] },
    });
    const c = await h.client();
    const w = await h.client();
    for (const x of [c, w]) data(serverOf(h, x)).userId = "u1";
    // on every (re)connect, as an auth middleware would
    h.io.on("connection", (socket) => {
      data(socket).userId ??= "u2";
    });
    const errors: [string, string][] = [];
    const helper = mqttClient(c, {
      onError: (err: MqttBridgeClientError, filter) => errors.push([err.code, filter]),
    });
    cleanups.push(() => helper.close());
    const mine: string[] = [];
    const publics: string[] = [];
    await helper.subscribe(`${t}/users/u1/#`, (m) => mine.push(m.topic));
    await helper.subscribe(`${t}/public/#`, (m) => publics.push(m.topic));
    const lw = journal(w);
    await subscribe(w, `${t}/users/u1/#`);

    data(serverOf(h, c)).userId = "u2";
    expect(await h.bridge.reauthorize(h.io)).to.have.length(1);
    await waitFor(() => errors.length === 1, { message: "onError" });
    expect(errors).to.deep.equal([["FORBIDDEN", `${t}/users/u1/#`]]);
    expect(helper.filters()).to.deep.equal([`${t}/public/#`]);

    const d = await h.device();
    await d.publishAsync(`${t}/users/u1/x`, JSON.stringify({ s: 1 }), { qos: 1 });
    await d.publishAsync(`${t}/public/x`, JSON.stringify({ s: 1 }), { qos: 1 });
    await waitFor(() => got(lw, `${t}/users/u1/x`) && publics.includes(`${t}/public/x`));
    expect(mine).to.deep.equal([]);

    // a new connection: the helper restores what it still has, and only that
    const old = c.id;
    c.io.engine.close();
    await waitFor(() => c.connected && c.id !== old, { message: "reconnected" });
    await waitFor(() => h.serverSocket(c.id!)?.rooms.has(`mqtt:${t}/public/#`) === true, {
      message: "public restored",
    });
    expect([...h.serverSocket(c.id!)!.rooms].filter((r) => r.startsWith("mqtt:"))).to.deep.equal([
      `mqtt:${t}/public/#`,
    ]);
    expect(errors).to.have.length(1);
  });
});
