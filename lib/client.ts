/**
 * The browser helper, `socket.io-mqtt-bridge/client`: MQTT-style subscribe / publish over a
 * Socket.IO socket connected to a namespace that runs the bridge. No Node APIs, no dependency
 * besides (type-only) `socket.io-client`.
 */
import type { Socket } from "socket.io-client";
import { backoffDelay } from "./backoff";
import { MqttBridgeClientError } from "./client-api";
import type { MqttClient, MqttClientOptions } from "./client-api";
import { receive, rethrow } from "./client-delivery";
import type { Local, MessageHandler } from "./client-delivery";
import { DEFAULT_EVENTS } from "./protocol";
import type {
  AckError,
  BridgeMessage,
  ErrorCode,
  EventNames,
  PublishRequest,
  QoS,
  RequestMessage,
  SubscribeRequest,
} from "./protocol";

export type { BridgeMessage, ErrorCode, MessageProperties, QoS, RequestMessage } from "./protocol";
export type { MessageHandler } from "./client-delivery";

export { MqttBridgeClientError } from "./client-api";
export type { MqttClient, MqttClientOptions, Subscription } from "./client-api";

interface Entry {
  filter: string;
  request: SubscribeRequest;
  room: string;
  qos: QoS;
  locals: Set<Local>;
  pending?: Promise<void> | undefined; // the first mqtt.subscribe, until acknowledged
  /**
   * The connection (count of disconnects) during which a restore of this filter is on its way or
   * waits for its retry: the one retry chain of the filter.
   */
  restoring?: number | undefined;
  /** The stream `offset` belongs to (the bridge's epoch, from the acks). */
  epoch?: string | undefined;
  /** Position reached: the handlers got every message of the filter up to it (in `epoch`). */
  offset: number;
  /** The largest offset dispatched to its handlers on this connection (see client-delivery). */
  seen: number;
  /** The stream of `seen`, when the messages name it (see client-delivery). */
  seenEpoch: string | undefined;
  /** The connection (count of disconnects) on which the server acknowledged it last. */
  joinedOn?: number | undefined;
  /** Its handlers got messages on a connection where it was not subscribed: position unknown. */
  gap?: boolean;
  /** The outcome of its last restore. */
  recovered?: boolean | undefined;
}
type Ack = {
  ok: boolean;
  room?: string;
  qos?: QoS;
  position?: { epoch?: unknown; offset?: unknown };
  recovered?: boolean;
  reply?: BridgeMessage;
  error?: Record<string, unknown>;
};

/** Most ids of earlier connections a restore names (`since.ids`, for `echo: false`). */
const MAX_IDS = 16;

/** Codes after which the same subscribe can succeed later. */
const RETRYABLE = new Set<string>([
  "BROKER_UNAVAILABLE",
  "BROKER_REJECTED",
  "TIMEOUT",
  "RATE_LIMITED",
]);

/**
 * Creates the browser helper on a socket of a namespace that runs the bridge. Use one helper per
 * socket. Subscriptions are restored after a reconnect, unless Socket.IO recovered the connection
 * state (then the server kept the rooms).
 * @example
 * import { io } from "socket.io-client";
 * import { mqttClient } from "socket.io-mqtt-bridge/client";
 * const mqtt = mqttClient(io());
 * const sub = await mqtt.subscribe("sensors/+/temp", (msg) => render(msg));
 * await mqtt.publish("chat/lobby", { text: "hi" }, { qos: 1 });
 * await sub.unsubscribe();
 */
export function mqttClient(socket: Socket, options: MqttClientOptions = {}): MqttClient {
  const events: EventNames = { ...DEFAULT_EVENTS, ...options.events };
  const timeoutMs = options.timeoutMs ?? 10_000;
  const entries = new Map<string, Entry>();
  const leaving = new Map<string, Promise<void>>(); // in-flight server unsubscribes, by filter
  let closed = false;
  let disconnects = 0;
  let restored = 0; // value of `disconnects` at the last restore
  const ids: string[] = []; // the socket's ids on its earlier connections, latest last

  const error = (code: ErrorCode, message: string, reasonCode?: number) =>
    new MqttBridgeClientError(code, message, reasonCode);
  const closedError = () => error("INVALID_ARGUMENT", "mqttClient is closed");

  const request = (event: string, arg: unknown, wait = timeoutMs) =>
    new Promise<Ack>((resolve, reject) => {
      socket.timeout(wait).emit(event, arg, (err: unknown, ack?: Ack) => {
        const { code, message, reasonCode } = ack?.error ?? {};
        if (err) {
          reject(error("TIMEOUT", `${event}: ${err instanceof Error ? err.message : "no ack"}`));
        } else if (ack?.ok === true) {
          resolve(ack);
        } else if (ack?.ok !== false || typeof code !== "string") {
          reject(error("TIMEOUT", `${event}: malformed acknowledgement`));
        } else {
          const text = typeof message === "string" ? message : code;
          const rc = typeof reasonCode === "number" ? reasonCode : undefined;
          reject(error(code as ErrorCode, text, rc));
        }
      });
    });

  /** An acknowledged subscribe of `entry` on this connection. */
  const update = (entry: Entry, ack: Ack) => {
    entry.room = ack.room ?? entry.room;
    entry.qos = ack.qos ?? entry.qos;
    entry.joinedOn = disconnects;
    entry.gap = false;
    const { epoch, offset } = ack.position ?? {};
    if (typeof epoch !== "string" || typeof offset !== "number") {
      entry.epoch = undefined; // a bridge without recovery
    } else if (epoch !== entry.epoch) {
      entry.epoch = epoch; // what it got on this connection before is folded in at disconnect
      entry.offset = offset;
    } else {
      entry.offset = Math.max(entry.offset, offset);
    }
    // what its handlers saw of another stream before this ack tells nothing of this one
    if (entry.seenEpoch !== undefined && entry.seenEpoch !== entry.epoch) {
      entry.seen = -1;
      entry.seenEpoch = undefined;
    }
  };

  /** The subscribe request that restores `entry`: from its position, when it has a sure one. */
  const restoreRequest = (entry: Entry): SubscribeRequest => {
    const { filter, request, epoch, offset } = entry;
    if (epoch === undefined || entry.gap) return request;
    const since = { epoch, offset, ids: ids.slice(-MAX_IDS) };
    return typeof request === "string" ? { filter, since } : { ...request, since };
  };

  async function join(entry: Entry): Promise<void> {
    try {
      await leaving.get(entry.filter); // an unsubscribe of this filter goes first
      update(entry, await request(events.subscribe, entry.request));
      if (closed) {
        socket.emit(events.unsubscribe, entry.filter);
        throw closedError();
      }
    } catch (err) {
      if (entries.get(entry.filter) === entry) entries.delete(entry.filter);
      for (const local of entry.locals) local.active = false;
      // no answer in time: the server may have subscribed all the same; undo it (the server
      // applies a socket's requests on one filter in order, so a later subscribe still wins)
      const unknown = (err as MqttBridgeClientError).code === "TIMEOUT";
      if (unknown && !closed && socket.connected) socket.emit(events.unsubscribe, entry.filter);
      throw err;
    } finally {
      entry.pending = undefined;
    }
  }

  function leave(entry: Entry, local: Local): Promise<void> {
    const { filter } = entry;
    const last = local.active && entry.locals.size === 1 && entries.get(filter) === entry;
    local.active = false;
    entry.locals.delete(local);
    if (!last) return Promise.resolve();
    entries.delete(filter);
    const result = request(events.unsubscribe, filter).then(() => {});
    const settled: Promise<void> = result
      .catch(() => {})
      .then(() => void (leaving.get(filter) === settled && leaving.delete(filter)));
    leaving.set(filter, settled);
    return result;
  }

  const onDisconnect = () => {
    for (const entry of entries.values()) {
      // the last messages its handlers got are of another stream than its position (a new worker
      // took over while it stayed connected): their position replaces it
      const moved = entry.seenEpoch !== undefined && entry.seenEpoch !== entry.epoch;
      // subscribed on this connection, its handlers got every message up to what they saw; if
      // not, what they saw (through other filters) may leave out messages of this filter
      if (entry.joinedOn !== disconnects) {
        if (moved || entry.seen > entry.offset) entry.gap = true;
      } else if (moved) {
        entry.epoch = entry.seenEpoch;
        entry.offset = entry.seen;
      } else entry.offset = Math.max(entry.offset, entry.seen);
      entry.seen = -1;
      entry.seenEpoch = undefined;
    }
    disconnects++;
  };

  const restoredEntry = (entry: Entry, recovered: boolean) => {
    entry.recovered = recovered;
    options.onRestore?.(entry.filter, recovered);
  };

  const report = (err: MqttBridgeClientError, filter: string) => {
    if (options.onError) options.onError(err, filter);
    else rethrow(err);
  };

  const minDelay = options.retry?.minDelayMs ?? 1000;
  const maxDelay = options.retry?.maxDelayMs ?? 30_000;
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const backoff = { minDelayMs: minDelay, maxDelayMs: maxDelay, jitter: 0.2 };
  const later = (attempt: number, fn: () => void) => {
    const timer = setTimeout(
      () => {
        timers.delete(timer);
        fn();
      },
      backoffDelay(attempt, backoff),
    );
    timers.add(timer);
  };

  /**
   * Subscribes `entry` again; a failure a retry can fix is retried with backoff. One chain per
   * filter: while it runs (`entry.restoring`), an `mqtt.unsubscribed` of the filter starts none.
   */
  function restore(entry: Entry, attempt: number): void {
    const epoch = disconnects;
    entry.restoring = epoch;
    const current = () => !closed && epoch === disconnects && entries.get(entry.filter) === entry;
    void request(events.subscribe, restoreRequest(entry)).then(
      (ack) => {
        if (entry.restoring === epoch) entry.restoring = undefined;
        if (!current()) return; // a later connection restores it
        update(entry, ack);
        restoredEntry(entry, ack.recovered === true);
      },
      (err: MqttBridgeClientError) => {
        if (entry.restoring === epoch) entry.restoring = undefined;
        // lost with the connection: the next "connect" restores again
        if (!current()) return;
        report(err, entry.filter);
        if (!RETRYABLE.has(err.code)) return;
        entry.restoring = epoch;
        later(attempt, () => {
          if (current()) restore(entry, attempt + 1);
        });
      },
    );
  }

  /** The socket's id on this connection, for the restores of later ones (`since.ids`). */
  const remember = () => {
    if (socket.id !== undefined) ids.push(socket.id);
    if (ids.length > MAX_IDS) ids.shift();
  };

  const onConnect = () => {
    receiver.connected(); // first: the server then batches what the restores bring
    if (restored !== disconnects) {
      restored = disconnects; // not the first connect: restore
      const live = [...entries.values()].filter((entry) => !entry.pending); // others answer for themselves
      for (const entry of live) {
        if (!socket.recovered) restore(entry, 0);
        else {
          // Socket.IO recovered the connection: the server kept our rooms, sent what was missed
          entry.joinedOn = disconnects;
          restoredEntry(entry, true);
        }
      }
    }
    remember();
  };

  /** The server took the socket out of a subscription (`mqtt.unsubscribed`). */
  const onUnsubscribed = (notice: { filter?: unknown; error?: Partial<AckError> }) => {
    const entry = typeof notice?.filter === "string" ? entries.get(notice.filter) : undefined;
    const code = notice?.error?.code;
    // a request of the filter on its way answers for itself
    const busy = entry?.pending !== undefined || entry?.restoring === disconnects;
    if (!entry || busy || typeof code !== "string") return;
    const text = typeof notice.error?.message === "string" ? notice.error.message : code;
    report(error(code, text, notice.error?.reasonCode), entry.filter);
    if (RETRYABLE.has(code)) {
      const epoch = disconnects;
      entry.restoring = epoch;
      later(0, () => {
        if (!closed && epoch === disconnects && entries.get(entry.filter) === entry) {
          restore(entry, 1);
        }
      });
    } else {
      entries.delete(entry.filter);
      for (const local of entry.locals) local.active = false;
    }
  };

  const receiver = receive(socket, events, { batch: options.batch ?? true, timeoutMs }, entries);
  socket.on(events.unsubscribed, onUnsubscribed);
  socket.on("disconnect", onDisconnect);
  socket.on("connect", onConnect);
  if (socket.connected) {
    receiver.connected();
    remember();
  }

  return {
    async subscribe<P>(filter: string, handler: MessageHandler<P>, opts: { qos?: QoS } = {}) {
      if (closed) throw closedError();
      if (typeof filter !== "string" || typeof handler !== "function") {
        throw error("INVALID_ARGUMENT", "subscribe(filter: string, handler: function)");
      }
      let entry = entries.get(filter);
      if (!entry) {
        const request = opts.qos === undefined ? filter : { filter, qos: opts.qos };
        const qos = opts.qos ?? 0;
        const locals = new Set<Local>();
        entry = {
          filter,
          request,
          room: "",
          qos,
          locals,
          offset: -1,
          seen: -1,
          seenEpoch: undefined,
        };
        entries.set(filter, entry);
        entry.pending = join(entry);
      }
      // registered before the ack, so retained messages replayed before it are not lost
      const local: Local = { handler: handler as MessageHandler, active: true };
      entry.locals.add(local);
      await entry.pending;
      const e = entry;
      return {
        filter,
        room: e.room,
        qos: e.qos,
        get recovered() {
          return e.recovered;
        },
        unsubscribe: () => leave(e, local),
      };
    },

    async publish(topic, payload, opts = {}) {
      if (closed) throw closedError();
      const { qos, retain, properties } = opts;
      const req: PublishRequest = { topic, payload, qos, retain, properties };
      for (const key of ["qos", "retain", "properties"] as const) {
        if (req[key] === undefined) delete req[key];
      }
      await request(events.publish, req);
    },

    async request<P>(topic: string, payload: unknown, opts: Partial<RequestMessage> = {}) {
      if (closed) throw closedError();
      // the server answers TIMEOUT itself after timeoutMs: its ack gets the usual time on top
      const ack = await request(
        events.request,
        { ...opts, topic, payload },
        (opts.timeoutMs ?? 10_000) + timeoutMs,
      );
      return ack.reply as BridgeMessage<P>;
    },

    filters: () => [...entries.values()].filter((e) => !e.pending).map((e) => e.filter),

    close() {
      if (closed) return;
      closed = true;
      receiver.close();
      socket.off(events.unsubscribed, onUnsubscribed);
      socket.off("disconnect", onDisconnect);
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      socket.off("connect", onConnect);
      for (const entry of entries.values()) {
        for (const local of entry.locals) local.active = false;
        if (!entry.pending && socket.connected) socket.emit(events.unsubscribe, entry.filter);
      }
      entries.clear();
    },
  };
}
