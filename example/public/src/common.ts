/**
 * What both pages share: the socket and the browser helper (`socket.io-mqtt-bridge/client`, here
 * imported from the repository's lib/), the connection badge, and the error line.
 */
import { io } from "socket.io-client";
import type { Socket } from "socket.io-client";
import { MqttBridgeClientError, mqttClient } from "../../../lib/client";
import type { MqttClient } from "../../../lib/client";

/** What the example server tells the pages about its bridge (event `example.broker`). */
export interface BrokerInfo {
  connected: boolean;
  /** Where a terminal MQTT client reaches the broker, when the server knows it. */
  mqtt?: { host: string; port: number };
}

/** The element with `id`; a missing one is a bug in the page. */
export function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing`);
  return el as T;
}

/** `err` as one line for the user: the bridge's error code first. */
export function describeError(err: unknown): string {
  if (err instanceof MqttBridgeClientError) {
    return err.message && err.message !== err.code ? `${err.code} (${err.message})` : err.code;
  }
  return err instanceof Error ? err.message : String(err);
}

/** Shows `what: <code> (<message>)` in the page's error line (`#error`). */
export function showError(what: string, err: unknown): void {
  const el = $("error");
  el.textContent = `${what}: ${describeError(err)}`;
  el.dataset.code = err instanceof MqttBridgeClientError ? err.code : "";
  el.hidden = false;
}

export function clearError(): void {
  const el = $("error");
  el.textContent = "";
  el.hidden = true;
}

export interface Connection {
  socket: Socket;
  mqtt: MqttClient;
}

/** What a page hears of through {@link connect}. */
export interface ConnectOptions {
  /** The server told whether its bridge reaches the broker. */
  onBroker?: (info: BrokerInfo) => void;
  /**
   * A subscription was restored after a reconnect: `recovered` says whether the page got every
   * message of `filter` it missed while offline (false: reload what it shows for `filter`).
   */
  onRestore?: (filter: string, recovered: boolean) => void;
}

/** `HH:MM:SS` of `ts` (default: now), as the pages show times. */
export function timeOf(ts = Date.now()): string {
  return new Date(ts).toLocaleTimeString([], { hour12: false });
}

/**
 * Connects to the example server and keeps the badge `#connection` up to date. The helper
 * restores the page's subscriptions after every reconnect from where each had got to, so the
 * page gets what it missed meanwhile (`onRestore` says whether it all came), e.g. after its
 * network dropped; after the server restarted there is nothing to recover from.
 */
export function connect({ onBroker, onRestore }: ConnectOptions = {}): Connection {
  // retry quickly: a restarted example server is back within a few seconds
  const socket = io({ reconnectionDelay: 500, reconnectionDelayMax: 2000 });
  // The helper restores the subscriptions after a reconnect. One that fails (the server's bridge
  // has no broker yet: BROKER_UNAVAILABLE) is kept and tried again on the next reconnect, so
  // reconnect once the server says its broker is back.
  let restoreFailed = false;
  const mqtt = mqttClient(socket, {
    timeoutMs: 5000,
    onRestore,
    onError: (err, filter) => {
      restoreFailed = true;
      showError(`Restoring the subscription to ${filter} failed`, err);
    },
  });
  const badge = $("connection");
  let broker: boolean | undefined;
  const render = (state: string, text: string) => {
    badge.dataset.state = state;
    document.body.dataset.connection = state; // the pages grey out what may be stale
    badge.textContent = text;
  };
  const renderConnected = () => {
    if (broker === false) render("degraded", "Connected · the broker is unreachable, retrying");
    else render("connected", "Connected");
  };
  socket.on("connect", renderConnected);
  socket.on("disconnect", () => {
    broker = undefined;
    render("disconnected", "Disconnected · reconnecting…");
  });
  socket.io.on("reconnect_attempt", (attempt) => {
    render("disconnected", `Disconnected · reconnecting (attempt ${attempt})…`);
  });
  socket.on("connect", () => {
    if (restoreFailed) clearError(); // restored this time (or the error comes back)
    restoreFailed = false;
  });
  socket.on("example.broker", (info: BrokerInfo) => {
    broker = info.connected;
    if (socket.connected) renderConnected();
    if (info.connected && restoreFailed) socket.disconnect().connect();
    onBroker?.(info);
  });
  return { socket, mqtt };
}
