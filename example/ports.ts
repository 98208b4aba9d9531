/**
 * Port handling for the example: reading a port from the environment, and listening on it, or, for a
 * default port that is taken, on the next free one.
 */
import type { Server } from "node:net";

/** How many ports after a taken default port are tried. */
export const DEFAULT_PORT_RANGE = 20;

/** A port and whether the user chose it (its environment variable is set and not empty). */
export interface PortChoice {
  port: number;
  explicit: boolean;
}

/** A problem the user can fix: printed as one line, without a stack trace. */
export class StartupError extends Error {
  override name = "StartupError";
}

/** Reads the port in `env[name]`, or `fallback` when the variable is unset or empty. */
export function portFromEnv(env: NodeJS.ProcessEnv, name: string, fallback: number): PortChoice {
  const raw = env[name];
  if (raw === undefined || raw.trim() === "") return { port: fallback, explicit: false };
  const value = raw.trim();
  if (!/^\d{1,5}$/.test(value) || Number(value) > 65_535) {
    throw new StartupError(`${name} must be a port number (0-65535), got ${JSON.stringify(raw)}`);
  }
  return { port: Number(value), explicit: true };
}

/** Options of {@link listenOnPort}. */
export interface ListenOptions extends PortChoice {
  /** Interface to bind. */
  host: string;
  /** The environment variable that sets this port (named in error messages). */
  name: string;
  /** Ports tried after a taken default port. @default DEFAULT_PORT_RANGE */
  range?: number;
}

function listenOnce(server: Server, port: number, host: string): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const onError = (err: Error): void => {
      server.off("listening", onListening);
      reject(err);
    };
    const onListening = (): void => {
      server.off("error", onError);
      const address = server.address();
      if (address === null || typeof address === "string") {
        reject(new Error("could not read the bound port"));
      } else {
        resolve(address.port);
      }
    };
    server.once("error", onError);
    server.once("listening", onListening);
    server.listen(port, host);
  });
}

/**
 * Makes `server` listen on `port` and resolves with the port it got. An explicit port that is taken
 * fails at once; a default one is followed by the next `range` ports, the first free one wins.
 * Fails with a {@link StartupError} whose message fits on one line.
 */
export async function listenOnPort(server: Server, opts: ListenOptions): Promise<number> {
  const range = opts.explicit || opts.port === 0 ? 0 : (opts.range ?? DEFAULT_PORT_RANGE);
  const last = Math.min(opts.port + range, 65_535);
  for (let port = opts.port; ; port++) {
    try {
      return await listenOnce(server, port, opts.host);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "EADDRINUSE" && port < last) continue;
      if (code === "EADDRINUSE") {
        throw new StartupError(
          opts.explicit
            ? `${opts.name}=${opts.port}: port ${opts.port} is already in use on ${opts.host}`
            : `${last > opts.port ? `ports ${opts.port}-${last} are all` : `port ${port} is`} in use on ${opts.host}; set ${opts.name} to a free port`,
        );
      }
      if (code === "EACCES") {
        throw new StartupError(`${opts.name}=${port}: permission denied to listen on that port`);
      }
      if (code === "EADDRNOTAVAIL" || code === "ENOTFOUND") {
        throw new StartupError(`cannot listen on ${opts.host}: no such local address`);
      }
      throw err;
    }
  }
}
