import type { Socket } from "socket.io";
import type { MqttBridgeError } from "./errors";
import { toAck } from "./errors";
import type { ResolvedOptions } from "./options";
import type { UnsubscribedNotice } from "./protocol";

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
  const notice: UnsubscribedNotice = {
    filter,
    room: opts.roomPrefix + filter,
    error: toAck(err).error,
  };
  socket.emit(opts.events.unsubscribed, notice);
}
