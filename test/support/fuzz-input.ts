/**
 * Seeded inputs for the fuzz test (test/integration/fuzz.test.ts): what a hostile or buggy
 * browser may send with `mqtt.subscribe`, `mqtt.unsubscribe` and `mqtt.publish`. Every value
 * comes with what the bridge may answer: `canSucceed: false` means an `{ ok: true }` ack is a
 * defect. The filters overlap on purpose (a small alphabet under `f/`), so that the broker side
 * sees many subscriptions whose topics intersect.
 */
import { prng } from "./prng";

/** A seeded source of choices. */
export class Dice {
  readonly next: () => number;

  constructor(seed: number) {
    this.next = prng(seed);
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(list: readonly T[]): T {
    return list[this.int(list.length)];
  }

  /** Picks a key of `weights` with probability proportional to its weight. */
  weighted<K extends string>(weights: Readonly<Record<K, number>>): K {
    const entries = Object.entries(weights) as [K, number][];
    let x = this.next() * entries.reduce((s, [, w]) => s + w, 0);
    for (const [k, w] of entries) {
      x -= w;
      if (x < 0) return k;
    }
    return entries[entries.length - 1][0];
  }
}

/** Filters sockets may subscribe to (allowed: `f/…` and `g/…`), overlapping each other. */
export const ALLOWED_FILTERS = [
  "f/a",
  "f/b",
  "f/+",
  "f/#",
  "f/a/b",
  "f/+/b",
  "f/a/#",
  "f/+/+",
  "g/x",
  "g/#",
] as const;

/** Valid filters that no socket may subscribe to (but server routes may use). */
export const DENIED_FILTERS = ["#", "+/a", "+/+", "h/#"] as const;

/** Valid, allowed filters with unusual characters or level names. */
export const ODD_FILTERS = [
  "f/😀",
  "f/ ",
  "f/x y",
  "f/\uFEFFbom",
  "f/é/+",
  "f//",
  "f/a/+/#",
  "f/__proto__",
  "f/constructor/#",
  "f/hasOwnProperty",
  "f/\u2028",
  "f",
  "f/" + "l".repeat(1022), // exactly limits.topicBytes (1024)
  "f/" + "a/".repeat(30) + "z", // 32 levels: the limit
] as const;

/** Topics sockets publish to: under `f/` and `g/` (allowed), `h/` (denied). */
export const TOPICS = [
  "f/a",
  "f/b",
  "f/c",
  "f/a/b",
  "f/c/b",
  "f/a/c",
  "f/a/b/c",
  "f",
  "g/x",
  "g/y/z",
  "f/😀",
  "f/__proto__",
  "h/x",
] as const;

/** Topics with a retained-publish permission. */
export const RETAIN_PREFIX = "f/r/";

/** Whether a socket may subscribe to `filter` (the fuzz's authorization rule). */
export function allowedFilter(filter: string): boolean {
  return filter === "f" || filter === "g" || filter.startsWith("f/") || filter.startsWith("g/");
}

/** Whether a socket may publish to `topic`. */
export function allowedTopic(topic: string): boolean {
  return allowedFilter(topic);
}

/** A value for a socket event and whether the bridge may accept it. */
export interface Input {
  value: unknown;
  canSucceed: boolean;
  /** The valid filter a subscribe/unsubscribe names, when it names one. */
  filter?: string;
}

const BIG = "x".repeat(70_000);
const BIG_UNICODE = "😀".repeat(17_000); // 68,000 bytes in UTF-8, 34,000 UTF-16 units

/** An object with an own `__proto__` key (as `JSON.parse` makes them, and as the wire carries). */
function withProto(rest: Record<string, unknown>, proto: unknown): Record<string, unknown> {
  return JSON.parse(
    JSON.stringify({ ...rest, ["__x__"]: proto }).replace('"__x__"', '"__proto__"'),
  ) as Record<string, unknown>;
}

function deep(depth: number): unknown {
  let v: unknown = "f/a";
  for (let i = 0; i < depth; i++) v = { filter: v };
  return v;
}

/** Strings that are not valid filters (or not filters a socket may use at all). */
const INVALID_FILTERS: readonly unknown[] = [
  "",
  "f/#/a",
  "f/a#",
  "f+/a",
  "f/+x",
  "f/\uD800",
  "f/\uDC00x",
  "\uD83D",
  "f/a\u0000",
  "f/\u0001",
  "f/\n",
  "f/\u007F",
  "f/\u0085",
  "f/\uFFFF",
  "f/\uFDD0",
  "f/\uDBFF\uDFFF", // U+10FFFF, a non-character
  "$share/g/f/a",
  "$share//f",
  "$share/g",
  "$queue/f/a",
  "f/" + "a/".repeat(40) + "b",
  "f/" + "l".repeat(1023),
  "f/" + BIG,
  BIG_UNICODE,
];

/** Things that are not filters at all. */
const NOT_STRINGS: readonly unknown[] = [
  null,
  0,
  -1,
  1.5,
  true,
  false,
  [],
  ["f/a"],
  {},
  { filter: 1 },
  { filter: null },
  { filter: ["f/a"] },
  { toString: "f/a" },
  { filter: { filter: "f/a" } },
  deep(60),
  Buffer.from("f/a"),
  new Uint8Array([0x66, 0x2f, 0x61]),
  withProto({}, { filter: "f/a" }),
  withProto({ filter: "f/a" }, { qos: 1 }),
];

/** A subscribe request: mostly overlapping allowed filters, sometimes anything at all. */
export function subscribeInput(d: Dice): Input {
  const kind = d.weighted({ allowed: 60, odd: 8, denied: 5, object: 12, invalid: 9, junk: 6 });
  switch (kind) {
    case "allowed":
    case "odd": {
      const filter = kind === "allowed" ? d.pick(ALLOWED_FILTERS) : d.pick(ODD_FILTERS);
      return { value: filter, canSucceed: true, filter };
    }
    case "denied": {
      // refused, unless server code put the socket in that room already (then a no-op)
      const filter = d.pick(DENIED_FILTERS);
      return { value: filter, canSucceed: false, filter };
    }
    case "object": {
      const filter = d.pick(ALLOWED_FILTERS);
      const qos = d.pick<unknown>([0, 1, 2, 0, 1, undefined, 3, -1, "1", null, 1.5]);
      const good = qos === undefined || qos === 0 || qos === 1 || qos === 2;
      if (d.chance(0.15)) {
        const extra = d.pick(["nl", "rap", "rh", "properties", "subscriptionIdentifier"]);
        return { value: { filter, qos: 1, [extra]: 1 }, canSucceed: false };
      }
      const value = qos === undefined ? { filter } : { filter, qos };
      return good ? { value, canSucceed: true, filter } : { value, canSucceed: false };
    }
    case "invalid":
      return { value: d.pick(INVALID_FILTERS), canSucceed: false };
    default:
      return { value: d.pick(NOT_STRINGS), canSucceed: false };
  }
}

/** An unsubscribe request: any valid filter succeeds (idempotent), anything else fails. */
export function unsubscribeInput(d: Dice): Input {
  const kind = d.weighted({ allowed: 70, odd: 8, denied: 4, object: 6, invalid: 7, junk: 5 });
  switch (kind) {
    case "allowed":
    case "odd":
    case "denied": {
      const filter =
        kind === "allowed"
          ? d.pick(ALLOWED_FILTERS)
          : kind === "odd"
            ? d.pick(ODD_FILTERS)
            : d.pick(DENIED_FILTERS);
      return { value: filter, canSucceed: true, filter };
    }
    case "object":
      // the contract's unsubscribe takes the filter itself, not an object
      return { value: { filter: d.pick(ALLOWED_FILTERS) }, canSucceed: false };
    case "invalid":
      return { value: d.pick(INVALID_FILTERS), canSucceed: false };
    default:
      return { value: d.pick(NOT_STRINGS), canSucceed: false };
  }
}

/** MQTT 5 properties that the bridge accepts (on an MQTT 5 connection). */
function goodProperties(d: Dice): Record<string, unknown> {
  switch (d.int(7)) {
    case 0:
      return { contentType: d.pick(["text/plain", "application/json", "😀/x"]) };
    case 1:
      return { userProperties: withProto({ a: "b", "": "empty" }, "proto-value") };
    case 2:
      return { userProperties: { k: ["1", "2", "3"], "😀": "é" } };
    case 3:
      return { messageExpiryInterval: d.pick([0, 1, 60, 4_294_967_295]) };
    case 4:
      return { responseTopic: "f/resp", correlationData: Buffer.from([0, 1, 2, 255]) };
    case 5:
      return { payloadFormatIndicator: false, contentType: "" };
    default:
      return { correlationData: new Uint8Array(d.int(64)) };
  }
}

/** MQTT 5 properties that the bridge must refuse. */
const BAD_PROPERTIES: readonly unknown[] = [
  { topicAlias: 1 },
  { topicAlias: 0 },
  { subscriptionIdentifier: 5 },
  { subscriptionIdentifier: [1, 2] },
  { correlationData: "a string" },
  { correlationData: 42 },
  { correlationData: [1, 2, 3] },
  { correlationData: { type: "Buffer", data: [1, 2] } },
  { correlationData: null },
  { correlationData: Buffer.alloc(65_536) },
  { messageExpiryInterval: -1 },
  { messageExpiryInterval: 2 ** 33 },
  { messageExpiryInterval: "60" },
  { messageExpiryInterval: 1.5 },
  { userProperties: "x" },
  { userProperties: ["a", "b"] },
  { userProperties: { a: 1 } },
  { userProperties: { a: null } },
  { userProperties: { a: ["1", 2] } },
  { userProperties: { a: { b: "c" } } },
  { userProperties: { "\uD800": "x" } },
  { userProperties: { a: "\u0000" } },
  { userProperties: { [BIG]: "x" } },
  { userProperties: Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}`, "v"])) },
  { userProperties: { "x-socket.io-mqtt-bridge-origin": "someone-else" } },
  { contentType: 5 },
  { contentType: "a\u0000b" },
  { responseTopic: "f/#" },
  { responseTopic: "h/not-allowed" },
  { responseTopic: "" },
  { payloadFormatIndicator: 1 },
  { retainHandling: 2 },
  withProto({}, { topicAlias: 3 }),
  null,
  [],
  "properties",
  42,
];

/** A payload, and whether it is one the bridge accepts (a JSON value, text or bytes ≤ 64 KiB). */
function payloadInput(d: Dice): { value: unknown; ok: boolean } {
  switch (d.int(14)) {
    case 0:
      return { value: BIG, ok: false };
    case 1:
      return { value: Buffer.alloc(70_000, 1), ok: false };
    case 2:
      return { value: Buffer.from([0xff, 0xfe, 0x00, 0xc3, 0x28]), ok: true };
    case 3:
      return { value: { nested: { a: [1, 2, { b: null }] }, "😀": "\u0000" }, ok: true };
    case 4:
      return { value: "lone \uD800 surrogate", ok: false }; // would become U+FFFD silently
    case 5:
      return { value: "", ok: true };
    case 6:
      return { value: [1, "two", false], ok: true };
    case 7:
      return { value: 42, ok: true };
    case 8:
      return { value: null, ok: true };
    case 9:
      return { value: withProto({ a: 1 }, { polluted: true }), ok: true };
    default:
      return { value: `p${d.int(1000)}`, ok: true };
  }
}

/** A publish request; `mqtt5` says whether the bridge's connection speaks MQTT 5. */
export function publishInput(d: Dice, mqtt5: boolean): Input {
  const kind = d.weighted({
    plain: 55,
    props: 12,
    badProps: 8,
    badTopic: 8,
    junk: 5,
    retain: 5,
    qos: 7,
  });
  const topic = d.pick(TOPICS);
  const payload = payloadInput(d);
  const allowed = allowedTopic(topic) && payload.ok;
  switch (kind) {
    case "plain":
      return { value: { topic, payload: payload.value }, canSucceed: allowed };
    case "props": {
      const properties = goodProperties(d);
      return { value: { topic, payload: payload.value, properties }, canSucceed: allowed && mqtt5 };
    }
    case "badProps":
      return {
        value: { topic, payload: "x", properties: d.pick(BAD_PROPERTIES) },
        canSucceed: false,
      };
    case "badTopic":
      return {
        value: { topic: d.pick([...INVALID_FILTERS, "f/+", "f/#", "#"]), payload: 1 },
        canSucceed: false,
      };
    case "retain": {
      const own = d.chance(0.7);
      const t = own ? `${RETAIN_PREFIX}${d.int(4)}` : topic;
      // an empty retained payload clears the state: both kinds travel
      const value = { topic: t, payload: d.chance(0.3) ? "" : `s${d.int(100)}`, retain: true };
      return { value, canSucceed: own };
    }
    case "qos": {
      const qos = d.pick<unknown>([0, 1, 2, 3, -1, "1", null, true]);
      const good = qos === 0 || qos === 1 || qos === 2;
      return { value: { topic, payload: payload.value, qos }, canSucceed: good && allowed };
    }
    default: {
      if (d.chance(0.6)) return { value: d.pick(NOT_STRINGS), canSucceed: false };
      const junk: Input[] = [
        { value: { topic }, canSucceed: false }, // no payload
        { value: { payload: "x" }, canSucceed: false },
        { value: { topic, payload: "x", retain: "yes" }, canSucceed: false },
        { value: { topic, payload: "x", qos: 1, retain: false, extra: 1 }, canSucceed: true },
        { value: withProto({ topic, payload: "x" }, { retain: true }), canSucceed: true },
      ];
      return d.pick(junk);
    }
  }
}
