import type { Socket } from "socket.io";
import type { MqttBridgeError } from "../errors";
import { toAck } from "../errors";
import type { ResolvedOptions } from "../options";
import type { UnsubscribedNotice } from "../protocol";

/** What `mqtt.unsubscribed` carries: the subscription to `filter` ended, and why. */
export function unsubscribedNotice(
  opts: ResolvedOptions,
  filter: string,
  err: MqttBridgeError,
): UnsubscribedNotice {
  return { filter, room: opts.roomPrefix + filter, error: toAck(err).error };
}

/**
 * Tells a socket that the server took it out of the subscription to `filter` (the
 * `mqtt.unsubscribed` event), so that nothing it loses goes unannounced.
 */
export function notifyUnsubscribed(
  opts: ResolvedOptions,
  socket: Socket,
  filter: string,
  err: MqttBridgeError,
): void {
  if (socket.disconnected) return;
  socket.emit(opts.events.unsubscribed, unsubscribedNotice(opts, filter, err));
}
