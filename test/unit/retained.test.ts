/** Unit tests for lib/retained.ts: the bounded last-known-state cache. */
import { expect } from "chai";
import type { BridgeMessage } from "../../lib/protocol";
import { RetainedCache } from "../../lib/retained";

function put(cache: RetainedCache, topic: string, text: string, fingerprint = "") {
  const message: BridgeMessage = { topic, payload: text, qos: 0, retain: true };
  return cache.update(message, Buffer.from(text), fingerprint);
}

function topics(cache: RetainedCache): string[] {
  const out: string[] = [];
  cache.forEach(
    () => true,
    (m) => out.push(m.topic),
  );
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
    cache.prune((t) => t.startsWith("a/"));
    expect(topics(cache)).to.deep.equal(["b/1"]);
  });
});
