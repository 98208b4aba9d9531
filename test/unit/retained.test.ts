/** Unit tests for lib/routing/retained.ts: the bounded last-known-state cache. */
import { expect } from "chai";
import type { BridgeMessage } from "../../lib/protocol";
import { RetainedCache } from "../../lib/routing/retained";

function put(cache: RetainedCache, topic: string, text: string, fingerprint = "") {
  const message: BridgeMessage = { topic, payload: text, qos: 0, retain: true };
  return cache.update(message, Buffer.from(text), fingerprint);
}

function topics(cache: RetainedCache): string[] {
  const out: string[] = [];
  cache.match("#", (m) => out.push(m.topic));
  return out;
}

describe("RetainedCache", () => {
  it("keeps at most `max` topics, evicting the least recently updated, and counts evictions", () => {
    const cache = new RetainedCache(2);
    expect(put(cache, "a", "1")).to.equal("new");
    expect(put(cache, "b", "1")).to.equal("new");
    expect(put(cache, "a", "2")).to.equal("new"); // a is now the newest
    expect(put(cache, "c", "1")).to.equal("new");
    expect(topics(cache)).to.deep.equal(["a", "c"]);
    expect(cache.size).to.equal(2);
    expect(cache.evicted).to.equal(1);
  });

  it("tells a replay of the same bytes and properties from a new state", () => {
    const cache = new RetainedCache(10);
    put(cache, "t", "x", "p1");
    expect(put(cache, "t", "x", "p1")).to.equal("unchanged");
    expect(put(cache, "t", "x", "p2")).to.equal("new");
    expect(put(cache, "t", "y", "p2")).to.equal("new");
  });

  it("clears a topic on an empty payload [MQTT-3.3.1-6]", () => {
    const cache = new RetainedCache(10);
    put(cache, "t", "x");
    expect(put(cache, "t", "")).to.equal("cleared");
    expect(cache.has("t")).to.equal(false);
    expect(cache.size).to.equal(0);
  });

  it("prunes the topics a predicate calls stale", () => {
    const cache = new RetainedCache(10);
    for (const t of ["a/1", "a/2", "b/1"]) put(cache, t, "x");
    cache.prune("#", (t) => t.startsWith("a/"));
    expect(topics(cache)).to.deep.equal(["b/1"]);
  });
  it("keeps at most `maxBytes` bytes of topics and payloads, evicting the oldest", () => {
    const cache = new RetainedCache(100, 30);
    put(cache, "a", "x".repeat(9)); // 10 bytes
    put(cache, "b", "x".repeat(9));
    put(cache, "c", "x".repeat(9));
    expect(cache.bytes).to.equal(30);
    put(cache, "d", "x".repeat(4)); // 5 more: "a" goes
    expect(topics(cache)).to.deep.equal(["b", "c", "d"]);
    expect(cache.bytes).to.equal(25);
    expect(cache.evicted).to.equal(1);
    put(cache, "c", "x"); // replaced: counts its new size only
    expect(cache.bytes).to.equal(17);
  });

  it("finds the topics of a filter by their levels, without visiting the others", () => {
    const cache = new RetainedCache(300_000);
    for (let i = 0; i < 200_000; i++) put(cache, `other/${i}/v`, "x");
    for (let i = 0; i < 10; i++) put(cache, `sensors/${i}/t`, "x");
    put(cache, "$SYS/x", "x");
    const found: string[] = [];
    cache.match("sensors/#", (m) => found.push(m.topic));
    expect(found).to.have.length(10);
    expect(cache.visited).to.be.at.most(30); // the levels under "sensors", not 200,000 topics
    found.length = 0;
    cache.match("+/3/t", (m) => found.push(m.topic));
    expect(found).to.deep.equal(["sensors/3/t"]);
    found.length = 0;
    cache.match("#", (m) => found.push(m.topic));
    expect(found).to.not.include("$SYS/x"); // [MQTT-4.7.2-1]
    cache.match("$SYS/#", (m) => found.push(m.topic));
    expect(found).to.include("$SYS/x");
  });

  it("matches as MQTT does: # includes the parent level, + one level, empty levels count", () => {
    const cache = new RetainedCache(100);
    for (const t of ["a", "a/b", "a/b/c", "a//c", "/x", "b"]) put(cache, t, "x");
    const of = (filter: string) => {
      const out: string[] = [];
      cache.match(filter, (m) => out.push(m.topic));
      return out.sort();
    };
    expect(of("a/#")).to.deep.equal(["a", "a//c", "a/b", "a/b/c"]);
    expect(of("a/+")).to.deep.equal(["a/b"]);
    expect(of("a/+/c")).to.deep.equal(["a//c", "a/b/c"]);
    expect(of("+")).to.deep.equal(["a", "b"]);
    expect(of("+/+")).to.deep.equal(["/x", "a/b"]);
    expect(of("/#")).to.deep.equal(["/x"]);
  });

  it("prunes only within the filter and drops emptied levels", () => {
    const cache = new RetainedCache(100);
    for (const t of ["a/1", "a/2", "b/1"]) put(cache, t, "x");
    cache.prune("a/+", () => true);
    expect(topics(cache)).to.deep.equal(["b/1"]);
    cache.match("a/#", () => expect.fail("nothing is left under a"));
    expect(cache.visited).to.equal(1);
  });
});
