/**
 * The receiving side of the browser helper: `mqtt.message` and `mqtt.messages` (several messages
 * of one frame, in order) unpacked into one dispatch per message, to the handlers whose filter
 * matches (lib/client.ts asks for such frames with `mqtt.options { batch: true }`). No Node
 * APIs: part of the browser bundle.
 */
import type { Socket } from "socket.io-client";
import type { BridgeMessage, EventNames } from "./protocol";

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

/**
 * Does `filter` match the topic name `topic`? The same answer as `matches` of lib/topic.ts
 * (section D of MQTT-RULES.md; test/unit/client-match.test.ts compares the two), written for size
 * rather than speed: the helper matches only the messages of its own subscriptions. A shared
 * subscription ("$share/{name}/{filter}") matches what its inner filter matches.
 */
export function filterMatches(filter: string, topic: string): boolean {
  const inner = filter.replace(/^\$share\/[^/]*\//, "");
  // [MQTT-4.7.2-1]: a filter starting with a wildcard does not match a topic starting with "$"
  if (topic[0] === "$" && /^[+#]/.test(inner)) return false;
  const f = inner.split("/");
  const t = topic.split("/");
  for (let i = 0; i < f.length; i++) {
    if (f[i][0] === "#") return true; // the parent level and any number of child levels
    // "+" matches exactly one level, an empty one too
    if (i >= t.length || (f[i] !== "+" && f[i] !== t[i])) return false;
  }
  return f.length === t.length;
}

/** Rethrows `error` outside the caller (a microtask), so it surfaces as an uncaught error. */
export const rethrow = (error: unknown) =>
  queueMicrotask(() => {
    throw error;
  });

/**
 * Listens to `mqtt.message` and `mqtt.messages` on `socket` and hands each message to every active
 * handler of `subscriptions` whose filter matches it (each handler once, in the order received).
 * Returns the function that removes the listeners.
 */
export function receive(
  socket: Socket,
  events: EventNames,
  subscriptions: ReadonlyMap<string, Dispatchable>,
): () => void {
  const onMessage = (message: BridgeMessage) => {
    if (typeof message?.topic !== "string") return;
    const handlers = new Map<MessageHandler, Local>(); // each handler once, first match wins
    const offset = typeof message.offset === "number" ? message.offset : -1;
    const epoch = typeof message.epoch === "string" ? message.epoch : undefined;
    for (const entry of subscriptions.values()) {
      if (!filterMatches(entry.filter, message.topic)) continue;
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
  return () => {
    socket.off(events.message, onMessage);
    socket.off(events.messages, onMessages);
  };
}
