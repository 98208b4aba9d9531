/**
 * The history's memory (issue 13): a bridge (recovery on, the defaults: at most 10,000 messages
 * kept; or `recovery: false`) with one socket on the browser helper subscribed to
 * `bench/recovery/#`, in a server process started with `--expose-gc`. The process reports its own
 * `process.memoryUsage()` after two full garbage collections: at the start (the socket
 * subscribed), after 10,000 messages of 100 bytes (10 topics, non-retained), and after 10,000
 * more (the history still holds 10,000: its bound). What the history costs per 10,000 messages =
 * the growth with recovery on − the growth with recovery off (the same messages through the same
 * code, without keeping them).
 */
import type { BridgeStats } from "../lib/stats";
import { waitFor } from "../test/support/util";
import type { Child } from "./lib/ipc";
import type { RecoveryMode } from "./lib/recovery-bridge";
import {
  RECOVERY_FILTER,
  RECOVERY_MODES,
  bridgeStats,
  publishSeq,
  startBridge,
  stopBridge,
} from "./lib/recovery-bridge";
import type { MemoryAnswer } from "./servers/common";

/** The workload. */
export const MEMORY = { messages: 10_000, steps: 2, bytes: 100, topics: 10 } as const;

/** The process's memory after `messages` messages (and full GCs). */
export interface MemoryPoint {
  messages: number;
  heapUsed: number;
  heapTotal: number;
  rss: number;
  external: number;
  /** `stats().recovery`: messages kept, and the bytes the history counts for them. */
  kept: number;
  keptBytes: number;
}

export interface MemoryRun {
  mode: RecoveryMode;
  /** Whether the GCs ran (the process had `--expose-gc`). */
  collected: boolean;
  points: MemoryPoint[];
}

export interface MemoryResult {
  runs: MemoryRun[];
}

async function point(
  server: Child,
  stats: () => Promise<BridgeStats>,
  messages: number,
): Promise<MemoryPoint & { collected: boolean }> {
  const m = await server.call<MemoryAnswer>("memory", { gc: true });
  const s = await stats();
  return {
    messages,
    heapUsed: m.heapUsed,
    heapTotal: m.heapTotal,
    rss: m.rss,
    external: m.external,
    kept: s.recovery.messages,
    keptBytes: s.recovery.bytes,
    collected: m.collected,
  };
}

/** One mode on a fresh bridge, with one socket of `client`. */
async function memoryRun(
  client: Child,
  mode: RecoveryMode,
  log: (line: string) => void,
): Promise<MemoryRun> {
  const b = await startBridge(mode, ["--expose-gc"]);
  try {
    const url = `http://127.0.0.1:${b.info.port}`;
    await client.call("connect", { url, count: 1, filter: RECOVERY_FILTER });
    await client.call("window", { from: 0, missed: 0, live: 0, want: 0, recovery: false });
    const stats = () => bridgeStats(b);
    const points: MemoryPoint[] = [];
    let collected = true;
    for (let step = 0; step <= MEMORY.steps; step++) {
      const n = step * MEMORY.messages;
      if (step > 0) {
        const shape = { topics: MEMORY.topics, bytes: MEMORY.bytes, retain: false };
        await publishSeq(b, { from: n - MEMORY.messages, count: MEMORY.messages, ...shape }, true);
        await waitFor(
          async () => (await client.call<{ received: number }>("progress")).received >= n,
          { timeoutMs: 30_000, intervalMs: 20, message: `the socket to get ${n} messages` },
        );
      }
      const { collected: c, ...p } = await point(b.server, stats, n);
      collected &&= c;
      points.push(p);
      log(
        `[history memory, recovery ${mode}] after ${n} messages: heap used ` +
          `${(p.heapUsed / 1_048_576).toFixed(1)} MiB, RSS ${(p.rss / 1_048_576).toFixed(1)} MiB, ` +
          `${p.kept} messages kept (${p.keptBytes} bytes counted)`,
      );
    }
    return { mode, collected, points };
  } finally {
    await client.call("disconnect", {}, 60_000).catch(() => undefined);
    await stopBridge(b);
  }
}

/** Measures both modes in turn, on a fresh bridge each. */
export async function runMemory(client: Child, log: (line: string) => void): Promise<MemoryResult> {
  const runs: MemoryRun[] = [];
  for (const mode of RECOVERY_MODES) runs.push(await memoryRun(client, mode, log));
  return { runs };
}
