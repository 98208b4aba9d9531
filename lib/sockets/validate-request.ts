import { MqttBridgeError } from "../errors";
import type { Limits } from "../options";
import { own } from "../options";
import type { ValidPublish } from "./validate";
import { isPlainObject, parsePublish } from "./validate";

/**
 * Validation of MQTT 5 requests (`mqtt.request`, `bridge.request`, a web node's forwarded
 * request): the publish rules of lib/sockets/validate.ts apply to the request's topic, payload,
 * QoS and properties, plus the request's own: a bounded `timeoutMs`, no `retain`, and none of the
 * properties the bridge sets itself.
 */

/** How long a request waits for its reply when it names no `timeoutMs` (capped by the limit). */
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;

/** The QoS of a request that names none: the request reaches the broker, or the ack says why. */
export const DEFAULT_REQUEST_QOS = 1;

/** The properties the bridge sets on every request ([MQTT-3.3.2-13..15], §3.3.2.3.3). */
const RESERVED_PROPERTIES = ["responseTopic", "correlationData", "messageExpiryInterval"] as const;

const KEYS = new Set(["topic", "payload", "timeoutMs", "qos", "properties"]);

/** A validated request, ready for authorization and for the broker. */
export interface ValidRequest {
  /** The request as a publish (QoS defaulted, never retained; the bridge adds its properties). */
  msg: ValidPublish;
  /** How long to wait for the reply, in ms. */
  timeoutMs: number;
}

function invalid(message: string): MqttBridgeError {
  return new MqttBridgeError("INVALID_ARGUMENT", message);
}

/** The `timeoutMs` of a request: an integer from 1 to `limits.requestTimeoutMs`. */
export function parseRequestTimeout(v: unknown, limits: Limits): number {
  const max = limits.requestTimeoutMs;
  if (v === undefined) return Math.min(DEFAULT_REQUEST_TIMEOUT_MS, max);
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1 || v > max) {
    throw invalid(`timeoutMs must be an integer from 1 to ${max} (limits.requestTimeoutMs)`);
  }
  return v;
}

/** Refuses a request that sets a property the bridge owns (whoever built it). */
export function checkRequestProperties(msg: ValidPublish): void {
  if (!msg.properties) return;
  for (const key of RESERVED_PROPERTIES) {
    if (msg.properties[key] !== undefined) {
      throw invalid(`properties.${key} is set by the bridge on a request`);
    }
  }
}

/**
 * Validates a request `{ topic, payload, timeoutMs?, qos?, properties? }` from a socket or from
 * server code (`limits`: the ones that apply to it). Throws a {@link MqttBridgeError} with the
 * code of API.md for the first problem found.
 */
export function parseRequest(raw: unknown, limits: Limits): ValidRequest {
  if (!isPlainObject(raw)) {
    throw invalid("expected { topic, payload, timeoutMs?, qos?, properties? }");
  }
  for (const key of Object.keys(raw)) {
    if (!KEYS.has(key)) throw invalid(`option ${JSON.stringify(key)} is not allowed on a request`);
  }
  const timeoutMs = parseRequestTimeout(own(raw, "timeoutMs"), limits);
  const qos = own(raw, "qos");
  const publish: Record<string, unknown> = {
    topic: own(raw, "topic"),
    payload: own(raw, "payload"),
    qos: qos === undefined ? DEFAULT_REQUEST_QOS : qos,
  };
  const properties = own(raw, "properties");
  if (properties !== undefined) publish.properties = properties;
  // requests exist over MQTT 5 only: properties are checked as such (3.1.1 is refused later)
  const msg = parsePublish(publish, limits, true);
  checkRequestProperties(msg);
  return { msg, timeoutMs };
}
