import createDebug from "debug";
import type { IPublishPacket } from "mqtt";
import type { Deadlines, Pending } from "./deadlines";
import { MqttBridgeError, closedError, rateLimited } from "../errors";
import type { QoS } from "../protocol";

const debug = createDebug("socket.io-mqtt-bridge:outbox");

/** Options of a publish through the session. */
export interface SessionPublishOptions {
  qos: QoS;
  retain: boolean;
  properties?: IPublishPacket["properties"];
}

/** What the outbox needs from the broker connection (the session). */
export interface OutboxLink {
  /** True while packets can be sent. */
  connected(): boolean;
  /** QoS 1 and 2 publishes the broker accepts in flight at once (its Receive Maximum). */
  window(): number;
  /** True once the bridge is closed. */
  closed(): boolean;
  /**
   * Hands a publish to MQTT.js. `done` runs once the broker acknowledged it (QoS 0: once written),
   * refused it, or it could not be sent; only then does a QoS 1/2 publish free its place in the
   * broker's window.
   */
  send(topic: string, payload: Buffer, o: SessionPublishOptions, done: (err?: Error) => void): void;
}

/** Bounds of the publishes that wait in the bridge. */
export interface OutboxLimits {
  /** Publishes admitted while the broker is offline (`limits.offlineQueue`). */
  offline: number;
  /** Publishes waiting for room in the broker's Receive Maximum (`limits.publishQueue`). */
  window: number;
}

/** One publish, waiting in the bridge or handed to MQTT.js. */
interface Entry {
  readonly topic: string;
  readonly payload: Buffer;
  readonly opts: SessionPublishOptions;
  /** Admitted while offline: counts against {@link OutboxLimits.offline} while it waits. */
  readonly offline: boolean;
  deadline: Pending | undefined;
  settled: boolean;
  resolve(): void;
  reject(err: Error): void;
}

/**
 * The publishes of the bridge on their way to the broker. They wait here, never in MQTT.js, while
 * the broker is offline (at most `limits.offlineQueue`) or while the broker's Receive Maximum is
 * used up (at most `limits.publishQueue`, then `RATE_LIMITED`), in order. Each has its deadline
 * from the moment it arrives (`ackTimeoutMs`); a publish that times out while waiting is removed and
 * never sent. A QoS 1/2 publish handed to MQTT.js holds its place in the broker's window until
 * MQTT.js reports the acknowledgement, also after it timed out for its sender, since the broker
 * counts it until then.
 */
export class Outbox {
  /** Waiting publishes in arrival order (a Set: a timed-out one leaves from anywhere in O(1)). */
  private readonly waiting = new Set<Entry>();
  private offlineWaiting = 0;
  /** QoS 1/2 publishes handed to MQTT.js and not acknowledged yet. */
  private sent = 0;

  constructor(
    private readonly link: OutboxLink,
    private readonly deadlines: Deadlines,
    private readonly limits: OutboxLimits,
    private readonly timeoutMs: number,
  ) {}

  /** Publishes waiting in the bridge. */
  get size(): number {
    return this.waiting.size;
  }

  /** QoS 1/2 publishes in flight at the broker. */
  get inFlight(): number {
    return this.sent;
  }

  /**
   * Sends a publish now, or queues it within the bounds; `mayWaitOffline` lets it wait for the
   * broker to come back. Resolves on the broker's acknowledgement.
   */
  publish(
    topic: string,
    payload: Buffer,
    opts: SessionPublishOptions,
    mayWaitOffline: boolean,
  ): Promise<void> {
    const { link } = this;
    if (
      link.connected() &&
      this.waiting.size === 0 &&
      (opts.qos === 0 || this.sent < link.window())
    ) {
      return new Promise<void>((resolve, reject) => {
        this.send(this.entry(topic, payload, opts, false, resolve, reject));
      });
    }
    if (!link.connected()) {
      if (!mayWaitOffline || this.offlineWaiting >= this.limits.offline) {
        return Promise.reject(new MqttBridgeError("BROKER_UNAVAILABLE"));
      }
    } else if (this.waiting.size - this.offlineWaiting >= this.limits.window) {
      debug("%d publishes wait for the broker's receive maximum: refused", this.waiting.size);
      return Promise.reject(rateLimited("too many publishes waiting for the broker", 0x97));
    }
    return new Promise<void>((resolve, reject) => {
      const entry = this.entry(topic, payload, opts, !link.connected(), resolve, reject);
      this.waiting.add(entry);
      if (entry.offline) this.offlineWaiting++;
    });
  }

  /** Sends waiting publishes while the connection is up and the broker's window has room. */
  flush(): void {
    const { link } = this;
    while (this.waiting.size > 0 && link.connected()) {
      const entry = this.waiting.values().next().value as Entry;
      if (entry.opts.qos > 0 && this.sent >= link.window()) return;
      this.leave(entry);
      this.send(entry);
    }
  }

  /** Refuses every waiting publish (the bridge is closing). */
  close(): void {
    for (const entry of [...this.waiting]) {
      this.leave(entry);
      this.settle(entry, closedError());
    }
  }

  private entry(
    topic: string,
    payload: Buffer,
    opts: SessionPublishOptions,
    offline: boolean,
    resolve: () => void,
    reject: (err: Error) => void,
  ): Entry {
    const entry: Entry = {
      topic,
      payload,
      opts,
      offline,
      deadline: undefined,
      settled: false,
      resolve,
      reject,
    };
    entry.deadline = this.deadlines.add(() => this.expire(entry));
    return entry;
  }

  private expire(entry: Entry): void {
    if (this.link.closed()) {
      this.leave(entry);
      this.settle(entry, closedError());
      return;
    }
    const waited = this.leave(entry);
    if (waited) debug("a publish to %s timed out before it could be sent", entry.topic);
    this.settle(
      entry,
      new MqttBridgeError(
        "TIMEOUT",
        `no acknowledgement of a publish to "${entry.topic}" within ${this.timeoutMs} ms`,
      ),
    );
  }

  /** Takes an entry out of the waiting line; false when it was not waiting. */
  private leave(entry: Entry): boolean {
    if (!this.waiting.delete(entry)) return false;
    if (entry.offline) this.offlineWaiting--;
    return true;
  }

  private send(entry: Entry): void {
    const counted = entry.opts.qos > 0;
    if (counted) this.sent++;
    let done = false;
    this.link.send(entry.topic, entry.payload, entry.opts, (err) => {
      if (done) return;
      done = true;
      if (counted) this.sent--;
      this.settle(entry, err);
      if (this.waiting.size > 0) this.flush();
    });
  }

  private settle(entry: Entry, err?: Error): void {
    if (entry.settled) return;
    entry.settled = true;
    if (entry.deadline) this.deadlines.delete(entry.deadline);
    if (err) entry.reject(err);
    else entry.resolve();
  }
}
