/**
 * Exactly once and in order while the broker subscriptions of overlapping filters come and go and
 * change QoS under load (issue "guarantees", item 8). Over MQTT 5 Mosquitto sends one copy per
 * matching subscription, each with its subscription identifier; the bridge processes one copy per
 * message, so a change of which copy that is must neither deliver a message twice nor lose one.
 */
import { expect } from "chai";
import type { Socket as ClientSocket } from "socket.io-client";
import { collect, request } from "../support/harness";
import { onMosquitto5 } from "../support/mosquitto-suite";
import { waitFor } from "../support/util";

type Ack = { ok: boolean; error?: { code: string } };

describe("exactly once through subscription churn (Mosquitto, MQTT 5)", function () {
  this.timeout(60_000);
  const { setup } = onMosquitto5("eo");

  it("delivers each message once, in order, while overlapping filters are released, re-subscribed and upgraded", async () => {
    const t = `eo${process.pid}x${Date.now().toString(36)}`;
    const hh = await setup({
      allow: { subscribe: ["#"], publish: ["#"] },
      limits: { subscribeRate: 10_000, subscribeBurst: 10_000 },
    });
    const watcher = await hh.client();
    const others = [await hh.client(), await hh.client()];
    const box = collect<number>(watcher);
    const sub = async (c: ClientSocket, filter: string, qos = 0) => {
      const ack = await request<Ack>(c, "mqtt.subscribe", { filter, qos });
      expect(ack.ok, `subscribe ${filter}: ${ack.error?.code}`).to.equal(true);
    };
    const unsub = async (c: ClientSocket, filter: string) => {
      expect((await request<Ack>(c, "mqtt.unsubscribe", filter)).ok).to.equal(true);
    };
    // the watcher is always in at least one of two overlapping rooms, so it must get everything
    const filters = [`${t}/#`, `${t}/+`, `${t}/x`];
    await sub(watcher, filters[0]);
    await sub(watcher, filters[1]);

    const d = await hh.device();
    let published = 0;
    let publishing = true;
    const pump = (async () => {
      while (publishing && published < 100_000) {
        const batch: Promise<unknown>[] = [];
        for (let i = 0; i < 20; i++) batch.push(d.publishAsync(`${t}/x`, String(++published)));
        await Promise.all(batch);
        await new Promise((resolve) => setImmediate(resolve)); // let the churn run between batches
      }
    })();

    const deadline = Date.now() + 5000;
    let cycles = 0;
    while (Date.now() < deadline && cycles < 400) {
      const [a, b] = cycles % 2 === 0 ? [filters[0], filters[1]] : [filters[1], filters[0]];
      const qos = cycles % 3;
      // release the (older, chosen) one and take it again; the other one keeps the watcher fed
      await unsub(watcher, a);
      await sub(watcher, a, qos);
      // other sockets churn an overlapping exact filter and upgrade a shared one
      const o = others[cycles % 2];
      await sub(o, filters[2], qos);
      await sub(o, b, (qos + 1) % 3);
      await unsub(o, filters[2]);
      await unsub(o, b);
      cycles++;
    }
    publishing = false;
    await pump;
    await waitFor(() => box.messages.length >= published, { timeoutMs: 10_000 }).catch(
      () => undefined,
    );
    const got = box.messages.map((m) => m.payload);
    const seen = new Set<number>();
    const dup: number[] = [];
    for (const n of got) {
      if (seen.has(n)) dup.push(n);
      seen.add(n);
    }
    const missing: number[] = [];
    for (let n = 1; n <= published; n++) if (!seen.has(n)) missing.push(n);
    const outOfOrder = got.filter((n, i) => i > 0 && n <= got[i - 1]).length;
    const summary = `${cycles} churn cycles, ${published} published, ${got.length} received`;
    expect(dup.slice(0, 10), `duplicates (${summary})`).to.deep.equal([]);
    expect(missing.slice(0, 10), `missing (${summary})`).to.deep.equal([]);
    expect(outOfOrder, `out of order (${summary})`).to.equal(0);
    expect(hh.stats().disconnects).to.equal(0);
  });
});
