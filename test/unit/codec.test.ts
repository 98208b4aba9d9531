/**
 * Unit tests for lib/routing/codec.ts: encodePayload (what a socket publishes → bytes) and createDecoder
 * (broker bytes → what sockets receive). Nothing may be silently changed or lost either way.
 */
import { expect } from "chai";
import type { IPublishPacket } from "mqtt";
import { createDecoder, encodePayload, parseJson } from "../../lib/routing/codec";
import { prng } from "../support/prng";

function packet(payload: Buffer): IPublishPacket {
  return { cmd: "publish", topic: "t", payload, qos: 0, retain: false, dup: false };
}

function decode(mode: Parameters<typeof createDecoder>[0], payload: Buffer) {
  return createDecoder(mode)(payload, packet(payload));
}

function hex(b: Buffer | undefined): string | undefined {
  return b?.toString("hex");
}

describe("codec", () => {
  describe("encodePayload", () => {
    describe("strings as UTF-8", () => {
      const cases: [string, string, string][] = [
        ["an empty string", "", ""],
        ["ASCII", "hello", "68656c6c6f"],
        ["accented letters", "h\u00e9", "68c3a9"],
        ["the euro sign", "\u20ac", "e282ac"],
        ["an emoji (surrogate pair)", "\u{1F600}", "f09f9880"],
        ["a leading BOM, kept [MQTT-1.5.4-3]", "\uFEFFa", "efbbbf61"],
        ["U+0000 (payloads are binary)", "a\u0000b", "610062"],
        ["JSON-looking text, as text", '{"a":1}', "7b2261223a317d"],
      ];
      for (const [what, input, bytes] of cases) {
        it(`encodes ${what}`, () => {
          expect(hex(encodePayload(input))).to.equal(bytes);
        });
      }
    });

    describe("lone surrogates refused [MQTT-1.5.4-1]", () => {
      for (const input of ["\uD800", "a\uD800", "\uDC00b", "\uDFFF\uD800", "x\uD83D"]) {
        it(`refuses ${JSON.stringify(input)} instead of rewriting it to U+FFFD`, () => {
          expect(encodePayload(input)).to.equal(undefined);
        });
      }
    });

    describe("binary as is", () => {
      it("encodes a Buffer", () => {
        expect(hex(encodePayload(Buffer.from([0, 1, 0xff])))).to.equal("0001ff");
      });

      it("encodes a Buffer slice with its offset", () => {
        expect(encodePayload(Buffer.from("abcdef").subarray(1, 3))?.toString()).to.equal("bc");
      });

      it("encodes an ArrayBuffer", () => {
        expect(hex(encodePayload(new Uint8Array([1, 2, 3]).buffer))).to.equal("010203");
      });

      it("encodes an empty ArrayBuffer", () => {
        expect(hex(encodePayload(new ArrayBuffer(0)))).to.equal("");
      });

      it("encodes a Uint8Array", () => {
        expect(hex(encodePayload(new Uint8Array([9, 8, 7])))).to.equal("090807");
      });

      it("encodes a Uint8Array subarray with its offset and length", () => {
        const view = new Uint8Array([0, 1, 2, 3, 4, 5]).subarray(2, 4);
        expect(hex(encodePayload(view))).to.equal("0203");
      });

      it("encodes a DataView with its offset and length", () => {
        const view = new DataView(new Uint8Array([0, 1, 2, 3, 4, 5]).buffer, 1, 3);
        expect(hex(encodePayload(view))).to.equal("010203");
      });

      it("encodes other typed arrays as their bytes", () => {
        expect(hex(encodePayload(new Uint16Array([0x0101, 0x0202])))).to.equal("01010202");
      });
    });

    describe("other values as JSON", () => {
      const cases: [string, unknown, string][] = [
        ["an object", { a: 1, b: "x" }, '{"a":1,"b":"x"}'],
        ["an empty object", {}, "{}"],
        ["an array", [1, "two", null], '[1,"two",null]'],
        ["an integer", 42, "42"],
        ["zero", 0, "0"],
        ["a negative fraction", -1.5, "-1.5"],
        ["null", null, "null"],
        ["true", true, "true"],
        ["false", false, "false"],
        ["nested objects", { a: { b: [1, { c: true }] } }, '{"a":{"b":[1,{"c":true}]}}'],
        ["an object with a toJSON", { toJSON: () => "x" }, '"x"'],
        ["an own __proto__ key, as data", JSON.parse('{"__proto__":1}'), '{"__proto__":1}'],
      ];
      for (const [what, input, json] of cases) {
        it(`encodes ${what}`, () => {
          expect(encodePayload(input)?.toString("utf8")).to.equal(json);
        });
      }
    });

    describe("values that cannot be encoded without change are refused", () => {
      const cycle: Record<string, unknown> = { a: 1 };
      cycle.self = cycle;
      const cases: [string, unknown][] = [
        ["undefined", undefined],
        ["a function", () => 1],
        ["a symbol", Symbol("s")],
        ["a BigInt", 10n],
        ["a nested BigInt", { a: 10n }],
        ["a cycle", cycle],
        [
          "an object whose toJSON throws",
          {
            toJSON() {
              throw new Error("no");
            },
          },
        ],
      ];
      for (const [what, input] of cases) {
        it(`refuses ${what}`, () => {
          expect(encodePayload(input)).to.equal(undefined);
        });
      }
    });
  });

  describe('createDecoder("auto")', () => {
    const cases: [string, string, unknown][] = [
      ["a JSON object", '{"a":1,"b":[true,null]}', { a: 1, b: [true, null] }],
      ["a JSON array", "[1,2]", [1, 2]],
      ["a JSON number", "42", 42],
      ["a negative JSON number", "-1.5", -1.5],
      ["JSON true", "true", true],
      ["JSON null", "null", null],
      ["a JSON string", '"hi"', "hi"],
      ['"007" as text (a number would drop the zeros)', "007", "007"],
      ['"1e400" as text (it would become Infinity)', "1e400", "1e400"],
      ['"1.0" as text', "1.0", "1.0"],
      ['"-0" as text', "-0", "-0"],
      [
        "a big integer as text (it would lose digits)",
        "12345678901234567890",
        "12345678901234567890",
      ],
      ["plain text", "hello world", "hello world"],
      ["text that starts like JSON", "{not json", "{not json"],
      ["text that starts with a digit", "3 apples", "3 apples"],
      ["text with an emoji", "hi \u{1F600}", "hi \u{1F600}"],
      ["text with a BOM, kept", "\uFEFFhello", "\uFEFFhello"],
      ["a BOM before JSON, as text", '\uFEFF{"a":1}', '\uFEFF{"a":1}'],
      ["an empty payload as an empty string", "", ""],
    ];
    for (const [what, text, value] of cases) {
      it(`decodes ${what}`, () => {
        const out = decode("auto", Buffer.from(text, "utf8"));
        expect(out).to.deep.equal({ value, fallback: false });
      });
    }

    for (const bytes of ["ff", "c328", "eda080", "c0af", "f4908080", "7b2261223aff7d"]) {
      it(`passes invalid UTF-8 ${bytes} on as the same bytes`, () => {
        const payload = Buffer.from(bytes, "hex");
        const out = decode("auto", payload);
        expect(Buffer.isBuffer(out.value)).to.equal(true);
        expect((out.value as Buffer).toString("hex")).to.equal(bytes);
        expect(out.fallback).to.equal(false);
      });
    }

    it("parses __proto__ as plain data without polluting Object.prototype", () => {
      const out = decode("auto", Buffer.from('{"__proto__":{"polluted":1},"a":2}'));
      const value = out.value as Record<string, unknown>;
      expect(Object.getPrototypeOf(value)).to.equal(Object.prototype);
      expect(Object.prototype.hasOwnProperty.call(value, "__proto__")).to.equal(false);
      expect(value.polluted).to.equal(undefined);
      expect(value.a).to.equal(2);
      expect(({} as Record<string, unknown>).polluted).to.equal(undefined);
    });

    it("drops a nested __proto__ key", () => {
      const out = decode("auto", Buffer.from('{"a":{"__proto__":{"x":1}}}'));
      const inner = (out.value as { a: object }).a;
      expect(Object.prototype.hasOwnProperty.call(inner, "__proto__")).to.equal(false);
      expect(Object.getPrototypeOf(inner)).to.equal(Object.prototype);
    });

    it("drops a constructor key that carries a prototype", () => {
      const out = decode("auto", Buffer.from('{"constructor":{"prototype":{"x":1}},"a":1}'));
      expect(out).to.deep.equal({ value: { a: 1 }, fallback: false });
      expect(Object.prototype.hasOwnProperty.call(out.value, "constructor")).to.equal(false);
    });

    it("keeps a constructor key without a prototype, and the text __proto__ as a value", () => {
      const out = decode("auto", Buffer.from('{"constructor":"x","k":"__proto__"}'));
      expect(out).to.deep.equal({ value: { constructor: "x", k: "__proto__" }, fallback: false });
    });

    it("drops __proto__ and constructor keys spelled with JSON escapes", () => {
      const proto = decode("auto", Buffer.from('{"\\u005f_proto__":{"polluted":1}}'));
      expect(Object.prototype.hasOwnProperty.call(proto.value, "__proto__")).to.equal(false);
      const ctor = decode("auto", Buffer.from('{"\\u0063onstructor":{"prototype":{"x":1}}}'));
      expect(Object.prototype.hasOwnProperty.call(ctor.value, "constructor")).to.equal(false);
    });

    it("returns what encodePayload produced for JSON values (round trip)", () => {
      for (const value of [{ a: [1, "b", null] }, [true, false], 0, 7, -3.25, null, true, "s"]) {
        // a string is sent as its text ("s", not "\"s\""), and "s" is not JSON: it stays text
        expect(decode("auto", encodePayload(value)!).value).to.deep.equal(value);
      }
    });

    describe("numbers inside JSON: parsed when they survive, else the whole payload as text", () => {
      const survive: [string, string, unknown][] = [
        [
          "a double as JavaScript writes it (17 digits)",
          '{"v":0.30000000000000004}',
          { v: 0.1 + 0.2 },
        ],
        ["another 17-digit double", '{"t":20.428571428571427}', { t: 143 / 7 }],
        ["2^53 (exact)", "[9007199254740992]", [2 ** 53]],
        ["the largest double", "[1.7976931348623157e308]", [Number.MAX_VALUE]],
        ["the smallest subnormal", "[5e-324]", [Number.MIN_VALUE]],
        ["1.0 and 1e0 inside an object", '{"a":1.0,"b":1e0,"c":-0.50}', { a: 1, b: 1, c: -0.5 }],
        ["15 significant digits split by a point", "[12345678.1234567]", [12345678.1234567]],
      ];
      for (const [what, text, value] of survive) {
        it(`parses ${what}`, () => {
          expect(decode("auto", Buffer.from(text))).to.deep.equal({ value, fallback: false });
        });
      }
      const change: [string, string][] = [
        ["digits after a decimal point", '{"a":1234567.1234567891}'],
        ["a long fraction", '{"a":0.12345678901234567}'],
        ["2^53 + 1", "[9007199254740993]"],
        ["an integer of 18 digits", '{"id":123456789012345678}'],
        ["an exponent that overflows", '{"a":1E400}'],
        ["a mantissa that overflows with a 3-digit exponent", '{"a":1000e306}'],
        ["an exponent that underflows to 0", '{"a":1e-400}'],
      ];
      for (const [what, text] of change) {
        it(`keeps ${what} as text`, () => {
          expect(decode("auto", Buffer.from(text))).to.deep.equal({ value: text, fallback: false });
        });
      }

      it("never changes a number: 3,000 random number spellings either survive or stay text", () => {
        const rnd = prng(12345); // a fixed seed: the same spellings every run
        const random = (n: number) => Math.floor(rnd() * n);
        const digits = (n: number) => Array.from({ length: n }, () => String(random(10))).join("");
        let parsed = 0;
        for (let k = 0; k < 3000; k++) {
          let token = random(2) ? "-" : "";
          token += random(4) ? String(1 + random(9)) + digits(random(20)) : "0";
          if (random(2)) token += "." + (digits(random(20)) || "0");
          if (random(3) === 0) token += "e" + (random(2) ? "-" : "") + String(random(400));
          const text = `{"n":${token}}`;
          const out = decode("auto", Buffer.from(text));
          if (typeof out.value === "string") {
            expect(out.value).to.equal(text);
            continue;
          }
          parsed++;
          // what a socket receives, written back, is the same number
          const back = JSON.stringify(out.value).slice(5, -1);
          const norm = (s: string) => {
            const [m, e = "0"] = s.toLowerCase().split("e");
            const neg = m.startsWith("-");
            const [i, f = ""] = m.replace("-", "").split(".");
            const all = (i + f).replace(/^0+/, "");
            const lead = (i + f).length - all.length;
            const sig = all.replace(/0+$/, "");
            return sig === "" ? "0" : `${neg ? "-" : ""}${sig}e${i.length - lead + Number(e)}`;
          };
          expect(norm(back), `${token} → ${back}`).to.equal(norm(token));
        }
        expect(parsed).to.be.greaterThan(500); // the test did exercise the parse path
      });
    });
  });

  describe("parseJson", () => {
    it("returns undefined for text that is not JSON", () => {
      for (const text of ["", "abc", "{", "[1,", "tru", "01", "+1", "NaN", "Infinity"]) {
        expect(parseJson(text), JSON.stringify(text)).to.equal(undefined);
      }
    });

    it("wraps the value so that null and false are told apart from failure", () => {
      expect(parseJson("null")).to.deep.equal({ value: null });
      expect(parseJson("false")).to.deep.equal({ value: false });
    });
  });

  describe('createDecoder("json")', () => {
    it("parses JSON", () => {
      expect(decode("json", Buffer.from('{"a":[1]}'))).to.deep.equal({
        value: { a: [1] },
        fallback: false,
      });
      expect(decode("json", Buffer.from("5"))).to.deep.equal({ value: 5, fallback: false });
    });

    for (const [what, payload] of [
      ["plain text", Buffer.from("hello")],
      ["an empty payload", Buffer.alloc(0)],
      ['"007"', Buffer.from("007")],
      ["a big integer", Buffer.from("12345678901234567890")],
      ["invalid UTF-8", Buffer.from("ff00", "hex")],
    ] as const) {
      it(`falls back to the bytes for ${what}, with fallback=true`, () => {
        const out = decode("json", payload);
        expect(out.value).to.equal(payload);
        expect(out.fallback).to.equal(true);
      });
    }
  });

  describe('createDecoder("text")', () => {
    it("decodes UTF-8 text, JSON included, as a string", () => {
      expect(decode("text", Buffer.from('{"a":1}'))).to.deep.equal({
        value: '{"a":1}',
        fallback: false,
      });
      expect(decode("text", Buffer.from("\uFEFF\u20ac"))).to.deep.equal({
        value: "\uFEFF\u20ac",
        fallback: false,
      });
      expect(decode("text", Buffer.alloc(0))).to.deep.equal({ value: "", fallback: false });
    });

    it("falls back to the bytes for invalid UTF-8, with fallback=true", () => {
      const payload = Buffer.from("c328", "hex");
      const out = decode("text", payload);
      expect(out.value).to.equal(payload);
      expect(out.fallback).to.equal(true);
    });
  });

  describe('createDecoder("binary")', () => {
    it("passes every payload on as the same Buffer", () => {
      for (const payload of [
        Buffer.from('{"a":1}'),
        Buffer.from("text"),
        Buffer.from("ff", "hex"),
      ]) {
        const out = decode("binary", payload);
        expect(out.value).to.equal(payload);
        expect(out.fallback).to.equal(false);
      }
    });
  });

  describe("custom decoders", () => {
    it("calls the function with the payload and the packet and passes its result on", () => {
      const payload = Buffer.from("abc");
      const pkt = packet(payload);
      const calls: unknown[][] = [];
      const decoder = createDecoder((p, packetArg) => {
        calls.push([p, packetArg]);
        return p.length;
      });
      expect(decoder(payload, pkt)).to.deep.equal({ value: 3, fallback: false });
      expect(calls).to.have.length(1);
      expect(calls[0][0]).to.equal(payload);
      expect(calls[0][1]).to.equal(pkt);
    });

    it("passes undefined from the function on as the value", () => {
      expect(decode(() => undefined, Buffer.from("x"))).to.deep.equal({
        value: undefined,
        fallback: false,
      });
    });

    it("falls back to the bytes when the function throws, with fallback=true", () => {
      const payload = Buffer.from("x");
      const out = decode(() => {
        throw new Error("boom");
      }, payload);
      expect(out.value).to.equal(payload);
      expect(out.fallback).to.equal(true);
    });
  });
});
