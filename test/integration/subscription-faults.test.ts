/**
 * A broker that answers SUBSCRIBE late or refuses it (issue "guarantees", items 2 and 4): aedes'
 * authorizeSubscribe plays that broker (Mosquitto 2.0.11 grants what its ACL denies), delaying
 * or refusing chosen filters on demand.
 */
import { expect } from "chai";
import type { AedesHandle } from "../support/aedes";
import { startAedes } from "../support/aedes";
import type { Harness } from "../support/harness";
import { collect, createHarness, request } from "../support/harness";
import { waitFor } from "../support/util";

const OPEN = { allow: { subscribe: ["#"], publish: ["#"] } };

interface Notice {
  filter: string;
  room: string;
  error: { code: string; reasonCode?: number };
}

describe("broker subscriptions that are late or refused (aedes)", () => {
  let broker: AedesHandle;
  let h: Harness | undefined;
  /** SUBSCRIBEs of these filter prefixes are answered this much later. */
  const slow = new Map<string, number>();
  /** SUBSCRIBEs of these filter prefixes are refused (0x80). */
  const refused = new Set<string>();
  /** Filters granted late, once granted. */
  const grantedLate: string[] = [];
  /** Refuse QoS 2 subscriptions. */
  let refuseQos2 = false;
  let seq = 0;
  const uniq = () => `sf${process.pid}x${Date.now().toString(36)}x${++seq}`;
  const prefixed = (set: Iterable<string>, topic: string) =>
    [...set].find((p) => topic.startsWith(p));

  before(async () => {
    broker = await startAedes({
      brokerOptions: {
        authorizeSubscribe: (_client, sub, done) => {
          if (prefixed(refused, sub.topic) || (refuseQos2 && sub.qos === 2)) {
            done(null, null); // aedes: a null subscription is a SUBACK failure (0x80)
            return;
          }
          const key = prefixed(slow.keys(), sub.topic);
          if (key === undefined) return done(null, sub);
          const delay = slow.get(key)!;
          slow.delete(key); // only the first SUBSCRIBE is late
          setTimeout(() => {
            done(null, sub);
            grantedLate.push(sub.topic);
          }, delay);
        },
      },
    });
  });
  after(async () => broker.close());
  afterEach(async () => {
    await h?.close();
    h = undefined;
    slow.clear();
    refused.clear();
    refuseQos2 = false;
  });

  async function setup(): Promise<Harness> {
    h = await createHarness(
      { name: "aedes", url: broker.url, version: 4 },
      {
        ...OPEN,
        ackTimeoutMs: 300,
        limits: { subscribeQos: 2 },
      },
    );
    return h;
  }

  it("retries a SUBSCRIBE answered after ackTimeoutMs until confirmed, and delivers", async () => {
    const t = uniq();
    const hh = await setup();
    const member = await hh.client();
    const box = collect(member);
    await hh.serverSocket(member.id!)!.join("app");
    slow.set(`${t}/`, 800);
    hh.bridge.subscribe(`${t}/a`, "app");
    await waitFor(() => hh.stats().brokerSubscriptions === 1, { timeoutMs: 4000 });
    const d = await hh.device();
    await d.publishAsync(`${t}/a`, "late but live", { qos: 1 });
    await waitFor(() => box.messages.length === 1);
    expect(hh.stats().subscribes.retried).to.be.greaterThan(0);
  });

  it("leaves no orphan broker subscription when the room empties before a late SUBACK", async () => {
    const t = uniq();
    const hh = await setup();
    const c = await hh.client();
    slow.set(`${t}/late`, 600);
    const ack = await request(c, "mqtt.subscribe", `${t}/late`);
    expect(ack.error?.code).to.equal("TIMEOUT");
    // the socket left with its failed request; the broker grants the SUBSCRIBE after that
    await waitFor(() => hh.stats().rooms === 0);
    expect((await request(c, "mqtt.subscribe", `${t}/sentinel`)).ok).to.equal(true);
    const box = collect(c);
    const d = await hh.device();
    // the broker's own record: its subscription of the filter, granted late, then removed again
    const log: string[] = [];
    const onSub = (subs: { topic: string }[]) => {
      for (const sub of subs) if (sub.topic === `${t}/late`) log.push("sub");
    };
    const onUnsub = (topics: string[]) => {
      for (const topic of topics) if (topic === `${t}/late`) log.push("unsub");
    };
    broker.broker.on("subscribe", onSub);
    broker.broker.on("unsubscribe", onUnsub);
    try {
      await waitFor(() => grantedLate.includes(`${t}/late`));
      await waitFor(() => log.includes("sub") && log[log.length - 1] === "unsub");
    } finally {
      broker.broker.off("subscribe", onSub);
      broker.broker.off("unsubscribe", onUnsub);
    }
    const before = hh.stats().messages.in;
    await d.publishAsync(`${t}/late`, "nobody wants this", { qos: 1 });
    await d.publishAsync(`${t}/sentinel`, "after", { qos: 1 });
    await waitFor(() => box.messages.length === 1);
    // the broker sends in order: had it kept the late subscription, its copy came first
    expect(hh.stats().messages.in - before).to.equal(1);
  });

  it("keeps the existing subscription working when a QoS upgrade is refused", async () => {
    const t = uniq();
    const hh = await setup();
    const [a, b] = [await hh.client(), await hh.client()];
    const box = collect(a);
    expect((await request(a, "mqtt.subscribe", `${t}/x`)).ok).to.equal(true);
    refuseQos2 = true;
    const ack = await request(b, "mqtt.subscribe", { filter: `${t}/x`, qos: 2 });
    expect(ack.error?.code).to.equal("BROKER_REJECTED");
    const d = await hh.device();
    await d.publishAsync(`${t}/x`, "still here", { qos: 1 });
    await waitFor(() => box.messages.length === 1);
    expect(hh.serverSocket(a.id!)!.rooms.has(`mqtt:${t}/x`)).to.equal(true);
    expect(hh.serverSocket(b.id!)!.rooms.has(`mqtt:${t}/x`)).to.equal(false);
  });

  it("fails only the socket that asked for a refused QoS raise, not joiners waiting meanwhile", async () => {
    const t = uniq();
    const hh = await setup();
    const [a, b, c] = [await hh.client(), await hh.client(), await hh.client()];
    expect((await request(a, "mqtt.subscribe", `${t}/x`)).ok).to.equal(true);
    refuseQos2 = true;
    const [ackB, ackC] = await Promise.all([
      request(b, "mqtt.subscribe", { filter: `${t}/x`, qos: 2 }), // the raise, refused
      request(c, "mqtt.subscribe", `${t}/x`), // QoS 0: waits while the raise is on its way
    ]);
    expect(ackB.error?.code).to.equal("BROKER_REJECTED");
    expect(ackC).to.deep.include({ ok: true, qos: 0 });
    expect(hh.serverSocket(c.id!)!.rooms.has(`mqtt:${t}/x`)).to.equal(true);
  });

  it("keeps a subscription granted while a refused QoS raise of it was on its way", async () => {
    const t = uniq();
    const hh = await setup();
    const [a, b] = [await hh.client(), await hh.client()];
    const box = collect(a);
    const notices: Notice[] = [];
    a.on("mqtt.unsubscribed", (n: Notice) => notices.push(n));
    slow.set(`${t}/x`, 150); // the first SUBSCRIBE is answered (granted) a little later
    refuseQos2 = true;
    const [ackA, ackB] = await Promise.all([
      request(a, "mqtt.subscribe", `${t}/x`),
      request(b, "mqtt.subscribe", { filter: `${t}/x`, qos: 2 }),
    ]);
    expect(ackA.ok).to.equal(true);
    expect(ackB).to.deep.include({ ok: true, qos: 0 }); // granted less than asked, as MQTT does
    const d = await hh.device();
    await d.publishAsync(`${t}/x`, "kept", { qos: 1 });
    await waitFor(() => box.messages.length === 1);
    expect(notices).to.deep.equal([]);
    expect(hh.stats().brokerSubscriptions).to.equal(1);
  });

  it("tells sockets when a re-SUBSCRIBE after a reconnect is refused, and retries routes", async () => {
    const t = uniq();
    const hh = await setup();
    const [a, m] = [await hh.client(), await hh.client()];
    const notices: Notice[] = [];
    a.on("mqtt.unsubscribed", (n: Notice) => notices.push(n));
    const box = collect(m);
    expect((await request(a, "mqtt.subscribe", `${t}/q`)).ok).to.equal(true);
    await hh.serverSocket(m.id!)!.join("app");
    hh.bridge.subscribe(`${t}/r`, "app");
    await waitFor(() => hh.stats().brokerSubscriptions === 2);

    refused.add(`${t}/`);
    await broker.restart(); // the bridge reconnects and subscribes again: refused
    await waitFor(() => notices.length === 1, { timeoutMs: 5000 });
    expect(notices[0]).to.deep.include({ filter: `${t}/q`, room: `mqtt:${t}/q` });
    expect(notices[0].error.code).to.equal("BROKER_REJECTED");
    expect(hh.serverSocket(a.id!)!.rooms.has(`mqtt:${t}/q`)).to.equal(false);

    refused.clear(); // the app's route is retried with backoff and works again
    await waitFor(() => hh.stats().brokerSubscriptions === 1, { timeoutMs: 5000 });
    const d = await hh.device();
    await d.publishAsync(`${t}/r`, "back", { qos: 1 });
    await waitFor(() => box.messages.length === 1);
    expect(hh.stats().subscribes.refused).to.be.greaterThan(0);
  });
});
