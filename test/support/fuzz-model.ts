/**
 * What the fuzz test (test/integration/fuzz.test.ts) checks the bridge against, kept apart from
 * the bridge's own bookkeeping: MQTT matching written again here, the broker's subscriptions read
 * from Mosquitto's log, the filters a room needs computed from Socket.IO's room table and the
 * test's own record of routes, and the acknowledgement shapes of the contract.
 */
import { readFile } from "node:fs/promises";
import type { Server } from "socket.io";
import { DEFAULT_LIMITS } from "../../lib/options";
import { ERROR_CODES } from "../../lib/protocol";
import { checkFilter } from "../../lib/sockets/validate";
import type { Input } from "./fuzz-input";

/** The bridge's default room prefix. */
export const PREFIX = "mqtt:";

/** The socket events, by their default names. */
export const EVENT = {
  sub: "mqtt.subscribe",
  unsub: "mqtt.unsubscribe",
  pub: "mqtt.publish",
} as const;

/** Whether MQTT `filter` matches `topic` [MQTT-4.7.1-2], [MQTT-4.7.1-3], [MQTT-4.7.2-1]. */
export function matches(filter: string, topic: string): boolean {
  if ((filter.startsWith("#") || filter.startsWith("+")) && topic.startsWith("$")) return false;
  const f = filter.split("/");
  const t = topic.split("/");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return true; // also the parent level: "a/#" matches "a"
    if (i >= t.length || (f[i] !== "+" && f[i] !== t[i])) return false;
  }
  return f.length === t.length;
}

/** A topic that `filter` matches: `+` → `p`, `#` → `q`. */
export function instance(filter: string): string {
  return filter
    .split("/")
    .map((l) => (l === "+" ? "p" : l === "#" ? "q" : l))
    .join("/");
}

/**
 * The filters Mosquitto holds for `clientId`, by replaying, in order, the lines its
 * `log_type subscribe` / `log_type unsubscribe` wrote: `<epoch>: <client id> <qos> <filter>`
 * for a SUBSCRIBE, `<epoch>: <client id> <filter>` for an UNSUBSCRIBE (no filter the bridge can
 * send starts with a digit and a space). Mosquitto cuts a log line at about 1,000 characters: a
 * cut filter is resolved to the one filter of `known` it begins.
 */
export async function brokerFilters(
  file: string,
  clientId: string,
  known: readonly string[],
): Promise<Set<string>> {
  const held = new Set<string>();
  const head = `${clientId} `;
  const resolve = (logged: string) => {
    if (logged.length < 900 || known.includes(logged)) return logged;
    const candidates = known.filter((k) => k.startsWith(logged));
    return candidates.length === 1 ? candidates[0] : logged;
  };
  for (const line of (await readFile(file, "utf8")).split("\n")) {
    const rest = line.slice(line.indexOf(": ") + 2);
    if (!rest.startsWith(head)) continue;
    const tail = rest.slice(head.length);
    const sub = /^([012]) (.*)$/s.exec(tail);
    if (sub) held.add(resolve(sub[2]));
    else held.delete(resolve(tail));
  }
  return held;
}

/** The filters a room needs: the routes to it plus the filter a prefixed name encodes. */
export function roomFilters(room: string, routes: ReadonlyMap<string, Set<string>>): Set<string> {
  const out = new Set(routes.get(room) ?? []);
  if (room.startsWith(PREFIX)) {
    try {
      out.add(checkFilter(room.slice(PREFIX.length), DEFAULT_LIMITS));
    } catch {
      // not a filter: an ordinary room of the app
    }
  }
  return out;
}

/** What the rooms of the main namespace need, from Socket.IO's own room table. */
export function needed(
  io: Server,
  routes: ReadonlyMap<string, Set<string>>,
): { filters: Set<string>; bridged: number } {
  const { rooms, sids } = io.of("/").adapter;
  const filters = new Set<string>();
  let bridged = 0;
  for (const room of rooms.keys()) {
    if (sids.has(room)) continue; // a socket's own room is never bridged
    const fs = roomFilters(room, routes);
    if (fs.size > 0) bridged++;
    for (const f of fs) filters.add(f);
  }
  return { filters, bridged };
}

export const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * Why `res` is not an acceptable answer to `input` sent with `event`, or undefined.
 * `serverJoined`: server code may have put the socket in the filter's room already, where a
 * subscribe changes nothing and is answered `ok` without authorization.
 */
export function ackProblem(
  event: string,
  input: Input,
  res: unknown,
  serverJoined: boolean,
): string | undefined {
  if (!isObject(res)) return `not an object: ${JSON.stringify(res)}`;
  const keys = Object.keys(res).sort().join(",");
  if (res.ok === true) {
    if (!input.canSucceed && !(event === EVENT.sub && serverJoined)) {
      return "accepted although invalid";
    }
    if (event !== EVENT.sub) return keys === "ok" ? undefined : `keys ${keys}`;
    if (keys !== "ok,position,qos,room") return `keys ${keys}`;
    const position = res.position;
    if (!isObject(position) || typeof position.epoch !== "string") return "position malformed";
    if (typeof position.offset !== "number") return "position.offset malformed";
    if (res.room !== PREFIX + input.filter) return `room ${String(res.room)}`;
    return [0, 1, 2].includes(res.qos as number) ? undefined : `qos ${String(res.qos)}`;
  }
  if (res.ok !== false) return `ok is ${JSON.stringify(res.ok)}`;
  if (keys !== "error,ok" || !isObject(res.error)) return `failure shaped ${JSON.stringify(res)}`;
  const { code, message } = res.error;
  if (!(ERROR_CODES as readonly unknown[]).includes(code)) return `code ${String(code)}`;
  if (typeof message !== "string") return "message is not a string";
  // an unsubscribe of a valid filter is idempotent: only the rate limit may refuse it
  if (event === EVENT.unsub && input.canSucceed && code !== "RATE_LIMITED") {
    return `code ${String(code)}`;
  }
  return undefined;
}

/** A short, printable description of a fuzz value. */
export function describeValue(v: unknown): string {
  let s: string;
  try {
    s = Buffer.isBuffer(v) ? `<Buffer ${v.length}>` : (JSON.stringify(v) ?? String(v));
  } catch {
    s = String(v);
  }
  return s.length > 80 ? `${s.slice(0, 77)}…(${s.length})` : s;
}
