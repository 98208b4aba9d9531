/**
 * Unit tests for `backoffDelay` and `uniqueClientId` of lib/broker/session.ts: the reconnect delays of
 * the bridge's own MQTT client, and the client id that keeps two nodes from taking over each
 * other's session (MQTT.js #684, #1585).
 */
import { expect } from "chai";
import { DEFAULT_RECONNECT, type ReconnectOptions } from "../../lib/options";
import { backoffDelay, uniqueClientId } from "../../lib/broker/session";
import { prng } from "../support/prng";

const R: ReconnectOptions = { minDelayMs: 1000, maxDelayMs: 30_000, jitter: 0.2 };

const middle = () => 0.5;
const lowest = () => 0;
const highest = () => 1;

describe("backoff", () => {
  describe("backoffDelay", () => {
    const doubling: [number, number][] = [
      [0, 1000],
      [1, 2000],
      [2, 4000],
      [3, 8000],
      [4, 16_000],
      [5, 30_000], // 32,000 capped
      [6, 30_000],
      [30, 30_000],
      [31, 30_000],
      [1000, 30_000],
      [Number.MAX_SAFE_INTEGER, 30_000],
    ];
    for (const [attempt, delay] of doubling) {
      it(`waits ${delay} ms before attempt ${attempt} without jitter (random 0.5)`, () => {
        expect(backoffDelay(attempt, R, middle)).to.equal(delay);
      });
    }

    it("doubles from minDelayMs and stops at maxDelayMs", () => {
      const r = { minDelayMs: 3, maxDelayMs: 50, jitter: 0.5 };
      const delays = Array.from({ length: 8 }, (_, i) => backoffDelay(i, r, middle));
      expect(delays).to.deep.equal([3, 6, 12, 24, 48, 50, 50, 50]);
    });

    it("uses the default reconnect options: 1 s doubling up to 30 s", () => {
      expect(backoffDelay(0, DEFAULT_RECONNECT, middle)).to.equal(1000);
      expect(backoffDelay(10, DEFAULT_RECONNECT, middle)).to.equal(30_000);
    });

    it("spreads by -jitter with random 0 and by +jitter with random 1", () => {
      expect(backoffDelay(0, R, lowest)).to.equal(800);
      expect(backoffDelay(0, R, highest)).to.equal(1200);
      expect(backoffDelay(2, R, lowest)).to.equal(3200);
      expect(backoffDelay(2, R, highest)).to.equal(4800);
      // the spread is around the capped delay
      expect(backoffDelay(20, R, lowest)).to.equal(24_000);
      expect(backoffDelay(20, R, highest)).to.equal(36_000);
    });

    it("ignores random with a jitter of 0", () => {
      const r = { ...R, jitter: 0 };
      for (const random of [lowest, middle, highest]) {
        expect(backoffDelay(0, r, random)).to.equal(1000);
        expect(backoffDelay(9, r, random)).to.equal(30_000);
      }
    });

    it("stays within base × (1 ± jitter), as an integer, for random values", () => {
      const random = prng(42);
      for (let attempt = 0; attempt < 40; attempt++) {
        const base = Math.min(R.maxDelayMs, R.minDelayMs * 2 ** attempt);
        for (let k = 0; k < 50; k++) {
          const delay = backoffDelay(attempt, R, random);
          expect(Number.isInteger(delay)).to.equal(true);
          expect(delay).to.be.within(Math.floor(base * 0.8), Math.ceil(base * 1.2));
        }
      }
    });

    it("stays within bounds with Math.random (the default)", () => {
      for (let k = 0; k < 200; k++) {
        expect(backoffDelay(1, R)).to.be.within(1600, 2400);
      }
    });

    it("never returns less than 1 ms", () => {
      const tiny = { minDelayMs: 1, maxDelayMs: 1, jitter: 1 };
      expect(backoffDelay(0, tiny, lowest)).to.equal(1);
      expect(backoffDelay(0, tiny, middle)).to.equal(1);
      expect(backoffDelay(0, tiny, highest)).to.equal(2);
      expect(backoffDelay(0, { minDelayMs: 1, maxDelayMs: 10, jitter: 0.9 }, lowest)).to.equal(1);
      const random = prng(7);
      for (let k = 0; k < 500; k++) {
        expect(
          backoffDelay(k % 5, { minDelayMs: 1, maxDelayMs: 4, jitter: 1 }, random),
        ).to.be.at.least(1);
      }
    });
  });

  describe("uniqueClientId", () => {
    it("is unique across 1,000 calls", () => {
      const ids = new Set(Array.from({ length: 1000 }, () => uniqueClientId()));
      expect(ids.size).to.equal(1000);
    });

    it("is at most 65 characters (and bytes), with the bridge's prefix and this process id", () => {
      for (let k = 0; k < 100; k++) {
        const id = uniqueClientId();
        expect(id.length).to.be.at.most(65);
        expect(Buffer.byteLength(id, "utf8")).to.be.at.most(65);
        expect(id.startsWith("sio-mqtt-bridge-")).to.equal(true);
        expect(id).to.contain(`-${process.pid}-`);
      }
    });

    it("holds no MQTT wildcard, separator or NUL", () => {
      const id = uniqueClientId();
      for (const c of ["+", "#", "/", "\u0000"]) expect(id).not.to.contain(c);
    });
  });
});
