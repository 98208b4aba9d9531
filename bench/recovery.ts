/**
 * The recovery bench of issue 13 (`--only=recovery`), three parts side by side with
 * `recovery: false`:
 * - the history's memory per 10,000 messages of 100 bytes (bench/recovery-memory.ts);
 * - a reconnect storm: 1,000 sockets on the browser helper come back at once and each recovers
 *   the 100 messages it missed (bench/recovery-storm.ts);
 * - server CPU per delivery in the fan-out workload (bench/recovery-cpu.ts).
 * The memory and storm parts use their own client processes (bench/clients/storm.ts), the CPU
 * part the fan-out's publisher and receivers. A part that fails is reported as failed (with why)
 * and the others still run, so that a full run still writes its results.
 */
import type { Config } from "./lib/config";
import type { Child } from "./lib/ipc";
import { startChild } from "./lib/ipc";
import type { CpuResult } from "./recovery-cpu";
import { runRecoveryCpu } from "./recovery-cpu";
import type { MemoryResult } from "./recovery-memory";
import { runMemory } from "./recovery-memory";
import type { StormResult } from "./recovery-storm";
import { runStorm } from "./recovery-storm";

/** The three parts of the bench. */
export type RecoveryPart = "memory" | "storm" | "cpu";

export interface RecoveryResult {
  memory: MemoryResult;
  storm: StormResult;
  cpu: CpuResult;
  /** The parts that failed, and why (their results are then empty). */
  failed: Partial<Record<RecoveryPart, string>>;
}

/** Runs the three parts in turn; see the file comment. */
export async function runRecoveryBench(
  cfg: Config,
  log: (line: string) => void,
): Promise<RecoveryResult> {
  const clients: Child[] = await Promise.all(
    Array.from({ length: cfg.receivers }, (_, i) =>
      startChild(`storm client ${i}`, "bench/clients/storm.ts"),
    ),
  );
  const failed: RecoveryResult["failed"] = {};
  const attempt = async <T>(part: RecoveryPart, run: () => Promise<T>, empty: T): Promise<T> => {
    try {
      return await run();
    } catch (err) {
      console.error(`recovery bench, ${part}: failed:`, err);
      // the first line: a child's error carries its stack
      failed[part] = (err instanceof Error ? err.message : String(err)).split("\n")[0];
      return empty;
    }
  };
  const opts = { sockets: cfg.stormSockets, missed: cfg.stormMissed, rounds: cfg.stormRounds };
  let memory: MemoryResult;
  let storm: StormResult;
  try {
    log("recovery bench: history memory per 10,000 messages, recovery on vs off …");
    memory = await attempt("memory", () => runMemory(clients[0], log), { runs: [] });
    log(
      `recovery bench: reconnect storm of ${cfg.stormSockets} sockets × ${cfg.stormMissed} ` +
        `missed messages, ${cfg.stormRounds} round(s) × (on, off) …`,
    );
    storm = await attempt("storm", () => runStorm(clients, opts, log), { ...opts, runs: [] });
  } finally {
    await Promise.all(clients.map((c) => c.stop()));
  }
  log("recovery bench: server CPU per delivery, recovery on vs off, N = 1 and 100 …");
  const cpu = await attempt("cpu", () => runRecoveryCpu(cfg, log), { cells: [], kept: {} });
  return { memory, storm, cpu, failed };
}
