import type { BridgeMessage, MessageProperties } from "../protocol";

/**
 * A frame of messages from the worker to the web nodes (worker topology): what one broadcast of
 * the delivery stage sends to `rooms`, leaving out the sockets `except`. Each node delivers it to
 * its own sockets through its own delivery stage, so batching and slow sockets are handled where
 * the sockets are.
 *
 * The messages travel as one JSON string (`body`): adapters may serialize cluster messages as JSON
 * (the Redis adapter does), binary payloads travel as base64, and a node none of whose sockets is
 * in `rooms` drops the frame without parsing the messages.
 */
export interface DeliverFrame {
  rooms: string[];
  except: string[];
  /** Per message, its topic and raw payload bytes (the size the slow-socket bounds count). */
  sizes: number[];
  /** JSON of {@link WireMessage}[]. */
  body: string;
  /** With recovery on: the worker's stream, and the offset of the frame's last message. */
  epoch?: string;
  last?: number;
}

/** A message on the wire: binary values replaced by base64 strings, marked in `b`. */
export type WireMessage = Omit<BridgeMessage, "payload" | "properties"> & {
  payload: unknown;
  properties?: Omit<MessageProperties, "correlationData"> & { correlationData?: unknown };
  /** 1: `payload` is a base64 Buffer; 2: binary values inside `payload` are tagged objects. */
  b?: 1 | 2;
  /** 1: `properties.correlationData` is a base64 Buffer. */
  c?: 1;
};

/** The key of a tagged binary value inside a payload (`b: 2`). */
const TAG = "$b64";
/** Depth past which a payload is not searched for binary values (as socket.io-parser does not). */
const MAX_DEPTH = 32;

const isBinary = (v: unknown): v is Uint8Array => v instanceof Uint8Array;

function hasBinary(v: unknown, depth: number): boolean {
  if (isBinary(v)) return true;
  if (depth > MAX_DEPTH || typeof v !== "object" || v === null) return false;
  if (Array.isArray(v)) return v.some((x) => hasBinary(x, depth + 1));
  for (const key in v) {
    if (hasBinary((v as Record<string, unknown>)[key], depth + 1)) return true;
  }
  return false;
}

const toBase64 = (v: Uint8Array) =>
  Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64");

function tagBinary(v: unknown, depth: number): unknown {
  if (isBinary(v)) return { [TAG]: toBase64(v) };
  if (depth > MAX_DEPTH || typeof v !== "object" || v === null) return v;
  if (Array.isArray(v)) return v.map((x) => tagBinary(x, depth + 1));
  const out: Record<string, unknown> = {};
  for (const key in v) out[key] = tagBinary((v as Record<string, unknown>)[key], depth + 1);
  return out;
}

function untagBinary(v: unknown, depth: number): unknown {
  if (depth > MAX_DEPTH || typeof v !== "object" || v === null) return v;
  if (Array.isArray(v)) return v.map((x) => untagBinary(x, depth + 1));
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o);
  if (keys.length === 1 && keys[0] === TAG && typeof o[TAG] === "string") {
    return Buffer.from(o[TAG], "base64");
  }
  const out: Record<string, unknown> = {};
  for (const key of keys) out[key] = untagBinary(o[key], depth + 1);
  return out;
}

/** A message ready for JSON: binary values as base64 (see {@link fromWireMessage}). */
export function toWireMessage(m: BridgeMessage): WireMessage {
  let wire: WireMessage = m;
  if (isBinary(m.payload)) wire = { ...m, payload: toBase64(m.payload), b: 1 };
  else if (typeof m.payload === "object" && hasBinary(m.payload, 0)) {
    wire = { ...m, payload: tagBinary(m.payload, 0), b: 2 };
  }
  const cd = m.properties?.correlationData;
  if (cd !== undefined && isBinary(cd)) {
    wire = { ...wire, properties: { ...m.properties, correlationData: toBase64(cd) }, c: 1 };
  }
  return wire;
}

/** The messages as a frame's `body`. */
export const encodeBody = (messages: readonly BridgeMessage[]): string =>
  JSON.stringify(messages.map(toWireMessage));

/** Encodes a broadcast of the delivery stage for the web nodes. */
export function encodeFrame(
  rooms: ReadonlySet<string>,
  except: readonly string[],
  messages: readonly BridgeMessage[],
  sizes: readonly number[],
  epoch?: string,
): DeliverFrame {
  const frame: DeliverFrame = {
    rooms: [...rooms],
    except: [...except],
    sizes: [...sizes],
    body: encodeBody(messages),
  };
  const last = messages[messages.length - 1]?.offset;
  if (epoch !== undefined && last !== undefined) Object.assign(frame, { epoch, last });
  return frame;
}

/** A checked frame, ready for the node's delivery stage. */
export interface ReceivedFrame {
  rooms: Set<string>;
  except: string[];
  sizes: number[];
  /** The worker's stream and the offset of the last message, when it numbers them. */
  epoch?: string;
  last?: number;
  /** Parses the messages (only called when the node has sockets in `rooms`). */
  messages(): BridgeMessage[] | undefined;
}

const isOffset = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) > 0;
const isEpoch = (v: unknown): v is string =>
  typeof v === "string" && v.length > 0 && v.length <= 64;

const isStrings = (v: unknown, max: number): v is string[] =>
  Array.isArray(v) && v.length <= max && v.every((s) => typeof s === "string");

/**
 * Checks a frame from the adapter (it may come from anything that reaches the cluster's Redis):
 * undefined when malformed; `messages()` too when the body is. At most `maxMessages` messages.
 */
export function checkFrame(raw: unknown, maxMessages: number): ReceivedFrame | undefined {
  if (typeof raw !== "object" || raw === null) return undefined;
  const f = raw as Partial<DeliverFrame>;
  if (!isStrings(f.rooms, 100_000) || f.rooms.length === 0) return undefined;
  if (!isStrings(f.except, 100_000) || typeof f.body !== "string") return undefined;
  const sizes = f.sizes;
  if (
    !Array.isArray(sizes) ||
    sizes.length === 0 ||
    sizes.length > maxMessages ||
    !sizes.every((n) => typeof n === "number" && n >= 0 && Number.isFinite(n))
  ) {
    return undefined;
  }
  const { body, epoch, last } = f;
  const numbered = isEpoch(epoch) && isOffset(last);
  if (!numbered && (epoch !== undefined || last !== undefined)) return undefined;
  return {
    rooms: new Set(f.rooms),
    except: f.except,
    sizes,
    ...(numbered ? { epoch, last } : {}),
    messages: () => parseBody(body, sizes.length),
  };
}

/** The `count` messages of a frame's `body`; undefined when it holds anything else. */
export function parseBody(body: string, count: number): BridgeMessage[] | undefined {
  let list: unknown;
  try {
    list = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (!Array.isArray(list) || list.length !== count) return undefined;
  const out: BridgeMessage[] = [];
  for (const item of list as unknown[]) {
    const m = fromWireMessage(item);
    if (!m) return undefined;
    out.push(m);
  }
  return out;
}

/** A message from its JSON form (see {@link toWireMessage}), or undefined when malformed. */
export function fromWireMessage(item: unknown): BridgeMessage | undefined {
  if (typeof item !== "object" || item === null) return undefined;
  const w = item as WireMessage;
  if (typeof w.topic !== "string" || typeof w.retain !== "boolean") return undefined;
  if (w.qos !== 0 && w.qos !== 1 && w.qos !== 2) return undefined;
  if (w.properties !== undefined && (typeof w.properties !== "object" || w.properties === null)) {
    return undefined;
  }
  if (w.offset !== undefined && !isOffset(w.offset)) return undefined;
  if (w.epoch !== undefined && !isEpoch(w.epoch)) return undefined;
  const { b, c, ...m } = w;
  if (b === 1) {
    if (typeof m.payload !== "string") return undefined;
    m.payload = Buffer.from(m.payload, "base64");
  } else if (b === 2) m.payload = untagBinary(m.payload, 0);
  if (c === 1 && m.properties && typeof m.properties.correlationData === "string") {
    m.properties = {
      ...m.properties,
      correlationData: Buffer.from(m.properties.correlationData, "base64"),
    };
  }
  return m as BridgeMessage;
}
