import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import createDebug from "debug";

const debug = createDebug("socket.io-mqtt-bridge:lock");

/** The one Redis command the worker lock needs (an ioredis client has it). */
export interface LockClient {
  eval(script: string, keys: number, ...args: (string | number)[]): Promise<unknown>;
}

// taking the lock is idempotent: a SET that timed out here but ran in Redis left our own token,
// which counts as taken (else nobody would serve until it expires)
const ACQUIRE = `local v = redis.call("get", KEYS[1])
if v == ARGV[1] then return redis.call("pexpire", KEYS[1], ARGV[2]) end
if v then return 0 end
redis.call("set", KEYS[1], ARGV[1], "PX", ARGV[2])
return 1`;
const RENEW = `if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("pexpire", KEYS[1], ARGV[2]) else return 0 end`;
const RELEASE = `if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end`;

/**
 * A lock in Redis with expiry, so that one worker serves the cluster and a standby takes over
 * within `ttlMs` when it dies: a compare-and-set to take it (with our token), a
 * compare-and-extend to keep it, a compare-and-delete to hand it back.
 */
export class WorkerLock {
  readonly token = randomBytes(8).toString("hex");

  constructor(
    private readonly client: LockClient,
    private readonly key: string,
    readonly ttlMs: number,
  ) {}

  /** Takes the lock if it is free (or already ours). */
  async tryAcquire(): Promise<boolean> {
    return (await this.client.eval(ACQUIRE, 1, this.key, this.token, this.ttlMs)) === 1;
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

/** What a {@link WorkerLease} tells its owner. */
export interface LeaseHooks {
  /** The lock is ours: start serving. */
  acquired(): void;
  /** The lock may no longer be ours: stop serving now, before anything else runs. */
  lost(reason: string): void;
  /** An attempt to take the lock found it held by another worker (or Redis unreachable). */
  waiting?(): void;
}

/**
 * Keeps a {@link WorkerLock} for as long as Redis confirms it, so that at most one worker serves
 * at any time. Every `ttl/3` it takes the lock (standby) or extends it (serving). The holder
 * lets go at once when an extension fails (refused, errored or timed out: give the Redis client
 * a command timeout below `ttl/3`), and a watchdog lets go when no extension has succeeded for
 * `2/3 ttl` since it was sent, whatever hangs: Redis counts the expiry from when it ran the
 * command, never earlier than we sent it, so the holder stops at least `ttl/3` before another
 * worker can take the lock.
 */
export class WorkerLease {
  private held = false;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  private readonly every: number;
  private readonly deadline: number;

  constructor(
    private readonly lock: WorkerLock,
    private readonly hooks: LeaseHooks,
  ) {
    this.every = Math.max(30, Math.floor(lock.ttlMs / 3));
    this.deadline = Math.floor((lock.ttlMs * 2) / 3);
  }

  /** True while the lock is ours (as far as the last extension and the watchdog say). */
  get holding(): boolean {
    return this.held;
  }

  /** Starts trying to take the lock, now. */
  start(): void {
    void this.tick();
  }

  /** Stops; hands the lock back if held (without calling `lost`). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.watchdog);
    if (this.held) {
      this.held = false;
      await this.lock.release().catch((err: Error) => debug("release failed: %s", err.message));
    }
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    const sentAt = performance.now();
    if (!this.held) {
      const ok = await this.lock.tryAcquire().catch((err: Error) => {
        debug("taking the lock failed: %s", err.message);
        return false;
      });
      if (!ok && !this.stopped) this.hooks.waiting?.();
      if (ok && !this.stopped) {
        this.held = true;
        this.renewed(sentAt);
        try {
          this.hooks.acquired();
        } catch (err) {
          this.lose(`could not start serving: ${(err as Error).message}`);
        }
      }
    } else {
      let reason = "the worker lock was taken by another worker";
      const ok = await this.lock.renew().catch((err: Error) => {
        reason = `renewing the worker lock failed: ${err.message}`;
        return false;
      });
      // the watchdog may have given the lock up while the command was pending
      if (this.held && !this.stopped) {
        if (ok) this.renewed(sentAt);
        else this.lose(reason);
      }
    }
    if (this.stopped) return;
    this.timer = setTimeout(
      () => void this.tick(),
      Math.max(0, sentAt + this.every - performance.now()),
    );
  }

  private renewed(sentAt: number): void {
    clearTimeout(this.watchdog);
    const left = sentAt + this.deadline - performance.now();
    this.watchdog = setTimeout(
      () => this.lose(`no renewal of the worker lock succeeded within ${this.deadline} ms`),
      Math.max(0, left),
    );
  }

  private lose(reason: string): void {
    if (!this.held) return;
    this.held = false;
    clearTimeout(this.watchdog);
    debug("lost the lock: %s", reason);
    this.hooks.lost(reason);
  }
}
