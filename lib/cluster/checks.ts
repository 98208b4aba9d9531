import { MqttBridgeError } from "../errors";
import type { Limits } from "../options";
import { own } from "../options";
import type { QoS, StreamPosition } from "../protocol";
import { ERROR_CODES } from "../protocol";
import type { ValidPublish } from "../sockets/validate";
import { ORIGIN_PROPERTY, checkFilter, parsePublish, parseSince } from "../sockets/validate";
import type {
  RecoverReply,
  RecoverRequestWire,
  ReplayRequest,
  RoomOp,
  RoomReport,
  RoomSnapshot,
  WireAck,
  WireReply,
  WireRequest,
  WorkerStatus,
} from "./messages";

/**
 * Checks every cluster message before it is used, as socket input is checked: whatever arrives
 * over Redis may come from a buggy or hostile peer. A message whose frame is wrong is dropped
 * whole; a wrong entry in a list (a filter that is not one, a room that is not a string) is
 * dropped alone. `drop` hears of each, to count and log it. Filters and publishes go through
 * the same checks as a socket's (lib/sockets/validate.ts), with the worker's own limits.
 */

/** The longest list a cluster message may carry (ops, joins, rooms, filters). */
export const MAX_LIST = 100_000;
/** The longest room name: the longest filter (65,535 bytes) behind a prefix of up to 1 KiB. */
const MAX_ROOM = 66_559;
/** The longest node, worker or socket id. */
const MAX_ID = 256;
/** MQTT's own bound of a payload: the worker relays server publishes, not held to socket limits. */
const MQTT_MAX_PAYLOAD = 268_435_455;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Told of every message or entry dropped, with what it was. */
export type Drop = (what: string) => void;

type Obj = Record<string, unknown>;

function isObject(v: unknown): v is Obj {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

const isId = (v: unknown): v is string =>
  typeof v === "string" && v.length > 0 && v.length <= MAX_ID;
const isSeq = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isRoom = (v: unknown): v is string =>
  typeof v === "string" && v.length > 0 && v.length <= MAX_ROOM;
const isQos = (v: unknown): v is QoS => v === 0 || v === 1 || v === 2;
const isList = (v: unknown): v is unknown[] => Array.isArray(v) && v.length <= MAX_LIST;

function isFilter(v: unknown, limits: Limits): v is string {
  try {
    checkFilter(v, limits);
    return true;
  } catch {
    return false;
  }
}

/** The valid filters of a list; each invalid one is dropped. */
function filters(v: unknown[], limits: Limits, drop: Drop, what: string): string[] {
  const out: string[] = [];
  for (const f of v) {
    if (isFilter(f, limits)) out.push(f);
    else drop(`${what}: not a valid filter`);
  }
  return out;
}

function op(v: unknown, limits: Limits): RoomOp | undefined {
  if (!Array.isArray(v) || !isRoom(v[1]) || !isFilter(v[2], limits)) return undefined;
  if (v[0] === "+" && v.length === 4 && isQos(v[3])) return ["+", v[1], v[2], v[3]];
  if ((v[0] === "-" || v[0] === "~") && v.length === 3) return [v[0], v[1], v[2]];
  return undefined;
}

function join(v: unknown, limits: Limits, drop: Drop): ReplayRequest | undefined {
  if (!isObject(v)) return undefined;
  const socket = own(v, "socket");
  const fs = own(v, "filters");
  const others = own(v, "others");
  if (!isId(socket) || !isList(fs) || !isList(others)) return undefined;
  return {
    socket,
    filters: filters(fs, limits, drop, "join"),
    others: filters(others, limits, drop, "join"),
  };
}

/** A node's room report, or undefined when its frame is wrong. */
export function checkReport(raw: unknown, limits: Limits, drop: Drop): RoomReport | undefined {
  if (!isObject(raw)) return undefined;
  const node = own(raw, "node");
  const seq = own(raw, "seq");
  const ops = own(raw, "ops");
  const joins = own(raw, "joins") ?? [];
  if (!isId(node) || !isSeq(seq) || !isList(ops) || !isList(joins)) return undefined;
  const report: RoomReport = { node, seq, ops: [], joins: [] };
  for (const o of ops) {
    const valid = op(o, limits);
    if (valid) report.ops.push(valid);
    else drop("report: malformed op");
  }
  for (const j of joins) {
    const valid = join(j, limits, drop);
    if (valid) report.joins.push(valid);
    else drop("report: malformed join");
  }
  return report;
}

/**
 * A node's snapshot: undefined when it is none (`null`: a worker's answer) or its node is not
 * an id; `rooms: undefined` when the rest is malformed (the node answered, but says nothing).
 */
export function checkSnapshot(
  raw: unknown,
  limits: Limits,
  drop: Drop,
): { node: string; seq: number; rooms: RoomSnapshot["rooms"] | undefined } | undefined {
  if (raw === null || raw === undefined) return undefined;
  if (!isObject(raw) || !isId(own(raw, "node"))) {
    drop("snapshot: malformed");
    return undefined;
  }
  const node = own(raw, "node") as string;
  const seq = own(raw, "seq");
  const rooms = own(raw, "rooms");
  if (!isSeq(seq) || !isList(rooms)) {
    drop("snapshot: malformed");
    return { node, seq: 0, rooms: undefined };
  }
  const out: RoomSnapshot["rooms"] = [];
  for (const entry of rooms) {
    if (!Array.isArray(entry) || entry.length !== 2 || !isRoom(entry[0]) || !isList(entry[1])) {
      drop("snapshot: malformed room");
      continue;
    }
    out.push([entry[0], filters(entry[1], limits, drop, "snapshot")]);
  }
  return { node, seq, rooms: out };
}

/** A node's request, or undefined when its frame is wrong (it cannot even be answered). */
export function checkRequest(raw: unknown): WireRequest | undefined {
  if (!isObject(raw)) return undefined;
  const node = own(raw, "node");
  const id = own(raw, "id");
  if (!isId(node) || !isSeq(id)) return undefined;
  return { node, id, body: own(raw, "body") };
}

/**
 * Decodes and checks a forwarded publish like a socket's (`parsePublish`), keeping the node's
 * origin marker; throws the {@link MqttBridgeError} to answer with.
 */
export function checkPublish(raw: unknown, limits: Limits, mqtt5: boolean): ValidPublish {
  if (!isObject(raw)) throw invalid("a publish must be an object");
  const payload = own(raw, "payload");
  if (typeof payload !== "string" || !BASE64.test(payload)) {
    throw invalid("payload must be base64");
  }
  const request: Obj = {
    topic: own(raw, "topic"),
    payload: Buffer.from(payload, "base64"),
    qos: own(raw, "qos"),
    retain: own(raw, "retain"),
  };
  let origin: string | undefined;
  const rawProps = own(raw, "properties");
  if (rawProps !== undefined) {
    if (!isObject(rawProps)) throw invalid("properties must be an object");
    const props: Obj = Object.assign(Object.create(null) as Obj, rawProps);
    const correlation = own(rawProps, "correlationData");
    if (correlation !== undefined) {
      if (typeof correlation !== "string" || !BASE64.test(correlation)) {
        throw invalid("correlationData must be base64");
      }
      props.correlationData = Buffer.from(correlation, "base64");
    }
    const user = own(rawProps, "userProperties");
    if (isObject(user) && own(user, ORIGIN_PROPERTY) !== undefined) {
      const o = own(user, ORIGIN_PROPERTY);
      if (!isId(o)) throw invalid("malformed origin");
      origin = o;
      const rest = Object.assign(Object.create(null) as Obj, user);
      delete rest[ORIGIN_PROPERTY];
      props.userProperties = rest;
    }
    request.properties = props;
  }
  const msg = parsePublish(request, { ...limits, payloadBytes: MQTT_MAX_PAYLOAD }, mqtt5);
  if (origin !== undefined) {
    const properties = (msg.properties ??= {});
    const user = (properties.userProperties ??= Object.create(null) as Record<string, string>);
    user[ORIGIN_PROPERTY] = origin;
  }
  return msg;
}

/** Checks a forwarded subscribe confirmation; throws the {@link MqttBridgeError} to answer with. */
export function checkSubscribe(raw: unknown, limits: Limits): { filter: string; qos: QoS } {
  if (!isObject(raw)) throw invalid("a subscribe request must be an object");
  const qos = own(raw, "qos");
  if (!isQos(qos)) throw invalid("qos must be 0, 1 or 2");
  return { filter: checkFilter(own(raw, "filter"), limits), qos };
}

/** The worker's reply, or undefined when its frame is wrong. */
export function checkReply(raw: unknown): WireReply | undefined {
  if (!isObject(raw)) return undefined;
  const to = own(raw, "to");
  const id = own(raw, "id");
  if (!isId(to) || !isSeq(id)) return undefined;
  return { to, id, res: own(raw, "res") };
}

/** The worker's answer to a publish or subscribe, or undefined when malformed. */
export function checkAck(raw: unknown): WireAck | undefined {
  if (!isObject(raw)) return undefined;
  const ok = own(raw, "ok");
  if (ok === true) {
    const qos = own(raw, "qos");
    if (qos === undefined) return { ok: true };
    return isQos(qos) ? { ok: true, qos } : undefined;
  }
  const error = own(raw, "error");
  if (ok !== false || !isObject(error)) return undefined;
  const code = own(error, "code");
  const message = own(error, "message");
  const reasonCode = own(error, "reasonCode");
  if (!(ERROR_CODES as readonly unknown[]).includes(code) || typeof message !== "string") {
    return undefined;
  }
  const ack: WireAck = {
    ok: false,
    error: { code: code as (typeof ERROR_CODES)[number], message: message.slice(0, 1024) },
  };
  if (Number.isInteger(reasonCode) && (reasonCode as number) >= 0 && (reasonCode as number) < 256) {
    ack.error.reasonCode = reasonCode as number;
  }
  return ack;
}

/** A worker's status (heartbeat or ping reply), or undefined when malformed. */
export function checkStatus(raw: unknown): WorkerStatus | undefined {
  if (!isObject(raw)) return undefined;
  const worker = own(raw, "worker");
  const connected = own(raw, "connected");
  const mqtt5 = own(raw, "mqtt5");
  const version = own(raw, "protocolVersion");
  if (!isId(worker) || typeof connected !== "boolean" || typeof mqtt5 !== "boolean") {
    return undefined;
  }
  const status: WorkerStatus = { worker, connected, mqtt5 };
  if (version === 3 || version === 4 || version === 5) status.protocolVersion = version;
  else if (version !== undefined) return undefined;
  const position = own(raw, "position");
  if (position !== undefined) {
    const p = checkPosition(position);
    if (!p) return undefined;
    status.position = p;
  }
  return status;
}

function checkPosition(raw: unknown): StreamPosition | undefined {
  if (!isObject(raw)) return undefined;
  const epoch = own(raw, "epoch");
  const offset = own(raw, "offset");
  return isId(epoch) && isSeq(offset) ? { epoch, offset } : undefined;
}

/** A node's recovery request (the body); throws the {@link MqttBridgeError} to answer with. */
export function checkRecover(raw: unknown, limits: Limits): RecoverRequestWire {
  if (!isObject(raw)) throw invalid("a recovery request must be an object");
  const socket = own(raw, "socket");
  const others = own(raw, "others");
  if (!isId(socket)) throw invalid("malformed socket id");
  const pairs: RecoverRequestWire["others"] = [];
  if (!isList(others)) throw invalid("others must be a list");
  for (const o of others) {
    if (!Array.isArray(o) || o.length !== 2 || !isRoom(o[0]) || !isSeq(o[1])) {
      throw invalid("others must be [room, offset] pairs");
    }
    pairs.push([o[0], o[1]]);
  }
  const filter = checkFilter(own(raw, "filter"), limits);
  return { socket, filter, since: parseSince(own(raw, "since")), others: pairs };
}

/** The worker's answer to a recovery, or undefined when its frame is wrong. */
export function checkRecoverReply(raw: unknown): RecoverReply | undefined {
  if (!isObject(raw) || own(raw, "ok") !== true) return checkAck(raw);
  const reply: RecoverReply = { ok: true };
  const position = own(raw, "position");
  const missed = own(raw, "missed");
  if (position !== undefined) {
    const p = checkPosition(position);
    if (!p) return undefined;
    reply.position = p;
  }
  if (missed !== undefined) {
    if (!isObject(missed)) return undefined;
    const count = own(missed, "count");
    const body = own(missed, "body");
    if (!isSeq(count) || count > MAX_LIST || typeof body !== "string") return undefined;
    reply.missed = { count, body };
  }
  return reply;
}

function invalid(message: string): MqttBridgeError {
  return new MqttBridgeError("INVALID_ARGUMENT", message);
}
