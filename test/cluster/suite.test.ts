/**
 * The shared behaviour suite (test/suites/bridge-suite.ts) on a 3-node cluster in this process:
 * three Socket.IO servers, each with its own bridge and broker connection, joined by
 * @socket.io/redis-adapter (and then @socket.io/redis-streams-adapter) on a private redis-server;
 * clients connect round-robin.
 */
import { redisAdapterFactory } from "../support/adapters";
import type { BrokerTarget } from "../support/harness";
import type { MosquittoHandle } from "../support/mosquitto";
import { startMosquitto } from "../support/mosquitto";
import type { RedisHandle } from "../support/redis";
import { startRedis } from "../support/redis";
import { bridgeSuite } from "../suites/bridge-suite";

for (const kind of ["redis", "streams"] as const) {
  const name = kind === "redis" ? "@socket.io/redis-adapter" : "@socket.io/redis-streams-adapter";
  describe(`bridge suite on 3 in-process nodes (${name}), Mosquitto over MQTT 5`, () => {
    let broker: MosquittoHandle;
    let redis: RedisHandle;
    before(async () => {
      [broker, redis] = await Promise.all([startMosquitto(), startRedis()]);
    });
    after(async () => Promise.all([broker?.stop(), redis?.stop()]));
    bridgeSuite(
      (): BrokerTarget => ({ name: "mosquitto v5", url: broker.url, version: 5 }),
      // a fresh channel key (stream) for every harness: no test hears another's nodes
      () => ({ nodes: 3, adapter: redisAdapterFactory(redis.url, kind) }),
    );
  });
}
