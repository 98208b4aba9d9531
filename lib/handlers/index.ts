import type { Socket } from "socket.io";
import { TokenBucket } from "../rate-limit";
import type { HandlerContext } from "./context";
import { ackOf } from "./context";
import { onPublish } from "./publish";
import { onSubscribe } from "./subscribe";
import { onUnsubscribe } from "./unsubscribe";

export type { HandlerContext } from "./context";

/**
 * Attaches the `mqtt.*` event handlers to a socket and returns a function that removes them.
 * Handlers never throw: every outcome is an acknowledgement.
 */
export function attachHandlers(ctx: HandlerContext, socket: Socket): () => void {
  const { events, limits } = ctx.opts;
  const bucket = new TokenBucket(limits.publishRate, limits.publishBurst);
  const handlers: [string, (...args: unknown[]) => void][] = [
    [events.subscribe, (...args) => void onSubscribe(ctx, socket, args[0], ackOf(args))],
    [events.unsubscribe, (...args) => void onUnsubscribe(ctx, socket, args[0], ackOf(args))],
    [events.publish, (...args) => void onPublish(ctx, socket, bucket, args[0], ackOf(args))],
  ];
  for (const [event, fn] of handlers) socket.on(event, fn);
  return () => {
    for (const [event, fn] of handlers) socket.off(event, fn);
  };
}
