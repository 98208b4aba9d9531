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
  const batch = options.batch ?? true;
  const entries = new Map<string, Entry>();
  const leaving = new Map<string, Promise<unknown>>(); // in-flight server unsubscribes, by filter
  let closed = false;
  let disconnects = 0;
  let restored = 0; // value of `disconnects` at the last restore
  const ids: string[] = []; // the socket's ids on its earlier connections, latest last

  const error = (code: ErrorCode, message: string, reasonCode?: number) =>
    new MqttBridgeClientError(code, message, reasonCode);
  const closedError = () => error("INVALID_ARGUMENT", "mqttClient is closed");
  /** The error the server sent (an ack's or a notice's `error`), when it has a code. */
  const serverError = (e?: Partial<AckError>) =>
    typeof e?.code === "string"
      ? error(
          e.code,
          typeof e.message === "string" ? e.message : e.code,
          typeof e.reasonCode === "number" ? e.reasonCode : undefined,
        )
      : undefined;

  const request = (event: string, arg: unknown, wait = timeoutMs) =>
    new Promise<Ack>((resolve, reject) => {
      socket.timeout(wait).emit(event, arg, (err: Error | null, ack?: Ack) => {
        if (err) reject(error("TIMEOUT", `${event}: ${err.message}`));
        else if (ack?.ok === true) resolve(ack);
        else {
          const refused = ack?.ok === false && serverError(ack.error);
          reject(refused || error("TIMEOUT", `${event}: malformed acknowledgement`));
        }
      });
    });

  /** The server no longer has `filter` for this socket: tell it (no ack), when it can hear. */
  const forget = (filter: string) => socket.connected && socket.emit(events.unsubscribe, filter);

  /** Ends `entry`: out of the map (unless replaced meanwhile), its handlers inactive. */
  const drop = (entry: Entry) => {
    if (entries.get(entry.filter) === entry) entries.delete(entry.filter);
    for (const local of entry.locals) local.active = false;
  };

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
      await leaving.get(entry.filter)?.catch(() => {}); // an unsubscribe of this filter goes first
      update(entry, await request(events.subscribe, entry.request));
      if (closed) {
        socket.emit(events.unsubscribe, entry.filter);
        throw closedError();
      }
    } catch (err) {
      drop(entry);
      // no answer in time: the server may have subscribed all the same; undo it (the server
      // applies a socket's requests on one filter in order, so a later subscribe still wins)
      if ((err as MqttBridgeClientError).code === "TIMEOUT" && !closed) forget(entry.filter);
      throw err;
    } finally {
      entry.pending = undefined;
    }
  }

  async function leave(entry: Entry, local: Local): Promise<void> {
    const { filter } = entry;
    const last = local.active && entry.locals.size === 1 && entries.get(filter) === entry;
    local.active = false;
    entry.locals.delete(local);
    if (!last) return;
    entries.delete(filter);
    const result = request(events.unsubscribe, filter);
    const done = () => void (leaving.get(filter) === result && leaving.delete(filter));
    leaving.set(filter, result);
    void result.then(done, done);
    await result;
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

  const backoff = {
    minDelayMs: options.retry?.minDelayMs ?? 1000,
    maxDelayMs: options.retry?.maxDelayMs ?? 30_000,
    jitter: 0.2,
  };
  const timers = new Set<ReturnType<typeof setTimeout>>();

  /** Still the subscription to restore on connection `epoch` (a count of disconnects)? */
  const current = (entry: Entry, epoch: number) =>
    !closed && epoch === disconnects && entries.get(entry.filter) === entry;

  /**
   * Subscribes `entry` again; a failure a retry can fix is retried with backoff. One chain per
   * filter: while it runs (`entry.restoring`), an `mqtt.unsubscribed` of the filter starts none.
   */
  function restore(entry: Entry, attempt: number): void {
    const epoch = (entry.restoring = disconnects);
    /** Whether the answer still counts: the chain ends, unless the connection is still on. */
    const settled = () => {
      if (entry.restoring === epoch) entry.restoring = undefined;
      return current(entry, epoch); // if not, the next "connect" restores again
    };
    void request(events.subscribe, restoreRequest(entry)).then(
      (ack) => {
        if (!settled()) return;
        update(entry, ack);
        restoredEntry(entry, ack.recovered === true);
      },
      (err: MqttBridgeClientError) => {
        if (!settled()) return;
        report(err, entry.filter);
        if (RETRYABLE.has(err.code)) retry(entry, attempt);
      },
    );
  }

  /** Restores `entry` after the backoff of `attempt`, unless its connection ended meanwhile. */
  function retry(entry: Entry, attempt: number): void {
    const epoch = (entry.restoring = disconnects);
    const timer = setTimeout(
      () => {
        timers.delete(timer);
        if (current(entry, epoch)) restore(entry, attempt + 1);
      },
      backoffDelay(attempt, backoff),
    );
    timers.add(timer);
  }

  const onConnect = () => {
    // first, so that the server batches what the restores bring: a server without the event
    // (older) never answers or refuses, which is ignored; both events are listened to anyway
    if (batch) socket.timeout(timeoutMs).emit(events.options, { batch: true }, () => {});
    if (restored !== disconnects) {
      restored = disconnects; // not the first connect: restore
      for (const entry of [...entries.values()]) {
        if (entry.pending) continue; // it answers for itself
        if (!socket.recovered) restore(entry, 0);
        else {
          // Socket.IO recovered the connection: the server kept our rooms, sent what was missed
          entry.joinedOn = disconnects;
          restoredEntry(entry, true);
        }
      }
    }
    // the socket's id on this connection, for the restores of later ones (`since.ids`)
    if (socket.id !== undefined) ids.push(socket.id);
    if (ids.length > MAX_IDS) ids.shift();
  };

  /** The server took the socket out of a subscription (`mqtt.unsubscribed`). */
  const onUnsubscribed = (notice: { filter?: unknown; error?: Partial<AckError> }) => {
    const entry = entries.get(notice?.filter as string); // not a string: finds nothing
    const err = serverError(notice?.error);
    // a request of the filter on its way answers for itself
    if (!entry || !err || entry.pending || entry.restoring === disconnects) return;
    report(err, entry.filter);
    if (RETRYABLE.has(err.code)) retry(entry, 0);
    else drop(entry);
  };

  const stopReceiving = receive(socket, events, entries);
  socket.on(events.unsubscribed, onUnsubscribed);
  socket.on("disconnect", onDisconnect);
  socket.on("connect", onConnect);
  if (socket.connected) onConnect();

  return {
    async subscribe<P>(filter: string, handler: MessageHandler<P>, opts: { qos?: QoS } = {}) {
      if (closed) throw closedError();
      if (typeof filter !== "string" || typeof handler !== "function") {
        throw error("INVALID_ARGUMENT", "subscribe(filter: string, handler: function)");
      }
      const { qos } = opts;
      let entry = entries.get(filter);
      if (!entry) {
        const request = qos === undefined ? filter : { filter, qos };
        entry = {
          filter,
          request,
          room: "",
          qos: qos ?? 0,
          locals: new Set(),
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
      stopReceiving();
      // other listeners of the socket may expect one message per `mqtt.message`
      if (batch && socket.connected) socket.emit(events.options, { batch: false });
      socket.off(events.unsubscribed, onUnsubscribed);
      socket.off("disconnect", onDisconnect);
      socket.off("connect", onConnect);
      for (const timer of timers) clearTimeout(timer);
      for (const entry of entries.values()) {
        drop(entry);
        if (!entry.pending) forget(entry.filter);
      }
    },
  };
}
