import createDebug from "debug";
import type { Socket } from "socket.io";
import { MqttBridgeError, closedError, forbidden, rateLimited } from "../../errors";
import type { RequestAck } from "../../protocol";
import type { TokenBucket } from "../rate-limit";
import { abortReason } from "../../routing/request";
import { ORIGIN_PROPERTY } from "../validate";
import { parseRequest } from "../validate-request";
import type { Ack, HandlerContext } from "./context";
import { refuse, reply } from "./context";

const debug = createDebug("socket.io-mqtt-bridge:handlers");

/**
 * `mqtt.request`: MQTT 5 request / response (README, "Request / response"). Takes a token of the
 * socket's publish rate, validates like a publish (plus `timeoutMs` and the properties the bridge
 * owns), bounds the socket's requests waiting for a reply (`limits.requestsPerSocket`), authorizes
 * the topic with `allow.request`, then answers with the first reply. `inFlight` holds the socket's
 * waiting requests: the bridge aborts them when the socket disconnects (no ack: nobody is there to
 * get it) or when it closes (acked `BROKER_UNAVAILABLE`).
 */
export async function onRequest(
  ctx: HandlerContext,
  socket: Socket,
  bucket: TokenBucket,
  inFlight: Set<AbortController>,
  raw: unknown,
  ack: Ack<RequestAck>,
): Promise<void> {
  const { stats, opts, backend } = ctx;
  stats.requests.received++;
  const controller = new AbortController();
  const { signal } = controller;
  try {
    if (!bucket.take()) throw rateLimited("publish rate exceeded");
    const { msg, timeoutMs } = parseRequest(raw, opts.limits);
    if (backend.connected && !backend.mqtt5) throw new MqttBridgeError("MQTT5_REQUIRED");
    const max = opts.limits.requestsPerSocket;
    if (inFlight.size >= max) {
      throw rateLimited(
        `at most ${max} requests in flight per socket (limits.requestsPerSocket)`,
        0x97,
      );
    }
    // counted from here: requests of one burst awaiting their authorization count too
    inFlight.add(controller);
    const allowed = ctx.authorizer.request(socket, msg.topic, msg.request);
    if (allowed !== true && (allowed === false || !(await allowed))) {
      throw forbidden(`send a request to "${msg.topic}"`);
    }
    if (signal.aborted) {
      stats.requests.cancelled++;
      throw abortReason(signal);
    }
    if (!opts.echo) {
      // the origin travels with the request, so a room it reaches leaves out this socket
      const properties = (msg.properties ??= {});
      const user = (properties.userProperties ??= Object.create(null) as Record<string, string>);
      user[ORIGIN_PROPERTY] = socket.id;
    }
    const res = await backend.request(msg, timeoutMs, signal);
    reply(ctx, socket, ack, { ok: true, reply: res });
  } catch (err) {
    if (signal.aborted && socket.disconnected) {
      debug("[%s] disconnected: its request is given up", socket.id);
      return;
    }
    refuse(ctx, socket, ack, signal.aborted ? closedError() : err);
  } finally {
    inFlight.delete(controller);
  }
}
