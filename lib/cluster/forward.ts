import createDebug from "debug";
import type { Namespace } from "socket.io";
import type { Backend, Core, CoreDeps } from "../core";
import { createReady } from "../core";
import { Broadcaster } from "../delivery/broadcaster";
import { MqttBridgeError, rateLimited } from "../errors";
import type { QoS } from "../protocol";
import { RoomTracker } from "../sockets/rooms";
import type { Drop } from "./checks";
import { checkAck, checkReply, checkStatus } from "./checks";
import { checkFrame } from "./deliver";
import { ForwardRecovery } from "./recover";
import { readAnswer, toWireRequest } from "./requests";
import { abortReason } from "../routing/request";
import type {
  ReplayRequest,
  RoomOp,
  RoomReport,
  RoomSnapshot,
  WireAck,
  WireRequest,
  WorkerStatus,
} from "./messages";
import type { AckFn, Listener } from "./messages";
import { ClusterListeners, EVENTS, nodeId, toWire } from "./messages";

const debug = createDebug("socket.io-mqtt-bridge:forward");

/** The most messages a frame from the worker may hold (the largest `delivery.maxBatch`). */
const MAX_FRAME_MESSAGES = 65_536;

/**
 * A web node of the worker topology: sockets, their identity and authorization live here; the
 * broker connection lives in the worker. Bridged rooms are reported to the worker as they appear
 * and disappear (and again whenever it asks), subscriptions and publishes are forwarded through
 * the adapter with `serverSideEmit`, and the worker's answers travel back to the socket's ack.
 * The worker's messages arrive as frames ({@link EVENTS.deliver}) that this node delivers to its
 * own sockets through its own delivery stage: batching and slow sockets are handled here.
 */
export function createForward(deps: CoreDeps): Core {
  const { opts, events } = deps;
  const node = nodeId();
  const namespaces: Namespace[] = [];
  const listeners = new ClusterListeners();
  /** QoS asked for filters whose room is about to be created. */
  const wantedQos = new Map<string, QoS>();
  let seq = 0;
  let status: WorkerStatus | undefined;
  let lastSeen = 0;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  const ready = createReady();
  const delivery = new Broadcaster(opts, deps.stats, deps.lanes);

  /** Delivers a frame of the worker's messages to this node's sockets. */
  function receive(nsp: Namespace, raw: unknown): void {
    const frame = checkFrame(raw, MAX_FRAME_MESSAGES);
    if (!frame) return drop("deliver: malformed");
    if (frame.epoch !== undefined) recovery?.observe(frame.epoch, frame.last!);
    let here = false;
    for (const room of frame.rooms) if ((here = nsp.adapter.rooms.has(room))) break;
    if (!here) return; // none of its sockets is in these rooms: the messages are not even parsed
    const messages = frame.messages();
    if (!messages) return drop("deliver: malformed messages");
    delivery.deliver(nsp, frame.rooms, frame.except, messages, frame.sizes);
  }

  const drop: Drop = (what) => {
    deps.stats.cluster.invalid++;
    debug("dropped a malformed cluster message: %s", what);
  };

  // Room changes and joins of one synchronous run (a join that creates a room fires create-room
  // then join-room) travel in one report, sent in a microtask: the worker replays the joiner's
  // cached state before it subscribes a new filter, so the broker's replay of that filter can
  // never overtake it (and reach the joiner twice).
  const batches = new Map<Namespace, RoomReport>();
  const batchOf = (nsp: Namespace): RoomReport => {
    let batch = batches.get(nsp);
    if (!batch) {
      batch = { node, seq: 0, ops: [], joins: [] };
      batches.set(nsp, batch);
      queueMicrotask(() => flush(nsp));
    }
    return batch;
  };
  const flush = (nsp: Namespace) => {
    const batch = batches.get(nsp);
    if (!batch) return;
    batches.delete(nsp);
    batch.seq = ++seq;
    nsp.serverSideEmit(EVENTS.rooms, batch);
  };
  const report = (nsp: Namespace, op: RoomOp) => {
    batchOf(nsp).ops.push(op);
  };

  const rooms: RoomTracker = new RoomTracker(opts, {
    acquire: (filter, room, nsp) => report(nsp, ["+", room, filter, wantedQos.get(filter) ?? 0]),
    // "~": its last socket left by disconnecting; the worker may hold it for a recovery
    release: (filter, room, nsp) => report(nsp, [deps.leaving.count > 0 ? "~" : "-", room, filter]),
    joined: (socket, _others, room) => recovery?.joined(socket, room),
    join: (nsp, socket, filters, others) => {
      if (recovery?.recoveringJoin(socket)) return; // it has the stream: no retained state
      const join: ReplayRequest = { socket: socket.id, filters: [...filters], others };
      batchOf(nsp).joins.push(join);
    },
  });

  const recovery = opts.recovery
    ? new ForwardRecovery(deps.stats, rooms, {
        call: (event, body, answer) => call(event, body, answer),
        send: (socket, messages) => deps.lanes.send(socket, messages),
        drop: (what) => drop(what),
      })
    : undefined;

  const alive = () => status !== undefined && Date.now() - lastSeen < opts.cluster.workerTimeoutMs;

  function onStatus(s: WorkerStatus): void {
    const wasUp = alive() && status!.connected;
    if (status?.worker !== s.worker) debug("worker %s (connected: %s)", s.worker, s.connected);
    status = s;
    lastSeen = Date.now();
    if (s.position) recovery?.observe(s.position.epoch, s.position.offset);
    if (s.connected) ready.resolve();
    const isUp = s.connected;
    if (isUp && !wasUp) {
      deps.stats.connects++;
      events.emit("connect");
    } else if (!isUp && wasUp) {
      deps.stats.disconnects++;
      events.emit("offline");
    }
  }

  function check(): void {
    if (status && !alive()) {
      debug("worker %s silent for %d ms", status.worker, Date.now() - lastSeen);
      const wasConnected = status.connected;
      status = undefined;
      if (wasConnected) {
        deps.stats.disconnects++;
        events.emit("offline");
      }
    }
    if (!status) ping();
  }

  /** Requests waiting for the worker's reply, by id. */
  const pending = new Map<number, (res: unknown) => void>();
  let requests = 0;

  /**
   * Sends a request to the worker; `answer` runs in the turn its reply arrives, or with
   * undefined when none came within `timeoutMs` or `signal` aborted first (the worker is then told
   * to give it up).
   */
  function call(
    event: string,
    body: unknown,
    answer: (res: unknown) => void,
    timeoutMs = opts.ackTimeoutMs,
    signal?: AbortSignal,
  ): void {
    const nsp = namespaces[0];
    if (!nsp || closed || signal?.aborted) return answer(undefined);
    const id = ++requests;
    const giveUp = setTimeout(() => settle(undefined), timeoutMs);
    giveUp.unref(); // a request in flight must not keep a closing process alive
    const onAbort = () => {
      if (!pending.has(id)) return;
      settle(undefined);
      if (!closed)
        nsp.serverSideEmit(EVENTS.cancel, { node, id, body: null } satisfies WireRequest);
    };
    const settle = (res: unknown) => {
      clearTimeout(giveUp);
      signal?.removeEventListener("abort", onAbort);
      pending.delete(id);
      answer(res);
    };
    pending.set(id, settle);
    signal?.addEventListener("abort", onAbort, { once: true });
    nsp.serverSideEmit(event, { node, id, body } satisfies WireRequest);
  }

  /** {@link call} as a promise. */
  const request = (
    event: string,
    body?: unknown,
    timeoutMs?: number,
    signal?: AbortSignal,
  ): Promise<unknown> => new Promise((resolve) => call(event, body, resolve, timeoutMs, signal));

  function onReply(raw: unknown): void {
    const reply = checkReply(raw);
    if (!reply) return drop("reply: malformed");
    if (reply.to === node) pending.get(reply.id)?.(reply.res);
  }

  function ping(): void {
    void request(EVENTS.ping).then((res) => {
      if (res === undefined) return;
      const s = checkStatus(res);
      if (s) onStatus(s);
      else drop("ping reply: malformed");
    });
  }

  /** The worker's answer to a publish or subscribe, checked. */
  async function ask(event: string, body: unknown): Promise<WireAck | undefined> {
    const res = await request(event, body);
    if (res === undefined) return undefined;
    const ack = checkAck(res);
    if (!ack) drop(`${event} reply: malformed`);
    return ack;
  }

  function toError(ack: WireAck | undefined): MqttBridgeError | undefined {
    if (!ack) {
      return new MqttBridgeError("BROKER_UNAVAILABLE", "no bridge worker answered");
    }
    if (ack.ok) return undefined;
    const e = ack.error;
    return new MqttBridgeError(
      e.code,
      e.message,
      e.reasonCode === undefined ? {} : { reasonCode: e.reasonCode },
    );
  }

  const backend: Backend = {
    get connected() {
      return alive() && status!.connected;
    },
    get mqtt5() {
      return status?.mqtt5 ?? false;
    },
    admits: () => true, // the node holds no broker subscription: see README, limits
    prepare(filter, qos) {
      if (qos > 0) {
        wantedQos.set(filter, qos);
        queueMicrotask(() => wantedQos.delete(filter)); // the join follows in this same turn
      }
    },
    async confirm(filter, qos) {
      wantedQos.delete(filter);
      const ack = await ask(EVENTS.subscribe, { filter, qos });
      const err = toError(ack);
      if (err) throw err;
      return (ack as { qos?: QoS }).qos ?? qos;
    },
    async publish(msg) {
      if (!backend.connected) throw new MqttBridgeError("BROKER_UNAVAILABLE");
      const err = toError(await ask(EVENTS.publish, toWire(msg)));
      if (err) throw err;
    },
    async request(msg, timeoutMs, signal) {
      // the worker owns the response topic and answers TIMEOUT itself: wait a little longer
      if (signal?.aborted) throw abortReason(signal);
      if (!backend.connected) throw new MqttBridgeError("BROKER_UNAVAILABLE");
      if (!backend.mqtt5) throw new MqttBridgeError("MQTT5_REQUIRED");
      const { requests: r } = deps.stats;
      const max = opts.limits.requestsInFlight;
      if (r.inFlight >= max) throw rateLimited(`at most ${max} requests in flight`, 0x97);
      r.inFlight++;
      try {
        const body = toWireRequest(msg, timeoutMs);
        const res = await request(EVENTS.request, body, timeoutMs + opts.ackTimeoutMs, signal);
        if (signal?.aborted) {
          r.cancelled++;
          throw abortReason(signal);
        }
        const reply = readAnswer(res, drop);
        r.answered++;
        return reply;
      } finally {
        r.inFlight--;
      }
    },
  };

  const on = (nsp: Namespace, event: string, fn: Listener) => listeners.on(nsp, event, fn);

  return {
    backend,
    rooms,
    ...(recovery ? { recovery } : {}),
    ready: ready.promise,
    protocolVersion: () => status?.protocolVersion,
    clientId: () => undefined,
    brokerSubscriptions: () => 0,
    retainedCache: () => ({ cached: 0, evicted: 0 }),
    attach(nsp) {
      if (closed) return;
      namespaces.push(nsp);
      rooms.attach(nsp);
      delivery.attach(nsp);
      // the frames of one turn of the worker, handled in one turn here
      on(nsp, EVENTS.deliver, (...frames: unknown[]) => {
        for (const raw of frames) receive(nsp, raw);
      });
      on(nsp, EVENTS.heartbeat, (raw: unknown) => {
        const s = checkStatus(raw);
        if (s) onStatus(s);
        else drop("heartbeat: malformed");
      });
      on(nsp, EVENTS.reply, onReply);
      on(nsp, EVENTS.sync, (ack: unknown) => {
        if (typeof ack !== "function") return drop("sync: no acknowledgement");
        flush(nsp); // the snapshot covers exactly the changes up to its number
        const snapshot: RoomSnapshot = {
          node,
          seq,
          rooms: [...rooms.liveRooms(nsp)].map(([room, filters]) => [room, [...filters]]),
        };
        (ack as AckFn)(snapshot);
      });
      if (!timer) {
        timer = setInterval(check, opts.cluster.heartbeatMs);
        timer.unref();
        ping();
      }
    },
    close() {
      closed = true;
      if (timer) clearInterval(timer);
      for (const settle of [...pending.values()]) settle(undefined);
      listeners.offAll();
      // tell the worker at once rather than at its next sync
      for (const nsp of namespaces) {
        for (const [room, filters] of rooms.liveRooms(nsp)) {
          for (const filter of filters) report(nsp, ["-", room, filter]);
        }
        flush(nsp);
      }
      rooms.close();
      delivery.close();
      ready.closed();
      return Promise.resolve();
    },
  };
}
