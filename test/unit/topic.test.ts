/**
 * Unit tests for lib/topic.ts and lib/broker/topic-trie.ts: every vector of MQTT-RULES.md §1.2 sections A, B (syntax), C and
 * D, covers() cases, the TopicTrie, and seeded randomized differential tests.
 */
import { expect } from "chai";
import {
  MQTT_MAX_TOPIC_BYTES,
  checkTopicFilter,
  checkTopicName,
  covers,
  hasWildcard,
  isSharedFilter,
  matches,
  type TopicLimits,
} from "../../lib/topic";
import { TopicTrie } from "../../lib/broker/topic-trie";
import { prng } from "../support/prng";

/** Protocol limits: only the MQTT maxima apply (levels effectively uncapped for the vectors). */
const PROTOCOL: TopicLimits = { maxBytes: 65_535, maxLevels: 1000 };
/** The bridge's default policy limits. */
const POLICY: TopicLimits = { maxBytes: 1024, maxLevels: 32 };

/** Short printable label for a test name. */
function label(value: unknown): string {
  if (typeof value !== "string") {
    if (value instanceof Uint8Array) return `bytes ${Buffer.from(value).toString("hex")}`;
    try {
      return `${typeof value} ${JSON.stringify(value)}`;
    } catch {
      return typeof value;
    }
  }
  const shown = value.length > 40 ? `${value.slice(0, 20)}… (.length ${value.length})` : value;
  return JSON.stringify(shown).replace(
    /[\u007f-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

function pick<T>(rnd: () => number, items: readonly T[]): T {
  return items[Math.floor(rnd() * items.length)];
}

/** Filters reported by trie.match(topic), sorted; fails on duplicates. */
function trieMatches<V>(trie: TopicTrie<V>, topic: string): string[] {
  const seen: string[] = [];
  trie.match(topic, (_value, filter) => {
    expect(seen, `duplicate report of ${filter} for ${topic}`).not.to.include(filter);
    seen.push(filter);
  });
  return seen.sort();
}

describe("topic", () => {
  describe("MQTT_MAX_TOPIC_BYTES", () => {
    it("is 65,535 [MQTT-4.7.3-3]", () => {
      expect(MQTT_MAX_TOPIC_BYTES).to.equal(65_535);
    });
  });

  describe("checkTopicName (section A)", () => {
    const valid: [string, unknown][] = [
      ["a single level", "a"],
      ["two levels", "a/b"],
      ["a leading empty level", "/a"],
      ["a trailing empty level", "a/"],
      ["a lone separator", "/"],
      ["only empty levels", "//"],
      ["a space [MQTT-4.7.3-4]", " "],
      ["inner whitespace [MQTT-4.7.3-4]", "a b/c"],
      ["mixed case [MQTT-4.7.3-4]", "Sport/Tennis"],
      ["multi-byte UTF-8", "€/\u00e9"],
      ["a surrogate pair (4 UTF-8 bytes)", "😀"],
      ["a leading BOM [MQTT-1.5.4-3]", "\uFEFFa"],
      ["65,535 ASCII bytes [MQTT-4.7.3-3]", "x".repeat(65_535)],
      ['21,845 × "€" = 65,535 bytes [MQTT-4.7.3-3]', "€".repeat(21_845)],
      ['16,383 × "😀" = 65,532 bytes', "😀".repeat(16_383)],
      ["a $SYS topic (syntax; policy is the caller's)", "$SYS/broker/x"],
      ["a $share topic name (syntax; policy is the caller's)", "$share/g/x"],
      ["a $ topic (syntax; policy is the caller's)", "$anything"],
      ["U+00A0, the first character after the C1 controls", "a\u00A0b"],
      ["U+FDCF and U+FDF0 (just outside the non-character block)", "\uFDCF\uFDF0"],
      ["U+FFFD", "a\uFFFD"],
      ["U+10FFFD (the last plane's last character)", "\uDBFF\uDFFD"],
      ["U+1F600 followed by an empty level", "😀/"],
      ['"__proto__" levels', "__proto__/constructor/prototype"],
    ];
    for (const [name, topic] of valid) {
      it(`accepts ${name}: ${label(topic)}`, () => {
        expect(checkTopicName(topic, PROTOCOL)).to.equal(undefined);
      });
    }

    const invalid: [string, unknown, string][] = [
      [
        '21,846 × "€" = 65,538 bytes (.length only 21,846) [MQTT-4.7.3-3]',
        "€".repeat(21_846),
        "longer than 65535 bytes",
      ],
      [
        '16,384 × "😀" = 65,536 bytes (.length 32,768) [MQTT-4.7.3-3]',
        "😀".repeat(16_384),
        "longer than 65535 bytes",
      ],
      ["65,536 ASCII bytes [MQTT-4.7.3-3]", "x".repeat(65_536), "longer than 65535 bytes"],
      ["the empty string [MQTT-4.7.3-1]", "", "empty"],
      ['"#" [MQTT-3.3.2-2]', "#", "wildcards"],
      ['"+" [MQTT-3.3.2-2]', "+", "wildcards"],
      ['"a/#" [MQTT-3.3.2-2]', "a/#", "wildcards"],
      ['"a/+" [MQTT-3.3.2-2]', "a/+", "wildcards"],
      ['"a/+/b" [MQTT-3.3.2-2]', "a/+/b", "wildcards"],
      ['"a+" [MQTT-3.3.2-2]', "a+", "wildcards"],
      ['"#a" [MQTT-3.3.2-2]', "#a", "wildcards"],
      ['"a/b#" [MQTT-3.3.2-2]', "a/b#", "wildcards"],
      ["U+0000 [MQTT-4.7.3-2]", "a\u0000b", "U+0000"],
      ["a lone high surrogate [MQTT-1.5.4-1]", "a/\uD800", "well-formed"],
      ["a lone low surrogate [MQTT-1.5.4-1]", "\uDC00b", "well-formed"],
      ["reversed surrogates [MQTT-1.5.4-1]", "\uDE00\uD83D", "well-formed"],
      ["U+0001 (policy, §1.5.4)", "a\u0001b", "control"],
      ["U+007F (policy, §1.5.4)", "a\u007Fb", "control"],
      ["U+0085 (policy, §1.5.4)", "a\u0085", "control"],
      ["U+FFFF (policy, §1.5.4)", "a\uFFFF", "non-character"],
      ["a tab (policy, §1.5.4)", "a\tb", "control"],
      ["a newline (policy, §1.5.4)", "a\nb", "control"],
      ["U+001F (policy, §1.5.4)", "\u001F", "control"],
      ["U+0080 (policy, §1.5.4)", "\u0080", "control"],
      ["U+009F (policy, §1.5.4)", "\u009F", "control"],
      ["U+FDD0 (policy, §1.5.4)", "\uFDD0", "non-character"],
      ["U+FDEF (policy, §1.5.4)", "\uFDEF", "non-character"],
      ["U+FFFE (policy, §1.5.4)", "\uFFFE", "non-character"],
      ["U+1FFFE (policy, §1.5.4)", "a/\uD83F\uDFFE", "non-character"],
      ["U+10FFFF (policy, §1.5.4)", "\uDBFF\uDFFF", "non-character"],
      ["null", null, "must be a string"],
      ["undefined", undefined, "must be a string"],
      ["a number", 42, "must be a string"],
      ["a boolean", true, "must be a string"],
      ["an array", [], "must be a string"],
      ["an array holding a string", ["a"], "must be a string"],
      ["an object", {}, "must be a string"],
      ["an object with toString", { toString: "x" }, "must be a string"],
      ["an object with a toString function", { toString: () => "a" }, "must be a string"],
      ["a String object", new String("a"), "must be a string"],
      ["a symbol", Symbol("a"), "must be a string"],
      ["bytes C3 28 (invalid UTF-8)", Buffer.from([0xc3, 0x28]), "must be a string"],
      ["bytes ED A0 80 (CESU surrogate)", Buffer.from([0xed, 0xa0, 0x80]), "must be a string"],
      ["bytes C0 AF (overlong)", Buffer.from([0xc0, 0xaf]), "must be a string"],
      ["bytes F4 90 80 80 (> U+10FFFF)", Buffer.from([0xf4, 0x90, 0x80, 0x80]), "must be a string"],
      ["a Uint8Array of valid UTF-8", new Uint8Array([0x61]), "must be a string"],
    ];
    for (const [name, topic, reason] of invalid) {
      it(`rejects ${name}: ${label(topic)}`, () => {
        const result = checkTopicName(topic, PROTOCOL);
        expect(result).to.be.a("string");
        expect(result).to.include(reason);
      });
    }

    it("reports the reason in the documented wording", () => {
      expect(checkTopicName(7, POLICY)).to.equal("topic must be a string");
      expect(checkTopicName("a/#", POLICY)).to.equal("topic must not contain wildcards (+ or #)");
      expect(checkTopicName("x".repeat(1025), POLICY)).to.equal("topic is longer than 1024 bytes");
      expect(checkTopicName("a/".repeat(32) + "b", POLICY)).to.equal(
        "topic has more than 32 levels",
      );
    });

    it("checks the type before anything else", () => {
      for (const value of [null, 0, [], {}, new String("")]) {
        expect(checkTopicName(value, { maxBytes: 0, maxLevels: 0 })).to.equal(
          "topic must be a string",
        );
      }
    });

    describe("policy limits (1024 bytes, 32 levels)", () => {
      const cases: [string, string, boolean][] = [
        ['65,535 × "x" (valid for the protocol)', "x".repeat(65_535), false],
        ['1,024 × "x"', "x".repeat(1024), true],
        ['1,025 × "x"', "x".repeat(1025), false],
        ['341 × "€" = 1,023 bytes', "€".repeat(341), true],
        ['342 × "€" = 1,026 bytes (.length 342)', "€".repeat(342), false],
        ['256 × "😀" = 1,024 bytes', "😀".repeat(256), true],
        ['257 × "😀" = 1,028 bytes (.length 514)', "😀".repeat(257), false],
        ["32 levels", "a/".repeat(31) + "b", true],
        ["33 levels", "a/".repeat(32) + "b", false],
        ["32 empty levels", "/".repeat(31), true],
        ["33 empty levels", "/".repeat(32), false],
        ['201 levels ("a/".repeat(200) + "b")', "a/".repeat(200) + "b", false],
      ];
      for (const [name, topic, ok] of cases) {
        it(`${ok ? "accepts" : "rejects"} ${name}`, () => {
          if (ok) expect(checkTopicName(topic, POLICY)).to.equal(undefined);
          else expect(checkTopicName(topic, POLICY)).to.be.a("string");
        });
      }

      it("rejects 201 levels with a 200-level cap and accepts 200", () => {
        const limits = { maxBytes: 65_535, maxLevels: 200 };
        expect(checkTopicName("a/".repeat(200) + "b", limits)).to.equal(
          "topic has more than 200 levels",
        );
        expect(checkTopicName("a/".repeat(199) + "b", limits)).to.equal(undefined);
      });

      it("never allows more than 65,535 bytes even with a larger maxBytes [MQTT-4.7.3-3]", () => {
        const limits = { maxBytes: 1_000_000, maxLevels: 1000 };
        expect(checkTopicName("x".repeat(65_535), limits)).to.equal(undefined);
        expect(checkTopicName("x".repeat(65_536), limits)).to.equal(
          "topic is longer than 65535 bytes",
        );
      });

      it("rejects a 10 MB string quickly", () => {
        const huge = "a/".repeat(5_000_000);
        const t0 = Date.now();
        expect(checkTopicName(huge, POLICY)).to.equal("topic is longer than 1024 bytes");
        expect(Date.now() - t0).to.be.below(50);
      });
    });
  });

  describe("checkTopicFilter (section B)", () => {
    const valid: [string, string][] = [
      ["a lone # [MQTT-4.7.1-2]", "#"],
      ["a lone + [MQTT-4.7.1-3]", "+"],
      ["+/+", "+/+"],
      ["/+", "/+"],
      ["/#", "/#"],
      ["+/tennis/#", "+/tennis/#"],
      ["sport/tennis/#", "sport/tennis/#"],
      ["sport/+/player1", "sport/+/player1"],
      ["an empty inner level", "a//b"],
      ["a/+/+/#", "a/+/+/#"],
      ["a trailing empty level", "sport/"],
      ["$SYS/# (syntax; policy is the caller's)", "$SYS/#"],
      ["$SYS/+ (syntax; policy is the caller's)", "$SYS/+"],
      ["+ as the last level", "a/+"],
      ["+ between empty levels", "/+/"],
      ["a plain filter named $share (no /)", "$share"],
      ["$queue/t (legacy EMQX syntax is an ordinary filter; policy is the caller's)", "$queue/t"],
      ["a BOM [MQTT-1.5.4-3]", "\uFEFF/#"],
      ["multi-byte levels", "€/😀/+"],
    ];
    for (const [name, filter] of valid) {
      it(`accepts ${name}: ${label(filter)}`, () => {
        expect(checkTopicFilter(filter, PROTOCOL)).to.equal(undefined);
      });
    }

    const invalid: [string, unknown, string][] = [
      ["the empty string [MQTT-4.7.3-1]", "", "empty"],
      ['"sport/tennis#" [MQTT-4.7.1-2]', "sport/tennis#", "#"],
      ['"sport/tennis/#/ranking" [MQTT-4.7.1-2]', "sport/tennis/#/ranking", "#"],
      ['"a/#/b" [MQTT-4.7.1-2]', "a/#/b", "#"],
      ['"#/" [MQTT-4.7.1-2]', "#/", "#"],
      ['"##" [MQTT-4.7.1-2]', "##", "#"],
      ['"#a" [MQTT-4.7.1-2]', "#a", "#"],
      ['"a#" [MQTT-4.7.1-2]', "a#", "#"],
      ['"sport+" [MQTT-4.7.1-3]', "sport+", "+"],
      ['"sport/+tennis" [MQTT-4.7.1-3]', "sport/+tennis", "+"],
      ['"a+" [MQTT-4.7.1-3]', "a+", "+"],
      ['"+a" [MQTT-4.7.1-3]', "+a", "+"],
      ['"a/+b" [MQTT-4.7.1-3]', "a/+b", "+"],
      ['"++" [MQTT-4.7.1-3]', "++", "+"],
      ['"ab+" [MQTT-4.7.1-3]', "ab+", "+"],
      ['"+#" [MQTT-4.7.1-3]', "+#", "+"],
      ['"#+" [MQTT-4.7.1-2]', "#+", "#"],
      ["U+0000 [MQTT-4.7.3-2]", "a/\u0000", "U+0000"],
      ["a 65,536-byte filter [MQTT-4.7.3-3]", "x".repeat(65_536), "longer than 65535 bytes"],
      ['65,535 × "/" (65,536 levels; mosquitto #1412)', "/".repeat(65_535), "levels"],
      ["a lone surrogate [MQTT-1.5.4-1]", "a/\uD800/#", "well-formed"],
      ["a control character (policy)", "a/\u0007/+", "control"],
      ["a non-character (policy)", "+/\uFFFE", "non-character"],
      ["a number", 1, "must be a string"],
      ["an array", ["a/#"], "must be a string"],
    ];
    for (const [name, filter, reason] of invalid) {
      it(`rejects ${name}: ${label(filter)}`, () => {
        const result = checkTopicFilter(filter, PROTOCOL);
        expect(result).to.be.a("string");
        expect(result).to.include(reason);
      });
    }

    it("names the filter in its reasons", () => {
      expect(checkTopicFilter(null, POLICY)).to.equal("topic filter must be a string");
      expect(checkTopicFilter("x".repeat(1025), POLICY)).to.equal(
        "topic filter is longer than 1024 bytes",
      );
    });

    it("applies the level cap to filters (32 accepted, 33 rejected)", () => {
      expect(checkTopicFilter("+/".repeat(31) + "#", POLICY)).to.equal(undefined);
      expect(checkTopicFilter("+/".repeat(32) + "#", POLICY)).to.equal(
        "topic filter has more than 32 levels",
      );
    });
  });

  describe("shared subscriptions (section C)", () => {
    const valid: [string, string][] = [
      ["a two-level filter [MQTT-4.8.2-1]", "$share/g/a/b"],
      ["a + filter", "$share/consumer1/sport/tennis/+"],
      ["an inner filter with a leading empty level (/finance)", "$share/consumer1//finance"],
      ["an inner #", "$share/g/#"],
      ["an inner $SYS filter (policy is the caller's)", "$share/g/$SYS/#"],
      ["an inner filter that is only an empty level pair", "$share/g//"],
    ];
    for (const [name, filter] of valid) {
      it(`accepts ${name}: ${label(filter)}`, () => {
        expect(checkTopicFilter(filter, PROTOCOL)).to.equal(undefined);
        expect(isSharedFilter(filter)).to.equal(true);
      });
    }

    const invalid: [string, unknown][] = [
      ["no ShareName [MQTT-4.8.2-1]", "$share/"],
      ["an empty ShareName and filter [MQTT-4.8.2-1]", "$share//"],
      ["an empty ShareName [MQTT-4.8.2-1]", "$share//t"],
      ["no / and filter after the ShareName [MQTT-4.8.2-2]", "$share/g"],
      ["an empty filter [MQTT-4.7.3-1]", "$share/g/"],
      ["+ inside the ShareName [MQTT-4.8.2-2]", "$share/p+q/1"],
      ["a ShareName starting with + [MQTT-4.8.2-2]", "$share/+n/1"],
      ["# inside the ShareName [MQTT-4.8.2-2]", "$share/x#y/1"],
      ["a ShareName that is # [MQTT-4.8.2-2]", "$share/#/1"],
      ["a ShareName that is + [MQTT-4.8.2-2]", "$share/+/1"],
      ["an invalid inner filter (a#) [MQTT-4.7.1-2]", "$share/g/a#"],
      ["an invalid inner filter (sport+) [MQTT-4.7.1-3]", "$share/g/sport+"],
      ["an inner filter starting with #x [MQTT-4.7.1-2]", "$share/g/#x"],
      ["a nested shared subscription (policy, as EMQX)", "$share/g1/$share/t"],
      ["U+0000 in the ShareName [MQTT-4.7.3-2]", "$share/g\u0000/t"],
      ["a subscription object instead of a string", { topic: "$share/g/t", nl: true }],
    ];
    for (const [name, filter] of invalid) {
      it(`rejects ${name}: ${label(filter)}`, () => {
        expect(checkTopicFilter(filter, PROTOCOL)).to.be.a("string");
      });
    }

    it("leaves $queue/t to the caller's policy: valid syntax, not shared", () => {
      expect(checkTopicFilter("$queue/t", PROTOCOL)).to.equal(undefined);
      expect(isSharedFilter("$queue/t")).to.equal(false);
    });

    it("counts levels of the inner filter and bytes of the whole string", () => {
      const inner32 = "a/".repeat(31) + "#";
      expect(checkTopicFilter(`$share/g/${inner32}`, POLICY)).to.equal(undefined);
      expect(checkTopicFilter(`$share/g/a/${inner32}`, POLICY)).to.equal(
        "topic filter has more than 32 levels",
      );
      expect(checkTopicFilter(`$share/g/${"x".repeat(1015)}`, POLICY)).to.equal(undefined);
      expect(checkTopicFilter(`$share/g/${"x".repeat(1016)}`, POLICY)).to.equal(
        "topic filter is longer than 1024 bytes",
      );
    });

    it("recognises only the $share/ prefix as shared", () => {
      expect(isSharedFilter("$share")).to.equal(false);
      expect(isSharedFilter("$sharex/g/t")).to.equal(false);
      expect(isSharedFilter("$SHARE/g/t")).to.equal(false);
      expect(isSharedFilter("a/$share/g/t")).to.equal(false);
      expect(isSharedFilter("$share/g/t")).to.equal(true);
    });

    it("matches a shared filter like its inner filter (MQTT 5.0 §4.8.2)", () => {
      expect(matches("$share/g/a/b", "a/b")).to.equal(true);
      expect(matches("$share/g/a/+", "a/x")).to.equal(true);
      expect(matches("$share/consumer1//finance", "/finance")).to.equal(true);
      expect(matches("$share/g/a/b", "$share/g/a/b")).to.equal(false);
      expect(matches("$share/g/#", "x/y")).to.equal(true);
    });

    it("keeps [MQTT-4.7.2-1] for the inner filter: $share/g/# does not match $SYS/x", () => {
      expect(matches("$share/g/#", "$SYS/x")).to.equal(false);
      expect(matches("$share/g/+/x", "$SYS/x")).to.equal(false);
      expect(matches("$share/g/$SYS/#", "$SYS/x")).to.equal(true);
    });
  });

  describe("hasWildcard", () => {
    const cases: [string, boolean][] = [
      ["a/b", false],
      ["$SYS/x", false],
      ["$share/g/t", false],
      ["+", true],
      ["#", true],
      ["a/+/b", true],
      ["a/#", true],
      ["$share/g/+", true],
    ];
    for (const [filter, expected] of cases) {
      it(`returns ${expected} for ${label(filter)}`, () => {
        expect(hasWildcard(filter)).to.equal(expected);
      });
    }
  });

  /** Section D: [filter, topic, match]. */
  const SECTION_D: [string, string, boolean][] = [
    ["sport/tennis/player1/#", "sport/tennis/player1", true],
    ["sport/tennis/player1/#", "sport/tennis/player1/ranking", true],
    ["sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true],
    ["sport/#", "sport", true],
    ["#", "/finance", true],
    ["sport/tennis/+", "sport/tennis/player1", true],
    ["sport/tennis/+", "sport/tennis/player1/ranking", false],
    ["sport/+", "sport", false],
    ["sport/+", "sport/", true],
    ["+/+", "/finance", true],
    ["/+", "/finance", true],
    ["+", "/finance", false],
    ["+", "finance", true],
    ["+/tennis/#", "sport/tennis", true],
    ["a/+/b", "a//b", true],
    ["foo/+/+/baz", "foo///baz", true],
    ["foo//bar", "foo/bar", false],
    ["a/b", "a/b/", false],
    ["a/b/#", "a/b/", true],
    ["a/+/#", "a/b", true],
    ["a/+/#", "a", false],
    ["a/+", "a/b/c", false],
    ["test/6/#", "test/3", false],
    ["/#", "foo/bar", false],
    ["#", "$SYS/broker", false],
    ["+/broker", "$SYS/broker", false],
    ["+/+", "$SYS/broker", false],
    ["+/+/#", "$share/x/y", false],
    ["$SYS/#", "$SYS/broker/clients", true],
    ["$SYS/+", "$SYS/broker", true],
    ["$BOB/bar", "$SYS/bar", false],
    ["a/#", "a/$b", true],
    ["/devices/+", "/devices/$dev1", true],
    ["sport/tennis", "Sport/Tennis", false],
    ["caf\u00e9", "cafe\u0301", false],
    ["a/ b", "a/b", false],
    ["TopicA/+", "TopicA/B", true],
    ["TopicA/#", "TopicA/B", true],
  ];

  /** Additional matching cases around the edges. */
  const EXTRA_D: [string, string, boolean][] = [
    ["#", "a", true],
    ["#", "/", true],
    ["#", "$", false],
    ["+", "$", false],
    ["$", "$", true],
    ["+/#", "a", true],
    ["+/#", "$SYS", false],
    ["/", "/", true],
    ["/", "//", false],
    ["//", "//", true],
    ["+/", "/", true],
    ["/+", "/", true],
    ["+/+", "/", true],
    ["+/+/+", "/", false],
    ["a/b/c", "a/b", false],
    ["a/b", "a/bc", false],
    ["a/bc", "a/b", false],
    ["ab", "a", false],
    ["a", "ab", false],
    ["a/#", "ab", false],
    ["a/#", "a/", true],
    ["#", "$SYS", false],
    ["€/+", "€/😀", true],
    ["__proto__/+", "__proto__/x", true],
    ["a/+/c", "a/b/c", true],
    ["a/+/c", "a/b/d", false],
  ];

  describe("matches (section D)", () => {
    for (const [filter, topic, expected] of SECTION_D) {
      const spec = topic.startsWith("$") && /^[+#]/.test(filter) ? " [MQTT-4.7.2-1]" : "";
      it(`${expected ? "matches" : "does not match"} ${label(topic)} with ${label(filter)}${spec}`, () => {
        expect(matches(filter, topic)).to.equal(expected);
      });
    }
    for (const [filter, topic, expected] of EXTRA_D) {
      it(`${expected ? "matches" : "does not match"} ${label(topic)} with ${label(filter)} (edge)`, () => {
        expect(matches(filter, topic)).to.equal(expected);
      });
    }

    it("uses only valid vectors", () => {
      for (const [filter, topic] of [...SECTION_D, ...EXTRA_D]) {
        expect(checkTopicFilter(filter, PROTOCOL), filter).to.equal(undefined);
        expect(checkTopicName(topic, PROTOCOL), topic).to.equal(undefined);
      }
    });

    it("does not normalize: NFC and NFD forms differ [MQTT-4.7.3-4]", () => {
      expect(matches("caf\u00e9", "caf\u00e9")).to.equal(true);
      expect(matches("cafe\u0301", "cafe\u0301")).to.equal(true);
      expect(matches("caf\u00e9", "cafe\u0301")).to.equal(false);
      expect(matches("cafe\u0301", "caf\u00e9")).to.equal(false);
    });
  });

  describe("covers", () => {
    const cases: [string, string, boolean, string?][] = [
      ["sensors/#", "sensors/+/temp", true],
      ["sensors/#", "sensors", true, "# includes the parent"],
      ["sensors/#", "#", false],
      ["#", "$SYS/#", false, "[MQTT-4.7.2-1]"],
      ["#", "a/#", true],
      ["+/#", "+/x", true],
      ["a/+", "a/#", false, '"a/#" matches "a" and "a/b/c"'],
      ["a/#", "a", true],
      ["+", "$x", false, "[MQTT-4.7.2-1]"],
      ["a/b", "a/b", true],
      ["a/+", "a/b", true],
      ["#", "#", true],
      ["#", "+", true],
      ["#", "+/#", true],
      ["+/#", "#", true, "equivalent: topic names have at least one level"],
      ["+/+/#", "#", false, '"#" matches "a"'],
      ["/+/#", "/#", true, 'equivalent: "/#" cannot match the empty topic name'],
      ["/+/#", "/", true, "+ matches the empty second level"],
      ["+/+/#", "+/#", false, '"+/#" matches "a"'],
      ["+", "#", false],
      ["+", "+", true],
      ["+", "a", true],
      ["a", "+", false],
      ["a/b", "a/+", false],
      ["a/b", "a/b/c", false],
      ["a/b/c", "a/b", false],
      ["a/#", "a/#", true],
      ["a/#", "a/+/#", true],
      ["a/+/#", "a/#", false, '"a/#" matches "a"'],
      ["a/+", "a/+/+", false],
      ["a//b", "a/+/b", false],
      ["a/+/b", "a//b", true],
      ["/#", "#", false],
      ["#", "/#", true],
      ["#", "$SYS", false, "[MQTT-4.7.2-1]"],
      ["+/#", "$SYS/#", false, "[MQTT-4.7.2-1]"],
      ["+/broker", "$SYS/broker", false, "[MQTT-4.7.2-1]"],
      ["$SYS/#", "$SYS/broker/+", true],
      ["$SYS/#", "$SYS", true],
      ["$SYS/+", "$SYS/#", false],
      ["$SYS/#", "#", false, '"#" matches no $ topic, but also "a"'],
      ["a/#", "a/$x/#", true, "$ is special only at the first level"],
      ["a/+", "a/$x", true, "$ is special only at the first level"],
      ["$x/+", "$x/$y", true],
      ["Sport/#", "sport/tennis", false, "[MQTT-4.7.3-4] case-sensitive"],
      ["caf\u00e9/#", "cafe\u0301/x", false, "[MQTT-4.7.3-4] no normalization"],
      ["__proto__/#", "__proto__/x", true],
      ["$share/g/#", "$share/g/a/+", true, "same ShareName"],
      ["$share/g/#", "$share/h/a", false, "different ShareName"],
      ["$share/g/#", "$share/gg/a", false, "different ShareName"],
      ["$share/g/#", "$share/g/$SYS/x", false, "[MQTT-4.7.2-1] on the inner filter"],
      ["$share/g/$SYS/#", "$share/g/$SYS/x", true],
      ["#", "$share/g/a", false, "ordinary rules do not cover shared filters"],
      ["a/#", "$share/g/a/b", false, "ordinary rules do not cover shared filters"],
      ["$share/g/a", "a", false, "shared rules do not cover ordinary filters"],
    ];
    for (const [rule, filter, expected, why] of cases) {
      const note = why === undefined ? "" : ` (${why})`;
      it(`${expected ? "covers" : "does not cover"} ${label(filter)} by ${label(rule)}${note}`, () => {
        expect(covers(rule, filter)).to.equal(expected);
      });
    }

    it("uses only valid filters", () => {
      for (const [rule, filter] of cases) {
        expect(checkTopicFilter(rule, PROTOCOL), rule).to.equal(undefined);
        expect(checkTopicFilter(filter, PROTOCOL), filter).to.equal(undefined);
      }
    });

    it("is exact on an enumerated universe: covers(r, f) iff topics(f) ⊆ topics(r)", () => {
      // All ordinary filters of up to 3 levels over {a, $x, "", +}, optionally followed by #,
      // and all valid topics of up to 5 levels over {a, $x, "", z}: deep and wide enough to
      // witness every non-coverage between those filters.
      const filterLevels = ["a", "$x", "", "+"];
      const filters = new Set<string>(["#"]);
      let frontier = [""];
      for (let depth = 1; depth <= 3; depth++) {
        const nextFrontier: string[] = [];
        for (const prefix of frontier) {
          for (const level of filterLevels) {
            const f = depth === 1 ? level : `${prefix}/${level}`;
            nextFrontier.push(f);
            filters.add(f);
            filters.add(`${f}/#`);
          }
        }
        frontier = nextFrontier;
      }
      filters.delete(""); // the only invalid one
      const topicLevels = ["a", "$x", "", "z"];
      const topics: string[] = [];
      frontier = [""];
      for (let depth = 1; depth <= 5; depth++) {
        const nextFrontier: string[] = [];
        for (const prefix of frontier) {
          for (const level of topicLevels) {
            const t = depth === 1 ? level : `${prefix}/${level}`;
            nextFrontier.push(t);
            if (t !== "") topics.push(t);
          }
        }
        frontier = nextFrontier;
      }
      const list = [...filters];
      for (const f of list) expect(checkTopicFilter(f, PROTOCOL), f).to.equal(undefined);
      for (const t of topics) expect(checkTopicName(t, PROTOCOL), t).to.equal(undefined);
      const words = Math.ceil(topics.length / 32);
      const sets = list.map((f) => {
        const bits = new Uint32Array(words);
        topics.forEach((t, i) => {
          if (matches(f, t)) bits[i >>> 5] |= 1 << (i & 31);
        });
        return bits;
      });
      let checked = 0;
      for (let i = 0; i < list.length; i++) {
        for (let j = 0; j < list.length; j++) {
          const r = sets[i];
          const f = sets[j];
          let subset = true;
          for (let w = 0; w < words && subset; w++) subset = (f[w] & ~r[w]) === 0;
          if (covers(list[i], list[j]) !== subset) {
            expect.fail(`covers(${list[i]}, ${list[j]}) should be ${subset}`);
          }
          checked++;
        }
      }
      expect(checked).to.be.above(20_000);
    });
  });

  describe("TopicTrie", () => {
    it("agrees with matches() on every section-D vector", () => {
      const trie = new TopicTrie<string>();
      const all = [...SECTION_D, ...EXTRA_D];
      const filters = [...new Set(all.map(([f]) => f))];
      for (const f of filters) trie.set(f, f);
      expect(trie.size).to.equal(filters.length);
      for (const [filter, topic, expected] of all) {
        const reported = trieMatches(trie, topic);
        expect(reported.includes(filter), `${filter} / ${topic}`).to.equal(expected);
        expect(reported).to.deep.equal(filters.filter((f) => matches(f, topic)).sort());
      }
    });

    it("reports each of several overlapping filters exactly once", () => {
      const trie = new TopicTrie<number>();
      const filters = ["TopicA/+", "TopicA/#", "#", "+/B", "+/+", "TopicA/B", "+/#", "TopicA/B/#"];
      filters.forEach((f, i) => trie.set(f, i));
      const calls: [number, string][] = [];
      trie.match("TopicA/B", (value, filter) => calls.push([value, filter]));
      expect(calls).to.have.length(filters.length);
      expect(calls.map(([, f]) => f).sort()).to.deep.equal([...filters].sort());
      for (const [value, filter] of calls) expect(filters[value]).to.equal(filter);
    });

    it("keeps # and + at the first level away from $ topics [MQTT-4.7.2-1]", () => {
      const trie = new TopicTrie<number>();
      for (const f of ["#", "+/broker", "+/+", "+/#", "$SYS/#", "$SYS/+", "$share/g/#"]) {
        trie.set(f, 0);
      }
      expect(trieMatches(trie, "$SYS/broker")).to.deep.equal(["$SYS/#", "$SYS/+"]);
      expect(trieMatches(trie, "x/broker")).to.deep.equal([
        "#",
        "$share/g/#",
        "+/#",
        "+/+",
        "+/broker",
      ]);
    });

    it("replaces the value of an existing filter without growing", () => {
      const trie = new TopicTrie<number>();
      trie.set("a/+", 1);
      trie.set("a/+", 2);
      expect(trie.size).to.equal(1);
      expect(trie.get("a/+")).to.equal(2);
      const values: number[] = [];
      trie.match("a/b", (v) => values.push(v));
      expect(values).to.deep.equal([2]);
    });

    it("gets exact filters only", () => {
      const trie = new TopicTrie<string>();
      trie.set("a/+/#", "x");
      expect(trie.get("a/+/#")).to.equal("x");
      expect(trie.get("a/+")).to.equal(undefined);
      expect(trie.get("a/b/#")).to.equal(undefined);
      expect(trie.get("a")).to.equal(undefined);
      expect(trie.get("#")).to.equal(undefined);
    });

    it("stores undefined values as present", () => {
      const trie = new TopicTrie<undefined>();
      trie.set("a", undefined);
      expect(trie.size).to.equal(1);
      let called = 0;
      trie.match("a", () => called++);
      expect(called).to.equal(1);
      expect(trie.delete("a")).to.equal(true);
      expect(trie.size).to.equal(0);
    });

    it("deletes, prunes empty nodes and returns whether the filter was present", () => {
      const trie = new TopicTrie<number>();
      const filters = ["a/b/c", "a/b", "a/+/c", "a/#", "#", "+", "/", "//", "a//", "$share/g/a/b"];
      filters.forEach((f, i) => trie.set(f, i));
      expect(trie.size).to.equal(filters.length);
      expect(trie.delete("a/b/c/d")).to.equal(false);
      expect(trie.delete("a/+/d")).to.equal(false);
      expect(trie.delete("$share/h/a/b")).to.equal(false);
      expect(trie.size).to.equal(filters.length);
      for (const f of filters) {
        expect(trie.delete(f), f).to.equal(true);
        expect(trie.delete(f), f).to.equal(false);
        expect(trie.get(f)).to.equal(undefined);
      }
      expect(trie.size).to.equal(0);
      expect([...trie.entries()]).to.deep.equal([]);
      // Internal check: pruning leaves a bare root.
      const root = (trie as unknown as { tree: { root: Record<string, unknown> } }).tree.root;
      expect(root.children).to.equal(undefined);
      expect(root.plus).to.equal(undefined);
      expect(root.hash).to.equal(undefined);
      let called = false;
      trie.match("a/b/c", () => (called = true));
      expect(called).to.equal(false);
    });

    it("keeps the rest of a branch when deleting a prefix filter", () => {
      const trie = new TopicTrie<number>();
      trie.set("a", 1);
      trie.set("a/b/c", 2);
      expect(trie.delete("a")).to.equal(true);
      expect(trieMatches(trie, "a/b/c")).to.deep.equal(["a/b/c"]);
      expect(trie.delete("a/b/c")).to.equal(true);
      const root = (trie as unknown as { tree: { root: Record<string, unknown> } }).tree.root;
      expect(root.children).to.equal(undefined);
    });

    it("treats __proto__, constructor and prototype levels as data", () => {
      const trie = new TopicTrie<number>();
      trie.set("__proto__", 1);
      trie.set("constructor/+", 2);
      trie.set("+/prototype", 3);
      expect(trieMatches(trie, "__proto__")).to.deep.equal(["__proto__"]);
      expect(trieMatches(trie, "constructor/prototype")).to.deep.equal([
        "+/prototype",
        "constructor/+",
      ]);
      expect(trieMatches(trie, "toString")).to.deep.equal([]);
      expect(trieMatches(trie, "hasOwnProperty/x")).to.deep.equal([]);
      expect(({} as Record<string, unknown>).x).to.equal(undefined);
    });

    it("routes a shared filter by its inner filter and reports the full string", () => {
      const trie = new TopicTrie<string>();
      trie.set("$share/g/a/+", "g");
      trie.set("$share/h/a/+", "h");
      trie.set("a/+", "plain");
      expect(trie.size).to.equal(3);
      expect(trie.get("$share/g/a/+")).to.equal("g");
      expect(trie.get("$share/x/a/+")).to.equal(undefined);
      const calls: string[] = [];
      trie.match("a/b", (value, filter) => calls.push(`${filter}=${value}`));
      expect(calls.sort()).to.deep.equal(["$share/g/a/+=g", "$share/h/a/+=h", "a/+=plain"]);
      expect(trie.delete("$share/g/a/+")).to.equal(true);
      expect(trieMatches(trie, "a/b")).to.deep.equal(["$share/h/a/+", "a/+"]);
    });

    it("lists all entries", () => {
      const trie = new TopicTrie<number>();
      const filters = ["#", "a", "a/b", "+/+", "a/#", "$share/g/a", "/"];
      filters.forEach((f, i) => trie.set(f, i));
      const entries = [...trie.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      const expected = filters
        .map((f, i): [string, number] => [f, i])
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      expect(entries).to.deep.equal(expected);
    });

    it("handles 10,000-level topics and filters without throwing", () => {
      const depth = 10_000;
      const trie = new TopicTrie<number>();
      trie.set(`${"a/".repeat(depth - 1)}#`, 1);
      trie.set(`${"+/".repeat(depth - 1)}+`, 2);
      trie.set(`${"a/".repeat(depth - 1)}a`, 3);
      trie.set("#", 4);
      const values: number[] = [];
      trie.match(`${"a/".repeat(depth - 1)}a`, (v) => values.push(v));
      expect(values.sort()).to.deep.equal([1, 2, 3, 4]);
      values.length = 0;
      trie.match(`${"a/".repeat(depth * 5)}b`, (v) => values.push(v));
      expect(values.sort()).to.deep.equal([1, 4]);
      expect(matches(`${"+/".repeat(depth - 1)}+`, `${"a/".repeat(depth - 1)}a`)).to.equal(true);
      expect(trie.delete(`${"+/".repeat(depth - 1)}+`)).to.equal(true);
      expect(trie.size).to.equal(3);
    });

    describe("randomized differential tests (seeded)", () => {
      const filterLevels = ["a", "b", "$x", "", "+", "__proto__"];
      const topicLevels = ["a", "b", "$x", "", "$SYS", "c", "__proto__"];

      function randomFilter(rnd: () => number): string {
        for (;;) {
          const n = 1 + Math.floor(rnd() * 5);
          const levels: string[] = [];
          for (let i = 0; i < n; i++) levels.push(pick(rnd, filterLevels));
          if (rnd() < 0.3) levels.push("#");
          let filter = levels.join("/");
          if (rnd() < 0.1) filter = `$share/${pick(rnd, ["g", "h"])}/${filter}`;
          if (checkTopicFilter(filter, PROTOCOL) === undefined) return filter;
        }
      }

      function randomTopic(rnd: () => number): string {
        for (;;) {
          const n = 1 + Math.floor(rnd() * 6);
          const levels: string[] = [];
          for (let i = 0; i < n; i++) levels.push(pick(rnd, topicLevels));
          const topic = levels.join("/");
          if (checkTopicName(topic, PROTOCOL) === undefined) return topic;
        }
      }

      it("reports exactly the filters that matches() accepts, for 2,000 filters × 2,000 topics", () => {
        const rnd = prng(0x5eed);
        const trie = new TopicTrie<string>();
        const filters = new Set<string>();
        for (let i = 0; i < 2000; i++) {
          const f = randomFilter(rnd);
          filters.add(f);
          trie.set(f, `v:${f}`);
        }
        expect(trie.size).to.equal(filters.size);
        const list = [...filters];
        let hits = 0;
        for (let i = 0; i < 2000; i++) {
          const topic = randomTopic(rnd);
          const seen = new Set<string>();
          trie.match(topic, (value, filter) => {
            if (seen.has(filter)) expect.fail(`${filter} reported twice for ${topic}`);
            if (value !== `v:${filter}`) expect.fail(`wrong value for ${filter}`);
            seen.add(filter);
          });
          for (const f of list) {
            if (matches(f, topic) !== seen.has(f)) {
              expect.fail(`trie and matches() disagree on ${f} / ${topic}`);
            }
          }
          hits += seen.size;
        }
        expect(hits).to.be.above(1000); // the alphabet is small enough to produce matches
      });

      it("stays consistent after random deletions", () => {
        const rnd = prng(42);
        const trie = new TopicTrie<number>();
        const present = new Set<string>();
        for (let i = 0; i < 2000; i++) {
          const f = randomFilter(rnd);
          if (rnd() < 0.6) {
            trie.set(f, i);
            present.add(f);
          } else {
            expect(trie.delete(f)).to.equal(present.delete(f));
          }
          expect(trie.size).to.equal(present.size);
        }
        for (let i = 0; i < 300; i++) {
          const topic = randomTopic(rnd);
          const expected = [...present].filter((f) => matches(f, topic)).sort();
          expect(trieMatches(trie, topic)).to.deep.equal(expected);
        }
        for (const f of present) expect(trie.delete(f)).to.equal(true);
        expect(trie.size).to.equal(0);
        const root = (trie as unknown as { tree: { root: Record<string, unknown> } }).tree.root;
        expect(root.children).to.equal(undefined);
        expect(root.plus).to.equal(undefined);
        expect(root.hash).to.equal(undefined);
      });

      it("covers(r, f) is sound: every random topic matched by f is matched by r", () => {
        const rnd = prng(7);
        const filters: string[] = [];
        for (let i = 0; i < 300; i++) filters.push(randomFilter(rnd));
        // Include rules that cover a lot, so that "true" is frequent.
        filters.push("#", "+/#", "a/#", "+/+/#", "$share/g/#", "$x/#");
        const topics: string[] = [];
        for (let i = 0; i < 2000; i++) topics.push(randomTopic(rnd));
        const matched = filters.map((f) => topics.filter((t) => matches(f, t)));
        let coveredPairs = 0;
        for (let i = 0; i < filters.length; i++) {
          for (let j = 0; j < filters.length; j++) {
            if (!covers(filters[i], filters[j])) continue;
            coveredPairs++;
            for (const t of matched[j]) {
              if (!matches(filters[i], t)) {
                expect.fail(`covers(${filters[i]}, ${filters[j]}) but ${t} escapes`);
              }
            }
          }
        }
        expect(coveredPairs).to.be.above(filters.length); // more than the reflexive pairs
      });

      it("covers(f, f) is reflexive for random filters", () => {
        const rnd = prng(99);
        for (let i = 0; i < 2000; i++) {
          const f = randomFilter(rnd);
          if (!covers(f, f)) expect.fail(`covers(${f}, ${f}) is false`);
        }
      });
    });
  });
});
