import { EventEmitter } from "node:events";
import createDebug from "debug";
import type { Namespace, Server, Socket } from "socket.io";
import { createAuthorizer } from "./sockets/authorize";
import { ClientRooms } from "./sockets/client-rooms";
import { createForward } from "./cluster/forward";
import { attachWorker } from "./cluster/worker";
import type { Core, CoreDeps } from "./core";
import { firstConnection } from "./core";
import { Lanes } from "./delivery/lanes";
import { isMarker } from "./delivery/markers";
import { createEmbedded } from "./embedded";
import { MqttBridgeError } from "./errors";
import { renderMetrics } from "./metrics";
import { Histogram } from "./metrics-histogram";
import type { HandlerContext } from "./sockets/handlers";
import { attachHandlers } from "./sockets/handlers";
import type { MqttBridgeOptions } from "./options";
import { resolveOptions } from "./options";
import type { BridgeMessage, MessageProperties, QoS, RequestMessage } from "./protocol";
import { RecoveryGuard } from "./sockets/recovered";
import type { ReauthorizeTarget, RevokedSubscription } from "./sockets/reauthorize";
import { Reauthorizer } from "./sockets/reauthorize";
import type { BridgeStats } from "./stats";
import { createStats, snapshot } from "./stats";
import { matches } from "./topic";
import { checkFilter, parsePublish } from "./sockets/validate";
import { parseRequest } from "./sockets/validate-request";

const debug = createDebug("socket.io-mqtt-bridge:bridge");

/** Events of the bridge. */
export interface BridgeEvents {
  /** Connected (or reconnected) to the broker; every subscription is being restored. */
  connect: [];
  /** The broker connection was lost; reconnecting with backoff. */
  offline: [];
  /** A reconnect attempt starts. */
  reconnect: [];
  /** An operational error (connection refused, a subscription the broker refused, …). */
  error: [err: Error];
}

/** Options of a server-side `bridge.publish`. */
export interface PublishOptions {
  /** @default 0 */
  qos?: QoS;
  /** @default false */
  retain?: boolean;
  /** MQTT 5 properties. */
  properties?: MessageProperties;
}

/** Options of a server-side `bridge.request` (README, "Request / response"). */
export interface RequestOptions {
  /** How long to wait for the reply, in ms (at most `limits.requestTimeoutMs`). @default 10000 */
  timeoutMs?: number;
  /** @default 1 */
  qos?: QoS;
  /** MQTT 5 properties; the bridge sets the response topic, correlation data and expiry. */
  properties?: RequestMessage["properties"];
  /** Gives the request up: it rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** The namespace middleware returned by {@link mqttBridge}, with the bridge's own API. */
export interface MqttBridge {
  /** The middleware: `io.use(bridge)` or `io.of("/ns").use(bridge)`. */
  (socket: Socket, next: (err?: Error) => void): void;
  /** Resolves on the first successful broker connection; rejects if closed before that. */
  readonly ready: Promise<void>;
  /** True while the broker connection is up. */
  readonly connected: boolean;
  /** Routes topic `filter` to `room` (any room of the app); not subject to `allow` rules. */
  subscribe(filter: string, room: string): void;
  /** Removes a route made with {@link MqttBridge.subscribe}. */
  unsubscribe(filter: string, room: string): void;
  /** Publishes from the server; resolves when the broker acknowledged it at its QoS. */
  publish(topic: string, payload: unknown, options?: PublishOptions): Promise<void>;
  /**
   * Sends an MQTT 5 request from the server (not subject to `allow` rules) and resolves with its
   * first reply; rejects with `TIMEOUT` when none comes in time, `MQTT5_REQUIRED` over 3.1.1.
   * @example
   * const reply = await bridge.request("devices/42/reboot", { delay: 0 }, { timeoutMs: 5000 });
   */
  request<P = unknown>(
    topic: string,
    payload: unknown,
    options?: RequestOptions,
  ): Promise<BridgeMessage<P>>;
  /** The room client subscriptions to `filter` use (`roomPrefix + filter`). */
  room(filter: string): string;
  /** A snapshot of the counters. */
  stats(): BridgeStats;
  /**
   * Checks the client subscriptions of a socket (or of every socket of a namespace, or of the
   * server, that this process serves) against `allow.subscribe` again, after a logout or a role
   * change: takes the sockets out of the rooms they may no longer be in, each told with
   * `mqtt.unsubscribed` (`FORBIDDEN`), and resolves with what it took away. Once it resolves,
   * no message of those rooms reaches those sockets. Cluster: call it on every node (each checks
   * its own sockets). See the README, "Security model".
   * @example
   * socket.data.userId = undefined; // logged out
   * const removed = await bridge.reauthorize(socket); // [{ socket, namespace, filter, room }]
   */
  reauthorize(target: ReauthorizeTarget): Promise<RevokedSubscription[]>;
  /**
   * Every counter and gauge of {@link stats}, and the histogram of the broker-to-socket time, in
   * the Prometheus text exposition format 0.0.4 (content type `METRICS_CONTENT_TYPE`), for a
   * `/metrics` route. With prom-client: `(await register.metrics()) + (await bridge.metrics())`.
   * @see README, "Metrics"
   */
  metrics(): Promise<string>;
  /**
   * Serves a namespace (or a server's main one) right away, including sockets already connected;
   * `io.use(bridge)` does this on the first connection.
   */
  attach(target: Server | Namespace): void;
  /** Graceful, idempotent shutdown: listeners removed, broker DISCONNECT (owned client). */
  close(): Promise<void>;
  on<E extends keyof BridgeEvents>(event: E, fn: (...args: BridgeEvents[E]) => void): MqttBridge;
  once<E extends keyof BridgeEvents>(event: E, fn: (...args: BridgeEvents[E]) => void): MqttBridge;
  off<E extends keyof BridgeEvents>(event: E, fn: (...args: BridgeEvents[E]) => void): MqttBridge;
  listenerCount(event: keyof BridgeEvents): number;
}

function isServer(target: Server | Namespace): target is Server {
  return typeof (target as Server).of === "function";
}

/**
 * Creates the bridge and connects to the broker at once.
 *
 * @example
 * const bridge = mqttBridge({ mqtt: "mqtt://localhost:1883", allow: { subscribe: ["sensors/#"] } });
 * io.use(bridge);
 */
export function mqttBridge(options?: MqttBridgeOptions): MqttBridge {
  const opts = resolveOptions(options);
  /** The server's own publishes are not held to the sockets' payload limit, only MQTT's. */
  const serverLimits = { ...opts.limits, payloadBytes: 268_435_455 };
  const authorizer = createAuthorizer(opts.allow);
  const emitter = new EventEmitter<BridgeEvents>();
  const stats = createStats();
  let warned = false;
  /** Whether a bridged room of `socket` still wants `topic`. */
  const wants = (socket: Socket, topic: string): boolean => {
    for (const room of socket.rooms) {
      if (!core.rooms.isBridged(socket.nsp, room)) continue;
      for (const filter of core.rooms.filtersOf(room) ?? [])
        if (matches(filter, topic)) return true;
    }
    return false;
  };
  const lanes = new Lanes(opts, stats, wants);
  const leaving = { count: 0 };
  const latency = new Histogram();
  const deps: CoreDeps = {
    opts,
    stats,
    lanes,
    leaving,
    latency,
    events: emitter,
    fail(err) {
      if (emitter.listenerCount("error") > 0) {
        emitter.emit("error", err);
      } else if (!warned) {
        warned = true;
        console.warn(
          `socket.io-mqtt-bridge: ${err.message} (add bridge.on("error") to handle errors)`,
        );
      }
    },
  };
  let core: Core;
  if (opts.topology === "forward") {
    core = createForward(deps);
  } else if (opts.topology === "worker") {
    core = attachWorker(createEmbedded(deps, "cluster"), deps);
  } else {
    core = createEmbedded(deps, "local");
  }
  const started = firstConnection(core.ready, opts.ackTimeoutMs);
  const clientRooms = new ClientRooms();
  const reauthorizer = new Reauthorizer(
    opts,
    authorizer,
    core.rooms,
    clientRooms,
    lanes,
    stats,
    () => sockets.keys(),
  );
  const ctx: HandlerContext = {
    opts,
    backend: core.backend,
    rooms: core.rooms,
    authorizer,
    stats,
    clientRooms,
    reauthorizer,
    lanes,
    recovery: core.recovery,
    position: () => core.recovery?.position(),
    offlineQueued: { count: 0 },
  };
  const guard = new RecoveryGuard(opts, authorizer, core.rooms, clientRooms, stats, reauthorizer);
  const sockets = new Map<Socket, () => void>();
  const namespaces = new Map<Namespace, (socket: Socket) => void>();
  let closed = false;
  let closing: Promise<void> = Promise.resolve();

  /** Handlers for a socket, once; removed when it disconnects. */
  function setup(socket: Socket): void {
    if (closed || sockets.has(socket)) return;
    sockets.set(socket, attachHandlers(ctx, socket));
    // the rooms it leaves as it disconnects are let go later (recovery: see lib/broker/linger.ts)
    socket.once("disconnecting", () => leaving.count++);
    socket.once("disconnect", () => {
      leaving.count--;
      sockets.get(socket)?.();
      sockets.delete(socket);
      lanes.untrack(socket);
    });
    lanes.track(socket);
    if (socket.recovered) guard.recovered(socket);
    else clientRooms.track(socket);
  }

  function attachNamespace(nsp: Namespace): void {
    if (closed || namespaces.has(nsp)) return;
    core.attach(nsp);
    guard.attach(nsp);
    const onConnection = (socket: Socket) => setup(socket);
    nsp.on("connection", onConnection);
    namespaces.set(nsp, onConnection);
    for (const socket of nsp.sockets.values()) setup(socket);
  }

  const middleware = (socket: Socket, next: (err?: Error) => void): void => {
    // handlers are attached on "connection" (also reached by recovered sockets, which skip
    // middlewares), so a socket refused by a later middleware leaves nothing behind
    attachNamespace(socket.nsp);
    next();
  };

  const api = {
    ready: core.ready,
    subscribe(filter: string, room: string): void {
      checkFilter(filter, opts.limits);
      if (typeof room !== "string" || room.length === 0) {
        throw new MqttBridgeError("INVALID_ARGUMENT", "room must be a non-empty string");
      }
      if (isMarker(room)) {
        throw new MqttBridgeError("INVALID_ARGUMENT", `room "${room}" is reserved by the bridge`);
      }
      core.rooms.route(filter, room);
    },
    unsubscribe(filter: string, room: string): void {
      core.rooms.unroute(filter, room);
    },
    async publish(topic: string, payload: unknown, o: PublishOptions = {}): Promise<void> {
      const raw = { ...o, topic, payload };
      if (!started.done) {
        // made at start-up: bad input is refused at once, then it waits for the first connection
        parsePublish(raw, serverLimits, true);
        await started.wait();
      }
      const msg = parsePublish(raw, serverLimits, core.backend.mqtt5);
      stats.publishes.server++;
      await core.backend.publish(msg, opts.limits.offlineQueue > 0);
    },
    async request(topic: string, payload: unknown, o: RequestOptions = {}) {
      const { signal, ...rest } = o;
      const { msg, timeoutMs } = parseRequest({ ...rest, topic, payload }, serverLimits);
      if (!started.done) await started.wait();
      stats.requests.server++;
      return core.backend.request(msg, timeoutMs, signal);
    },
    room(filter: string): string {
      return core.rooms.room(filter);
    },
    stats(): BridgeStats {
      stats.connected = bridge.connected;
      stats.protocolVersion = core.protocolVersion();
      stats.clientId = core.clientId();
      stats.brokerSubscriptions = core.brokerSubscriptions();
      stats.rooms = core.rooms.rooms;
      Object.assign(stats.retained, core.retainedCache());
      if (core.history) {
        const held = core.history.held();
        const r = stats.recovery;
        ({ epoch: r.epoch, offset: r.offset } = core.history.position());
        r.messages = held.messages;
        r.bytes = held.bytes;
      }
      const d = stats.delivery;
      d.slow = lanes.slowNow;
      d.messagesPerFrame = d.frames === 0 ? 0 : Math.round((d.messages / d.frames) * 100) / 100;
      return snapshot(stats);
    },
    reauthorize(target: ReauthorizeTarget): Promise<RevokedSubscription[]> {
      return reauthorizer.reauthorize(target);
    },
    metrics(): Promise<string> {
      // a promise, as prom-client's register.metrics(): room for figures gathered from elsewhere
      return new Promise((resolve) => resolve(renderMetrics(bridge.stats(), latency)));
    },
    attach(target: Server | Namespace): void {
      attachNamespace(isServer(target) ? target.of("/") : target);
    },
    async close(): Promise<void> {
      if (closed) return closing;
      closed = true;
      closing = (async () => {
        for (const [nsp, fn] of namespaces) nsp.off("connection", fn);
        namespaces.clear();
        for (const detach of sockets.values()) detach();
        sockets.clear();
        guard.close();
        lanes.close();
        await core.close();
        debug("closed");
      })();
      return closing;
    },
    on(event: keyof BridgeEvents, fn: (...args: never[]) => void) {
      emitter.on(event, fn);
      return bridge;
    },
    once(event: keyof BridgeEvents, fn: (...args: never[]) => void) {
      emitter.once(event, fn);
      return bridge;
    },
    off(event: keyof BridgeEvents, fn: (...args: never[]) => void) {
      emitter.off(event, fn);
      return bridge;
    },
    listenerCount(event: keyof BridgeEvents): number {
      return emitter.listenerCount(event);
    },
  };
  const bridge = Object.assign(middleware, api) as unknown as MqttBridge;
  Object.defineProperty(bridge, "connected", {
    get: () => !closed && core.backend.connected,
    enumerable: true,
  });
  return bridge;
}
