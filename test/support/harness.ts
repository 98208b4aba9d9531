/**
 * Glossary for the integration tests:
 * - "server": a real Socket.IO `Server` on an ephemeral loopback port, with the bridge installed;
 * - "client": a real `socket.io-client` socket (a browser, as far as the bridge can tell);
 * - "device": a plain MQTT.js client connected straight to the broker;
 * - "broker": Mosquitto (started by the tests) or aedes (in-process).
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import mqtt from "mqtt";
import type { IClientOptions, MqttClient } from "mqtt";
import type { ServerOptions, Socket as ServerSocket } from "socket.io";
import { Server } from "socket.io";
import type { Socket as ClientSocket } from "socket.io-client";
import { io as ioc } from "socket.io-client";
import type { BridgeStats, MqttBridge, MqttBridgeOptions } from "../../lib";
import { mqttBridge } from "../../lib";
import type { AdapterFactory, NodeAdapter } from "./adapters";
import { waitFor, withTimeout } from "./util";

/** A broker the suite runs against. */
export interface BrokerTarget {
  name: string;
  url: string;
  /** The protocol version the bridge is expected to end up with. */
  version: 4 | 5;
  /** MQTT.js options for the bridge's own connection (e.g. a forced protocolVersion). */
  bridgeMqtt?: IClientOptions;
}

/**
 * Several Socket.IO servers in this process, each with its own bridge, joined by an adapter: a
 * cluster as far as the bridge can tell (see test/cluster/suite.test.ts).
 */
export interface HarnessTopology {
  /** Socket.IO servers, each with its own bridge and broker connection (default 1). */
  nodes?: number;
  /** Makes each node's adapter (e.g. `redisAdapterFactory(url, "redis")`); default in-memory. */
  adapter?: AdapterFactory;
}

/**
 * One Socket.IO server with a bridge (or several: see {@link HarnessTopology}), plus factories
 * for clients and devices. `io`, `port` and `bridge` are those of node 0.
 */
export interface Harness {
  io: Server;
  port: number;
  bridge: MqttBridge;
  /** Every node's server, bridge and port (one entry on a single node). */
  ios: Server[];
  bridges: MqttBridge[];
  ports: number[];
  target: BrokerTarget;
  /**
   * A connected client; closed by `close()`. Clients go to the nodes round-robin unless `node`
   * (an index into `ios`) is given.
   */
  client(opts?: {
    auth?: Record<string, unknown>;
    node?: number;
    /** Default: WebSocket only. */
    transports?: ("polling" | "websocket")[];
  }): Promise<ClientSocket>;
  /** The node a client of this harness is connected to. */
  nodeOf(client: ClientSocket): number;
  /** The server-side socket of a client id, on whichever node holds it. */
  serverSocket(id: string): ServerSocket | undefined;
  /** Every bridge's `stats()` added up (`connected`: all are; `protocolVersion`: the common one). */
  stats(): BridgeStats;
  /** A connected device (MQTT.js); closed by `close()`. */
  device(opts?: IClientOptions): Promise<MqttClient>;
  close(): Promise<void>;
}

/** Adds up bridge stats: numbers are summed, nested counters too. */
export function sumStats(list: BridgeStats[]): BridgeStats {
  const add = (a: unknown, b: unknown): unknown => {
    if (typeof a === "number" && typeof b === "number") return a + b;
    if (a && b && typeof a === "object" && typeof b === "object") {
      const out: Record<string, unknown> = { ...(a as Record<string, unknown>) };
      for (const [k, v] of Object.entries(b as Record<string, unknown>)) out[k] = add(out[k], v);
      return out;
    }
    return a ?? b;
  };
  let total = structuredClone(list[0]);
  for (const s of list.slice(1)) total = add(total, s) as BridgeStats;
  total.connected = list.every((s) => s.connected);
  const versions = new Set(list.map((s) => s.protocolVersion));
  total.protocolVersion = versions.size === 1 ? list[0].protocolVersion : undefined;
  return total;
}

/**
 * Starts a Socket.IO server with `mqttBridge(opts)` installed, connected to `target`; with
 * `topology.nodes > 1`, that many, joined by `topology.adapter`.
 */
export async function createHarness(
  target: BrokerTarget,
  opts: MqttBridgeOptions = {},
  ioOpts: Partial<ServerOptions> = {},
  topology: HarnessTopology = {},
): Promise<Harness> {
  const count = topology.nodes ?? 1;
  const ios: Server[] = [];
  const bridges: MqttBridge[] = [];
  const ports: number[] = [];
  const adapters: NodeAdapter[] = [];
  for (let i = 0; i < count; i++) {
    const http = createServer();
    let serverOpts = ioOpts;
    if (topology.adapter) {
      const a = await topology.adapter(i);
      adapters.push(a);
      serverOpts = { ...ioOpts, adapter: a.adapter };
    }
    const io = new Server(http, serverOpts);
    const bridge = mqttBridge({
      mqtt: { url: target.url, ...target.bridgeMqtt },
      ackTimeoutMs: 3000,
      reconnect: { minDelayMs: 100, maxDelayMs: 500 },
      ...opts,
    });
    bridge.on("error", () => undefined); // tests assert on acks and stats, not on error events
    io.use(bridge);
    await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
    ios.push(io);
    bridges.push(bridge);
    ports.push((http.address() as AddressInfo).port);
  }
  await Promise.all(
    bridges.map((b) => withTimeout(b.ready, 5000, `bridge connected to ${target.name}`)),
  );
  if (topology.adapter && count > 1) {
    // every node's adapter hears the others before a test relies on cross-node operations
    await waitFor(
      async () =>
        (
          await Promise.all(
            ios.map((io) => withTimeout(io.of("/").adapter.serverCount(), 1000, "serverCount")),
          )
        ).every((n) => n === count),
      { timeoutMs: 5000, intervalMs: 20, message: `${count} nodes see each other` },
    );
  }
  const io = ios[0];
  const port = ports[0];
  const bridge = bridges[0];
  const clients: ClientSocket[] = [];
  const nodeOfClient = new Map<ClientSocket, number>();
  const devices: MqttClient[] = [];
  let next = 0;
  return {
    io,
    port,
    bridge,
    ios,
    bridges,
    ports,
    target,
    async client(o = {}) {
      const node = o.node ?? next++ % count;
      const socket = ioc(`http://127.0.0.1:${ports[node]}`, {
        transports: o.transports ?? ["websocket"],
        forceNew: true,
        reconnectionDelay: 50,
        reconnectionDelayMax: 200,
        ...(o.auth ? { auth: o.auth } : {}),
      });
      clients.push(socket);
      nodeOfClient.set(socket, node);
      if (!socket.connected) {
        await withTimeout(
          new Promise<void>((resolve, reject) => {
            socket.once("connect", () => resolve());
            socket.once("connect_error", reject);
          }),
          5000,
          "client connected",
        );
      }
      return socket;
    },
    nodeOf(client) {
      const node = nodeOfClient.get(client);
      if (node === undefined) throw new Error("not a client of this harness");
      return node;
    },
    serverSocket(id) {
      for (const x of ios) {
        const socket = x.of("/").sockets.get(id);
        if (socket) return socket;
      }
      return undefined;
    },
    stats() {
      return sumStats(bridges.map((b) => b.stats()));
    },
    async device(o = {}) {
      const d = await withTimeout(
        mqtt.connectAsync(target.url, {
          protocolVersion: target.version,
          reconnectPeriod: 100,
          ...o,
        }),
        5000,
        "device connected",
      );
      devices.push(d);
      return d;
    },
    async close() {
      for (const c of clients) c.disconnect();
      await Promise.all(devices.map((d) => d.endAsync(true)));
      await Promise.all(bridges.map((b) => b.close()));
      await Promise.all(ios.map((x) => x.close()));
      await Promise.all(adapters.map((a) => a.close()));
    },
  };
}

/** Collects the `mqtt.message` events a client receives. */
export function collect<T = unknown>(
  socket: ClientSocket,
  event = "mqtt.message",
): {
  messages: {
    topic: string;
    payload: T;
    qos: number;
    retain: boolean;
    properties?: Record<string, unknown>;
  }[];
} {
  const box = { messages: [] as { topic: string; payload: T; qos: number; retain: boolean }[] };
  socket.on(event, (m: { topic: string; payload: T; qos: number; retain: boolean }) =>
    box.messages.push(m),
  );
  return box;
}

/** Emits with an ack, bounded in time. */
export function request<
  T = { ok: boolean; error?: { code: string; reasonCode?: number }; room?: string },
>(socket: ClientSocket, event: string, arg: unknown, timeoutMs = 5000): Promise<T> {
  return socket.timeout(timeoutMs).emitWithAck(event, arg) as Promise<T>;
}
