/**
 * Socket.IO cluster adapters on a private redis-server, for the cluster tests: the node processes
 * (test/cluster/node.ts) and the in-process cluster harness (test/support/harness.ts) both build
 * their adapters here, so both run the same configuration.
 */
import { randomBytes } from "node:crypto";
import { createAdapter as createRedisAdapter } from "@socket.io/redis-adapter";
import { createAdapter as createStreamsAdapter } from "@socket.io/redis-streams-adapter";
import { Redis } from "ioredis";
import type { RedisOptions } from "ioredis";
import type { ServerOptions } from "socket.io";

/** Which adapter joins the nodes. */
export type AdapterKind = "redis" | "streams";

/** One node's adapter, and what to close after the node's `io.close()`. */
export interface NodeAdapter {
  adapter: NonNullable<ServerOptions["adapter"]>;
  /** Quits (or, when Redis is unreachable, disconnects) the node's Redis clients. */
  close(): Promise<void>;
}

/** Makes the adapter of node `index` (0-based). */
export type AdapterFactory = (index: number) => NodeAdapter | Promise<NodeAdapter>;

/** Options of {@link redisAdapterFactory}. */
export interface RedisAdapterFactoryOptions {
  /**
   * Channel key (redis adapter) or stream name (streams adapter); nodes that share it form one
   * cluster. Default: a random one, so that two clusters on one redis-server never mix.
   */
  key?: string;
  /** Called with every Redis client error (they are otherwise ignored: an outage must not crash). */
  onError?: (err: Error) => void;
}

/**
 * ioredis options for the cluster tests: reconnect forever, at most 500 ms apart (the default caps
 * at 2 s), so a restarted Redis is found again quickly; a disconnected client's socket that the
 * server does not close (a blocked XREAD) is destroyed after 300 ms, not 2 s.
 */
const REDIS_OPTIONS: RedisOptions = {
  retryStrategy: (times) => Math.min(times * 50, 500),
  disconnectTimeout: 300,
};

/** A connected-or-connecting ioredis client whose errors never become uncaught exceptions. */
export function redisClient(url: string, onError?: (err: Error) => void): Redis {
  const client = new Redis(url, REDIS_OPTIONS);
  client.on("error", (err: Error) => onError?.(err));
  return client;
}

/** Quits a client; a client that cannot reach Redis is disconnected instead (bounded). */
export async function closeRedisClient(client: Redis): Promise<void> {
  if (client.status === "end") return;
  if (client.status !== "ready") {
    client.disconnect();
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      client.quit(),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, 1000);
      }),
    ]);
  } catch {
    // already closing
  } finally {
    clearTimeout(timer);
    client.disconnect();
  }
}

/**
 * A factory of adapters joining the nodes through the redis-server at `url`:
 * - `"redis"`: `@socket.io/redis-adapter` with an ioredis client and its `duplicate()` for pub/sub;
 * - `"streams"`: `@socket.io/redis-streams-adapter` with one ioredis client (it duplicates it for
 *   its blocking XREAD and its pub/sub itself).
 */
export function redisAdapterFactory(
  url: string,
  kind: AdapterKind,
  opts: RedisAdapterFactoryOptions = {},
): AdapterFactory {
  const key = opts.key ?? `sio-test-${randomBytes(4).toString("hex")}`;
  return () => {
    const pub = redisClient(url, opts.onError);
    if (kind === "redis") {
      const sub = pub.duplicate();
      sub.on("error", (err: Error) => opts.onError?.(err));
      return {
        adapter: createRedisAdapter(pub, sub, { key }),
        async close() {
          await Promise.all([closeRedisClient(pub), closeRedisClient(sub)]);
        },
      };
    }
    // the adapter duplicates the client for its blocking XREAD and its pub/sub, and lets the XREAD
    // client go only once a pending XREAD returns (which takes ~10 s of retries when Redis is gone
    // by then): keep the duplicates, to disconnect them on close
    const duplicates: Redis[] = [];
    const duplicate = pub.duplicate.bind(pub);
    pub.duplicate = (override?: Partial<RedisOptions>) => {
      const client = duplicate(override);
      duplicates.push(client);
      return client;
    };
    return {
      adapter: createStreamsAdapter(pub, {
        streamName: key,
        channelPrefix: key,
        sessionKeyPrefix: `${key}:session:`,
        // the blocking XREAD is only given up when it returns: keep that short for close()
        blockTimeInMs: 500,
      }),
      async close() {
        for (const client of duplicates) client.disconnect();
        await closeRedisClient(pub);
      },
    };
  };
}
