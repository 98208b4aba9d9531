import type { Socket } from "socket.io";
import { MqttBridgeError, forbidden, rateLimited } from "../../errors";
import type { PublishAck } from "../../protocol";
import type { TokenBucket } from "../rate-limit";
import { ORIGIN_PROPERTY, parsePublish } from "../validate";
import type { Ack, HandlerContext } from "./context";
import { refuse, reply } from "./context";

/**
 * `mqtt.publish`: rate limit, validate every field (MQTT-RULES.md), authorize the topic (and
 * `retain`, and an MQTT 5 `responseTopic`) on every publish, then publish and answer after the
 * broker's PUBACK/PUBCOMP (QoS 0: once written).
 */
export async function onPublish(
  ctx: HandlerContext,
  socket: Socket,
  bucket: TokenBucket,
  raw: unknown,
  ack: Ack<PublishAck>,
): Promise<void> {
  ctx.stats.publishes.received++;
  let queued = false;
  try {
    if (!bucket.take()) {
      throw rateLimited("publish rate exceeded");
    }
    const msg = parsePublish(raw, ctx.opts.limits, ctx.backend.mqtt5);
    const { authorizer } = ctx;
    // list rules answer synchronously: await only a hook's promise
    let allowed = authorizer.publish(socket, msg.topic, msg.request);
    if (allowed !== true && (allowed === false || !(await allowed))) {
      throw forbidden(`publish to "${msg.topic}"`);
    }
    if (msg.retain) {
      allowed = authorizer.retain(socket, msg.topic, msg.request);
      if (allowed !== true && (allowed === false || !(await allowed))) {
        throw forbidden(`publish a retained message to "${msg.topic}"`);
      }
    }
    const responseTopic = msg.properties?.responseTopic;
    if (responseTopic !== undefined) {
      allowed = authorizer.publish(socket, responseTopic, msg.request);
      if (allowed !== true && (allowed === false || !(await allowed))) {
        throw forbidden(`ask for responses on "${responseTopic}"`);
      }
    }
    if (!ctx.opts.echo && ctx.backend.mqtt5) {
      // the origin travels with the message, so every node can leave out exactly this socket
      const properties = (msg.properties ??= {});
      const user = (properties.userProperties ??= Object.create(null) as Record<string, string>);
      user[ORIGIN_PROPERTY] = socket.id;
    }
    if (!ctx.backend.connected) {
      if (ctx.offlineQueued.count >= ctx.opts.limits.offlineQueue) {
        throw new MqttBridgeError("BROKER_UNAVAILABLE");
      }
      queued = true;
      ctx.offlineQueued.count++;
    }
    ctx.stats.inFlight++;
    try {
      await ctx.backend.publish(msg, queued);
    } finally {
      ctx.stats.inFlight--;
    }
    ctx.stats.publishes.acked++;
    reply(ctx, socket, ack, { ok: true });
  } catch (err) {
    refuse(ctx, socket, ack, err);
  } finally {
    if (queued) ctx.offlineQueued.count--;
  }
}
