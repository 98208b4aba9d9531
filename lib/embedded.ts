import createDebug from "debug";
import type { Namespace } from "socket.io";
import { createDecoder } from "./routing/codec";
import { Broadcaster } from "./delivery/broadcaster";
import type { Backend, Core, CoreDeps } from "./core";
import { createReady } from "./core";
import { MqttBridgeError } from "./errors";
import { unsubscribedNotice } from "./sockets/notify";
import { RoomTracker } from "./sockets/rooms";
import { Requester } from "./routing/request";
import { Router } from "./routing/router";
import { Session, backoffDelay } from "./broker/session";
import { SubscriptionTable } from "./broker/subscriptions";
import { Linger } from "./broker/linger";
import { History } from "./routing/history";
import { StreamRecovery } from "./sockets/recovery";

const debug = createDebug("socket.io-mqtt-bridge:subscriptions");

/** The embedded core, with the parts the worker topology builds on. */
export interface EmbeddedCore extends Core {
  session: Session;
  table: SubscriptionTable;
  router: Router;
  /** The delivery stage: the only writer of live messages to sockets. */
  delivery: Broadcaster;
  /** Holds broker subscriptions after their last socket disconnected (recovery on). */
  linger: Linger | undefined;
}

/**
 * The broker session of this process, its subscription table and router. With `scope: "local"`
 * (the embedded topology) each node has its own broker subscriptions for its own sockets, so
 * messages go to local sockets only (`nsp.local`): a cluster-wide emit from every node would reach
 * remote sockets once per node. With `scope: "cluster"` (the worker) the one bridge of the cluster
 * tells the nodes (lib/cluster/worker.ts). Messages go to sockets through the delivery stage
 * (lib/delivery/broadcaster.ts).
 */
export function createEmbedded(deps: CoreDeps, scope: "local" | "cluster"): EmbeddedCore {
  const { opts, stats, events } = deps;
  const session = new Session(opts, stats);
  /** The namespaces the bridge serves. */
  const namespaces = new Set<Namespace>();
  const delivery = new Broadcaster(opts, stats, deps.lanes, deps.latency);
  const history = opts.recovery ? new History(opts.recovery, stats) : undefined;
  delivery.history = history;
  const linger = opts.recovery
    ? new Linger(opts.recovery.windowMs, opts.recovery.maxLingering, stats)
    : undefined;

  const table: SubscriptionTable = new SubscriptionTable(
    session,
    {
      onRefused: (entry) => {
        // a refused SUBACK leaves no socket in the filter's own room, and each one is told
        history?.uncover(entry.filter);
        const room = rooms.room(entry.filter);
        const err = entry.error ?? new MqttBridgeError("BROKER_REJECTED");
        const notice = unsubscribedNotice(opts, entry.filter, err);
        for (const nsp of namespaces) {
          const members = scope === "cluster" ? nsp.in(room) : nsp.local.in(room);
          if (scope === "local") stats.subscribes.evicted += nsp.adapter.rooms.get(room)?.size ?? 0;
          members.emit(opts.events.unsubscribed, notice);
          members.socketsLeave(room);
        }
        deps.fail(err);
      },
      onRemoved: (filter) => {
        history?.uncover(filter);
        router.prune(filter);
      },
      retryDelay: (attempt) => backoffDelay(attempt - 1, opts.reconnect),
      onFailed: (err) => debug("subscribe failed: %s", err.message),
      willReplay: (filter, id) => {
        history?.cover(filter); // from this SUBSCRIBE on, the filter's messages are in the stream
        router.expectReplay(filter, id);
      },
    },
    stats,
  );

  const rooms = new RoomTracker(opts, {
    acquire: (filter, room) => {
      table.acquire(filter, room);
      linger?.cancel(filter, room); // back in time: the room holds the subscription again
    },
    release: (filter, room) => {
      if (!linger) return table.release(filter, room);
      linger.release(filter, room, deps.leaving.count > 0, () => table.release(filter, room));
    },
    // what was published before the join is not for the joiner: it gets the retained state
    joined: (socket, others, room) => {
      delivery.flush({ id: socket.id, others });
      recovery?.joined(socket, room);
    },
    join: (_nsp, socket, filters, others) => {
      if (recovery?.recoveringJoin(socket)) return; // it has the stream: no retained state
      router.replay(filters, others, (m) => socket.emit(opts.events.message, m));
    },
  });
  const recovery = history
    ? new StreamRecovery(
        opts,
        stats,
        history,
        rooms,
        () => delivery.flush(),
        (socket, missed) => deps.lanes.send(socket, missed),
      )
    : undefined;

  const router: Router = new Router(
    opts,
    session,
    table,
    stats,
    createDecoder(opts.decode),
    (targets, except, message, bytes, at) => delivery.send(targets, except, message, bytes, at),
  );

  const ready = createReady();

  let up = false;
  session.on("connect", () => {
    up = true;
    stats.connects++;
    table.resubscribeAll();
    ready.resolve();
    events.emit("connect");
  });
  session.on("offline", () => {
    if (up) stats.disconnects++; // a refused first attempt (e.g. MQTT 5 to aedes) is not a loss
    up = false;
    history?.gap(); // what the broker had while away may be lost
    table.disconnected();
    events.emit("offline");
  });
  session.on("reconnect", () => events.emit("reconnect"));
  session.on("error", (err) => deps.fail(err));
  // each bridge has a response topic of its own (lib/routing/request.ts)
  const requester = new Requester(opts.limits, session, stats, createDecoder(opts.decode));
  const responses = requester.topic;
  session.onMessage = (topic, payload, packet) => {
    if (topic === responses) requester.handle(payload, packet);
    else router.handle(topic, payload, packet);
  };

  const backend: Backend = {
    get connected() {
      return session.connected;
    },
    get mqtt5() {
      return session.mqtt5;
    },
    admits: (filter) =>
      table.trie.size < opts.limits.brokerSubscriptions || table.trie.get(filter) !== undefined,
    prepare: (filter, qos) => table.upgrade(filter, qos),
    confirm: (filter, qos, timeoutMs) => {
      table.upgrade(filter, qos);
      return table.whenSubscribed(filter, timeoutMs, qos);
    },
    publish: (msg, queue) => session.publish(msg.topic, msg.payload, msg, queue),
    request: (msg, timeoutMs, signal) => requester.request(msg, timeoutMs, signal),
  };

  return {
    session,
    table,
    router,
    delivery,
    backend,
    rooms,
    ready: ready.promise,
    protocolVersion: () =>
      stats.connects > 0 ? session.client.options.protocolVersion : undefined,
    clientId: () => session.client.options.clientId,
    brokerSubscriptions: () => table.subscriptions,
    retainedCache: () => ({ cached: router.retained.size, evicted: router.retained.evicted }),
    history,
    recovery,
    linger,
    attach(nsp) {
      namespaces.add(nsp);
      delivery.attach(nsp);
      rooms.attach(nsp);
    },
    async close() {
      linger?.close();
      delivery.close();
      rooms.close();
      await requester.close();
      await table.close();
      await session.close();
      ready.closed();
    },
  };
}
