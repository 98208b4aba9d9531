import { randomBytes } from "node:crypto";

/** The few Redis commands the worker lock needs (an ioredis client has them). */
export interface LockClient {
  set(key: string, value: string, px: "PX", ms: number, nx: "NX"): Promise<string | null>;
  eval(script: string, keys: number, ...args: (string | number)[]): Promise<unknown>;
}

const RENEW = `if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("pexpire", KEYS[1], ARGV[2]) else return 0 end`;
const RELEASE = `if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end`;

/**
 * A lock in Redis with expiry, so that one worker serves the cluster and a standby takes over
 * within `ttlMs` when it dies: `SET key token PX ttl NX` to take it, a compare-and-extend script
 * to keep it, a compare-and-delete to hand it back.
 */
export class WorkerLock {
  readonly token = randomBytes(8).toString("hex");

  constructor(
    private readonly client: LockClient,
    private readonly key: string,
    private readonly ttlMs: number,
  ) {}

  /** Takes the lock if it is free. */
  async tryAcquire(): Promise<boolean> {
    return (await this.client.set(this.key, this.token, "PX", this.ttlMs, "NX")) === "OK";
  }

  /** Extends the lock; false when it is no longer ours (expired and taken, or deleted). */
  async renew(): Promise<boolean> {
    return (await this.client.eval(RENEW, 1, this.key, this.token, this.ttlMs)) === 1;
  }

  /** Hands the lock back, if it is still ours. */
  async release(): Promise<void> {
    await this.client.eval(RELEASE, 1, this.key, this.token);
  }
}
