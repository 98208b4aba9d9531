/**
 * The recovery bench's sockets (bench/recovery-storm.ts, bench/recovery-memory.ts): socket.io-client
 * sockets, each with the browser helper (the tsc build of lib/client.ts: `batch: true`, as a page
 * uses it), subscribed to one filter. They drop together (their transport closed, as a network
 * cut: the server sees `transport close`) and come back together (`socket.connect()`, with
 * Socket.IO's reconnection on, so that a failed attempt is retried as in a browser); the helper
 * restores the subscription with the position its handler reached and calls `onRestore`.
 *
 * Per socket, over a window of sequence numbers (`window`): which of them it got and how often,
 * whether the offsets it got only grew, when it connected, was restored and had `want` of the
 * missed messages (µs since the orchestrator's `t0`, on the monotonic clock every process
 * shares). `progress` is cheap (counts), `report` gives every socket's figures.
 */
import { io as connectIo } from "socket.io-client";
import type { Socket } from "socket.io-client";
import type { BridgeMessage, MqttClient } from "../../lib/client";
import { loadClient } from "../lib/build";
import { serve } from "../lib/ipc";
import type { Stamp } from "../lib/payload";
import { nowMicros } from "../lib/payload";

const CONNECT_BATCH = 50;

/** The sequence numbers a storm is about: `missed` published while away, then `live` after. */
interface Window {
  from: number;
  missed: number;
  live: number;
  /** Messages of the missed part a socket must have to be complete (recovery off: the retained). */
  want: number;
  /** Recovery on: a socket is settled when restored and, if it recovered, complete. */
  recovery: boolean;
}

/** What one socket got (times in µs since `t0`; -1: not yet). */
export interface SocketReport {
  connectedAt: number;
  restoredAt: number;
  completeAt: number;
  /** What its last restore said (undefined: not restored since `reconnect`). */
  recovered: boolean | undefined;
  /** Distinct sequence numbers of the missed part, and of the live part. */
  got: number;
  live: number;
  /** Messages of the window it got more than once (each extra copy). */
  duplicates: number;
  /** Messages whose `offset` was not above the one before. */
  disordered: number;
  /** Messages outside the window (e.g. an older retained state). */
  outside: number;
  /** Every message since `connect`. */
  received: number;
}

interface Member extends SocketReport {
  socket: Socket;
  helper: MqttClient;
  counts: Uint8Array;
  lastOffset: number;
}

let members: Member[] = [];
let win: Window = { from: 0, missed: 0, live: 0, want: 0, recovery: true };
let t0 = nowMicros();
const errors: Record<string, number> = {};

function onMessage(m: Member, message: BridgeMessage): void {
  m.received++;
  const offset = message.offset;
  if (typeof offset === "number") {
    if (offset <= m.lastOffset) m.disordered++;
    m.lastOffset = offset;
  }
  const i = (message.payload as Stamp).seq - win.from;
  if (!(i >= 0 && i < m.counts.length)) {
    m.outside++;
    return;
  }
  if (m.counts[i] > 0) {
    m.duplicates++;
    return;
  }
  m.counts[i] = 1;
  if (i >= win.missed) m.live++;
  else if (++m.got === win.want) m.completeAt = nowMicros() - t0;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

async function member(url: string, filter: string): Promise<Member> {
  const socket = connectIo(url, { transports: ["websocket"], forceNew: true, reconnection: false });
  const m = {
    socket,
    counts: new Uint8Array(0),
    lastOffset: 0,
    connectedAt: -1,
    restoredAt: -1,
    completeAt: -1,
    recovered: undefined,
    got: 0,
    live: 0,
    duplicates: 0,
    disordered: 0,
    outside: 0,
    received: 0,
  } as unknown as Member;
  socket.on("connect", () => {
    m.connectedAt = nowMicros() - t0;
  });
  m.helper = loadClient().mqttClient(socket, {
    batch: true,
    onRestore: (_filter, recovered) => {
      m.restoredAt = nowMicros() - t0;
      m.recovered = recovered;
    },
    onError: (err) => {
      errors[err.code] = (errors[err.code] ?? 0) + 1;
    },
  });
  await withTimeout(new Promise<void>((r) => socket.once("connect", () => r())), 10_000, "connect");
  await withTimeout(
    m.helper.subscribe(filter, (message) => onMessage(m, message)),
    10_000,
    "subscribe",
  );
  return m;
}

/** Whether `m` is done with the storm: restored, and holding what it should hold. */
function settled(m: Member): boolean {
  if (m.restoredAt < 0) return false;
  if (win.recovery && m.recovered === false) return true; // could not recover: nothing to wait for
  return m.got >= win.want;
}

function report(m: Member): SocketReport {
  const { connectedAt, restoredAt, completeAt, recovered, got, live } = m;
  const { duplicates, disordered, outside, received } = m;
  return {
    ...{ connectedAt, restoredAt, completeAt, recovered, got, live },
    ...{ duplicates, disordered, outside, received },
  };
}

serve({
  /** Connects `count` sockets to `url`, each subscribed to `filter` through the helper. */
  async connect({ url, count, filter }: { url: string; count: number; filter: string }) {
    for (let i = 0; i < count; i += CONNECT_BATCH) {
      const n = Math.min(CONNECT_BATCH, count - i);
      members.push(...(await Promise.all(Array.from({ length: n }, () => member(url, filter)))));
    }
    return members.length;
  },
  /** Starts counting over a new window (every socket's figures from zero). */
  window(w: Window) {
    win = w;
    for (const m of members) {
      m.counts = new Uint8Array(w.missed + w.live);
      m.got = m.live = m.duplicates = m.disordered = m.outside = m.received = 0;
      m.completeAt = w.want === 0 ? 0 : -1;
    }
  },
  /** Cuts every socket's transport (no automatic reconnection); resolves once all are down. */
  async drop() {
    await withTimeout(
      Promise.all(
        members.map((m) => {
          const gone = new Promise<void>((r) => m.socket.once("disconnect", () => r()));
          m.socket.io.reconnection(false);
          m.socket.io.engine.close();
          return gone;
        }),
      ),
      10_000,
      "drop",
    );
  },
  /** Every socket connects again, in one turn; times count from `t0` (µs, monotonic clock). */
  reconnect(args: { t0: number }) {
    t0 = args.t0;
    for (const m of members) {
      m.connectedAt = m.restoredAt = -1;
      if (win.want > 0) m.completeAt = -1;
      m.recovered = undefined;
      m.socket.io.reconnection(true);
      m.socket.connect();
    }
  },
  /** Counts: sockets connected, restored, settled, holding every live message; all messages. */
  progress() {
    let connected = 0;
    let restored = 0;
    let done = 0;
    let live = 0;
    let received = 0;
    for (const m of members) {
      if (m.socket.connected) connected++;
      if (m.restoredAt >= 0) restored++;
      if (settled(m)) done++;
      if (m.live >= win.live) live++;
      received += m.received;
    }
    return { sockets: members.length, connected, restored, done, live, received };
  },
  /** Every socket's figures, and the helper's errors by code since the start. */
  report() {
    return { sockets: members.map(report), errors };
  },
  disconnect() {
    for (const m of members) {
      m.helper.close();
      m.socket.disconnect();
    }
    members = [];
    for (const k of Object.keys(errors)) delete errors[k];
  },
});
