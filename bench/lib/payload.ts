/** The workload's message: exactly 100 bytes of JSON carrying a sequence number and a send time. */

export const PAYLOAD_BYTES = 100;
/** The topic the publisher sends to and every receiver listens on. */
export const TOPIC = "bench/fanout";
/** The Socket.IO room of the raw and hand-written servers (the bridge uses `mqtt:` + TOPIC). */
export const ROOM = TOPIC;
/** The event every server emits (the bridge's default `mqtt.message`). */
export const MESSAGE_EVENT = "mqtt.message";

const PAD = "x".repeat(PAYLOAD_BYTES);

/** Now, in µs of the monotonic clock (CLOCK_MONOTONIC: the same in every process of the machine). */
export function nowMicros(): number {
  const [s, ns] = process.hrtime();
  return s * 1e6 + Math.floor(ns / 1000);
}

/** `{"seq":…,"t":…,"pad":"xx…"}`, padded to exactly {@link PAYLOAD_BYTES} bytes. */
export function makePayload(seq: number, t: number): string {
  const head = `{"seq":${seq},"t":${t},"pad":"`;
  return head + PAD.slice(0, PAYLOAD_BYTES - head.length - 2) + '"}';
}

/** What the receivers read back from a payload. */
export interface Stamp {
  seq: number;
  t: number;
}
