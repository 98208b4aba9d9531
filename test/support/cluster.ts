/**
 * Starts Socket.IO node processes (test/cluster/node.ts) for the cluster tests and talks to them
 * over IPC: commands with replies matched by request id, SIGKILL of one node, and a stop of all
 * (SIGTERM, then SIGKILL after 3 s). No node outlives the test process: they are SIGKILLed at its
 * exit (see track() in child.ts), and each node also exits by itself when its IPC channel closes.
 */
import { fork } from "node:child_process";
import path from "node:path";
import type { BridgeStats } from "../../lib";
import type { AdapterKind } from "./adapters";
import { LogRing, track } from "./child";
import type { ExitInfo } from "./child";

/** A command to a node (`id` is added by {@link ClusterNode.request}). */
export type NodeCommand =
  | { cmd: "socketsJoin"; socketId: string; room: string }
  | { cmd: "socketsLeave"; socketId: string; room: string }
  | { cmd: "bridgeSubscribe"; filter: string; room: string }
  | { cmd: "bridgeUnsubscribe"; filter: string; room: string }
  | { cmd: "broadcast"; event: string; data: unknown }
  | { cmd: "stats" }
  | { cmd: "sockets" }
  | { cmd: "publish"; topic: string; payload: unknown; qos?: 0 | 1 | 2 };

/** A command as sent over IPC. */
export type NodeRequest = NodeCommand & { id: number };

/** What a node sends to the test process. */
export type NodeReply =
  | { type: "ready"; port: number; pid: number }
  | { type: "reply"; id: number; ok: true; result: unknown }
  | { type: "reply"; id: number; ok: false; error: string };

/** The `stats` reply: the bridge's counters plus the node's own. */
export type NodeStats = BridgeStats & {
  pid: number;
  /** The bridge's MQTT client id, if the bridge's stats expose it. */
  clientId?: string;
  redisErrors: number;
  unhandledRejections: number;
  bridgeErrors: number;
};

/** Replies by command. */
export interface NodeResults {
  socketsJoin: null;
  socketsLeave: null;
  bridgeSubscribe: null;
  bridgeUnsubscribe: null;
  broadcast: null;
  stats: NodeStats;
  sockets: { id: string; rooms: string[] }[];
  publish: null;
}

const NODE_SCRIPT = path.resolve(__dirname, "../cluster/node.ts");

/** One node process. */
export interface ClusterNode {
  readonly index: number;
  readonly pid: number;
  readonly port: number;
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly running: boolean;
  /** Settles when the process has exited. */
  readonly exited: Promise<ExitInfo>;
  /** Sends a command and resolves with the node's reply; rejects on an error reply, on timeout, or when the node exits first. */
  request<C extends NodeCommand>(command: C, timeoutMs?: number): Promise<NodeResults[C["cmd"]]>;
  /** Shortcut for `request({ cmd: "stats" })`. */
  stats(): Promise<NodeStats>;
  /** Sends `signal` (default SIGKILL) and waits (bounded) for the exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** SIGTERM, then SIGKILL after `graceMs` (default 3000); resolves once exited. */
  stop(graceMs?: number): Promise<void>;
  /** The node's stderr/stdout (last 500 lines). */
  logs(): string;
}

/** Options of {@link startCluster}. */
export interface ClusterOptions {
  /** Number of node processes. */
  nodes: number;
  redisUrl: string;
  mqttUrl: string;
  adapter: AdapterKind;
  /** Socket.IO connection state recovery on the nodes. */
  recovery?: boolean;
  /** "forward": web nodes of the worker topology (a worker must be running); default embedded. */
  topology?: "embedded" | "forward";
  /** Worker-topology timing passed to the nodes' bridges (`cluster` option). */
  clusterTiming?: { heartbeatMs: number; workerTimeoutMs: number; syncIntervalMs: number };
  /** Channel key / stream name of the cluster (default: a fresh one). */
  key?: string;
  /** Budget for every node to report ready (default 20 s). */
  readyTimeoutMs?: number;
}

/** Running node processes. */
export interface Cluster {
  readonly nodes: ClusterNode[];
  /** Starts one more node of the same cluster (same Redis key) and waits for it. */
  add(): Promise<ClusterNode>;
  /** Stops every node still running (SIGTERM, SIGKILL after 3 s). */
  stop(): Promise<void>;
}

let clusters = 0;

/** Starts `opts.nodes` node processes in parallel and waits (bounded) until each is ready. */
export async function startCluster(opts: ClusterOptions): Promise<Cluster> {
  const key = opts.key ?? `sio-cluster-${process.pid}-${++clusters}`;
  const nodes: ClusterNode[] = [];
  const start = (index: number) =>
    startNode(
      index,
      {
        REDIS_URL: opts.redisUrl,
        MQTT_URL: opts.mqttUrl,
        ADAPTER: opts.adapter,
        ADAPTER_KEY: key,
        PORT: "0",
        RECOVERY: opts.recovery ? "1" : "0",
        TOPOLOGY: opts.topology ?? "embedded",
        CLUSTER_TIMING: JSON.stringify(opts.clusterTiming ?? {}),
      },
      opts.readyTimeoutMs ?? 20_000,
    );
  const started = await Promise.allSettled(Array.from({ length: opts.nodes }, (_, i) => start(i)));
  for (const r of started) if (r.status === "fulfilled") nodes.push(r.value);
  const cluster: Cluster = {
    nodes,
    async add() {
      const node = await start(nodes.length);
      nodes.push(node);
      return node;
    },
    async stop() {
      await Promise.all(nodes.map((n) => n.stop()));
    },
  };
  const failed = started.find((r) => r.status === "rejected");
  if (failed) {
    await cluster.stop();
    throw failed.reason;
  }
  return cluster;
}

function startNode(
  index: number,
  env: Record<string, string>,
  readyTimeoutMs: number,
): Promise<ClusterNode> {
  const ring = new LogRing();
  const child = fork(NODE_SCRIPT, [], {
    execArgv: ["--import", "tsx"],
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe", "ipc"],
  });
  const { exited, running } = track(child, ring);

  let nextId = 1;
  const pending = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }
  >();
  let port = 0;
  let onReady: ((port: number) => void) | undefined;
  child.on("message", (msg: NodeReply) => {
    if (msg.type === "ready") {
      port = msg.port;
      onReady?.(msg.port);
      return;
    }
    const p = pending.get(msg.id);
    if (!p) return;
    pending.delete(msg.id);
    clearTimeout(p.timer);
    if (msg.ok) p.resolve(msg.result);
    else p.reject(new Error(`node ${index}: ${msg.error}`));
  });
  void exited.then((info) => {
    for (const [id, p] of pending) {
      clearTimeout(p.timer);
      p.reject(new Error(`node ${index} exited (${info.code ?? info.signal}) before reply ${id}`));
    }
    pending.clear();
  });

  const waitExit = (ms: number): Promise<boolean> =>
    new Promise<boolean>((resolve) => {
      if (!running()) return resolve(true);
      const timer = setTimeout(() => resolve(false), ms);
      void exited.then(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });

  const node: ClusterNode = {
    index,
    get pid() {
      return child.pid ?? 0;
    },
    get port() {
      return port;
    },
    get url() {
      return `http://127.0.0.1:${port}`;
    },
    get running() {
      return running();
    },
    exited,
    request<C extends NodeCommand>(command: C, timeoutMs = 5000) {
      return new Promise<NodeResults[C["cmd"]]>((resolve, reject) => {
        if (!running() || !child.connected) {
          reject(new Error(`node ${index} is not running`));
          return;
        }
        const id = nextId++;
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`node ${index}: no reply to ${command.cmd} within ${timeoutMs} ms`));
        }, timeoutMs);
        pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
        child.send({ ...command, id } satisfies NodeRequest);
      });
    },
    stats() {
      return node.request({ cmd: "stats" });
    },
    async kill(signal: NodeJS.Signals = "SIGKILL") {
      if (!running()) return;
      child.kill(signal);
      if (!(await waitExit(5000))) throw new Error(`node ${index} did not exit after ${signal}`);
    },
    async stop(graceMs = 3000) {
      if (!running()) return;
      child.kill("SIGTERM");
      if (await waitExit(graceMs)) return;
      ring.push(`--- harness: node ${index} still running ${graceMs} ms after SIGTERM: SIGKILL`);
      await node.kill("SIGKILL");
    },
    logs: () => ring.toString(),
  };

  return new Promise<ClusterNode>((resolve, reject) => {
    const timer = setTimeout(() => {
      onReady = undefined;
      void node.kill("SIGKILL").catch(() => undefined);
      reject(new Error(`node ${index} not ready within ${readyTimeoutMs} ms:\n${ring.toString()}`));
    }, readyTimeoutMs);
    onReady = () => {
      clearTimeout(timer);
      resolve(node);
    };
    void exited.then((info) => {
      if (port !== 0) return;
      clearTimeout(timer);
      reject(
        new Error(
          `node ${index} exited during startup (${info.code ?? info.signal}):\n${ring.toString()}`,
        ),
      );
    });
  });
}
