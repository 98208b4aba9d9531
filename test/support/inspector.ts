/**
 * A child Node.js process's inspector (the DevTools protocol over a WebSocket), to read what the
 * process really holds: a full garbage collection first, then `process.memoryUsage()`. Its RSS
 * alone cannot tell held memory from garbage V8 has not collected yet (during a flood, old space
 * can fill with promoted garbage up to ~100 MiB before its next mark-compact, or not, run to run).
 *
 * The child is started with `--inspect=127.0.0.1:0`; {@link inspectorUrl} reads the address it
 * prints on stderr. Close the session before stopping the child: a process that exits with a
 * session attached waits for the debugger to disconnect.
 */
import WebSocket from "ws";
import { withTimeout } from "./util";

/** How long one protocol call may take (a full GC of a busy process included). */
const CALL_TIMEOUT_MS = 10_000;

/** The inspector address a process started with `--inspect` printed on `stderr`, if it did. */
export function inspectorUrl(stderr: string): string | undefined {
  return /^Debugger listening on (ws:\/\/\S+)$/m.exec(stderr)?.[1];
}

/** What a process holds after a full garbage collection, in bytes. */
export interface Held {
  /** V8 heap in use. */
  heapUsed: number;
  /** Memory of C++ objects bound to JavaScript objects: Buffers, ArrayBuffers. */
  external: number;
  /** Both: what the process holds besides code and V8's free space. */
  total: number;
}

/** One DevTools protocol session with a Node.js process. */
export class Inspector {
  private nextId = 1;
  private readonly calls = new Map<
    number,
    { resolve(result: unknown): void; reject(err: Error): void }
  >();

  private constructor(private readonly ws: WebSocket) {
    ws.on("message", (data: Buffer) => {
      const msg = JSON.parse(data.toString("utf8")) as {
        id?: number;
        result?: unknown;
        error?: { message: string };
      };
      const call = msg.id === undefined ? undefined : this.calls.get(msg.id);
      if (!call) return; // an event: none is enabled
      this.calls.delete(msg.id!);
      if (msg.error) call.reject(new Error(`inspector: ${msg.error.message}`));
      else call.resolve(msg.result);
    });
    ws.on("close", () => {
      for (const call of this.calls.values()) call.reject(new Error("inspector: closed"));
      this.calls.clear();
    });
  }

  /** Opens a session at `url` (see {@link inspectorUrl}). */
  static async connect(url: string): Promise<Inspector> {
    const ws = new WebSocket(url);
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        ws.once("open", () => resolve());
        ws.once("error", reject);
      }),
      CALL_TIMEOUT_MS,
      `inspector at ${url}`,
    );
    return new Inspector(ws);
  }

  /** Calls protocol method `method`. */
  call<T>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    const id = this.nextId++;
    const result = new Promise<T>((resolve, reject) => {
      this.calls.set(id, { resolve: (value) => resolve(value as T), reject });
    });
    this.ws.send(JSON.stringify({ id, method, params }));
    return withTimeout(result, CALL_TIMEOUT_MS, `inspector ${method}`);
  }

  /** Collects all garbage, then reads what the process holds. */
  async held(): Promise<Held> {
    await this.call("HeapProfiler.collectGarbage");
    const { result } = await this.call<{ result: { value: string } }>("Runtime.evaluate", {
      expression: "JSON.stringify(process.memoryUsage())",
      returnByValue: true,
    });
    const usage = JSON.parse(result.value) as NodeJS.MemoryUsage;
    return {
      heapUsed: usage.heapUsed,
      external: usage.external,
      total: usage.heapUsed + usage.external,
    };
  }

  /** Ends the session. */
  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    const closed = new Promise<void>((resolve) => this.ws.once("close", () => resolve()));
    this.ws.close();
    await withTimeout(closed, CALL_TIMEOUT_MS, "inspector closed");
  }
}
