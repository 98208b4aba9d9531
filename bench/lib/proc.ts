/** Reading CPU time and peak memory of processes from /proc, and describing the machine. */
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { ROOT } from "./ipc";

const CLK_TCK = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/**
 * CPU time of a whole process (all its threads, user + system), in µs: the run time the scheduler
 * accounted to each thread (`/proc/<pid>/task/<tid>/schedstat`, first field, in ns), or, where
 * that is missing, utime + stime of `/proc/<pid>/stat` (clock ticks: 10 ms at CLK_TCK = 100).
 */
export function cpuMicros(pid: number): number {
  try {
    let ns = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
    }
    if (Number.isFinite(ns) && ns > 0) return ns / 1000;
  } catch {
    // no schedstat: fall back to the tick counts
  }
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // the command name (field 2) may hold spaces: fields are counted after its closing parenthesis
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return ((utime + stime) * 1e6) / CLK_TCK;
}

/**
 * Read- and write-type system calls a process has made (`syscr` / `syscw` of /proc/<pid>/io: read,
 * recvmsg …, write, writev, sendmsg …); zeros when it cannot be read. With one TCP write per socket
 * per message, a server that coalesced writes would show fewer than one per delivery.
 */
export function ioSyscalls(pid: number): { reads: number; writes: number } {
  try {
    const io = readFileSync(`/proc/${pid}/io`, "utf8");
    const field = (name: string) =>
      Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(io)?.[1] ?? 0);
    return { reads: field("syscr"), writes: field("syscw") };
  } catch {
    return { reads: 0, writes: 0 };
  }
}

/** Peak resident set size (VmHWM) of a process, in KiB; 0 when it cannot be read. */
export function peakRssKiB(pid: number): number {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

function version(pkg: string): string {
  try {
    const json = readFileSync(path.join(ROOT, "node_modules", pkg, "package.json"), "utf8");
    return (JSON.parse(json) as { version: string }).version;
  } catch {
    return "?";
  }
}

function mosquittoVersion(): string {
  for (const bin of ["/usr/sbin/mosquitto", "mosquitto"]) {
    // `mosquitto -h` prints its version (and exits with 3 on some versions)
    const out = spawnSync(bin, ["-h"], { encoding: "utf8" });
    const m = /mosquitto version (\S+)/.exec(`${out.stdout ?? ""}${out.stderr ?? ""}`);
    if (m) return m[1];
  }
  return "?";
}

/** The machine and the versions the results were measured with. */
export interface MachineInfo {
  nproc: number;
  cpu: string;
  memGiB: number;
  kernel: string;
  node: string;
  mosquitto: string;
  socketio: string;
  mqtt: string;
  date: string;
  /** 1-minute load average when the run started and when it ended (others share the machine). */
  loadStart: string;
  loadEnd?: string;
  /** The commit of the lib/ under test (see build.ts). */
  lib?: string;
}

/** The 1-minute load average. */
export function loadAverage(): string {
  return os.loadavg()[0].toFixed(2);
}

export function machineInfo(): MachineInfo {
  let cpu = "?";
  try {
    cpu = /^model name\s*:\s*(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "?";
  } catch {
    // not Linux
  }
  let nproc = os.availableParallelism();
  try {
    nproc = Number(execFileSync("nproc", { encoding: "utf8" }).trim());
  } catch {
    // keep Node's figure
  }
  return {
    nproc,
    cpu,
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    node: process.version,
    mosquitto: mosquittoVersion(),
    socketio: version("socket.io"),
    mqtt: version("mqtt"),
    date: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    loadStart: loadAverage(),
  };
}
