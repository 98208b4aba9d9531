/**
 * The receiving side of the browser helper: `mqtt.message` and `mqtt.messages` (several messages
 * of one frame, in order) unpacked into one dispatch per message, to the handlers whose filter
 * matches; and the `mqtt.options { batch: true }` request that makes the server send such frames.
 * No Node APIs: part of the browser bundle.
 */
import type { Socket } from "socket.io-client";
import type { BridgeMessage, EventNames } from "./protocol";
import { matches } from "./topic";

/**
 * Called with every message whose topic matches the subscription's filter. A handler that throws
 * does not stop the other handlers: its error is rethrown asynchronously (`queueMicrotask`), so
 * it surfaces as an uncaught error (console, `window.onerror`, error monitoring).
 * `message.skipped`, when present, counts the messages of that topic this socket will never see
 * (it was slow, and the server conflated or dropped them).
 * @example
 * const render: MessageHandler<{ celsius: number }> = (msg) => console.log(msg.topic, msg.payload.celsius);
 */
export type MessageHandler<P = unknown> = (message: BridgeMessage<P>) => void;

/** One local subscription: its handler, until it is unsubscribed. */
export interface Local {
  handler: MessageHandler;
  active: boolean;
}

/** What dispatching needs of a subscribed filter. */
export interface Dispatchable {
  filter: string;
  locals: ReadonlySet<Local>;
  /** The largest `offset` dispatched to its handlers on this connection (raised here). */
  seen: number;
  /**
   * The stream `seen` counts in, when the messages name it (`epoch`): a message of another stream
   * (a new worker took over) starts `seen` over from its offset.
   */
  seenEpoch: string | undefined;
}

/** Rethrows `error` outside the caller (a microtask), so it surfaces as an uncaught error. */
export const rethrow = (error: unknown) =>
  queueMicrotask(() => {
    throw error;
  });

/** What {@link receive} gives the helper. */
export interface Receiver {
  /** The socket is connected (again): asks for batched frames, if wanted. */
  connected(): void;
  /** Removes the listeners; asks the server to stop batching, since nobody unpacks any more. */
  close(): void;
}

/**
 * Listens to `mqtt.message` and `mqtt.messages` on `socket` and hands each message to every active
 * handler of `subscriptions` whose filter matches it (each handler once, in the order received).
 * With `batch`, {@link Receiver.connected} sends `mqtt.options { batch: true }`: a server without
 * that event (older) never answers or refuses, which is ignored; nothing waits for the answer.
 */
export function receive(
  socket: Socket,
  events: EventNames,
  opts: { batch: boolean; timeoutMs: number },
  subscriptions: ReadonlyMap<string, Dispatchable>,
): Receiver {
  const onMessage = (message: BridgeMessage) => {
    if (typeof message?.topic !== "string") return;
    const handlers = new Map<MessageHandler, Local>(); // each handler once, first match wins
    const offset = typeof message.offset === "number" ? message.offset : -1;
    const epoch = typeof message.epoch === "string" ? message.epoch : undefined;
    for (const entry of subscriptions.values()) {
      if (!matches(entry.filter, message.topic)) continue;
      if (offset < 0) {
        // not numbered (retained state, recovery off): no position
      } else if (epoch !== undefined && epoch !== entry.seenEpoch) {
        entry.seenEpoch = epoch; // its offsets say nothing of the other stream's
        entry.seen = offset;
      } else if (offset > entry.seen) entry.seen = offset;
      for (const local of entry.locals) {
        if (!handlers.has(local.handler)) handlers.set(local.handler, local);
      }
    }
    for (const local of handlers.values()) {
      try {
        if (local.active) local.handler(message); // may have been unsubscribed by an earlier one
      } catch (err) {
        rethrow(err);
      }
    }
  };
  const onMessages = (messages: BridgeMessage[]) => {
    if (Array.isArray(messages)) for (const message of messages) onMessage(message);
  };
  socket.on(events.message, onMessage);
  socket.on(events.messages, onMessages);
  return {
    connected() {
      // the answer only says what the server will do; either way both events are listened to
      if (opts.batch) socket.timeout(opts.timeoutMs).emit(events.options, { batch: true }, noop);
    },
    close() {
      socket.off(events.message, onMessage);
      socket.off(events.messages, onMessages);
      // other listeners of the socket may expect one message per `mqtt.message`
      if (opts.batch && socket.connected) socket.emit(events.options, { batch: false });
    },
  };
}

const noop = () => {};
