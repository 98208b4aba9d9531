import { performance } from "node:perf_hooks";
import { expect } from "chai";
import type { LockClient } from "../../lib/cluster/lock";
import { WorkerLease, WorkerLock } from "../../lib/cluster/lock";
import { waitFor } from "../support/util";

/** A lock client whose lock is free to take, and whose renewals answer with `renew()`. */
function client(renew: () => Promise<unknown>): LockClient {
  return {
    eval: (script: string) => (script.includes('"set"') ? Promise.resolve(1) : renew()),
  };
}

/** Runs a lease until it loses the lock; resolves with when (after taking it) and why. */
async function untilLost(
  c: LockClient,
  ttlMs: number,
): Promise<{ afterMs: number; reason: string }> {
  let acquiredAt = 0;
  let lost: { afterMs: number; reason: string } | undefined;
  const lease = new WorkerLease(new WorkerLock(c, "k", ttlMs), {
    acquired: () => (acquiredAt = performance.now()),
    lost: (reason) => (lost = { afterMs: performance.now() - acquiredAt, reason }),
  });
  lease.start();
  try {
    await waitFor(() => lost !== undefined, { timeoutMs: 3 * ttlMs, message: "the lease lets go" });
    expect(lease.holding).to.equal(false);
    return lost!;
  } finally {
    await lease.stop();
  }
}

describe("worker lease", () => {
  it("lets go at 2/3 of the TTL when a renewal hangs, before the lock can expire", async () => {
    const { afterMs, reason } = await untilLost(
      client(() => new Promise(() => undefined)),
      600,
    );
    expect(reason).to.match(/no renewal .* within 400 ms/);
    expect(afterMs).to.be.at.least(390).and.below(600);
  });

  it("lets go at once when a renewal is refused or fails", async () => {
    const refused = await untilLost(
      client(() => Promise.resolve(0)),
      600,
    );
    expect(refused.reason).to.match(/taken by another worker/);
    expect(refused.afterMs).to.be.below(400); // the first renewal is at ttl/3
    const failed = await untilLost(
      client(() => Promise.reject(new Error("Command timed out"))),
      600,
    );
    expect(failed.reason).to.match(/renewing the worker lock failed: Command timed out/);
    expect(failed.afterMs).to.be.below(400);
  });

  it("keeps the lock while renewals succeed", async () => {
    let renewals = 0;
    const lease = new WorkerLease(
      new WorkerLock(
        client(() => Promise.resolve(++renewals && 1)),
        "k",
        150,
      ),
      { acquired: () => undefined, lost: () => expect.fail("lost the lock") },
    );
    lease.start();
    try {
      await waitFor(() => renewals >= 6, { timeoutMs: 2000, message: "six renewals" });
      expect(lease.holding).to.equal(true);
    } finally {
      await lease.stop();
    }
  });
});
