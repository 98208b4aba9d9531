/**
 * The workload's message: exactly 100 bytes of JSON (or the size a workload asks for) carrying a
 * sequence number and a send time.
 */

export const PAYLOAD_BYTES = 100;
/** The topic the publisher sends to and every receiver listens on. */
export const TOPIC = "bench/fanout";
/** The Socket.IO room of the raw and hand-written servers (the bridge uses `mqtt:` + TOPIC). */
export const ROOM = TOPIC;
/** The event every server emits (the bridge's default `mqtt.message`). */
export const MESSAGE_EVENT = "mqtt.message";

let pad = "x".repeat(PAYLOAD_BYTES);

/** Now, in µs of the monotonic clock (CLOCK_MONOTONIC: the same in every process of the machine). */
export function nowMicros(): number {
  const [s, ns] = process.hrtime();
  return s * 1e6 + Math.floor(ns / 1000);
}

/** `{"seq":…,"t":…,"pad":"xx…"}`, padded to exactly `bytes` (default {@link PAYLOAD_BYTES}). */
export function makePayload(seq: number, t: number, bytes = PAYLOAD_BYTES): string {
  const head = `{"seq":${seq},"t":${t},"pad":"`;
  if (pad.length < bytes) pad = "x".repeat(bytes);
  return head + pad.slice(0, bytes - head.length - 2) + '"}';
}

/** The topic of message `seq` when a workload spreads its messages over `topics` topics. */
export function topicOf(seq: number, topics: number): string {
  return topics > 1 ? `${TOPIC}/${seq % topics}` : TOPIC;
}

/** What the receivers read back from a payload. */
export interface Stamp {
  seq: number;
  t: number;
}
