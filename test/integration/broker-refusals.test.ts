/**
 * A broker that refuses a subscription (SUBACK failure) or a publish (PUBACK reason code): the
 * socket gets BROKER_REJECTED with the reason code, and a refused subscription leaves no socket in
 * the filter's room. Mosquitto 2.0.11 grants subscriptions its
 * ACL denies (it filters at delivery), so aedes' authorizeSubscribe plays the refusing broker.
 */
import { isMarker } from "../../lib/delivery/markers";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { expect } from "chai";
import type { AedesHandle } from "../support/aedes";
import { startAedes } from "../support/aedes";
import type { BrokerTarget, Harness } from "../support/harness";
import { collect, createHarness, request } from "../support/harness";
import type { MosquittoHandle } from "../support/mosquitto";
import { startMosquitto } from "../support/mosquitto";
import { tmpDirSync, waitFor } from "../support/util";

const OPEN = { allow: { subscribe: ["#"], publish: ["#"] } };

function refusedSuite(getTarget: () => BrokerTarget, reasonCode: number): void {
  let h: Harness | undefined;
  afterEach(async () => h?.close());

  it("answers BROKER_REJECTED with the reason code and leaves no socket in the room", async () => {
    h = await createHarness(getTarget(), OPEN);
    const errors: Error[] = [];
    h.bridge.on("error", (e) => errors.push(e));
    const [a, b] = [await h.client(), await h.client()];
    const box = collect(b);
    const ack = await request(a, "mqtt.subscribe", "secret/x");
    expect(ack.ok).to.equal(false);
    expect(ack.error!.code).to.equal("BROKER_REJECTED");
    expect(ack.error!.reasonCode).to.equal(reasonCode);
    const sa = h.io.sockets.sockets.get(a.id!)!;
    expect([...sa.rooms].filter((r) => !isMarker(r))).to.deep.equal([a.id]);
    await waitFor(() => h!.bridge.stats().rooms === 0);
    expect(errors.length).to.be.greaterThan(0);
    // the connection is intact and other subscriptions work
    expect((await request(b, "mqtt.subscribe", "open/x")).ok).to.equal(true);
    const d = await h.device();
    await d.publishAsync("open/x", "fine", { qos: 1 });
    await waitFor(() => box.messages.length === 1);
    expect(h.bridge.stats().disconnects).to.equal(0);
  });
}

describe("requests the broker refuses", () => {
  describe("aedes authorizeSubscribe", () => {
    let broker: AedesHandle;
    before(async () => {
      broker = await startAedes({
        brokerOptions: {
          authorizeSubscribe: (_client, sub, done) => {
            // aedes: an error would drop the connection; a null subscription is a SUBACK failure (0x80)
            if (sub.topic.startsWith("secret/")) done(null, null);
            else done(null, sub);
          },
        },
      });
    });
    after(async () => broker.close());
    refusedSuite(() => ({ name: "aedes", url: broker.url, version: 4 }), 0x80);
  });

  describe("Mosquitto ACL refusing a publish over MQTT 5", () => {
    let broker: MosquittoHandle;
    let h: Harness | undefined;
    before(async () => {
      const acl = join(tmpDirSync("acl"), "acl");
      writeFileSync(acl, "topic readwrite open/#\n");
      broker = await startMosquitto({ extraConfig: [`acl_file ${acl}`] });
    });
    after(async () => broker.stop());
    afterEach(async () => h?.close());

    it("answers BROKER_REJECTED with the PUBACK reason code, and the connection stays up", async () => {
      h = await createHarness({ name: "mosquitto v5", url: broker.url, version: 5 }, OPEN);
      const c = await h.client();
      const ack = await request(c, "mqtt.publish", { topic: "closed/x", payload: "no", qos: 1 });
      expect(ack.ok).to.equal(false);
      expect(ack.error!.code).to.equal("BROKER_REJECTED");
      expect(ack.error!.reasonCode).to.equal(0x87);
      expect(
        (await request(c, "mqtt.publish", { topic: "open/x", payload: "yes", qos: 1 })).ok,
      ).to.equal(true);
      expect(h.bridge.stats().disconnects).to.equal(0);
      expect(h.bridge.stats().rejected.BROKER_REJECTED).to.equal(1);
    });
  });
});
