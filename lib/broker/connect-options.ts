import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import { UniqueMessageIdProvider } from "mqtt";
import type { IClientOptions, MqttClient } from "mqtt";
import { backoffDelay } from "../backoff";
import type { MqttConnectOptions, ReconnectOptions } from "../options";

/** A unique MQTT client id: two nodes sharing one would take over each other's session in a loop. */
export function uniqueClientId(): string {
  return `sio-mqtt-bridge-${hostname().slice(0, 20)}-${process.pid}-${randomBytes(4).toString("hex")}`;
}

export { backoffDelay } from "../backoff";

/** How the session connects a client of its own. */
export interface OwnClient {
  url: string | undefined;
  options: IClientOptions;
  /** The user asked for a persistent session (`clean: false`). */
  persistent: boolean;
  /** No `protocolVersion` given: MQTT 5, falling back to 3.1.1. */
  autoVersion: boolean;
}

/**
 * The MQTT.js options of a client the session owns, from the user's. A persistent session's first
 * connection starts clean (see Session).
 */
export function ownClientOptions(user: MqttConnectOptions, reconnect: ReconnectOptions): OwnClient {
  const { url, ...rest } = user;
  const persistent = rest.clean === false;
  const options: IClientOptions = {
    clientId: uniqueClientId(),
    protocolVersion: 5,
    // packet ids are never reused while in use (the default provider wraps around blindly)
    messageIdProvider: new UniqueMessageIdProvider(),
    ...rest,
    clean: true,
    // the registry restores subscriptions itself (with subscription identifiers) on every connect
    resubscribe: false,
    reconnectOnConnackError: true,
    queueQoSZero: false,
    reconnectPeriod: backoffDelay(0, reconnect),
  };
  return { url, options, persistent, autoVersion: rest.protocolVersion === undefined };
}

/** Reason codes with which a broker refuses a protocol version it does not speak. */
const UNSUPPORTED_PROTOCOL = new Set([1, 0x84]);

/** True when a CONNACK error `code` means "not MQTT 5" (fall back to 3.1.1). */
export function refusesMqtt5(code: unknown): boolean {
  return typeof code === "number" && UNSUPPORTED_PROTOCOL.has(code);
}

/**
 * Ends a client: a DISCONNECT after in-flight publishes when connected, at once otherwise; a dead
 * or slow broker gets `graceMs`, then the socket is destroyed (MQTT.js ignores a second `end()`
 * while one is pending). Resolves when the client is ended.
 */
export function endClient(client: MqttClient, graceMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const force = setTimeout(() => {
      client.stream?.destroy();
      client.end(true, () => resolve());
      resolve();
    }, graceMs);
    client.end(!client.connected, () => {
      clearTimeout(force);
      resolve();
    });
  });
}
