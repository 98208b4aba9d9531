/**
 * Shared pieces of the broker-fault suites (test/integration/faults.test.ts and
 * test/integration/session.test.ts): bridge options, topic prefixes, ack outcomes, bridge events,
 * a device message stream, and the per-test cleanups with a private Mosquitto each.
 */
import type { MqttClient } from "mqtt";
import type { Socket as ClientSocket } from "socket.io-client";
import type { MqttBridge, MqttBridgeOptions } from "../../lib";
import type { BrokerTarget } from "./harness";
import type { MosquittoHandle } from "./mosquitto";
import { startMosquitto } from "./mosquitto";
import { sleep, withTimeout } from "./util";

/** Bridge options allowing every subscribe, publish and retain. */
export const OPEN: MqttBridgeOptions = {
  allow: { subscribe: ["#"], publish: ["#"], retain: ["#"] },
};

/** A reconnect backoff short enough for tests that restart the broker. */
export const FAST_RECONNECT = { minDelayMs: 50, maxDelayMs: 200 };

/**
 * Returns a function giving a topic prefix of its own on each call (one per test):
 * `<name><pid>x<time>x<n>`.
 */
export function uniqueTopics(name: string): () => string {
  let seq = 0;
  return () => `${name}${process.pid}x${Date.now().toString(36)}x${++seq}`;
}

/** A listener that swallows what it is given (e.g. `error` events while the broker is down). */
export function noop(): void {
  // swallow
}

/**
 * Returns a function printing a measured figure as `[tag] what: <json>`, only when the
 * FAULTS_REPORT environment variable is set.
 */
export function reporter(tag: string): (what: string, data: unknown) => void {
  return (what, data) => {
    if (process.env.FAULTS_REPORT) console.log(`      [${tag}] ${what}: ${JSON.stringify(data)}`);
  };
}

/**
 * The harness target for a private Mosquitto. Without `version` the bridge chooses the protocol
 * itself (MQTT 5, falling back to 3.1.1); with it, the bridge is pinned to that version.
 */
export function target(broker: MosquittoHandle, version?: 4 | 5): BrokerTarget {
  if (version === undefined) return { name: "mosquitto v5", url: broker.url, version: 5 };
  return {
    name: `mosquitto v${version}`,
    url: broker.url,
    version,
    bridgeMqtt: { protocolVersion: version },
  };
}

/** The shape of a bridge ack: `{ ok: true }` or `{ ok: false, error }`. */
export interface AckLike {
  ok: boolean;
  error?: { code: string; message?: string; reasonCode?: number };
}

/** The outcome of one emit with an ack: the ack, or `hung` when none came within the bound. */
export interface Outcome {
  res?: AckLike;
  hung: boolean;
  ms: number;
}

/**
 * Emits `event` with `args` and an ack callback, and never rejects: a missing ack within
 * `timeoutMs` is reported as `hung`.
 */
export async function settle(
  socket: ClientSocket,
  event: string,
  args: unknown[],
  timeoutMs: number,
): Promise<Outcome> {
  const t0 = performance.now();
  try {
    const res = (await socket.timeout(timeoutMs).emitWithAck(event, ...args)) as AckLike;
    return { res, hung: false, ms: performance.now() - t0 };
  } catch {
    return { hung: true, ms: performance.now() - t0 };
  }
}

/** Tallies outcomes: `ok`, one entry per error code, `hung`. */
export function tally(outcomes: Outcome[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const o of outcomes) {
    const key = o.hung ? "hung" : o.res?.ok ? "ok" : (o.res?.error?.code ?? "malformed-ack");
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

/** Resolves on the bridge's next `event`; rejects after `ms` (and removes its listener). */
export function nextEvent(
  bridge: MqttBridge,
  event: "connect" | "offline" | "reconnect",
  ms = 5000,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const on = (): void => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      bridge.off(event, on);
      reject(new Error(`bridge event "${event}" not emitted within ${ms} ms`));
    }, ms);
    bridge.once(event, on);
  });
}

/**
 * A device message stream on `topic`: payloads "0", "1", …, one publish at a time (so the device
 * never reorders), recording which were acknowledged; stops at `stopAt` or on the first error.
 */
export class Stream {
  /** The next payload number to publish. */
  next = 0;
  /** Hard bound on the number of publishes; lowered by the test to stop the stream. */
  stopAt = 20_000;
  /** The payload numbers whose publish was acknowledged, in order. */
  readonly acked: number[] = [];
  /** The error that ended the stream, if any. */
  error: unknown;
  /** Settles when the stream has stopped. */
  readonly done: Promise<void>;

  constructor(device: MqttClient, topic: string, qos: 1 | 2 = 1) {
    this.done = (async () => {
      try {
        while (this.next < this.stopAt) {
          const i = this.next++;
          await device.publishAsync(topic, String(i), { qos });
          this.acked.push(i);
          await sleep(2); // pacing (≤ ~500 msg/s), not a wait for an event
        }
      } catch (err) {
        this.error = err;
      }
    })();
  }
}

/** What {@link useCleanups} gives a suite. */
export interface Cleanups {
  /** Cleanups of the running test, run last-first after it whatever happened. */
  cleanups: (() => Promise<unknown> | void)[];
  /** A private broker for this test, stopped after it. */
  broker: (opts?: Parameters<typeof startMosquitto>[0]) => Promise<MosquittoHandle>;
}

/**
 * Registers, in the calling `describe`, an `afterEach` hook (bounded by `hookMs`) that runs the
 * test's cleanups last-first, each bounded by `eachMs`; a failing cleanup is logged, not thrown.
 */
export function useCleanups(hookMs: number, eachMs: number): Cleanups {
  const cleanups: Cleanups["cleanups"] = [];
  afterEach(async function () {
    this.timeout(hookMs);
    for (const fn of cleanups.splice(0).reverse()) {
      try {
        await withTimeout(Promise.resolve(fn()), eachMs, "cleanup");
      } catch (err) {
        console.warn("cleanup failed:", err);
      }
    }
  });
  return {
    cleanups,
    async broker(opts = {}) {
      const b = await startMosquitto(opts);
      cleanups.push(() => b.stop());
      return b;
    },
  };
}
