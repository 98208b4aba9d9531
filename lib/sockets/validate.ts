import { isUtf8 } from "node:buffer";
import type { IPublishPacket } from "mqtt";
import { encodePayload } from "../routing/codec";
import { MqttBridgeError } from "../errors";
import type { Limits } from "../options";
import { own } from "../options";
import type { PublishRequest, QoS, SinceRequest } from "../protocol";
import type { TopicLimits } from "../topic";
import { checkTopicFilter, checkTopicName, isSharedFilter } from "../topic";

/**
 * Checks every input of a socket against the MQTT rules (MQTT-RULES.md) before MQTT.js sees it:
 * one invalid topic reaching the broker drops the connection all sockets share, and some inputs
 * make MQTT.js throw synchronously. Options passed to MQTT.js are built field by field from an
 * allow-list; the socket's objects are never passed on.
 */

/** The user property that carries the origin socket of a publish over MQTT 5 (for `echo: false`). */
export const ORIGIN_PROPERTY = "x-socket.io-mqtt-bridge-origin";

/** A validated publish, ready for authorization and for MQTT.js. */
export interface ValidPublish {
  topic: string;
  payload: Buffer;
  qos: QoS;
  retain: boolean;
  properties?: IPublishPacket["properties"];
  /** The request as the authorization hook sees it (validated fields only). */
  request: PublishRequest;
}

/** A validated subscribe request. */
export interface ValidSubscribe {
  filter: string;
  qos: QoS;
  /** The position to recover from. */
  since?: SinceRequest;
}

/** Most earlier socket ids a `since` may name. */
const MAX_SINCE_IDS = 16;
/** Longest epoch or socket id a `since` may carry. */
const MAX_ID_LENGTH = 64;

const isShortString = (v: unknown): v is string =>
  typeof v === "string" && v.length > 0 && v.length <= MAX_ID_LENGTH;

/** Validates the `since` of a subscribe request. */
export function parseSince(raw: unknown): SinceRequest {
  if (!isPlainObject(raw)) throw invalid("since must be { epoch, offset, ids? }");
  for (const key of Object.keys(raw)) {
    if (key !== "epoch" && key !== "offset" && key !== "ids")
      throw invalid(`since: option ${JSON.stringify(key)} is not allowed`);
  }
  const epoch = own(raw, "epoch");
  const offset = own(raw, "offset");
  const ids = own(raw, "ids");
  if (!isShortString(epoch)) throw invalid(`since.epoch must be a string of 1 to ${MAX_ID_LENGTH}`);
  if (typeof offset !== "number" || !Number.isSafeInteger(offset) || offset < 0) {
    throw invalid("since.offset must be an integer >= 0");
  }
  const since: SinceRequest = { epoch, offset };
  if (ids !== undefined) {
    if (!Array.isArray(ids) || ids.length > MAX_SINCE_IDS || !ids.every(isShortString)) {
      throw invalid(`since.ids must be at most ${MAX_SINCE_IDS} socket ids`);
    }
    since.ids = [...ids];
  }
  return since;
}

const PROPERTY_KEYS = new Set([
  "contentType",
  "userProperties",
  "messageExpiryInterval",
  "responseTopic",
  "correlationData",
  "payloadFormatIndicator",
]);

const MAX_UTF8_STRING = 65_535;
const MAX_UINT32 = 4_294_967_295;

/** A plain object (not an array, a class instance or null). */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

function invalid(message: string): MqttBridgeError {
  return new MqttBridgeError("INVALID_ARGUMENT", message);
}

/** Topic limits for names and filters from the bridge's limits. */
export function topicLimits(limits: Limits): TopicLimits {
  return { maxBytes: limits.topicBytes, maxLevels: limits.topicLevels };
}

/** Validates a QoS value: 0, 1 or 2 ([MQTT-3.3.1-4]: 3 is malformed and makes MQTT.js throw). */
export function parseQos(v: unknown, name = "qos"): QoS {
  if (v === undefined) return 0;
  if (v === 0 || v === 1 || v === 2) return v;
  throw invalid(`${name} must be 0, 1 or 2`);
}

/** An MQTT UTF-8 string: well-formed, no U+0000, at most 65,535 bytes ([MQTT-1.5.4-1..3]). */
function checkMqttString(v: unknown, name: string): string {
  if (typeof v !== "string") throw invalid(`${name} must be a string`);
  if (!v.isWellFormed() || v.includes("\u0000")) {
    throw invalid(`${name} must be well-formed UTF-8 without U+0000`);
  }
  if (Buffer.byteLength(v, "utf8") > MAX_UTF8_STRING) throw invalid(`${name} is too long`);
  return v;
}

function toBuffer(v: unknown): Buffer | undefined {
  if (Buffer.isBuffer(v)) return v;
  if (v instanceof ArrayBuffer) return Buffer.from(v);
  if (ArrayBuffer.isView(v)) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  return undefined;
}

function parseUserProperties(v: unknown, limits: Limits): Record<string, string | string[]> {
  if (!isPlainObject(v)) throw invalid("properties.userProperties must be an object");
  const out = Object.create(null) as Record<string, string | string[]>;
  let count = 0;
  let bytes = 0;
  for (const key in v) {
    if (!Object.prototype.hasOwnProperty.call(v, key)) continue;
    // count before anything else so 50,000 properties are refused after 33 steps
    const value = v[key];
    count += Array.isArray(value) ? value.length : 1;
    if (count > limits.userProperties) {
      throw invalid(`more than ${limits.userProperties} user properties`);
    }
    checkMqttString(key, "a user property name");
    if (key === ORIGIN_PROPERTY) throw invalid(`user property ${key} is reserved`);
    const values = Array.isArray(value) ? (value as unknown[]) : [value];
    for (const item of values) {
      checkMqttString(item, `user property ${JSON.stringify(key)}`);
      bytes += Buffer.byteLength(key, "utf8") + Buffer.byteLength(item as string, "utf8");
    }
    if (bytes > limits.userPropertyBytes) {
      throw invalid(`user properties exceed ${limits.userPropertyBytes} bytes`);
    }
    out[key] = Array.isArray(value) ? [...(value as string[])] : (value as string);
  }
  return out;
}

/**
 * Validates MQTT 5 publish properties from a socket and builds a fresh object from the allowed
 * fields. Topic aliases and subscription identifiers are refused: they are the bridge's own.
 */
function parseProperties(
  v: unknown,
  limits: Limits,
  payload: Buffer,
): NonNullable<IPublishPacket["properties"]> {
  if (!isPlainObject(v)) throw invalid("properties must be an object");
  const out: NonNullable<IPublishPacket["properties"]> = {};
  for (const key of Object.keys(v)) {
    if (!PROPERTY_KEYS.has(key)) throw invalid(`property ${JSON.stringify(key)} is not allowed`);
  }
  const contentType = own(v, "contentType");
  if (contentType !== undefined) out.contentType = checkMqttString(contentType, "contentType");
  const expiry = own(v, "messageExpiryInterval");
  if (expiry !== undefined) {
    if (
      typeof expiry !== "number" ||
      !Number.isInteger(expiry) ||
      expiry < 0 ||
      expiry > MAX_UINT32
    ) {
      throw invalid("messageExpiryInterval must be an integer from 0 to 4294967295");
    }
    out.messageExpiryInterval = expiry;
  }
  const responseTopic = own(v, "responseTopic");
  if (responseTopic !== undefined) {
    // [MQTT-3.3.2-13], [MQTT-3.3.2-14]: a topic name, no wildcards
    const problem = checkTopicName(responseTopic, topicLimits(limits));
    if (problem) throw new MqttBridgeError("INVALID_TOPIC", `responseTopic: ${problem}`);
    out.responseTopic = responseTopic as string;
  }
  const correlation = own(v, "correlationData");
  if (correlation !== undefined) {
    const buf = toBuffer(correlation);
    if (!buf) throw invalid("correlationData must be binary");
    if (buf.length > MAX_UTF8_STRING) throw invalid("correlationData is longer than 65535 bytes");
    out.correlationData = Buffer.from(buf);
  }
  const pfi = own(v, "payloadFormatIndicator");
  if (pfi !== undefined) {
    if (typeof pfi !== "boolean") throw invalid("payloadFormatIndicator must be a boolean");
    // [MQTT-3.3.2-4]: a payload declared UTF-8 must be UTF-8 (reason code 0x99)
    if (pfi && !isUtf8(payload)) {
      throw new MqttBridgeError("INVALID_ARGUMENT", "payload is not UTF-8", { reasonCode: 0x99 });
    }
    out.payloadFormatIndicator = pfi;
  }
  const user = own(v, "userProperties");
  if (user !== undefined) out.userProperties = parseUserProperties(user, limits);
  return out;
}

/**
 * Validates what a socket sent with `mqtt.publish`. Throws a {@link MqttBridgeError} with the code
 * of API.md for the first problem found.
 */
export function parsePublish(raw: unknown, limits: Limits, mqtt5: boolean): ValidPublish {
  if (!isPlainObject(raw)) throw invalid("expected { topic, payload, qos?, retain?, properties? }");
  const topic = own(raw, "topic");
  const problem = checkTopicName(topic, topicLimits(limits));
  if (problem) throw new MqttBridgeError("INVALID_TOPIC", problem);
  const qos = parseQos(own(raw, "qos"));
  const rawRetain = own(raw, "retain");
  if (rawRetain !== undefined && typeof rawRetain !== "boolean") {
    throw invalid("retain must be a boolean");
  }
  const retain = rawRetain ?? false;
  const rawPayload = own(raw, "payload");
  const payload = encodePayload(rawPayload);
  if (!payload) {
    throw invalid("payload must be a string, binary, or a JSON-serializable value");
  }
  if (payload.length > limits.payloadBytes) {
    throw new MqttBridgeError(
      "PAYLOAD_TOO_LARGE",
      `payload is ${payload.length} bytes, the limit is ${limits.payloadBytes}`,
      { reasonCode: 0x95 },
    );
  }
  const rawProps = own(raw, "properties");
  let properties: ValidPublish["properties"];
  if (rawProps !== undefined) {
    properties = parseProperties(rawProps, limits, payload);
    if (!mqtt5 && Object.keys(properties).length > 0) {
      throw invalid("MQTT 5 properties need an MQTT 5 broker connection");
    }
  }
  const request: PublishRequest = { topic: topic as string, payload: rawPayload, qos, retain };
  if (properties) request.properties = properties;
  const valid: ValidPublish = { topic: topic as string, payload, qos, retain, request };
  if (properties) valid.properties = properties;
  return valid;
}

/**
 * Validates what a socket sent with `mqtt.subscribe` (a filter or `{ filter, qos?, since? }`). Shared
 * subscriptions are refused: each node's bridge must see every message of its rooms.
 */
export function parseSubscribe(raw: unknown, limits: Limits): ValidSubscribe {
  let filter: unknown = raw;
  let qos: QoS = 0;
  let since: SinceRequest | undefined;
  if (isPlainObject(raw)) {
    filter = own(raw, "filter");
    qos = parseQos(own(raw, "qos"));
    for (const key of Object.keys(raw)) {
      if (key !== "filter" && key !== "qos" && key !== "since")
        throw invalid(`option ${JSON.stringify(key)} is not allowed`);
    }
    const s = own(raw, "since");
    if (s !== undefined) since = parseSince(s);
  } else if (typeof raw !== "string") {
    throw invalid("expected a topic filter or { filter, qos?, since? }");
  }
  const valid: ValidSubscribe = { filter: checkFilter(filter, limits), qos };
  if (since) valid.since = since;
  return valid;
}

/** Validates a topic filter from a socket or from server code; shared subscriptions are refused. */
export function checkFilter(filter: unknown, limits: Limits): string {
  const problem = checkTopicFilter(filter, topicLimits(limits));
  if (problem) throw new MqttBridgeError("INVALID_FILTER", problem, { reasonCode: 0x8f });
  if (isSharedFilter(filter as string) || (filter as string).startsWith("$queue/")) {
    throw new MqttBridgeError("INVALID_FILTER", "shared subscriptions are not supported", {
      reasonCode: 0x9e,
    });
  }
  return filter as string;
}
