import type { AedesHandle } from "../support/aedes";
import { startAedes } from "../support/aedes";
import type { BrokerTarget } from "../support/harness";
import type { MosquittoHandle } from "../support/mosquitto";
import { startMosquitto } from "../support/mosquitto";
import { bridgeSuite } from "../suites/bridge-suite";

describe("bridge on Mosquitto over MQTT 5", () => {
  let broker: MosquittoHandle;
  before(async () => {
    broker = await startMosquitto();
  });
  after(async () => broker.stop());
  bridgeSuite((): BrokerTarget => ({ name: "mosquitto v5", url: broker.url, version: 5 }));
});

describe("bridge on Mosquitto over MQTT 3.1.1", () => {
  let broker: MosquittoHandle;
  before(async () => {
    broker = await startMosquitto();
  });
  after(async () => broker.stop());
  bridgeSuite((): BrokerTarget => ({
    name: "mosquitto v4",
    url: broker.url,
    version: 4,
    bridgeMqtt: { protocolVersion: 4 },
  }));
});

describe("bridge on aedes (3.1.1 only: falls back from 5)", () => {
  let broker: AedesHandle;
  before(async () => {
    broker = await startAedes();
  });
  after(async () => broker.close());
  bridgeSuite((): BrokerTarget => ({ name: "aedes", url: broker.url, version: 4 }));
});
