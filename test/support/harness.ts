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
import type { ServerOptions } from "socket.io";
import { Server } from "socket.io";
import type { Socket as ClientSocket } from "socket.io-client";
import { io as ioc } from "socket.io-client";
import type { MqttBridge, MqttBridgeOptions } from "../../lib";
import { mqttBridge } from "../../lib";
import { withTimeout } from "./util";

/** A broker the suite runs against. */
export interface BrokerTarget {
  name: string;
  url: string;
  /** The protocol version the bridge is expected to end up with. */
  version: 4 | 5;
  /** MQTT.js options for the bridge's own connection (e.g. a forced protocolVersion). */
  bridgeMqtt?: IClientOptions;
}

/** One Socket.IO server with a bridge, plus factories for clients and devices. */
export interface Harness {
  io: Server;
  port: number;
  bridge: MqttBridge;
  target: BrokerTarget;
  /** A connected client; closed by `close()`. */
  client(opts?: { auth?: Record<string, unknown> }): Promise<ClientSocket>;
  /** A connected device (MQTT.js); closed by `close()`. */
  device(opts?: IClientOptions): Promise<MqttClient>;
  close(): Promise<void>;
}

/** Starts a Socket.IO server with `mqttBridge(opts)` installed, connected to `target`. */
export async function createHarness(
  target: BrokerTarget,
  opts: MqttBridgeOptions = {},
  ioOpts: Partial<ServerOptions> = {},
): Promise<Harness> {
  const http = createServer();
  const io = new Server(http, ioOpts);
  const bridge = mqttBridge({
    mqtt: { url: target.url, ...target.bridgeMqtt },
    ackTimeoutMs: 3000,
    reconnect: { minDelayMs: 100, maxDelayMs: 500 },
    ...opts,
  });
  bridge.on("error", () => undefined); // tests assert on acks and stats, not on error events
  io.use(bridge);
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  const port = (http.address() as AddressInfo).port;
  await withTimeout(bridge.ready, 5000, `bridge connected to ${target.name}`);
  const clients: ClientSocket[] = [];
  const devices: MqttClient[] = [];
  return {
    io,
    port,
    bridge,
    target,
    async client(o = {}) {
      const socket = ioc(`http://127.0.0.1:${port}`, {
        transports: ["websocket"],
        forceNew: true,
        reconnectionDelay: 50,
        reconnectionDelayMax: 200,
        ...(o.auth ? { auth: o.auth } : {}),
      });
      clients.push(socket);
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
      await bridge.close();
      await io.close();
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

/**
 * Waits until the bridge has a confirmed broker subscription count of `n` (subscriptions are
 * made asynchronously when rooms appear).
 */
export function brokerSubscriptions(bridge: MqttBridge): number {
  return bridge.stats().brokerSubscriptions;
}
