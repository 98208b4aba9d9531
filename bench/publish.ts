/**
 * Publish bench: socket → broker QoS 1 publishes/s acknowledged through the bridge, against
 * MQTT.js clients publishing directly to Mosquitto. Same number of clients, same window of
 * unacknowledged publishes per client, same 100-byte payload; nobody subscribes to the topic.
 * Both paths are up at once, each with its own Mosquitto, and measured in alternating rounds.
 * Server CPU = the bridge process + its Mosquitto (direct: Mosquitto alone).
 */
import { startMosquitto } from "../test/support/mosquitto";
import type { MosquittoHandle } from "../test/support/mosquitto";
import type { ServerInfo } from "./servers/common";
import type { Config } from "./lib/config";
import type { Child } from "./lib/ipc";
import { fmtRate } from "./lib/fanout";
import { startChild } from "./lib/ipc";
import { cpuMicros, ioSyscalls, peakRssKiB } from "./lib/proc";

type Path = "bridge" | "direct";

export interface PublishResult {
  system: Path;
  clients: number;
  window: number;
  acked: number;
  refused: number;
  perSec: number;
  cpuPerPublish: number;
  /** Read + write system calls per acked publish: of the bridge process, and of Mosquitto. */
  serverSyscallsPerPublish: number;
  brokerSyscallsPerPublish: number;
  serverRssKiB: number;
}

interface Subject {
  system: Path;
  broker: MosquittoHandle;
  server?: Child;
  acked: number;
  refused: number;
  seconds: number;
  cpu: number;
  /** system calls (reads + writes) of the bridge process and of Mosquitto */
  serverSyscalls: number;
  brokerSyscalls: number;
}

function syscallsOf(pid: number | undefined): number {
  if (pid === undefined) return 0;
  const { reads, writes } = ioSyscalls(pid);
  return reads + writes;
}

async function cpuOf(s: Subject): Promise<number> {
  const usage = s.server ? await s.server.call<NodeJS.CpuUsage>("cpu") : undefined;
  return cpuMicros(s.broker.pid) + (usage ? usage.user + usage.system : 0);
}

/**
 * Runs the publish bench. With `profileDir`, only the bridge path runs, one round, its server
 * under `--cpu-prof` (profile written to that directory when it exits); `window` is set then.
 */
export async function runPublishBench(
  cfg: Config,
  log: (line: string) => void,
  profile?: { dir: string; window?: { from: number; to: number } },
): Promise<PublishResult[]> {
  const clients = await startChild("qos1-clients", "bench/clients/qos1.ts");
  const subjects: Subject[] = [];
  const paths: Path[] = profile ? ["bridge"] : ["bridge", "direct"];
  const rounds = profile ? 1 : cfg.rounds;
  try {
    for (const system of paths) {
      const broker = await startMosquitto({ extraConfig: ["set_tcp_nodelay true"] });
      const s: Subject = {
        system,
        broker,
        acked: 0,
        refused: 0,
        seconds: 0,
        cpu: 0,
        serverSyscalls: 0,
        brokerSyscalls: 0,
      };
      subjects.push(s);
      let url = broker.url;
      if (system === "bridge") {
        const execArgv = profile ? ["--cpu-prof", `--cpu-prof-dir=${profile.dir}`] : [];
        s.server = await startChild("bridge", "bench/servers/bridge.ts", [broker.url], execArgv);
        url = `http://127.0.0.1:${(await s.server.call<ServerInfo>("info")).port}`;
      }
      await clients.call("connect", {
        group: system,
        kind: system === "bridge" ? "socketio" : "mqtt",
        url,
        count: cfg.publishClients,
      });
    }
    const window = cfg.publishWindow;
    for (const s of subjects) {
      await clients.call("run", { group: s.system, window, durationMs: cfg.warmupMs }, 60_000);
    }
    const durationMs = profile ? cfg.profileMs : cfg.publishMs / rounds;
    const mark0 = profile ? await subjects[0].server!.call<number>("mark") : 0;
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < subjects.length; i++) {
        const s = subjects[(i + r) % subjects.length];
        const cpu0 = await cpuOf(s);
        const server0 = syscallsOf(s.server?.pid);
        const broker0 = syscallsOf(s.broker.pid);
        const x = await clients.call<{ acked: number; refused: number; seconds: number }>(
          "run",
          { group: s.system, window, durationMs },
          durationMs + 60_000,
        );
        s.cpu += (await cpuOf(s)) - cpu0;
        s.serverSyscalls += syscallsOf(s.server?.pid) - server0;
        s.brokerSyscalls += syscallsOf(s.broker.pid) - broker0;
        s.acked += x.acked;
        s.refused += x.refused;
        s.seconds += x.seconds;
        log(
          `[publish ${s.system}${profile ? " profiled" : ""}] round ${r + 1}/${rounds}: ` +
            `${fmtRate(x.acked / x.seconds)} QoS 1 publishes/s acked`,
        );
      }
    }
    if (profile)
      profile.window = { from: mark0, to: await subjects[0].server!.call<number>("mark") };
    return subjects.map((s) => {
      const r: PublishResult = {
        system: s.system,
        clients: cfg.publishClients,
        window,
        acked: s.acked,
        refused: s.refused,
        perSec: s.acked / s.seconds,
        cpuPerPublish: s.cpu / Math.max(1, s.acked),
        serverSyscallsPerPublish: s.serverSyscalls / Math.max(1, s.acked),
        brokerSyscallsPerPublish: s.brokerSyscalls / Math.max(1, s.acked),
        serverRssKiB: s.server ? peakRssKiB(s.server.pid) : 0,
      };
      log(
        `[publish ${s.system}] ${fmtRate(r.perSec)} QoS 1 publishes/s acked, ` +
          `${r.cpuPerPublish.toFixed(1)} server CPU µs/publish` +
          (r.refused ? `, ${r.refused} refused` : ""),
      );
      return r;
    });
  } finally {
    await clients.call("disconnect").catch(() => undefined);
    await clients.stop();
    for (const s of subjects) {
      await s.server?.stop(10_000);
      await s.broker.stop();
    }
  }
}
