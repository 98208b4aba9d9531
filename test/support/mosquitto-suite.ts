/**
 * The hooks a describe block needs to run its tests against a Mosquitto of its own over MQTT 5:
 * the broker is started before the block and stopped after it; each harness made with `setup` is
 * closed after its test.
 */
import type { ServerOptions } from "socket.io";
import type { MqttBridgeOptions } from "../../lib";
import type { Harness } from "./harness";
import { createHarness } from "./harness";
import type { MosquittoHandle } from "./mosquitto";
import { startMosquitto } from "./mosquitto";

/** What {@link onMosquitto5} gives a describe block. */
export interface Mosquitto5Suite {
  /** A harness (one node, in-memory adapter) with the bridge on this block's broker. */
  setup: (opts: MqttBridgeOptions, ioOpts?: Partial<ServerOptions>) => Promise<Harness>;
  /** A topic prefix of its own for each call, so retained state never leaks between tests. */
  uniq: () => string;
  /** The broker's URL (for a client of the test's own, or a proxy in front of it). */
  url: () => string;
}

/** Registers the hooks (call it inside `describe`); `tag` names this block's topic prefixes. */
export function onMosquitto5(tag: string): Mosquitto5Suite {
  let broker: MosquittoHandle;
  const harnesses: Harness[] = [];
  let seq = 0;
  before(async () => {
    broker = await startMosquitto();
  });
  after(async () => broker.stop());
  afterEach(async () => {
    await Promise.all(harnesses.splice(0).map((h) => h.close()));
  });
  return {
    async setup(opts, ioOpts = {}) {
      const h = await createHarness(
        { name: "mosquitto v5", url: broker.url, version: 5 },
        opts,
        ioOpts,
      );
      harnesses.push(h);
      return h;
    },
    uniq: () => `${tag}${process.pid}x${Date.now().toString(36)}x${++seq}`,
    url: () => broker.url,
  };
}
