/**
 * A TCP proxy on loopback that holds every chunk for `delayMs` before passing it on, in order, in
 * both directions: a slow network to the broker (late SUBACKs and PUBACKs) without losing a byte
 * or dropping the connection. The delay can change at any time; a chunk never overtakes an
 * earlier one of the same direction. Bounded: at most `maxConnections` connections at once
 * (more are refused); `close()` ends everything.
 */
import net from "node:net";

/** One direction of one connection: chunks waiting for their release time, in order. */
class Lane {
  private readonly queue: { at: number; chunk: Buffer }[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly to: net.Socket,
    private readonly delay: () => number,
  ) {}

  push(chunk: Buffer): void {
    const delay = this.delay();
    if (delay <= 0 && this.queue.length === 0) {
      this.to.write(chunk);
      return;
    }
    this.queue.push({ at: Date.now() + delay, chunk });
    this.schedule();
  }

  private schedule(): void {
    if (this.timer !== undefined || this.queue.length === 0) return;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        const now = Date.now();
        while (this.queue.length > 0 && this.queue[0].at <= now) {
          this.to.write(this.queue.shift()!.chunk);
        }
        this.schedule();
      },
      Math.max(0, this.queue[0].at - Date.now()),
    );
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.queue.length = 0;
  }
}

/** A delaying TCP proxy to `127.0.0.1:targetPort`. */
export class DelayProxy {
  /** The delay applied to chunks arriving from now on, in ms (0: none). */
  delayMs = 0;
  private readonly sockets = new Set<net.Socket>();
  private readonly lanes = new Set<Lane>();

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
    private readonly targetPort: number,
    private readonly maxConnections: number,
  ) {}

  /** Starts a proxy on 127.0.0.1 (ephemeral port). */
  static async start(targetPort: number, maxConnections = 16): Promise<DelayProxy> {
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve());
    });
    const port = (server.address() as net.AddressInfo).port;
    const proxy = new DelayProxy(server, port, targetPort, maxConnections);
    server.on("connection", (socket) => proxy.accept(socket));
    return proxy;
  }

  /** `mqtt://127.0.0.1:<port>` */
  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  private accept(client: net.Socket): void {
    client.on("error", () => undefined);
    if (this.sockets.size / 2 >= this.maxConnections) {
      client.resetAndDestroy();
      return;
    }
    const upstream = net.connect({ port: this.targetPort, host: "127.0.0.1" });
    upstream.on("error", () => undefined);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    const up = new Lane(upstream, () => this.delayMs);
    const down = new Lane(client, () => this.delayMs);
    this.lanes.add(up).add(down);
    this.sockets.add(client).add(upstream);
    client.on("data", (chunk: Buffer) => up.push(chunk));
    upstream.on("data", (chunk: Buffer) => down.push(chunk));
    const end = () => {
      up.stop();
      down.stop();
      this.lanes.delete(up);
      this.lanes.delete(down);
      this.sockets.delete(client);
      this.sockets.delete(upstream);
      client.destroy();
      upstream.destroy();
    };
    client.once("close", end);
    upstream.once("close", end);
  }

  /** Stops listening and closes every connection. */
  async close(): Promise<void> {
    for (const lane of this.lanes) lane.stop();
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
