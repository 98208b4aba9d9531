/**
 * What the recovery bench's storm and memory parts share: a bridge server (bench/servers/bridge.ts)
 * on a fresh Mosquitto with recovery on (the defaults) or off, an MQTT.js publisher of its own
 * that numbers its messages, and the bridge's counters.
 */
import type { MqttClient } from "mqtt";
import type { BridgeStats } from "../../lib/stats";
import type { MosquittoHandle } from "../../test/support/mosquitto";
import { startMosquitto } from "../../test/support/mosquitto";
import { waitFor } from "../../test/support/util";
import type { ServerInfo } from "../servers/common";
import type { Child } from "./ipc";
import { startChild } from "./ipc";
import { connectNoDelay, whenConnected } from "./mqtt";
import { makePayload, nowMicros } from "./payload";
import { cpuMicros } from "./proc";

/** Recovery on (the bridge's defaults: 120 s, 10,000 messages, 32 MiB) or `recovery: false`. */
export type RecoveryMode = "on" | "off";
export const RECOVERY_MODES: readonly RecoveryMode[] = ["on", "off"];

/** The topics the recovery bench publishes to, `bench/recovery/<i>`, and the filter of them all. */
export const RECOVERY_FILTER = "bench/recovery/#";
export const recoveryTopic = (seq: number, topics: number) => `bench/recovery/${seq % topics}`;

/** A bridge under test, its broker and a publisher connected to that broker. */
export interface RecoveryBridge {
  mode: RecoveryMode;
  broker: MosquittoHandle;
  server: Child;
  info: ServerInfo;
  publisher: MqttClient;
}

/** Starts a fresh Mosquitto, a bridge server on it (`execArgv`: Node options) and a publisher. */
export async function startBridge(
  mode: RecoveryMode,
  execArgv: string[] = [],
): Promise<RecoveryBridge> {
  const broker = await startMosquitto({ extraConfig: ["set_tcp_nodelay true"] });
  let server: Child | undefined;
  try {
    const extra = mode === "off" ? [JSON.stringify({ recovery: false })] : [];
    server = await startChild(
      `recovery-${mode}`,
      "bench/servers/bridge.ts",
      [broker.url, ...extra],
      execArgv,
    );
    const info = await server.call<ServerInfo>("info");
    const publisher = connectNoDelay(broker.url, { reconnectPeriod: 0 });
    await whenConnected(publisher);
    return { mode, broker, server, info, publisher };
  } catch (err) {
    await server?.stop();
    await broker.stop();
    throw err;
  }
}

/** Stops the publisher, the server and the broker. */
export async function stopBridge(b: RecoveryBridge): Promise<void> {
  await b.publisher.endAsync(true).catch(() => undefined);
  await b.server.stop(10_000);
  await b.broker.stop();
}

/** The bridge's `stats()`. */
export function bridgeStats(b: RecoveryBridge): Promise<BridgeStats> {
  return b.server.call<BridgeStats>("stats");
}

/**
 * Publishes sequence numbers `from` … `from + count - 1` (`bytes`-byte payloads, round-robin over
 * `topics` topics) at QoS 1, `chunk` at a time; resolves once Mosquitto acknowledged every one.
 * With `untilIn`, after each chunk it also waits until the bridge counts that many more messages
 * in (`stats().messages.in`), so that nothing queues up anywhere.
 */
export async function publishSeq(
  b: RecoveryBridge,
  p: { from: number; count: number; topics: number; bytes: number; retain: boolean },
  untilIn = false,
  chunk = 500,
): Promise<void> {
  const in0 = untilIn ? (await bridgeStats(b)).messages.in : 0;
  for (let done = 0; done < p.count;) {
    const n = Math.min(chunk, p.count - done);
    const acks: Promise<unknown>[] = [];
    for (let i = 0; i < n; i++) {
      const seq = p.from + done + i;
      const payload = makePayload(seq, nowMicros(), p.bytes);
      acks.push(
        b.publisher.publishAsync(recoveryTopic(seq, p.topics), payload, {
          qos: 1,
          retain: p.retain,
        }),
      );
    }
    await Promise.all(acks);
    done += n;
    if (untilIn) {
      const want = in0 + done;
      await waitFor(async () => (await bridgeStats(b)).messages.in >= want, {
        timeoutMs: 30_000,
        intervalMs: 20,
        message: `the bridge's messages.in to reach ${want}`,
      });
    }
  }
}

/** CPU µs of the bridge process (`process.cpuUsage()`) and of its Mosquitto (from /proc). */
export async function cpuOf(b: RecoveryBridge): Promise<{ server: number; broker: number }> {
  const u = await b.server.call<NodeJS.CpuUsage>("cpu");
  return { server: u.user + u.system, broker: cpuMicros(b.broker.pid) };
}
