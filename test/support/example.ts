/**
 * The example (example/server.ts) as a child process, the way a user runs it: spawned with
 * `node --import tsx`, on a clean environment plus the variables a test sets, its output collected.
 * Shared by the integration test of the example and the real-browser (e2e) tests.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import path from "node:path";
import { onProcessExit, waitFor, withTimeout } from "./util";

const root = path.resolve(__dirname, "..", "..");
/** Starting tsx, bundling the pages and starting the example may be slow on a loaded machine. */
export const START_TIMEOUT_MS = 20_000;
/** The variables the example reads; a test sets them explicitly or not at all. */
const EXAMPLE_ENV = [
  "PORT",
  "MQTT_PORT",
  "MQTT_URL",
  "REDIS_URL",
  "TOPOLOGY",
  "FLEET",
  "FLEET_INTERVAL_MS",
  "HOST",
  "DEBUG",
];

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A running example process and what it printed so far. */
export interface Example {
  child: ChildProcess;
  stdout: string;
  stderr: string;
  exited: Promise<Exit>;
  running: boolean;
}

/** The page URLs the example printed. */
export interface ExamplePages {
  chat: string;
  dashboard: string;
}

const children = new Set<ChildProcess>();
onProcessExit(() => {
  for (const child of children) child.kill("SIGKILL");
});

/**
 * Spawns `node --import tsx example/server.ts` with `env` on top of a clean environment;
 * `nodeArgs`: options for node itself (e.g. `--inspect=127.0.0.1:0`).
 */
export function startExample(env: Record<string, string>, nodeArgs: string[] = []): Example {
  return spawnNode(["example/server.ts"], env, nodeArgs);
}

/**
 * Spawns `node --import tsx <args>` in the repository (e.g. `lib/cli.ts worker …`) with `env` on
 * top of a clean environment, collecting its output like {@link startExample}.
 */
export function spawnNode(
  args: string[],
  env: Record<string, string> = {},
  nodeArgs: string[] = [],
): Example {
  const base = { ...process.env };
  for (const name of EXAMPLE_ENV) delete base[name];
  const child = spawn(process.execPath, [...nodeArgs, "--import", "tsx", ...args], {
    cwd: root,
    env: { ...base, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(child);
  const example: Example = {
    child,
    stdout: "",
    stderr: "",
    running: true,
    exited: new Promise<Exit>((resolve) => {
      child.once("exit", (code, signal) => {
        example.running = false;
        children.delete(child);
        resolve({ code, signal });
      });
    }),
  };
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (example.stdout += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (example.stderr += chunk));
  return example;
}

/** Waits for the printed page URLs; fails with the output so far if the example exits or stalls. */
export async function examplePages(example: Example): Promise<ExamplePages> {
  const chat = /^Chat page: (http:\/\/\S+)$/m;
  const dashboard = /^Dashboard: (http:\/\/\S+)$/m;
  // the banner's last line: a pipe may bring the lines in several chunks
  const end = /^Press Ctrl-C to stop\.$/m;
  const printed = () =>
    chat.test(example.stdout) && dashboard.test(example.stdout) && end.test(example.stdout);
  try {
    await waitFor(() => printed() || !example.running, {
      timeoutMs: START_TIMEOUT_MS,
      intervalMs: 50,
      message: "the example to print its page URLs",
    });
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${example.stdout}\n${example.stderr}`, {
      cause: err,
    });
  }
  if (!printed()) {
    throw new Error(`the example exited early:\n${example.stdout}\n${example.stderr}`);
  }
  return { chat: chat.exec(example.stdout)![1], dashboard: dashboard.exec(example.stdout)![1] };
}

/** Sends `signal` and waits (bounded) for the process to exit. */
export async function stopExample(
  example: Example,
  signal: NodeJS.Signals = "SIGKILL",
  timeoutMs = 5000,
): Promise<Exit> {
  if (example.running) example.child.kill(signal);
  return withTimeout(example.exited, timeoutMs, `the example to exit after ${signal}`);
}
