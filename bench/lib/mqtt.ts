/**
 * MQTT.js clients whose TCP socket has TCP_NODELAY set before it connects (MQTT.js's own TCP
 * stream builder does not set it, and Nagle + delayed ACKs halve a QoS 0 stream's rate).
 */
import net from "node:net";
import type { IClientOptions } from "mqtt";
import { MqttClient } from "mqtt";

/** A client on `mqtt://host:port` whose every (re)connection uses a socket with noDelay. */
export function connectNoDelay(url: string, opts: IClientOptions = {}): MqttClient {
  const { hostname, port } = new URL(url);
  const builder = () => net.createConnection({ host: hostname, port: Number(port), noDelay: true });
  return new MqttClient(builder, { reconnectPeriod: 1000, ...opts });
}

/**
 * True when the socket has TCP_NODELAY. Node keeps the flag in an internal symbol
 * (`kSetNoDelay`); it is what `setNoDelay()` and the `noDelay` connect option set.
 */
export function hasNoDelay(stream: unknown): boolean {
  if (!(stream instanceof net.Socket)) return false;
  const sym = Object.getOwnPropertySymbols(stream).find((s) => s.description === "kSetNoDelay");
  return sym !== undefined && (stream as unknown as Record<symbol, unknown>)[sym] === true;
}

/** Resolves once `client` is connected (rejects on the first error or after `timeoutMs`). */
export function whenConnected(client: MqttClient, timeoutMs = 10_000): Promise<void> {
  if (client.connected) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("MQTT connect timed out")), timeoutMs);
    client.once("connect", () => {
      clearTimeout(timer);
      resolve();
    });
    client.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}
