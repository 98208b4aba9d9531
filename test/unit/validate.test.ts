/**
 * Unit tests for lib/sockets/validate.ts: what a socket sends with `mqtt.publish` / `mqtt.subscribe` is
 * checked against MQTT-RULES.md §1.2 (sections A, B, C for topics and filters; E for QoS, retain
 * and payloads; F for MQTT 5 properties) before MQTT.js ever sees it.
 *
 * Glossary: "3.1.1" / "MQTT 5" is the protocol of the bridge's own broker connection (the
 * `mqtt5` argument of parsePublish), not anything the browser chooses.
 */
import { expect } from "chai";
import { DEFAULT_LIMITS, type Limits } from "../../lib/options";
import { MqttBridgeError } from "../../lib/errors";
import type { ErrorCode } from "../../lib/protocol";
import {
  ORIGIN_PROPERTY,
  checkFilter,
  parsePublish,
  parseQos,
  parseSubscribe,
  topicLimits,
  type ValidPublish,
} from "../../lib/sockets/validate";

const LIMITS: Limits = { ...DEFAULT_LIMITS };

function limits(overrides: Partial<Limits>): Limits {
  return { ...DEFAULT_LIMITS, ...overrides };
}

/** Short printable label for a test name. */
function label(value: unknown): string {
  if (typeof value === "string") {
    const shown = value.length > 30 ? `${value.slice(0, 12)}… (.length ${value.length})` : value;
    return JSON.stringify(shown).replace(
      /[\u007f-\uffff]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
    );
  }
  if (typeof value === "number" || typeof value === "bigint") return String(value);
  if (Buffer.isBuffer(value))
    return `bytes ${value.length > 8 ? value.length : value.toString("hex")}`;
  try {
    return `${typeof value} ${JSON.stringify(value)}`;
  } catch {
    return typeof value;
  }
}

/** Runs fn and returns the MqttBridgeError it throws (fails when it does not throw one). */
function failure(fn: () => unknown): MqttBridgeError {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(MqttBridgeError);
    return err as MqttBridgeError;
  }
  expect.fail("expected an MqttBridgeError");
}

function expectRefused(fn: () => unknown, code: ErrorCode, reasonCode?: number): void {
  const err = failure(fn);
  expect(err.code).to.equal(code);
  if (reasonCode !== undefined) expect(err.reasonCode).to.equal(reasonCode);
}

function publish(raw: Record<string, unknown>, opts: { limits?: Limits; mqtt5?: boolean } = {}) {
  return parsePublish(
    { topic: "t", payload: "", ...raw },
    opts.limits ?? LIMITS,
    opts.mqtt5 ?? true,
  );
}

function props(properties: unknown, payload: unknown = "ok", mqtt5 = true): ValidPublish {
  return publish({ payload, properties }, { mqtt5 });
}

function user(userProperties: unknown): Record<string, string | string[]> {
  return props({ userProperties }).properties!.userProperties!;
}

describe("validate", () => {
  describe("parsePublish: topic names (§1.2 A)", () => {
    const valid: string[] = [
      "a",
      "a/b",
      "/a",
      "a/",
      "/",
      "//",
      " ",
      "a b/c",
      "Sport/Tennis",
      "\u20ac/\u00e9",
      "\u{1F600}",
      "\uFEFFa",
      "$SYS/broker/x", // syntax; $-topics are denied by authorization
      "$share/g/x",
      "$anything",
      "x".repeat(1024),
      "a/".repeat(31) + "b", // 32 levels
    ];
    for (const topic of valid) {
      it(`accepts ${label(topic)} unchanged [MQTT-4.7.3-4]`, () => {
        expect(publish({ topic }).topic).to.equal(topic);
      });
    }

    const invalid: [unknown, string][] = [
      ["", "[MQTT-4.7.3-1]"],
      ["#", "[MQTT-3.3.2-2]"],
      ["+", "[MQTT-3.3.2-2]"],
      ["a/#", "[MQTT-3.3.2-2]"],
      ["a/+", "[MQTT-3.3.2-2]"],
      ["a/+/b", "[MQTT-3.3.2-2]"],
      ["a+", "[MQTT-3.3.2-2]"],
      ["#a", "[MQTT-3.3.2-2]"],
      ["a/b#", "[MQTT-3.3.2-2]"],
      ["a\u0000b", "[MQTT-4.7.3-2]"],
      ["a/\uD800", "[MQTT-1.5.4-1]"],
      ["\uDC00b", "[MQTT-1.5.4-1]"],
      ["a\u0001b", "(policy, §1.5.4)"],
      ["a\u007Fb", "(policy, §1.5.4)"],
      ["a\u0085", "(policy, §1.5.4)"],
      ["a\uFFFF", "(policy, §1.5.4)"],
      ["x".repeat(1025), "(policy: 1024 bytes)"],
      ["\u20ac".repeat(342), "(policy: 1026 bytes in 342 characters)"],
      ["a/".repeat(32) + "b", "(policy: 33 levels)"],
      ["a/".repeat(200) + "b", "(policy: 201 levels)"],
      ["x".repeat(65_536), "[MQTT-4.7.3-3]"],
      ["\u20ac".repeat(21_846), "[MQTT-4.7.3-3]"],
      [null, "[MQTT-3.3.2-1]"],
      [undefined, "[MQTT-3.3.2-1]"],
      [42, "[MQTT-3.3.2-1]"],
      [true, "[MQTT-3.3.2-1]"],
      [[], "[MQTT-3.3.2-1]"],
      [["a"], "[MQTT-3.3.2-1]"],
      [{}, "[MQTT-3.3.2-1]"],
      [{ toString: "x" }, "[MQTT-3.3.2-1]"],
      [{ toString: () => "a" }, "[MQTT-3.3.2-1]"],
      [Buffer.from("a"), "[MQTT-3.3.2-1]"],
    ];
    for (const [topic, rule] of invalid) {
      it(`${rule} refuses ${label(topic)} with INVALID_TOPIC`, () => {
        expectRefused(() => publish({ topic }), "INVALID_TOPIC");
      });
    }

    it("[MQTT-4.7.3-3] accepts 65,535 bytes and refuses 65,538 bytes when the limit is the protocol's", () => {
      const max = limits({ topicBytes: 65_535, topicLevels: 1 });
      expect(publish({ topic: "\u20ac".repeat(21_845) }, { limits: max }).topic).to.have.length(
        21_845,
      );
      expect(publish({ topic: "x".repeat(65_535) }, { limits: max }).topic).to.have.length(65_535);
      expectRefused(
        () => publish({ topic: "\u20ac".repeat(21_846) }, { limits: max }),
        "INVALID_TOPIC",
      );
    });

    it("applies custom topic limits", () => {
      const small = limits({ topicBytes: 5, topicLevels: 2 });
      expect(publish({ topic: "ab/cd" }, { limits: small }).topic).to.equal("ab/cd");
      expectRefused(() => publish({ topic: "abcdef" }, { limits: small }), "INVALID_TOPIC");
      expectRefused(() => publish({ topic: "a/b/c" }, { limits: small }), "INVALID_TOPIC");
    });

    it("maps the limits to topic limits", () => {
      expect(topicLimits(limits({ topicBytes: 7, topicLevels: 3 }))).to.deep.equal({
        maxBytes: 7,
        maxLevels: 3,
      });
    });
  });

  describe("parsePublish: request shape", () => {
    for (const raw of [null, undefined, "t", 42, [], [{ topic: "t", payload: "" }], new Date()]) {
      it(`refuses ${label(raw)} with INVALID_ARGUMENT`, () => {
        expectRefused(() => parsePublish(raw, LIMITS, true), "INVALID_ARGUMENT");
      });
    }

    it("refuses a class instance with INVALID_ARGUMENT", () => {
      class Request {
        topic = "t";
        payload = "";
      }
      expectRefused(() => parsePublish(new Request(), LIMITS, true), "INVALID_ARGUMENT");
    });

    it("accepts a null-prototype object", () => {
      const raw = Object.assign(Object.create(null) as object, { topic: "t", payload: "x" });
      expect(parsePublish(raw, LIMITS, true).topic).to.equal("t");
    });

    it("refuses an object with a prototype of its own (inherited fields)", () => {
      const raw = Object.assign(Object.create({ qos: 2, retain: true }) as object, {
        topic: "t",
        payload: "x",
      });
      expectRefused(() => parsePublish(raw, LIMITS, true), "INVALID_ARGUMENT");
    });

    it("applies the defaults qos 0 and retain false", () => {
      const out = publish({ topic: "a/b", payload: "hi" });
      expect(out.qos).to.equal(0);
      expect(out.retain).to.equal(false);
      expect(out.payload.toString()).to.equal("hi");
      expect(out.properties).to.equal(undefined);
      expect(out.request).to.deep.equal({ topic: "a/b", payload: "hi", qos: 0, retain: false });
    });

    it("ignores dup, topicAlias and unknown top-level keys (never passed on)", () => {
      const out = publish({ dup: true, topicAlias: 1, messageId: 7, cmd: "connect", extra: {} });
      expect(Object.keys(out).sort()).to.deep.equal([
        "payload",
        "qos",
        "request",
        "retain",
        "topic",
      ]);
      expect(Object.keys(out.request).sort()).to.deep.equal(["payload", "qos", "retain", "topic"]);
    });
  });

  describe("parsePublish: qos and retain (§1.2 E)", () => {
    for (const qos of [0, 1, 2] as const) {
      it(`accepts qos ${qos}`, () => {
        expect(publish({ qos }).qos).to.equal(qos);
      });
    }

    for (const qos of [3, -1, 1.5, "1", NaN, null, true, {}, [1]]) {
      it(`[MQTT-3.3.1-4] refuses qos ${label(qos)} with INVALID_ARGUMENT`, () => {
        expectRefused(() => publish({ qos }), "INVALID_ARGUMENT");
      });
    }

    for (const retain of [true, false]) {
      it(`accepts retain ${retain}`, () => {
        expect(publish({ retain }).retain).to.equal(retain);
      });
    }

    for (const retain of ["true", 1, 0, {}]) {
      it(`refuses retain ${label(retain)} with INVALID_ARGUMENT`, () => {
        expectRefused(() => publish({ retain }), "INVALID_ARGUMENT");
      });
    }

    it("refuses retain null with INVALID_ARGUMENT", () => {
      expectRefused(() => publish({ retain: null }), "INVALID_ARGUMENT");
    });

    it("parseQos defaults undefined to 0 and names the field in its message", () => {
      expect(parseQos(undefined)).to.equal(0);
      expect(failure(() => parseQos(3, "subscription qos")).message).to.contain("subscription qos");
    });
  });

  describe("parsePublish: payload (§1.2 E)", () => {
    const small = limits({ payloadBytes: 16 });
    for (const size of [0, 15, 16]) {
      it(`accepts a ${size}-byte payload with a 16-byte limit`, () => {
        expect(publish({ payload: "x".repeat(size) }, { limits: small }).payload).to.have.length(
          size,
        );
      });
    }

    it("refuses a 17-byte payload with PAYLOAD_TOO_LARGE and reason code 0x95", () => {
      expectRefused(
        () => publish({ payload: "x".repeat(17) }, { limits: small }),
        "PAYLOAD_TOO_LARGE",
        0x95,
      );
    });

    it("counts bytes, not characters", () => {
      expectRefused(
        () => publish({ payload: "\u20ac".repeat(6) }, { limits: small }),
        "PAYLOAD_TOO_LARGE",
      );
      expectRefused(
        () => publish({ payload: { text: "x".repeat(10) } }, { limits: small }),
        "PAYLOAD_TOO_LARGE",
      );
    });

    it("applies the default 65,536-byte limit", () => {
      expect(publish({ payload: Buffer.alloc(65_536) }).payload).to.have.length(65_536);
      expectRefused(() => publish({ payload: Buffer.alloc(65_537) }), "PAYLOAD_TOO_LARGE", 0x95);
    });

    const accepted: [string, unknown, string][] = [
      ["a string", "h\u00e9", "68c3a9"],
      ["a Buffer", Buffer.from([1, 2]), "0102"],
      ["an ArrayBuffer", new Uint8Array([3, 4]).buffer, "0304"],
      ["a Uint8Array subarray", new Uint8Array([0, 5, 6, 0]).subarray(1, 3), "0506"],
      ["an object, as JSON", { a: 1 }, Buffer.from('{"a":1}').toString("hex")],
      ["null, as JSON", null, Buffer.from("null").toString("hex")],
    ];
    for (const [what, payload, bytes] of accepted) {
      it(`accepts ${what}`, () => {
        expect(publish({ payload }).payload.toString("hex")).to.equal(bytes);
      });
    }

    for (const [what, payload] of [
      ["a missing payload", undefined],
      ["a function", () => 1],
      ["a BigInt", 1n],
      ["a lone surrogate", "\uD800"],
    ] as const) {
      it(`refuses ${what} with INVALID_ARGUMENT`, () => {
        expectRefused(() => publish({ payload }), "INVALID_ARGUMENT");
      });
    }
  });

  describe("parsePublish: MQTT 5 properties (§1.2 F)", () => {
    describe("messageExpiryInterval", () => {
      for (const v of [0, 1, 4_294_967_295]) {
        it(`accepts ${v}`, () => {
          expect(props({ messageExpiryInterval: v }).properties).to.deep.equal({
            messageExpiryInterval: v,
          });
        });
      }
      for (const v of [-1, 4_294_967_296, 1.5, "10", NaN, Infinity, null, true]) {
        it(`refuses ${label(v)} with INVALID_ARGUMENT`, () => {
          expectRefused(() => props({ messageExpiryInterval: v }), "INVALID_ARGUMENT");
        });
      }
    });

    describe("payloadFormatIndicator", () => {
      it("accepts true with a UTF-8 payload", () => {
        expect(props({ payloadFormatIndicator: true }, "ok").properties).to.deep.equal({
          payloadFormatIndicator: true,
        });
      });

      it("[MQTT-3.3.2-4] refuses true with payload bytes FF FE: reason code 0x99", () => {
        expectRefused(
          () => props({ payloadFormatIndicator: true }, Buffer.from([0xff, 0xfe])),
          "INVALID_ARGUMENT",
          0x99,
        );
      });

      it("[MQTT-3.3.2-4] refuses true with a CESU-8 surrogate payload: reason code 0x99", () => {
        expectRefused(
          () => props({ payloadFormatIndicator: true }, Buffer.from("eda080", "hex")),
          "INVALID_ARGUMENT",
          0x99,
        );
      });

      it("accepts false with bytes that are not UTF-8", () => {
        expect(
          props({ payloadFormatIndicator: false }, Buffer.from([0xff, 0xfe])).properties,
        ).to.deep.equal({ payloadFormatIndicator: false });
      });

      for (const v of ["true", 1, null]) {
        it(`refuses ${label(v)} with INVALID_ARGUMENT`, () => {
          expectRefused(() => props({ payloadFormatIndicator: v }), "INVALID_ARGUMENT");
        });
      }
    });

    describe("contentType", () => {
      for (const v of ["application/json", "", "text/plain; charset=utf-8"]) {
        it(`accepts ${label(v)}`, () => {
          expect(props({ contentType: v }).properties).to.deep.equal({ contentType: v });
        });
      }
      for (const v of ["a\u0000", "\uD800", "a\uDC00", "x".repeat(65_536), 42, null, ["a"]]) {
        it(`[MQTT-1.5.4-1..3] refuses ${label(v)} with INVALID_ARGUMENT`, () => {
          expectRefused(() => props({ contentType: v }), "INVALID_ARGUMENT");
        });
      }
    });

    describe("responseTopic", () => {
      for (const v of ["reply/user42", "$SYS/x"]) {
        it(`[MQTT-3.3.2-13] accepts ${label(v)} (authorization decides separately)`, () => {
          expect(props({ responseTopic: v }).properties).to.deep.equal({ responseTopic: v });
        });
      }
      const bad: [unknown, string][] = [
        ["reply/#", "[MQTT-3.3.2-14]"],
        ["reply/+", "[MQTT-3.3.2-14]"],
        ["+", "[MQTT-3.3.2-14]"],
        ["", "[MQTT-4.7.3-1]"],
        ["a\u0000b", "[MQTT-4.7.3-2]"],
        ["a/\uD800", "[MQTT-1.5.4-1]"],
        ["x".repeat(1025), "(policy: 1024 bytes)"],
        ["a/".repeat(32) + "b", "(policy: 33 levels)"],
        [42, "[MQTT-3.3.2-13]"],
        [null, "[MQTT-3.3.2-13]"],
      ];
      for (const [v, rule] of bad) {
        it(`${rule} refuses ${label(v)} with INVALID_TOPIC`, () => {
          expectRefused(() => props({ responseTopic: v }), "INVALID_TOPIC");
        });
      }
    });

    describe("correlationData", () => {
      for (const [what, v] of [
        ["16 bytes", Buffer.alloc(16, 1)],
        ["a Uint8Array", new Uint8Array([1, 2])],
        ["an ArrayBuffer", new Uint8Array([1, 2]).buffer],
        ["65,535 bytes", Buffer.alloc(65_535)],
        ["0 bytes", Buffer.alloc(0)],
      ] as const) {
        it(`accepts ${what}`, () => {
          const out = props({ correlationData: v }).properties!.correlationData!;
          expect(Buffer.isBuffer(out)).to.equal(true);
          expect(out.length).to.equal(v.byteLength);
        });
      }

      it("keeps the offset of a subarray", () => {
        const v = new Uint8Array([0, 7, 8, 0]).subarray(1, 3);
        const out = props({ correlationData: v }).properties!.correlationData!;
        expect(out.toString("hex")).to.equal("0708");
      });

      for (const [what, v] of [
        ["65,536 bytes", Buffer.alloc(65_536)],
        ["an object", { 0: 1, length: 1 }],
        ["a string", "abc"],
        ["an array of numbers", [1, 2]],
        ["null", null],
      ] as const) {
        it(`refuses ${what} with INVALID_ARGUMENT`, () => {
          expectRefused(() => props({ correlationData: v }), "INVALID_ARGUMENT");
        });
      }
    });

    describe("userProperties", () => {
      it('[MQTT-3.3.2-17] accepts {a:"1"}', () => {
        expect({ ...user({ a: "1" }) }).to.deep.equal({ a: "1" });
      });

      it('[MQTT-3.3.2-18] keeps repeated values {a:["1","2"]} in order', () => {
        expect({ ...user({ a: ["1", "2"], b: "3", c: ["z", "y", "x"] }) }).to.deep.equal({
          a: ["1", "2"],
          b: "3",
          c: ["z", "y", "x"],
        });
      });

      it("keeps the order of the names", () => {
        expect(Object.keys(user({ z: "1", a: "2", m: "3" }))).to.deep.equal(["z", "a", "m"]);
      });

      it("accepts an empty object, and empty names and values", () => {
        expect({ ...user({}) }).to.deep.equal({});
        expect({ ...user({ "": "" }) }).to.deep.equal({ "": "" });
      });

      it("returns a null-prototype object", () => {
        expect(Object.getPrototypeOf(user({ a: "1" }))).to.equal(null);
      });

      it("keeps __proto__, constructor and prototype as plain data", () => {
        const raw = JSON.parse(
          '{"__proto__": "1", "constructor": ["2", "3"], "prototype": "4", "toString": "5"}',
        ) as unknown;
        const out = user(raw);
        expect(Object.getPrototypeOf(out)).to.equal(null);
        expect(Object.keys(out)).to.deep.equal([
          "__proto__",
          "constructor",
          "prototype",
          "toString",
        ]);
        expect(Object.getOwnPropertyDescriptor(out, "__proto__")?.value).to.equal("1");
        expect(out.constructor).to.deep.equal(["2", "3"]);
        expect(out.prototype).to.equal("4");
        expect(Object.getOwnPropertyDescriptor(out, "toString")?.value).to.equal("5");
        expect(Object.getPrototypeOf({})).to.equal(Object.prototype);
      });

      it("keeps an object __proto__ value as data without changing prototypes", () => {
        const raw = JSON.parse('{"__proto__": ["x"]}') as unknown;
        const out = user(raw);
        expect(Object.getPrototypeOf(out)).to.equal(null);
        expect(Object.getOwnPropertyDescriptor(out, "__proto__")?.value).to.deep.equal(["x"]);
      });

      it("accepts 32 properties (the default limit), counting repeated values", () => {
        const many = Object.fromEntries(Array.from({ length: 32 }, (_, i) => [`k${i}`, "v"]));
        expect(Object.keys(user(many))).to.have.length(32);
        expect(user({ a: Array.from({ length: 32 }, () => "v") }).a).to.have.length(32);
      });

      it("refuses a 33rd property (policy) with INVALID_ARGUMENT", () => {
        const many = Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, "v"]));
        expectRefused(() => user(many), "INVALID_ARGUMENT");
        expectRefused(() => user({ a: Array.from({ length: 33 }, () => "v") }), "INVALID_ARGUMENT");
        expectRefused(
          () =>
            user({
              a: Array.from({ length: 20 }, () => "v"),
              b: Array.from({ length: 13 }, () => "v"),
            }),
          "INVALID_ARGUMENT",
        );
      });

      it("refuses 50,000 properties with INVALID_ARGUMENT", () => {
        const huge: Record<string, string> = {};
        for (let i = 0; i < 50_000; i++) huge[`k${i}`] = "v";
        expectRefused(() => user(huge), "INVALID_ARGUMENT");
        expectRefused(() => user({ a: new Array<string>(50_000).fill("v") }), "INVALID_ARGUMENT");
      });

      it("accepts 8,192 bytes of names and values and refuses 8,193 (policy)", () => {
        expect(user({ k: "x".repeat(8191) }).k).to.have.length(8191);
        expectRefused(() => user({ k: "x".repeat(8192) }), "INVALID_ARGUMENT");
        // the name counts once per value
        expectRefused(() => user({ kk: ["x".repeat(4095), "x".repeat(4095)] }), "INVALID_ARGUMENT");
        expect(user({ k: ["x".repeat(4095), "x".repeat(4095)] }).k).to.have.length(2);
      });

      it("counts bytes, not characters", () => {
        expectRefused(() => user({ k: "\u20ac".repeat(2731) }), "INVALID_ARGUMENT");
      });

      it("applies custom limits", () => {
        const small = limits({ userProperties: 2, userPropertyBytes: 4 });
        const parse = (u: unknown) =>
          publish({ properties: { userProperties: u } }, { limits: small });
        expect(parse({ a: "1", b: "2" }).properties?.userProperties).to.have.keys("a", "b");
        expectRefused(() => parse({ a: "1", b: "2", c: "3" }), "INVALID_ARGUMENT");
        expectRefused(() => parse({ ab: "123" }), "INVALID_ARGUMENT");
      });

      const bad: [string, unknown][] = [
        ["a number value", { a: 1 }],
        ["a null value", { a: null }],
        ["an object value", { a: {} }],
        ["a non-string in an array", { a: ["1", 2] }],
        ["a nested array", { a: [["1"]] }],
        ["NUL in a name", { "a\u0000": "1" }],
        ["NUL in a value", { a: "1\u0000" }],
        ["a lone surrogate name", { "\uD800": "1" }],
        ["a lone surrogate value", { a: "\uDC00" }],
        ["a string", "a=1"],
        ["an array of pairs", [["a", "1"]]],
        ["null", null],
        ["a Map", new Map([["a", "1"]])],
      ];
      for (const [what, v] of bad) {
        it(`[MQTT-3.3.2-17] refuses ${what} with INVALID_ARGUMENT`, () => {
          expectRefused(() => user(v), "INVALID_ARGUMENT");
        });
      }

      it(`refuses the reserved origin property ${ORIGIN_PROPERTY}`, () => {
        expectRefused(() => user({ [ORIGIN_PROPERTY]: "someone-else" }), "INVALID_ARGUMENT");
        expectRefused(() => user({ a: "1", [ORIGIN_PROPERTY]: ["x"] }), "INVALID_ARGUMENT");
      });
    });

    describe("refused and unknown properties", () => {
      for (const key of ["topicAlias", "subscriptionIdentifier", "maximumPacketSize", "foo"]) {
        it(`[MQTT-3.3.2-7], [MQTT-3.3.4-6] refuses properties.${key}`, () => {
          expectRefused(() => props({ [key]: 1 }), "INVALID_ARGUMENT");
        });
      }

      for (const v of [null, "x", [], 1, new Map()]) {
        it(`refuses properties ${label(v)}`, () => {
          expectRefused(() => props(v), "INVALID_ARGUMENT");
        });
      }

      it("refuses a __proto__ key among the properties", () => {
        const raw = JSON.parse('{"__proto__": {"topicAlias": 1}}') as unknown;
        expectRefused(() => props(raw), "INVALID_ARGUMENT");
      });
    });

    it("keeps every allowed property together", () => {
      const out = props(
        {
          contentType: "text/plain",
          userProperties: { a: "1" },
          messageExpiryInterval: 60,
          responseTopic: "reply/1",
          correlationData: Buffer.from("id"),
          payloadFormatIndicator: true,
        },
        "ok",
      );
      const p = out.properties!;
      expect(Object.keys(p).sort()).to.deep.equal([
        "contentType",
        "correlationData",
        "messageExpiryInterval",
        "payloadFormatIndicator",
        "responseTopic",
        "userProperties",
      ]);
      expect(out.request.properties).to.equal(p);
    });

    describe("over an MQTT 3.1.1 broker connection", () => {
      for (const [what, p] of [
        ["contentType", { contentType: "a/b" }],
        ["userProperties", { userProperties: { a: "1" } }],
        ["messageExpiryInterval", { messageExpiryInterval: 0 }],
        ["payloadFormatIndicator false", { payloadFormatIndicator: false }],
        ["responseTopic", { responseTopic: "r" }],
        ["correlationData", { correlationData: Buffer.from("x") }],
      ] as const) {
        it(`refuses ${what} with INVALID_ARGUMENT`, () => {
          expectRefused(() => props(p, "ok", false), "INVALID_ARGUMENT");
        });
      }

      it("accepts an empty properties object and a publish without properties", () => {
        expect(props({}, "ok", false).topic).to.equal("t");
        expect(publish({}, { mqtt5: false }).properties).to.equal(undefined);
      });
    });
  });

  describe("parsePublish returns fresh objects", () => {
    it("is not changed by later changes to the input", () => {
      const correlationData = Buffer.from("abcd");
      const raw = {
        topic: "a/b",
        payload: { n: 1 },
        qos: 1,
        retain: true,
        properties: {
          contentType: "c",
          userProperties: { a: "1", r: ["x", "y"] },
          correlationData,
        },
      };
      const out = parsePublish(raw, LIMITS, true);
      expect(out).not.to.equal(raw);
      expect(out.request).not.to.equal(raw);
      expect(out.properties).not.to.equal(raw.properties);
      expect(out.properties!.userProperties).not.to.equal(raw.properties.userProperties);

      raw.topic = "other";
      raw.qos = 2;
      raw.retain = false;
      raw.payload.n = 2;
      raw.properties.contentType = "changed";
      raw.properties.userProperties.a = "changed";
      raw.properties.userProperties.r.push("z");
      raw.properties.userProperties.r[0] = "changed";
      correlationData.fill(0);

      expect(out.topic).to.equal("a/b");
      expect(out.qos).to.equal(1);
      expect(out.retain).to.equal(true);
      expect(out.payload.toString()).to.equal('{"n":1}');
      expect(out.request.topic).to.equal("a/b");
      expect(out.properties!.contentType).to.equal("c");
      expect({ ...out.properties!.userProperties }).to.deep.equal({ a: "1", r: ["x", "y"] });
      expect(out.properties!.correlationData!.toString()).to.equal("abcd");
    });

    it("copies binary payloads, so later changes to the input do not reach the broker", () => {
      for (const input of [Buffer.from("hello"), new Uint8Array(Buffer.from("hello"))]) {
        const out = parsePublish({ topic: "t", payload: input }, LIMITS, true);
        input[0] = 0x4a;
        expect(out.payload.toString()).to.equal("hello");
      }
    });
  });

  describe("parseSubscribe", () => {
    it("accepts a filter string with qos 0", () => {
      expect(parseSubscribe("sensors/+/temp", LIMITS)).to.deep.equal({
        filter: "sensors/+/temp",
        qos: 0,
      });
    });

    for (const qos of [0, 1, 2] as const) {
      it(`accepts { filter, qos: ${qos} }`, () => {
        expect(parseSubscribe({ filter: "a/#", qos }, LIMITS)).to.deep.equal({
          filter: "a/#",
          qos,
        });
      });
    }

    it("accepts a null-prototype request object", () => {
      const raw = Object.assign(Object.create(null) as object, { filter: "a", qos: 1 });
      expect(parseSubscribe(raw, LIMITS)).to.deep.equal({ filter: "a", qos: 1 });
    });

    it("returns a fresh object, not changed by later changes to the input", () => {
      const raw = { filter: "a/+", qos: 1 };
      const out = parseSubscribe(raw, LIMITS);
      expect(out).not.to.equal(raw);
      raw.filter = "#";
      raw.qos = 2;
      expect(out).to.deep.equal({ filter: "a/+", qos: 1 });
    });

    for (const qos of [3, -1, 1.5, "1", null, true]) {
      it(`[MQTT-3.8.3-4] refuses qos ${label(qos)} with INVALID_ARGUMENT`, () => {
        expectRefused(() => parseSubscribe({ filter: "a", qos }, LIMITS), "INVALID_ARGUMENT");
      });
    }

    for (const key of [
      "nl",
      "rap",
      "rh",
      "retainHandling",
      "subscriptionIdentifier",
      "properties",
      "topic",
    ]) {
      it(`refuses the unknown option ${key} with INVALID_ARGUMENT`, () => {
        expectRefused(
          () => parseSubscribe({ filter: "a", [key]: true }, LIMITS),
          "INVALID_ARGUMENT",
        );
      });
    }

    it("refuses a __proto__ key in the request", () => {
      const raw = JSON.parse('{"filter": "a", "__proto__": {"qos": 2}}') as unknown;
      expectRefused(() => parseSubscribe(raw, LIMITS), "INVALID_ARGUMENT");
    });

    for (const raw of [42, null, undefined, true, [], ["a"], Buffer.from("a")]) {
      it(`refuses ${label(raw)} with INVALID_ARGUMENT`, () => {
        expectRefused(() => parseSubscribe(raw, LIMITS), "INVALID_ARGUMENT");
      });
    }

    for (const raw of [{ filter: 42 }, { qos: 1 }, { filter: null }, { filter: ["a"] }]) {
      it(`refuses ${label(raw)} with INVALID_FILTER`, () => {
        expectRefused(() => parseSubscribe(raw, LIMITS), "INVALID_FILTER", 0x8f);
      });
    }

    it("[MQTT-3.8.3-4] refuses { filter: $share/g/t, nl: true }", () => {
      const err = failure(() => parseSubscribe({ filter: "$share/g/t", nl: true }, LIMITS));
      expect(err.code).to.be.oneOf(["INVALID_ARGUMENT", "INVALID_FILTER"]);
    });
  });

  describe("checkFilter: topic filters (§1.2 B)", () => {
    const valid = [
      "#",
      "+",
      "+/+",
      "/+",
      "/#",
      "+/tennis/#",
      "sport/tennis/#",
      "sport/+/player1",
      "a//b",
      "a/+/+/#",
      "sport/",
      "$SYS/#", // syntax; denied by authorization
      "$SYS/+",
      "$share", // not a shared subscription: no "/"
      "\uFEFFa",
      "x".repeat(1024),
      "+/".repeat(31) + "#", // 32 levels
    ];
    for (const filter of valid) {
      it(`accepts ${label(filter)}`, () => {
        expect(checkFilter(filter, LIMITS)).to.equal(filter);
        expect(parseSubscribe(filter, LIMITS).filter).to.equal(filter);
      });
    }

    const invalid: [unknown, string][] = [
      ["", "[MQTT-4.7.3-1]"],
      ["sport/tennis#", "[MQTT-4.7.1-1]"],
      ["sport/tennis/#/ranking", "[MQTT-4.7.1-1]"],
      ["a/#/b", "[MQTT-4.7.1-1]"],
      ["#/", "[MQTT-4.7.1-1]"],
      ["##", "[MQTT-4.7.1-1]"],
      ["#a", "[MQTT-4.7.1-1]"],
      ["a#", "[MQTT-4.7.1-1]"],
      ["sport+", "[MQTT-4.7.1-2]"],
      ["sport/+tennis", "[MQTT-4.7.1-2]"],
      ["a+", "[MQTT-4.7.1-2]"],
      ["+a", "[MQTT-4.7.1-2]"],
      ["a/+b", "[MQTT-4.7.1-2]"],
      ["++", "[MQTT-4.7.1-2]"],
      ["ab+", "[MQTT-4.7.1-2]"],
      ["a/\u0000", "[MQTT-4.7.3-2]"],
      ["a/\uD800", "[MQTT-1.5.4-1]"],
      ["a\u0001", "(policy, §1.5.4)"],
      ["x".repeat(65_536), "[MQTT-4.7.3-3]"],
      ["/".repeat(65_535), "(mosquitto #1412 input; level cap)"],
      ["x".repeat(1025), "(policy: 1024 bytes)"],
      ["+/".repeat(32) + "#", "(policy: 33 levels)"],
      [42, "[MQTT-3.8.3-1]"],
      [null, "[MQTT-3.8.3-1]"],
      [{}, "[MQTT-3.8.3-1]"],
    ];
    for (const [filter, rule] of invalid) {
      it(`${rule} refuses ${label(filter)} with INVALID_FILTER, reason code 0x8F`, () => {
        expectRefused(() => checkFilter(filter, LIMITS), "INVALID_FILTER", 0x8f);
      });
    }
  });

  describe("checkFilter: shared subscriptions (§1.2 C)", () => {
    for (const filter of [
      "$share/g/a/b",
      "$share/consumer1/sport/tennis/+",
      "$share/consumer1//finance",
      "$share/g/#",
    ]) {
      it(`refuses the valid shared subscription ${label(filter)}: 0x9E, not supported`, () => {
        expectRefused(() => checkFilter(filter, LIMITS), "INVALID_FILTER", 0x9e);
        expectRefused(() => parseSubscribe({ filter, qos: 1 }, LIMITS), "INVALID_FILTER", 0x9e);
      });
    }

    for (const filter of [
      "$share/",
      "$share//",
      "$share//t",
      "$share/g",
      "$share/g/",
      "$share/p+q/1",
      "$share/+n/1",
      "$share/x#y/1",
      "$share/#/1",
      "$share/g/a#",
      "$share/g/sport+",
      "$share/g1/$share/t",
    ]) {
      it(`[MQTT-4.8.2-1], [MQTT-4.8.2-2] refuses the malformed ${label(filter)}: 0x8F`, () => {
        expectRefused(() => checkFilter(filter, LIMITS), "INVALID_FILTER", 0x8f);
      });
    }

    for (const filter of ["$queue/t", "$queue/a/#"]) {
      it(`refuses the legacy shared subscription ${label(filter)} (policy)`, () => {
        expectRefused(() => checkFilter(filter, LIMITS), "INVALID_FILTER", 0x9e);
      });
    }
  });
});
