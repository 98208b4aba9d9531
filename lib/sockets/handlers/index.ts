import type { Socket } from "socket.io";
import { rateLimited } from "../../errors";
import type { AckFailure } from "../../protocol";
import { TokenBucket } from "../rate-limit";
import type { Ack, HandlerContext } from "./context";
import { ackOf, refuse } from "./context";
import { onOptions } from "./options";
import { onPublish } from "./publish";
import { onRequest } from "./request";
import { onSubscribe } from "./subscribe";
import { onUnsubscribe } from "./unsubscribe";

export type { HandlerContext } from "./context";

/** What the bridge keeps per socket: its rate limits and its operations in progress by filter. */
interface SocketState {
  publishes: TokenBucket;
  subscribes: TokenBucket;
  /** The last subscribe/unsubscribe of each filter still running, by filter. */
  chains: Map<string, Promise<void>>;
  /** How many filters may have requests in progress at once (`limits.subscribeBurst`). */
  maxChains: number;
  /** Its `mqtt.request`s waiting for a reply, aborted when the handlers are removed. */
  requests: Set<AbortController>;
}

/** The filter a subscribe or unsubscribe request names, before any validation. */
function filterOf(raw: unknown): string | undefined {
  if (typeof raw === "string") return raw;
  const filter = (raw as { filter?: unknown } | null)?.filter;
  return typeof filter === "string" ? filter : undefined;
}

/**
 * Runs a subscribe or unsubscribe of one socket after its earlier ones on the same filter, so they
 * take effect in the order sent (an unsubscribe is never overtaken by a subscribe still awaiting
 * its authorization), after taking a token from the socket's subscribe bucket.
 */
function serial<T>(
  ctx: HandlerContext,
  socket: Socket,
  state: SocketState,
  args: unknown[],
  run: (raw: unknown, ack: Ack<T>) => Promise<void>,
): void {
  const ack = ackOf<T>(args);
  if (!state.subscribes.take()) {
    refuse(ctx, socket, ack as Ack<AckFailure>, rateLimited("subscribe rate exceeded")); // T is the request's ack: failures included
    return;
  }
  const key = filterOf(args[0]);
  if (key !== undefined && !state.chains.has(key) && state.chains.size >= state.maxChains) {
    // requests whose authorization hook never answers must not pile up
    const err = rateLimited("too many subscribe requests in progress");
    refuse(ctx, socket, ack as Ack<AckFailure>, err);
    return;
  }
  if (key === undefined) {
    void run(args[0], ack);
    return;
  }
  const previous = state.chains.get(key);
  const next = previous ? previous.then(() => run(args[0], ack)) : run(args[0], ack);
  state.chains.set(key, next);
  void next.then(() => {
    if (state.chains.get(key) === next) state.chains.delete(key);
  });
}

/**
 * Attaches the `mqtt.*` event handlers to a socket and returns a function that removes them.
 * Handlers never throw: every outcome is an acknowledgement.
 */
export function attachHandlers(ctx: HandlerContext, socket: Socket): () => void {
  const { events, limits } = ctx.opts;
  const state: SocketState = {
    publishes: new TokenBucket(limits.publishRate, limits.publishBurst),
    subscribes: new TokenBucket(limits.subscribeRate, limits.subscribeBurst),
    chains: new Map(),
    maxChains: limits.subscribeBurst,
    requests: new Set(),
  };
  const handlers: [string, (...args: unknown[]) => void][] = [
    [
      events.subscribe,
      (...args) =>
        serial(ctx, socket, state, args, (raw, ack) => onSubscribe(ctx, socket, raw, ack)),
    ],
    [
      events.unsubscribe,
      (...args) =>
        serial(ctx, socket, state, args, (raw, ack) => onUnsubscribe(ctx, socket, raw, ack)),
    ],
    [
      events.publish,
      (...args) => void onPublish(ctx, socket, state.publishes, args[0], ackOf(args)),
    ],
    [events.options, (...args) => onOptions(ctx, socket, args[0], ackOf(args))],
    [
      events.request,
      (...args) =>
        void onRequest(ctx, socket, state.publishes, state.requests, args[0], ackOf(args)),
    ],
  ];
  for (const [event, fn] of handlers) socket.on(event, fn);
  return () => {
    for (const [event, fn] of handlers) socket.off(event, fn);
    // a socket that disconnects gives up its requests (no reply, no timer left behind)
    for (const request of [...state.requests]) request.abort();
  };
}
