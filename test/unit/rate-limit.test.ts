/**
 * Unit tests for lib/sockets/rate-limit.ts: the per-socket publish token bucket, driven by an injected
 * clock (milliseconds) so that no test waits on real time.
 */
import { expect } from "chai";
import { TokenBucket } from "../../lib/sockets/rate-limit";

/** A manual clock: `clock.now()` returns `clock.t`, advanced by the test. */
function manualClock(start = 0) {
  const clock = { t: start, now: () => clock.t };
  return clock;
}

/** Takes until the bucket refuses (at most `max` times); returns how many were granted. */
function drain(bucket: TokenBucket, max = 10_000): number {
  let n = 0;
  while (n < max && bucket.take()) n++;
  return n;
}

describe("rate-limit: TokenBucket", () => {
  it("grants a full burst at once, then refuses", () => {
    const clock = manualClock();
    const bucket = new TokenBucket(10, 3, clock.now);
    expect([bucket.take(), bucket.take(), bucket.take()]).to.deep.equal([true, true, true]);
    expect(bucket.take()).to.equal(false);
    expect(bucket.take()).to.equal(false);
  });

  it("grants the default burst of 200 at 100/s, then refuses", () => {
    const clock = manualClock();
    const bucket = new TokenBucket(100, 200, clock.now);
    expect(drain(bucket)).to.equal(200);
  });

  it("refills at the rate: one token per 1000/rate ms", () => {
    const clock = manualClock();
    const bucket = new TokenBucket(10, 3, clock.now);
    drain(bucket);
    clock.t += 100;
    expect(bucket.take()).to.equal(true);
    expect(bucket.take()).to.equal(false);
    clock.t += 250;
    expect(drain(bucket)).to.equal(2);
  });

  it("accumulates fractions of a token across refused takes", () => {
    const clock = manualClock();
    const bucket = new TokenBucket(4, 1, clock.now); // one token per 250 ms
    expect(bucket.take()).to.equal(true);
    clock.t += 125;
    expect(bucket.take()).to.equal(false); // half a token
    clock.t += 125;
    expect(bucket.take()).to.equal(true); // the second half arrived
    expect(bucket.take()).to.equal(false);
  });

  it("sustains exactly the rate over a long run", () => {
    const clock = manualClock();
    const bucket = new TokenBucket(100, 200, clock.now);
    drain(bucket);
    let granted = 0;
    for (let ms = 0; ms < 10_000; ms += 10) {
      clock.t += 10;
      granted += drain(bucket);
    }
    expect(granted).to.equal(1000); // 100/s × 10 s
  });

  it("holds no more than the burst after a long idle", () => {
    const clock = manualClock();
    const bucket = new TokenBucket(10, 3, clock.now);
    drain(bucket);
    clock.t += 3_600_000; // an hour
    expect(drain(bucket)).to.equal(3);
    clock.t += 1e12;
    expect(drain(bucket)).to.equal(3);
  });

  it("starts full even after an idle period before the first take", () => {
    const clock = manualClock(5_000);
    const bucket = new TokenBucket(1, 2, clock.now);
    clock.t += 60_000;
    expect(drain(bucket)).to.equal(2);
  });

  it("keeps a burst of 1 at one publish per refill period", () => {
    const clock = manualClock();
    const bucket = new TokenBucket(2, 1, clock.now); // one token per 500 ms
    expect(bucket.take()).to.equal(true);
    clock.t += 499;
    expect(bucket.take()).to.equal(false);
    clock.t += 1;
    expect(bucket.take()).to.equal(true);
  });

  it("uses the real clock when none is given", () => {
    const bucket = new TokenBucket(1, 2);
    expect(bucket.take()).to.equal(true);
    expect(bucket.take()).to.equal(true);
    expect(bucket.take()).to.equal(false);
  });
});
