/**
 * Unit tests for the browser helper's topic matching (`filterMatches` of lib/client-delivery.ts,
 * written for size): it answers as `matches` of lib/topic.ts (the server's, written for speed and
 * tested against every vector of MQTT-RULES.md) for every pair of a small alphabet, valid or not.
 */
import { expect } from "chai";
import { filterMatches } from "../../lib/client-delivery";
import { matches } from "../../lib/topic";

/** Every string of 1 … `max` levels taken from `levels`, joined with "/". */
function strings(levels: string[], max: number): string[] {
  let last = [...levels];
  const all = [...last];
  for (let n = 2; n <= max; n++) {
    last = last.flatMap((s) => levels.map((level) => `${s}/${level}`));
    all.push(...last);
  }
  return all;
}

describe("the browser helper's topic matching", () => {
  it("answers as matches() of lib/topic.ts for every filter × topic of a small alphabet", () => {
    const inner = strings(["a", "b", "", "+", "#", "$x", "a#", "#b", "+b"], 3);
    const prefixes = ["", "$share/g/", "$share//", "$share/g", "$share/+/"];
    const filters = prefixes.flatMap((p) => inner.map((f) => p + f));
    const topics = strings(["a", "b", "", "$x", "+", "#", "$share", "g"], 3);
    let hits = 0;
    for (const filter of filters) {
      for (const topic of topics) {
        const expected = matches(filter, topic);
        if (filterMatches(filter, topic) !== expected) {
          expect.fail(`${JSON.stringify(filter)} / ${JSON.stringify(topic)}: expected ${expected}`);
        }
        if (expected) hits++;
      }
    }
    expect(hits, "the alphabet produces matches").to.be.above(10_000);
  });

  it("matches a shared subscription like its inner filter, and honours [MQTT-4.7.2-1]", () => {
    expect(filterMatches("$share/g/a/+", "a/x")).to.equal(true);
    expect(filterMatches("$share/consumer1//finance", "/finance")).to.equal(true);
    expect(filterMatches("$share/g/#", "$SYS/x")).to.equal(false);
    expect(filterMatches("$share/g/$SYS/#", "$SYS/x")).to.equal(true);
    expect(filterMatches("+/x", "$SYS/x")).to.equal(false);
    expect(filterMatches("sport/#", "sport")).to.equal(true);
    expect(filterMatches("caf\u00e9", "cafe\u0301")).to.equal(false);
  });
});
