/**
 * In-process Aedes MQTT broker for integration tests (MQTT 3.1.1 only: aedes
 * 1.x refuses MQTT 5 CONNECTs, see test/integration/support.test.ts).
 *
 * aedes 1.x is an ES module; this CommonJS test code loads it with a dynamic
 * import() and imports only its types statically.
 */
import net from "node:net";
import type { Socket } from "node:net";
import type { Aedes, AedesOptions } from "aedes" with { "resolution-mode": "import" };
import { sleep, withTimeout } from "./util";

/** Options for {@link startAedes}. */
export interface AedesStartOptions {
  /** TCP port on 127.0.0.1; an ephemeral port when omitted. */
  port?: number;
  /** Passed to `Aedes.createBroker()` (authenticate, authorizePublish, ...). */
  brokerOptions?: AedesOptions;
}

/** A running in-process Aedes broker and its TCP server. */
export interface AedesHandle {
  /** TCP port on 127.0.0.1 (kept across restarts). */
  readonly port: number;
  /** `mqtt://127.0.0.1:<port>` */
  readonly url: string;
  /** The current broker instance (a new one after {@link AedesHandle.restart}). */
  readonly broker: Aedes;
  /** The current TCP server (a new one after {@link AedesHandle.restart}). */
  readonly server: net.Server;
  /** Destroys open client sockets and closes server and broker. Idempotent. */
  close(): Promise<void>;
  /** Closes, then starts a fresh broker (empty in-memory state) on the same port. */
  restart(): Promise<void>;
}

interface Running {
  broker: Aedes;
  server: net.Server;
  sockets: Set<Socket>;
  closed: boolean;
}

function listen(server: net.Server, port: number): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once("error", onError);
    server.listen(port, "127.0.0.1", () => {
      server.off("error", onError);
      const address = server.address();
      if (address === null || typeof address === "string") {
        reject(new Error("aedes: could not read the bound port"));
      } else {
        resolve(address.port);
      }
    });
  });
}

async function launch(
  port: number,
  brokerOptions: AedesOptions | undefined,
): Promise<{ running: Running; port: number }> {
  const { Aedes: AedesClass } = await import("aedes");
  const broker = await AedesClass.createBroker(brokerOptions);
  const sockets = new Set<Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    broker.handle(socket);
  });
  const running: Running = { broker, server, sockets, closed: false };
  // A port that was just released may need a moment before it can be bound again.
  const deadline = Date.now() + 3000;
  for (;;) {
    try {
      return { running, port: await listen(server, port) };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "EADDRINUSE" || port === 0 || Date.now() >= deadline) {
        await shutdown(running);
        throw err;
      }
      await sleep(100);
    }
  }
}

async function shutdown(running: Running): Promise<void> {
  if (running.closed) return;
  running.closed = true;
  const serverClosed = new Promise<void>((resolve) => {
    if (!running.server.listening) resolve();
    else running.server.close(() => resolve());
  });
  for (const socket of running.sockets) socket.destroy();
  const brokerClosed = new Promise<void>((resolve) => running.broker.close(() => resolve()));
  await withTimeout(Promise.all([serverClosed, brokerClosed]), 5000, "aedes close");
}

/**
 * Starts an Aedes broker (`Aedes.createBroker()`, async in aedes 1.x) behind
 * `net.createServer(...).listen(port ?? 0, "127.0.0.1")` and resolves once it
 * is listening.
 */
export async function startAedes(opts: AedesStartOptions = {}): Promise<AedesHandle> {
  const first = await launch(opts.port ?? 0, opts.brokerOptions);
  let running = first.running;
  const port = first.port;
  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    get broker() {
      return running.broker;
    },
    get server() {
      return running.server;
    },
    close: () => shutdown(running),
    async restart(): Promise<void> {
      await shutdown(running);
      running = (await launch(port, opts.brokerOptions)).running;
    },
  };
}
