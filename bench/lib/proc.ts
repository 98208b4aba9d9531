/** Reading CPU time and peak memory of processes from /proc, and describing the machine. */
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
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
 * User + system CPU time of a whole process (all its threads), in µs, from /proc/<pid>/stat
 * (utime + stime, in clock ticks: 10 ms resolution at CLK_TCK = 100).
 */
export function cpuMicros(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // the command name (field 2) may hold spaces: fields are counted after its closing parenthesis
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return ((utime + stime) * 1e6) / CLK_TCK;
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
