/**
 * A TCP proxy on loopback for the cluster tests: put one between a process and redis-server (or
 * Mosquitto) to partition that one process from it, or to see exactly when its connections open
 * and close. Bounded: at most `maxConnections` connections at once (more are refused), at most
 * 1,000 recorded events; `close()` ends everything.
 */
import net from "node:net";
import { performance } from "node:perf_hooks";

/** One connection opened or closed through the proxy, at `at` (performance.now() of this process). */
export interface ProxyEvent {
  kind: "open" | "close";
  /** Connection number, from 1. */
  conn: number;
  at: number;
}

/**
 * - `open`: bytes flow both ways;
 * - `paused`: a black hole: connections stay up but nothing is read or forwarded either way (a
 *   command sent through it hangs), new connections are accepted and stalled too;
 * - `cut`: every connection is reset, new ones are closed at once.
 */
export type ProxyMode = "open" | "paused" | "cut";

interface Pair {
  conn: number;
  client: net.Socket;
  upstream: net.Socket | undefined;
  stalled: boolean;
}

const MAX_EVENTS = 1000;

export class TcpProxy {
  readonly events: ProxyEvent[] = [];
  private mode: ProxyMode = "open";
  private readonly pairs = new Set<Pair>();
  private conns = 0;

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
    private readonly targetPort: number,
    private readonly maxConnections: number,
  ) {}

  /** Starts a proxy on 127.0.0.1 (ephemeral port) to `127.0.0.1:targetPort`. */
  static async start(targetPort: number, maxConnections = 32): Promise<TcpProxy> {
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve());
    });
    const port = (server.address() as net.AddressInfo).port;
    const proxy = new TcpProxy(server, port, targetPort, maxConnections);
    server.on("connection", (socket) => proxy.accept(socket));
    return proxy;
  }

  /** `<scheme>://127.0.0.1:<port>` */
  url(scheme: string): string {
    return `${scheme}://127.0.0.1:${this.port}`;
  }

  /** Connections currently open through the proxy. */
  get open(): number {
    return this.pairs.size;
  }

  /** Stalls every connection, existing and new (see {@link ProxyMode}). */
  pause(): void {
    this.mode = "paused";
    for (const pair of this.pairs) this.stall(pair);
  }

  /** Resets every connection and refuses new ones. */
  cut(): void {
    this.mode = "cut";
    for (const pair of [...this.pairs]) this.drop(pair);
  }

  /**
   * Ends the partition: connections stalled meanwhile are reset (what a long partition does to a
   * TCP connection; their stale bytes are never delivered), new connections flow again.
   */
  restore(): void {
    this.mode = "open";
    for (const pair of [...this.pairs]) if (pair.stalled) this.drop(pair);
  }

  /** The time of the first event of `kind` after index `from`, or undefined. */
  firstAfter(kind: ProxyEvent["kind"], from = 0): ProxyEvent | undefined {
    return this.events.slice(from).find((e) => e.kind === kind);
  }

  /** Stops listening and resets every connection. */
  async close(): Promise<void> {
    this.mode = "cut";
    for (const pair of [...this.pairs]) this.drop(pair);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private record(kind: ProxyEvent["kind"], conn: number): void {
    if (this.events.length < MAX_EVENTS) this.events.push({ kind, conn, at: performance.now() });
  }

  private accept(client: net.Socket): void {
    client.on("error", () => undefined);
    if (this.mode === "cut" || this.pairs.size >= this.maxConnections) {
      client.resetAndDestroy();
      return;
    }
    const pair: Pair = { conn: ++this.conns, client, upstream: undefined, stalled: false };
    this.pairs.add(pair);
    this.record("open", pair.conn);
    client.once("close", () => this.drop(pair));
    if (this.mode === "paused") {
      this.stall(pair);
      return;
    }
    const upstream = net.connect({ port: this.targetPort, host: "127.0.0.1" });
    pair.upstream = upstream;
    upstream.on("error", () => undefined);
    upstream.once("close", () => this.drop(pair));
    client.on("data", (chunk) => upstream.write(chunk));
    upstream.on("data", (chunk) => client.write(chunk));
  }

  private stall(pair: Pair): void {
    pair.stalled = true;
    pair.client.pause();
    pair.upstream?.pause();
  }

  private drop(pair: Pair): void {
    if (!this.pairs.delete(pair)) return;
    this.record("close", pair.conn);
    pair.client.resetAndDestroy();
    pair.upstream?.resetAndDestroy();
  }
}
