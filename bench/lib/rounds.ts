/**
 * One measured round of a bench workload: the publisher runs (a window of unacknowledged messages,
 * or a fixed rate), the receivers count and time what arrives, and the CPU of every server-side
 * process is read around it. Shared by the fan-out, cluster and delivery benches.
 */
import type { MosquittoHandle } from "../../test/support/mosquitto";
import { sleep } from "../../test/support/util";
import type { RunResult } from "../clients/publisher";
import type { ServerInfo } from "../servers/common";
import type { Child } from "./ipc";
import { startChild } from "./ipc";
import { cpuMicros, ioSyscalls } from "./proc";

/** The long-lived client processes, reused by every room size. */
export interface Pool {
  publisher: Child;
  receivers: Child[];
}

/** Starts the publisher and `receivers` receiver processes, the receivers acking to the publisher. */
export async function startPool(receivers: number): Promise<Pool> {
  const publisher = await startChild("publisher", "bench/clients/publisher.ts");
  const pool: Pool = {
    publisher,
    receivers: await Promise.all(
      Array.from({ length: receivers }, (_, i) =>
        startChild(`receiver ${i}`, "bench/clients/receiver.ts"),
      ),
    ),
  };
  const { ackPort } = await publisher.call<{ ackPort: number }>("info");
  await Promise.all(pool.receivers.map((r, idx) => r.call("ackTo", { port: ackPort, idx })));
  return pool;
}

/** Stops the client processes of a pool. */
export async function stopPool(pool: Pool): Promise<void> {
  await Promise.all([pool.publisher, ...pool.receivers].map((c) => c.stop()));
}

/** A phase summed over its rounds. */
export interface PhaseResult {
  sent: number;
  delivered: number;
  lost: number;
  seconds: number;
  deliveriesPerSec: number;
  /** CPU µs of the server process and of the broker, summed over the rounds. */
  serverCpu: number;
  brokerCpu: number;
  /** (server + broker CPU) ÷ deliveries, over all rounds. */
  cpuPerDelivery: number;
  /** The same per round, to show the noise. */
  roundsCpuPerDelivery: number[];
  /** Write system calls of the server process(es) ÷ deliveries (0 when unreadable). */
  writesPerDelivery: number;
  /** CPU µs of the receiver processes ÷ deliveries: what a client spends per message. */
  clientCpuPerDelivery: number;
  stalled: boolean;
  unsustained: boolean;
}

/**
 * A system under test, up and connected. `system` is also the receivers' group and the
 * publisher's sink id. The cluster bench adds more server processes: `servers` (bench servers that
 * answer `cpu`) and `serverPids` / `brokerPids` (any process, read from /proc: a worker, Redis).
 */
export interface Subject<S extends string = string> {
  system: S;
  broker?: MosquittoHandle;
  server?: Child;
  info?: ServerInfo;
  noDelay: boolean;
  servers?: Child[];
  serverPids?: number[];
  brokerPids?: number[];
}

export interface Round {
  sent: number;
  delivered: number;
  seconds: number;
  serverCpu: number;
  brokerCpu: number;
  serverWrites: number;
  /** CPU µs of the receiver processes (the clients' side). */
  clientCpu: number;
  stalled: boolean;
  unsustained: boolean;
  histograms: string[];
}

let phaseId = 0;

/** `n` spread over `parts` as evenly as possible. */
export function split(n: number, parts: number): number[] {
  return Array.from({ length: parts }, (_, i) => Math.floor(n / parts) + (i < n % parts ? 1 : 0));
}

async function cpuOf(
  s: Subject<string>,
): Promise<{ server: number; broker: number; writes: number }> {
  const servers = [...(s.server ? [s.server] : []), ...(s.servers ?? [])];
  const usages = await Promise.all(servers.map((c) => c.call<NodeJS.CpuUsage>("cpu")));
  const pids = (xs: number[] | undefined) => (xs ?? []).reduce((t, pid) => t + cpuMicros(pid), 0);
  const serverPids = [...servers.map((c) => c.pid), ...(s.serverPids ?? [])];
  return {
    server: usages.reduce((t, u) => t + u.user + u.system, 0) + pids(s.serverPids),
    broker: (s.broker ? cpuMicros(s.broker.pid) : 0) + pids(s.brokerPids),
    writes: serverPids.reduce((t, pid) => t + ioSyscalls(pid).writes, 0),
  };
}

/** CPU µs of the receiver processes. */
function clientCpuOf(pool: Pool): number {
  return pool.receivers.reduce((t, r) => t + cpuMicros(r.pid), 0);
}

/** Waits until the receivers have `expected` messages in total, or `timeoutMs` passed. */
async function drain(pool: Pool, expected: number, timeoutMs = 5000): Promise<number> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const stats = await Promise.all(
      pool.receivers.map((r) => r.call<{ received: number }>("stats", {})),
    );
    const total = stats.reduce((sum, x) => sum + x.received, 0);
    if (total >= expected || Date.now() > end) return total;
    await sleep(5);
  }
}

/** What the publisher does in a round; `shape`: see bench/clients/publisher.ts. */
export type Run = (
  | { mode: "window"; window: number; durationMs: number }
  | { mode: "rate"; rate: number; durationMs: number }
) &
  Shape;

/** Bursts, payload size and topics of a workload (the fan-out's: none, 100 bytes, one). */
export interface Shape {
  burst?: number;
  bytes?: number;
  topics?: number;
}

/** One measured round of one system. */
export async function round(
  pool: Pool,
  counts: number[],
  n: number,
  s: Subject<string>,
  run: Run,
  record: boolean,
): Promise<Round> {
  const id = ++phaseId;
  const ackEvery = run.mode === "window" ? Math.max(1, Math.floor(run.window / 4)) : 1;
  await Promise.all(
    pool.receivers.map((r) => r.call("reset", { phase: id, group: s.system, record, ackEvery })),
  );
  const ackFrom = counts.flatMap((c, i) => (c > 0 ? [i] : []));
  const cpu0 = await cpuOf(s);
  const clients0 = clientCpuOf(pool);
  const t0 = performance.now();
  const res = await pool.publisher.call<RunResult>(
    "run",
    { ...run, sink: s.system, phase: id, ackFrom },
    run.durationMs + 30_000,
  );
  const delivered = await drain(pool, res.sent * n);
  const seconds = (performance.now() - t0) / 1000;
  const cpu1 = await cpuOf(s);
  const clients1 = clientCpuOf(pool);
  const stats = await Promise.all(
    pool.receivers.map((r) => r.call<{ histogram?: string }>("stats", { histogram: record })),
  );
  return {
    sent: res.sent,
    delivered,
    seconds,
    serverCpu: cpu1.server - cpu0.server,
    brokerCpu: cpu1.broker - cpu0.broker,
    serverWrites: cpu1.writes - cpu0.writes,
    clientCpu: clients1 - clients0,
    stalled: res.stalled,
    unsustained: res.unsustained,
    histograms: stats.flatMap((x) => (x.histogram ? [x.histogram] : [])),
  };
}

/** A phase summed over its rounds. */
export function sum(rounds: Round[], n: number): PhaseResult {
  const total = (f: (r: Round) => number) => rounds.reduce((acc, r) => acc + f(r), 0);
  const delivered = total((r) => r.delivered);
  const seconds = total((r) => r.seconds);
  const serverCpu = total((r) => r.serverCpu);
  const brokerCpu = total((r) => r.brokerCpu);
  return {
    sent: total((r) => r.sent),
    delivered,
    lost: total((r) => r.sent * n - r.delivered),
    seconds,
    deliveriesPerSec: delivered / seconds,
    serverCpu,
    brokerCpu,
    cpuPerDelivery: (serverCpu + brokerCpu) / Math.max(1, delivered),
    roundsCpuPerDelivery: rounds.map((r) => (r.serverCpu + r.brokerCpu) / Math.max(1, r.delivered)),
    writesPerDelivery: total((r) => r.serverWrites) / Math.max(1, delivered),
    clientCpuPerDelivery: total((r) => r.clientCpu) / Math.max(1, delivered),
    stalled: rounds.some((r) => r.stalled),
    unsustained: rounds.some((r) => r.unsustained),
  };
}
