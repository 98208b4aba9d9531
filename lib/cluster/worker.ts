import createDebug from "debug";
import type { Namespace } from "socket.io";
import type { Core, CoreDeps } from "../core";
import type { EmbeddedCore } from "../embedded";
import { toAck } from "../errors";
import type {
  RoomReport,
  RoomSnapshot,
  SubscribeRequestWire,
  WireAck,
  WirePublish,
  WorkerStatus,
} from "./messages";
import type { AckFn, Listener } from "./messages";
import { ClusterListeners, EVENTS, fromWire, nodeId } from "./messages";

const debug = createDebug("socket.io-mqtt-bridge:worker");

/** What the worker knows of one node of one namespace. */
interface NodeState {
  /** The node's change number this state includes. */
  seq: number;
  /** `room \0 filter` pairs the node holds live. */
  refs: Set<string>;
}

const SEP = "\u0000";

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
 * which also drops nodes that are gone), holds a broker subscription while a room has members on
 * any node, and answers the nodes' forwarded publishes, subscriptions and replay requests.
 */
export function attachWorker(core: EmbeddedCore, deps: CoreDeps): Core {
  const { opts } = deps;
  const worker = nodeId();
  const nodes = new Map<Namespace, Map<string, NodeState>>();
  const listeners = new ClusterListeners();
  const timers: NodeJS.Timeout[] = [];
  let closed = false;
  let fenced = false;

  const status = (): WorkerStatus => {
    const s: WorkerStatus = {
      worker,
      connected: core.session.connected,
      mqtt5: core.session.mqtt5,
    };
    const v = core.protocolVersion();
    if (v !== undefined) s.protocolVersion = v;
    return s;
  };

  const heartbeat = () => {
    const s = status();
    for (const nsp of nodes.keys()) nsp.serverSideEmit(EVENTS.heartbeat, s);
  };
  core.session.on("connect", heartbeat);
  core.session.on("offline", heartbeat);

  function add(state: NodeState, room: string, filter: string): void {
    const key = room + SEP + filter;
    if (state.refs.has(key)) return;
    state.refs.add(key);
    core.table.acquire(filter, room);
  }

  function remove(state: NodeState, key: string): void {
    if (!state.refs.delete(key)) return;
    const [room, filter] = key.split(SEP) as [string, string];
    core.table.release(filter, room);
  }

  function stateOf(nsp: Namespace, node: string): NodeState {
    const map = nodes.get(nsp)!;
    let state = map.get(node);
    if (!state) map.set(node, (state = { seq: 0, refs: new Set() }));
    return state;
  }

  function onReport(nsp: Namespace, report: RoomReport): void {
    // first the joiners' state, from the cache as it is before any new filter is subscribed
    for (const join of report.joins ?? []) {
      core.router.replay(join.filters, join.others, (m) =>
        nsp.to(join.socket).emit(opts.events.message, m),
      );
    }
    const state = stateOf(nsp, report.node);
    if (report.seq <= state.seq) return; // already in a snapshot
    state.seq = report.seq;
    for (const op of report.ops) {
      if (op[0] === "+") {
        core.table.upgrade(op[2], op[3]);
        add(state, op[1], op[2]);
      } else {
        remove(state, op[1] + SEP + op[2]);
      }
    }
  }

  /** Replaces what the worker knows of the nodes that answered; drops nodes that are gone. */
  function onSnapshots(nsp: Namespace, complete: boolean, responses: unknown[]): void {
    const map = nodes.get(nsp);
    if (!map || closed) return;
    const answered = new Set<string>();
    for (const r of responses) {
      const snap = r as RoomSnapshot | null;
      if (!snap || typeof snap.node !== "string") continue;
      answered.add(snap.node);
      const state = stateOf(nsp, snap.node);
      if (snap.seq < state.seq) continue; // reports newer than this snapshot were applied
      state.seq = snap.seq;
      const wanted = new Set<string>();
      for (const [room, filters] of snap.rooms) {
        for (const filter of filters) {
          wanted.add(room + SEP + filter);
          add(state, room, filter);
        }
      }
      for (const key of [...state.refs]) if (!wanted.has(key)) remove(state, key);
    }
    if (!complete) return; // a node that did not answer in time may be slow, not gone
    for (const [node, state] of map) {
      if (answered.has(node)) continue;
      debug("node %s is gone: releasing %d rooms", node, state.refs.size);
      for (const key of [...state.refs]) remove(state, key);
      map.delete(node);
    }
  }

  function sync(nsp: Namespace): void {
    nsp.serverSideEmit(EVENTS.sync, (err: Error | null, responses: unknown[]) => {
      onSnapshots(nsp, !err, responses ?? []);
    });
  }

  const on = (nsp: Namespace, event: string, fn: Listener) => listeners.on(nsp, event, fn);

  function stopTalking(): void {
    closed = true;
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
    if (closed || nodes.has(nsp)) return;
    nodes.set(nsp, new Map());
    fences.set(nsp, fence);
    core.attach(nsp);
    on(nsp, EVENTS.rooms, (report: RoomReport) => onReport(nsp, report));
    on(nsp, EVENTS.publish, (wire: WirePublish, ack: AckFn) => {
      core.backend.publish(fromWire(wire), false).then(
        () => ack({ ok: true } satisfies WireAck),
        (err: unknown) => ack(toAck(err) satisfies WireAck),
      );
    });
    on(nsp, EVENTS.subscribe, (req: SubscribeRequestWire, ack: AckFn) => {
      core.backend.confirm(req.filter, req.qos, opts.ackTimeoutMs).then(
        (qos) => ack({ ok: true, qos } satisfies WireAck),
        (err: unknown) => ack(toAck(err) satisfies WireAck),
      );
    });
    on(nsp, EVENTS.ping, (ack: AckFn) => ack(status()));
    // another worker asking (a standby): a worker has no rooms of its own
    on(nsp, EVENTS.sync, (ack: AckFn) => ack(null));
    sync(nsp);
    if (timers.length === 0) {
      timers.push(setInterval(heartbeat, opts.cluster.heartbeatMs));
      timers.push(
        setInterval(() => {
          for (const n of nodes.keys()) sync(n);
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
      for (const nsp of nodes.keys()) fences.delete(nsp);
      await core.close();
      // tell the nodes at once that the broker is gone (a fenced worker says nothing any more)
      if (!wasFenced) heartbeat();
    },
  };
}
