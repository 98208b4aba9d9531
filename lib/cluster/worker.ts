import createDebug from "debug";
import type { Namespace } from "socket.io";
import type { Core, CoreDeps } from "../core";
import type { EmbeddedCore } from "../embedded";
import { toAck } from "../errors";
import type { Drop } from "./checks";
import {
  checkPublish,
  checkRecover,
  checkReport,
  checkRequest,
  checkSnapshot,
  checkSubscribe,
} from "./checks";
import type { DeliverFrame } from "./deliver";
import type { RecoverReply, WireAck, WireReply, WireRequest, WorkerStatus } from "./messages";
import { missedSince, mineOf } from "../sockets/recovery";
import type { ViewTable } from "./views";
import type { AckFn, Listener } from "./messages";
import { encodeBody, encodeFrame } from "./deliver";
import { ClusterListeners, EVENTS, nodeId } from "./messages";
import { ForwardedRequests } from "./requests";
import { RoomViews } from "./views";

const debug = createDebug("socket.io-mqtt-bridge:worker");

/** How to stop the worker serving a namespace at once (see {@link fenceWorker}). */
const fences = new WeakMap<Namespace, () => void>();

/**
 * Stops the worker that serves `nsp` at once, without waiting for anything: it answers no node
 * any more, sends nothing more through the adapter, and its broker connection is dropped (in-flight
 * work is abandoned). For a worker that lost its lock: another worker may take over any moment.
 * Call `bridge.close()` afterwards to release the rest. False when no worker serves `nsp`.
 */
export function fenceWorker(nsp: Namespace): boolean {
  const fence = fences.get(nsp);
  fence?.();
  return fence !== undefined;
}

/**
 * Turns an embedded core that emits cluster-wide into the worker of the cluster: the one broker
 * connection. It learns which bridged rooms have members anywhere from the nodes' reports (and
 * rebuilds the whole picture by asking every node when it starts, and every `syncIntervalMs`,
 * which repairs lost reports and drops nodes that are gone), holds a broker subscription while a
 * room has members on any node, and answers the nodes' forwarded publishes, subscriptions and
 * replay requests. Every message from a node is checked first (lib/cluster/checks.ts). The
 * messages go to the web nodes as frames of the delivery stage's groups (lib/cluster/deliver.ts),
 * which each node delivers to its own sockets.
 */
export function attachWorker(core: EmbeddedCore, deps: CoreDeps): Core {
  const { opts, stats } = deps;
  const { limits } = opts;
  const worker = nodeId();
  const views = new Map<Namespace, RoomViews>();
  /** The nodes' MQTT 5 requests, sent through this worker's response topic. */
  const forwarded = new ForwardedRequests(core.backend, limits);
  const listeners = new ClusterListeners();
  const timers: NodeJS.Timeout[] = [];
  let closed = false;
  let fenced = false;

  // the nodes' rooms in the broker subscriptions; one whose last socket disconnected is held
  // `recovery.windowMs` longer (as in the embedded topology: lib/broker/linger.ts)
  const { linger } = core;
  const table: ViewTable = {
    acquire(filter, room) {
      core.table.acquire(filter, room);
      linger?.cancel(filter, room);
    },
    release(filter, room, lingering = false) {
      const release = () => core.table.release(filter, room);
      if (linger) linger.release(filter, room, lingering, release);
      else release();
    },
    upgrade: (filter, qos) => core.table.upgrade(filter, qos),
  };

  const drop: Drop = (what) => {
    stats.cluster.invalid++;
    debug("dropped a malformed cluster message: %s", what);
  };

  const status = (): WorkerStatus => {
    const s: WorkerStatus = {
      worker,
      connected: core.session.connected,
      mqtt5: core.session.mqtt5,
    };
    const v = core.protocolVersion();
    if (v !== undefined) s.protocolVersion = v;
    if (core.history) s.position = core.history.position();
    return s;
  };

  /** Frames of this turn's broadcasts, per namespace: sent as one message ({@link sendFrames}). */
  const outgoing = new Map<Namespace, DeliverFrame[]>();
  /**
   * Sends the frames waiting, each namespace's in one message, so a node handles the frames of one
   * turn in one turn. Called before anything else the worker sends, so that the nodes get
   * everything in the order it happened (a replay after the frames before it, a recovery's answer
   * after every frame of the messages up to its position).
   */
  const sendFrames = () => {
    if (outgoing.size === 0) return;
    const all = [...outgoing];
    outgoing.clear();
    for (const [nsp, frames] of all) if (!closed) nsp.serverSideEmit(EVENTS.deliver, ...frames);
  };

  const heartbeat = () => {
    sendFrames();
    const s = status();
    for (const nsp of views.keys()) nsp.serverSideEmit(EVENTS.heartbeat, s);
  };
  core.session.on("connect", heartbeat);
  core.session.on("offline", heartbeat);

  function onReport(nsp: Namespace, raw: unknown): void {
    const report = checkReport(raw, limits, drop);
    if (!report) return drop("report: malformed");
    // first the joiners' state, from the cache as it is before any new filter is subscribed
    for (const join of report.joins) {
      // what was published before the report is not for the joiner: it gets the retained state
      core.delivery.flush({ id: join.socket, others: join.others });
      sendFrames();
      core.router.replay(join.filters, join.others, (m) =>
        nsp.to(join.socket).emit(opts.events.message, m),
      );
    }
    views.get(nsp)?.report(report.node, report.seq, report.ops);
  }

  /** Applies the snapshots of the nodes that answered; drops the nodes that are gone. */
  function onSnapshots(nsp: Namespace, complete: boolean, responses: unknown[]): void {
    const view = views.get(nsp);
    if (!view || closed) return;
    const answered = new Set<string>();
    for (const r of responses.slice(0, 100_000)) {
      const snap = checkSnapshot(r, limits, drop);
      if (!snap) continue;
      answered.add(snap.node);
      if (snap.rooms) view.snapshot(snap.node, snap.seq, snap.rooms);
    }
    // a node that did not answer in time may be slow, not gone
    if (complete) view.keepOnly(answered);
  }

  function sync(nsp: Namespace): void {
    nsp.serverSideEmit(EVENTS.sync, (err: Error | null, responses: unknown) => {
      onSnapshots(nsp, !err, Array.isArray(responses) ? responses : []);
    });
  }

  /** Answers a node's request: a message to every node, read by the one it is for. */
  function reply(nsp: Namespace, req: WireRequest, res: unknown): void {
    if (closed) return;
    sendFrames();
    nsp.serverSideEmit(EVENTS.reply, { to: req.node, id: req.id, res } satisfies WireReply);
  }

  /** Listens to a request event: malformed frames are dropped, the rest answered. */
  function serveRequests(
    nsp: Namespace,
    event: string,
    /** The answer; throws (synchronously) the error to answer a malformed body with. */
    answer: (body: unknown, req: WireRequest) => unknown,
  ): void {
    on(nsp, event, (raw: unknown) => {
      const req = checkRequest(raw);
      if (!req) return drop(`${event}: malformed request`);
      let result: unknown;
      try {
        result = answer(req.body, req);
      } catch (err) {
        drop(`${event}: ${(err as Error).message}`);
        return reply(nsp, req, toAck(err) satisfies WireAck);
      }
      void Promise.resolve(result).then(
        (res) => reply(nsp, req, res),
        (err: unknown) => reply(nsp, req, toAck(err) satisfies WireAck),
      );
    });
  }

  const on = (nsp: Namespace, event: string, fn: Listener) => listeners.on(nsp, event, fn);

  // every broadcast of the delivery stage goes to the web nodes' sockets too
  core.delivery.remote = (nsp, rooms, ids, messages, sizes) => {
    if (closed) return;
    let frames = outgoing.get(nsp);
    if (!frames) {
      if (outgoing.size === 0) queueMicrotask(sendFrames);
      outgoing.set(nsp, (frames = []));
    }
    frames.push(encodeFrame(rooms, ids, messages, sizes, core.history?.epoch));
  };

  /**
   * A node's recovery request: everything waiting is broadcast first (numbered, and in frames
   * sent before the answer), then the answer carries the messages on the filter the socket missed
   * and the position they reach, in this same turn: the node joins the socket when the answer
   * arrives, so every later message reaches it through the room.
   */
  function onRecover(nsp: Namespace, raw: unknown): void {
    const req = checkRequest(raw);
    if (!req) return drop(`${EVENTS.recover}: malformed request`);
    let res: RecoverReply;
    try {
      const { socket, filter, since, others } = checkRecover(req.body, limits);
      core.delivery.flush();
      const history = core.history;
      res = { ok: true };
      if (history) {
        const mine = mineOf(opts, socket, since);
        const missed = missedSince(history, filter, since, others, mine);
        res.position = history.position();
        if (missed) res.missed = { count: missed.length, body: encodeBody(missed) };
      }
    } catch (err) {
      drop(`${EVENTS.recover}: ${(err as Error).message}`);
      res = toAck(err);
    }
    reply(nsp, req, res);
  }

  function stopTalking(): void {
    closed = true;
    outgoing.clear();
    core.delivery.remote = undefined;
    for (const t of timers) clearInterval(t);
    listeners.offAll();
    core.session.off("connect", heartbeat);
    core.session.off("offline", heartbeat);
  }

  function fence(): void {
    if (fenced) return;
    fenced = true;
    stopTalking();
    debug("fenced: dropping the broker connection");
    const client = core.session.client;
    client.end(true);
    // end() does nothing while a graceful end waits for in-flight publishes: cut the stream too
    client.stream?.destroy();
  }

  function attach(nsp: Namespace): void {
    if (closed || views.has(nsp)) return;
    views.set(nsp, new RoomViews(table, (pairs) => (stats.cluster.repaired += pairs)));
    fences.set(nsp, fence);
    core.attach(nsp);
    on(nsp, EVENTS.rooms, (raw: unknown) => onReport(nsp, raw));
    serveRequests(nsp, EVENTS.publish, (body) => {
      const msg = checkPublish(body, limits, core.session.mqtt5);
      return core.backend.publish(msg, false).then((): WireAck => ({ ok: true }));
    });
    serveRequests(nsp, EVENTS.subscribe, (body) => {
      const { filter, qos } = checkSubscribe(body, limits);
      return core.backend
        .confirm(filter, qos, opts.ackTimeoutMs)
        .then((granted): WireAck => ({ ok: true, qos: granted }));
    });
    serveRequests(nsp, EVENTS.ping, () => status());
    on(nsp, EVENTS.recover, (raw: unknown) => onRecover(nsp, raw));
    serveRequests(nsp, EVENTS.request, (body, req) => forwarded.answer(body, req));
    on(nsp, EVENTS.cancel, (raw: unknown) => {
      const req = checkRequest(raw);
      if (req) forwarded.cancel(req);
      else drop("cancel: malformed");
    });
    // another worker asking (a standby): a worker has no rooms of its own
    on(nsp, EVENTS.sync, (ack: unknown) => {
      if (typeof ack === "function") (ack as AckFn)(null);
    });
    sync(nsp);
    if (timers.length === 0) {
      timers.push(setInterval(heartbeat, opts.cluster.heartbeatMs));
      timers.push(
        setInterval(() => {
          for (const n of views.keys()) sync(n);
        }, opts.cluster.syncIntervalMs),
      );
    }
    heartbeat();
  }

  return {
    ...core,
    attach,
    async close() {
      const wasFenced = fenced;
      stopTalking();
      await core.close();
      for (const nsp of views.keys()) fences.delete(nsp);
      // tell the nodes at once that the broker is gone (a fenced worker says nothing any more)
      if (!wasFenced) heartbeat();
    },
  };
}
