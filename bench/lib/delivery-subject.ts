/**
 * Systems of the delivery benches (bench/batching.ts, bench/stalled.ts), each a server process
 * with its own fresh Mosquitto (raw Socket.IO: none), the publisher's sink to it, and the bridge's
 * delivery counters read around a round.
 */
import type { BridgeStats } from "../../lib/stats";
import { startMosquitto } from "../../test/support/mosquitto";
import type { ServerInfo } from "../servers/common";
import { startChild } from "./ipc";
import type { Pool, Round, Run, Subject } from "./rounds";
import { round } from "./rounds";

/** The bridge's `stats().delivery` (lib/stats.ts). */
export type DeliveryCounters = BridgeStats["delivery"];

/** How a delivery-bench system is started. */
export interface SubjectSpec<S extends string> {
  /** Its name: the receivers' group and the publisher's sink id. */
  system: S;
  server: "raw" | "handwritten" | "bridge";
  /** bench/servers/bridge.ts only: `{ delivery?, recovery?, io? }` (see that file). */
  extra?: Record<string, unknown>;
  /** Node options of the server process (e.g. `--expose-gc`). */
  execArgv?: string[];
}

/** Starts `spec`'s broker and server and opens the publisher's sink to it. */
export async function startSubject<S extends string>(
  pool: Pool,
  spec: SubjectSpec<S>,
): Promise<Subject<S>> {
  const s: Subject<S> = { system: spec.system, noDelay: false };
  try {
    if (spec.server !== "raw") {
      s.broker = await startMosquitto({ extraConfig: ["set_tcp_nodelay true"] });
    }
    const args = [s.broker?.url ?? "", ...(spec.extra ? [JSON.stringify(spec.extra)] : [])];
    s.server = await startChild(
      spec.system,
      `bench/servers/${spec.server}.ts`,
      args,
      spec.execArgv ?? [],
    );
    s.info = await s.server.call<ServerInfo>("info");
    const sink =
      spec.server === "raw"
        ? { id: spec.system, kind: "tcp", url: `tcp://127.0.0.1:${s.info.ingestPort}` }
        : { id: spec.system, kind: "mqtt", url: s.broker!.url };
    s.noDelay = (await pool.publisher.call<{ noDelay: boolean }>("sink", sink)).noDelay;
    return s;
  } catch (err) {
    await stopSubject(s);
    throw err;
  }
}

/** Stops a subject's server and broker. */
export async function stopSubject(s: Subject): Promise<void> {
  await s.server?.stop(10_000);
  await s.broker?.stop();
}

/** The bridge's delivery counters now (undefined for the other servers). */
export async function deliveryCounters(s: Subject): Promise<DeliveryCounters | undefined> {
  if (!s.server || !s.broker) return undefined;
  const stats = await s.server.call<{ delivery?: DeliveryCounters }>("stats").catch(() => ({}));
  return (stats as { delivery?: DeliveryCounters }).delivery;
}

/** A round plus the frames and messages the bridge's delivery stage sent during it. */
export interface FramedRound extends Round {
  frames: number;
  framedMessages: number;
}

/** {@link round}, with the bridge's delivery counters read around it (outside the CPU window). */
export async function framedRound(
  pool: Pool,
  counts: number[],
  n: number,
  s: Subject,
  run: Run,
  record: boolean,
): Promise<FramedRound> {
  const before = await deliveryCounters(s);
  const x = await round(pool, counts, n, s, run, record);
  const after = await deliveryCounters(s);
  return {
    ...x,
    frames: before && after ? after.frames - before.frames : 0,
    framedMessages: before && after ? after.messages - before.messages : 0,
  };
}

/** Messages per frame over rounds (undefined when no frame was counted: not the bridge). */
export function messagesPerFrame(rounds: FramedRound[]): number | undefined {
  const frames = rounds.reduce((t, r) => t + r.frames, 0);
  const messages = rounds.reduce((t, r) => t + r.framedMessages, 0);
  return frames > 0 ? messages / frames : undefined;
}
