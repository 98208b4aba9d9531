/**
 * Rooms that mark how each socket of a node is delivered to. Every socket the bridge serves is
 * in exactly one of {@link PLAIN} and {@link BATCH}, and in {@link SLOW} while it is slow; live
 * broadcasts leave out the other kind and the slow ones with `except`, so each kind gets its own
 * frame, encoded once. The names hold a `#` inside a level: no topic filter can be one, so a
 * marker is never taken for a bridged room whatever `roomPrefix` is.
 */
export const MARKERS = Object.freeze({
  /** Sockets that get one `mqtt.message` per message. */
  plain: "mqtt-bridge#plain",
  /** Sockets that asked for `mqtt.messages` frames. */
  batch: "mqtt-bridge#batch",
  /** Sockets that are slow now: no live broadcast reaches them. */
  slow: "mqtt-bridge#slow",
});

/** True for the names of the bridge's marker rooms (reserved: not for app routes). */
export function isMarker(room: string): boolean {
  return room === MARKERS.plain || room === MARKERS.batch || room === MARKERS.slow;
}
