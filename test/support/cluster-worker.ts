/**
 * The world of the worker-topology tests: one private redis-server and Mosquitto, worker processes
 * (`lib/cli.ts worker`), web nodes (in this process, or node processes of test/cluster/node.ts in
 * forward mode), socket.io-client sockets and plain MQTT devices. Every wait is bounded;
 * `cleanup()` (after each test) and `stop()` (after all) end everything they started.
 */
import { writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join, resolve } from "node:path";
import { createAdapter } from "@socket.io/redis-adapter";
import { Redis } from "ioredis";
import mqtt from "mqtt";
import type { IClientOptions, MqttClient } from "mqtt";
import { Server } from "socket.io";
import type { Socket as ClientSocket } from "socket.io-client";
import { io as ioc } from "socket.io-client";
import type { MqttBridge, MqttBridgeOptions } from "../../lib";
import { mqttBridge } from "../../lib";
import type { ManagedChild } from "./child";
import { LogRing, spawnManaged } from "./child";
import type { Cluster, ClusterNode } from "./cluster";
import { startCluster } from "./cluster";
import type { MosquittoHandle } from "./mosquitto";
import { startMosquitto } from "./mosquitto";
import type { RedisHandle } from "./redis";
import { startRedis } from "./redis";
import { tmpDirSync, withTimeout } from "./util";

const ROOT = resolve(__dirname, "../..");

/** Fast worker-topology timing for the tests (the `cluster` option of nodes and worker). */
export const TIMING = { heartbeatMs: 200, workerTimeoutMs: 900, syncIntervalMs: 1000 };

/** A web node of this process: a Socket.IO server with a forward bridge. */
export interface WebNode {
  io: Server;
  url: string;
  bridge: MqttBridge;
  close(): Promise<void>;
}

/** A worker in this process (its `stats()` readable), on its own Socket.IO server without HTTP. */
export interface LocalWorker {
  io: Server;
  bridge: MqttBridge;
  close(): Promise<void>;
}

/** A Socket.IO server of this process on the cluster's adapter, without a bridge. */
export interface BareServer {
  io: Server;
  close(): Promise<void>;
}

/** A worker process with its output. */
export interface WorkerProcess extends ManagedChild {
  log: LogRing;
}

/** Options of {@link WorkerWorld.startWorker}. */
export interface WorkerStart {
  /** More command-line arguments, e.g. `["--lock-ttl", "500"]`. */
  extra?: string[];
  /** Resolve once the output contains this (default: "connected to", the broker connection). */
  until?: string;
  /** Redis URL the worker uses (default: the world's redis-server; e.g. a proxy to it). */
  redisUrl?: string;
  /** Broker URL the worker uses (default: the world's Mosquitto). */
  mqttUrl?: string;
}

export class WorkerWorld {
  redis!: RedisHandle;
  broker!: MosquittoHandle;
  /** The Redis adapter key of the current test (a fresh one per test: no test hears another). */
  key = "";
  private configFile = "";
  private keys = 0;
  readonly workers: WorkerProcess[] = [];
  readonly nodes: WebNode[] = [];
  private readonly closers: (() => Promise<void>)[] = [];
  cluster: Cluster | undefined;
  private readonly clients: ClientSocket[] = [];
  private readonly devices: MqttClient[] = [];

  /** Starts redis-server and Mosquitto and writes the worker's config file. */
  static async start(): Promise<WorkerWorld> {
    const w = new WorkerWorld();
    [w.redis, w.broker] = await Promise.all([startRedis(), startMosquitto()]);
    w.configFile = join(tmpDirSync("worker-config"), "bridge.config.js");
    writeFileSync(
      w.configFile,
      `module.exports = ${JSON.stringify({ cluster: TIMING, ackTimeoutMs: 3000 })};\n`,
    );
    return w;
  }

  /** A fresh adapter key, for the next test. */
  nextKey(): void {
    this.key = `wk${process.pid}x${++this.keys}`;
  }

  /** Starts a worker process and waits (10 s at most) until its output contains `until`. */
  async startWorker(o: WorkerStart = {}): Promise<WorkerProcess> {
    const until = o.until ?? "connected to";
    const log = new LogRing(300);
    let ready!: () => void;
    const reached = new Promise<void>((r) => (ready = r));
    let seen = "";
    const args = [
      ...["--import", "tsx", "lib/cli.ts", "worker"],
      ...["--mqtt", o.mqttUrl ?? this.broker.url, "--redis", o.redisUrl ?? this.redis.url],
      ...["--key", this.key, "--config", this.configFile, ...(o.extra ?? [])],
    ];
    const child = spawnManaged(process.execPath, args, {
      cwd: ROOT,
      ring: log,
      onOutput: (s) => {
        if (seen.length < 64 * 1024) seen += s;
        if (seen.includes(until)) ready();
      },
    });
    const worker: WorkerProcess = {
      log,
      pid: child.pid,
      get running() {
        return child.running;
      },
      exited: child.exited,
      kill: (signal, timeoutMs) => child.kill(signal, timeoutMs),
      stop: (graceMs) => child.stop(graceMs),
    };
    this.workers.push(worker);
    await withTimeout(reached, 10_000, `worker printed "${until}"\n${log.toString()}`);
    return worker;
  }

  /** A web node in this process, with its own `allow` rules. */
  async startNode(
    allow: MqttBridgeOptions["allow"] = { subscribe: ["#"], publish: ["#"], retain: ["#"] },
    extra: MqttBridgeOptions = {},
  ): Promise<WebNode> {
    const { adapter, disconnect } = this.adapter();
    const http = createServer();
    const io = new Server(http, { adapter });
    const bridge = mqttBridge({
      topology: "forward",
      allow,
      cluster: TIMING,
      ackTimeoutMs: 3000,
      ...extra,
    });
    bridge.on("error", () => undefined);
    io.use(bridge);
    await new Promise<void>((r) => http.listen(0, "127.0.0.1", r));
    bridge.attach(io);
    const node: WebNode = {
      io,
      bridge,
      url: `http://127.0.0.1:${(http.address() as AddressInfo).port}`,
      async close() {
        await bridge.close();
        await io.close();
        disconnect();
      },
    };
    this.nodes.push(node);
    return node;
  }

  /** Redis adapter clients for a server of this process (disconnected by `cleanup()`). */
  private adapter(requestsTimeout = 2000) {
    const pub = new Redis(this.redis.url, { maxRetriesPerRequest: 1 });
    const sub = pub.duplicate();
    for (const c of [pub, sub]) c.on("error", () => undefined);
    return {
      adapter: createAdapter(pub, sub, { key: this.key, requestsTimeout }),
      disconnect: () => {
        pub.disconnect();
        sub.disconnect();
      },
    };
  }

  /**
   * The worker in this process, with `opts` as its bridge options (the CLI's, without the lock)
   * and `mqttOptions` for its connection to the world's broker (e.g. `protocolVersion: 4`).
   */
  async startLocalWorker(
    opts: MqttBridgeOptions = {},
    mqttOptions: IClientOptions = {},
  ): Promise<LocalWorker> {
    const { adapter, disconnect } = this.adapter();
    const io = new Server({ adapter });
    const bridge = mqttBridge({
      cluster: TIMING,
      ackTimeoutMs: 3000,
      ...opts,
      mqtt: { url: this.broker.url, ...mqttOptions },
      topology: "worker",
    });
    bridge.on("error", () => undefined);
    bridge.attach(io);
    await withTimeout(bridge.ready, 5000, "the local worker connected to the broker");
    const worker: LocalWorker = {
      io,
      bridge,
      async close() {
        await bridge.close();
        disconnect();
      },
    };
    this.closers.push(() => worker.close());
    return worker;
  }

  /** A Socket.IO server on the cluster's adapter without a bridge (a node the test scripts). */
  bareServer(): BareServer {
    const { adapter, disconnect } = this.adapter();
    const io = new Server({ adapter });
    const server: BareServer = {
      io,
      async close() {
        io.of("/").removeAllListeners();
        disconnect();
        await Promise.resolve();
      },
    };
    this.closers.push(() => server.close());
    return server;
  }

  /** Web node processes in forward mode (a worker must be up: they wait for it). */
  async startWebNodes(nodes = 2): Promise<ClusterNode[]> {
    this.cluster = await startCluster({
      nodes,
      redisUrl: this.redis.url,
      mqttUrl: "",
      adapter: "redis",
      key: this.key,
      topology: "forward",
      clusterTiming: TIMING,
    });
    return this.cluster.nodes;
  }

  /** A socket.io-client socket connected to `node`. */
  async client(node: { url: string }): Promise<ClientSocket> {
    const socket = ioc(node.url, { transports: ["websocket"], forceNew: true });
    this.clients.push(socket);
    await withTimeout(
      new Promise<void>((r) => socket.once("connect", () => r())),
      5000,
      "client connected",
    );
    return socket;
  }

  /** A plain MQTT 5 client of the broker. */
  async device(): Promise<MqttClient> {
    const d = await mqtt.connectAsync(this.broker.url, { protocolVersion: 5, reconnectPeriod: 0 });
    this.devices.push(d);
    return d;
  }

  /** Ends what the test started; with `report`, prints the workers' and nodes' output first. */
  async cleanup(report: boolean): Promise<void> {
    if (report) {
      for (const [i, w] of this.workers.entries()) {
        console.log(`--- worker ${i} (pid ${w.pid}) ---\n${w.log.toString()}`);
      }
      for (const node of this.cluster?.nodes ?? []) {
        console.log(`--- node ${node.index} ---\n${node.logs()}`);
      }
    }
    for (const c of this.clients.splice(0)) c.disconnect();
    await Promise.all(this.devices.splice(0).map((d) => d.endAsync(true)));
    await Promise.all(this.nodes.splice(0).map((n) => n.close()));
    await Promise.all(this.closers.splice(0).map((close) => close()));
    await this.cluster?.stop();
    this.cluster = undefined;
    await Promise.all(this.workers.splice(0).map((w) => w.stop(3000)));
  }

  async stop(): Promise<void> {
    await Promise.all([this.redis?.stop(), this.broker?.stop()]);
  }
}

/**
 * Registers the hooks of a describe block that runs on one {@link WorkerWorld}: started before
 * the block, a fresh key before each test, cleaned after each (with a report of a failed test
 * when `CLUSTER_REPORT` is set), stopped after the block. Returns the world's getter (set once
 * the block's `before` hooks ran).
 */
export function useWorkerWorld(): () => WorkerWorld {
  let world: WorkerWorld | undefined;
  before(async () => {
    world = await WorkerWorld.start();
  });
  after(async () => world?.stop());
  beforeEach(() => world!.nextKey());
  afterEach(async function () {
    await world!.cleanup(this.currentTest?.state === "failed" && !!process.env.CLUSTER_REPORT);
  });
  return () => world!;
}
