import type { Namespace } from "socket.io";
import type { Lanes } from "./delivery/lanes";
import { MqttBridgeError } from "./errors";
import type { Histogram } from "./metrics-histogram";
import type { ResolvedOptions } from "./options";
import type { BridgeMessage, QoS } from "./protocol";
import type { RoomTracker } from "./sockets/rooms";
import type { Recovery } from "./sockets/recovery";
import type { History } from "./routing/history";
import type { BridgeStats } from "./stats";
import type { ValidPublish } from "./sockets/validate";

/**
 * What the socket handlers need from the broker side, whatever the topology: the broker session
 * of this process (embedded, worker) or the cluster's worker reached through the adapter (forward).
 */
export interface Backend {
  /** True while publishes can reach the broker. */
  readonly connected: boolean;
  /** True when the broker connection speaks MQTT 5 (properties allowed). */
  readonly mqtt5: boolean;
  /**
   * May a socket subscribe `filter` without exceeding `limits.brokerSubscriptions`? (A filter
   * already held always may.)
   */
  admits(filter: string): boolean;
  /** A socket is about to join the room of `filter` asking for `qos`. */
  prepare(filter: string, qos: QoS): void;
  /** Resolves with the granted QoS once the broker confirmed `filter`. */
  confirm(filter: string, qos: QoS, timeoutMs: number): Promise<QoS>;
  /** Publishes a validated message; `queue` lets it wait while the broker is offline. */
  publish(msg: ValidPublish, queue: boolean): Promise<void>;
  /**
   * Publishes a validated MQTT 5 request and resolves with its first reply (README, "Request /
   * response"); rejects with `TIMEOUT` after `timeoutMs`, with `signal`'s reason once it aborts.
   */
  request(msg: ValidPublish, timeoutMs: number, signal?: AbortSignal): Promise<BridgeMessage>;
}

/** The bridge's events, emitted by the topologies. */
export interface BridgeEventEmitter {
  emit(event: "connect" | "offline" | "reconnect"): void;
  emit(event: "error", err: Error): void;
}

/** What every topology gets from the bridge. */
export interface CoreDeps {
  opts: ResolvedOptions;
  stats: BridgeStats;
  events: BridgeEventEmitter;
  /** Reports an operational error (emitted as `error`, or warned once). */
  fail(err: Error): void;
  /** The delivery lanes of this node's sockets. */
  lanes: Lanes;
  /** Sockets of this process disconnecting now (their rooms go as they leave them). */
  leaving: { count: number };
  /** The broker-to-socket times of this process's live messages (see lib/metrics.ts). */
  latency: Histogram;
}

/** One topology's implementation behind the public bridge object. */
export interface Core {
  backend: Backend;
  /** Local bridged rooms (embedded and forward topologies). */
  rooms: RoomTracker;
  /** Resolves on the first broker connection (forward: the first worker answer). */
  ready: Promise<void>;
  /** The MQTT protocol version in use, once known. */
  protocolVersion(): number | undefined;
  /** The MQTT client id of this process's broker connection, if it has one. */
  clientId(): string | undefined;
  /** Broker subscriptions confirmed by this process. */
  brokerSubscriptions(): number;
  /** This process's retained cache: topics held, and evicted because it was full. */
  retainedCache(): { cached: number; evicted: number };
  /** The stream this process numbers and keeps (embedded, worker; absent with recovery off). */
  history?: History;
  /** Missed-message recovery of this process's sockets (from {@link history}, or the worker's). */
  recovery?: Recovery;
  /** Serves a namespace (adapter listeners, cluster messages). */
  attach(nsp: Namespace): void;
  close(): Promise<void>;
}

/** The `ready` promise of a topology, with its settle functions. */
export interface Ready {
  promise: Promise<void>;
  resolve(): void;
  /** Rejects with "the bridge was closed" (no effect once resolved). */
  closed(): void;
}

/** Creates `bridge.ready`; a rejection nobody awaits never becomes an unhandled rejection. */
export function createReady(): Ready {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => undefined);
  return {
    promise,
    resolve,
    closed: () => reject(new MqttBridgeError("BROKER_UNAVAILABLE", "the bridge was closed")),
  };
}

/** The first broker connection, for server publishes made before it (see {@link firstConnection}). */
export interface FirstConnection {
  /** True once the bridge has been connected (forward topology: a worker reported a connection). */
  readonly done: boolean;
  /**
   * Resolves on the first connection; rejects with `BROKER_UNAVAILABLE` when it has not come
   * within the timeout, or as `ready` does when the bridge is closed first.
   */
  wait(): Promise<void>;
}

/**
 * Lets a server publish made at start-up, before the first broker connection, wait for it (as
 * MQTT.js queues an early publish), bounded by `timeoutMs` (`ackTimeoutMs`). Once connected, the
 * bridge answers at once again: a publish while offline is refused as before.
 */
export function firstConnection(ready: Promise<void>, timeoutMs: number): FirstConnection {
  let done = false;
  ready.then(
    () => (done = true),
    () => undefined,
  );
  return {
    get done() {
      return done;
    },
    wait: () =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () =>
            reject(
              new MqttBridgeError(
                "BROKER_UNAVAILABLE",
                `no broker connection within ${timeoutMs} ms (ackTimeoutMs) of start-up`,
              ),
            ),
          timeoutMs,
        );
        ready.then(
          () => {
            clearTimeout(timer);
            resolve();
          },
          (err: unknown) => {
            clearTimeout(timer);
            reject(err instanceof Error ? err : new MqttBridgeError("BROKER_UNAVAILABLE"));
          },
        );
      }),
  };
}
