/**
 * What a broker PUBLISH costs MQTT.js's parser (mqtt-packet, the one MQTT.js uses) over MQTT
 * 3.1.1 and over MQTT 5 with a subscription identifier: the fan-out workload's packet (topic
 * `bench/fanout`, the 100-byte JSON payload, QoS 0). The bridge speaks MQTT 5 (subscription
 * identifiers for exactly-once delivery, no-local, retain-as-published); the hand-written bridge
 * speaks MQTT.js's default, 3.1.1. In one process, 1,000 packets per buffer, both versions timed
 * in alternating rounds; reported: the median over rounds of ns per packet.
 */
import mqttPacket from "mqtt-packet";
import type { IPublishPacket } from "mqtt-packet";
import { makePayload } from "./lib/payload";
import { TOPIC } from "./lib/payload";
import { median } from "./lib/stats";

export interface ParseResult {
  /** ns per PUBLISH over MQTT 3.1.1 */
  v311Ns: number;
  /** ns per PUBLISH over MQTT 5, carrying a subscription identifier */
  v5Ns: number;
}

const PACKETS = 1000;

/** A parser fed `PACKETS` copies of the workload's PUBLISH, and the time to parse them all. */
function parserFor(protocolVersion: 4 | 5): () => number {
  const packet: IPublishPacket = {
    cmd: "publish",
    topic: TOPIC,
    payload: Buffer.from(makePayload(100_000, 1_000_000_000)),
    qos: 0,
    retain: false,
    dup: false,
  };
  if (protocolVersion === 5) packet.properties = { subscriptionIdentifier: 1 };
  const one = mqttPacket.generate(packet, { protocolVersion });
  const many = Buffer.concat(Array.from({ length: PACKETS }, () => one));
  const parser = mqttPacket.parser({ protocolVersion });
  let parsed = 0;
  parser.on("packet", () => parsed++);
  return () => {
    parsed = 0;
    const t0 = process.hrtime.bigint();
    parser.parse(many);
    const ns = Number(process.hrtime.bigint() - t0);
    if (parsed !== PACKETS) throw new Error(`parsed ${parsed} of ${PACKETS} packets`);
    return ns;
  };
}

/** Times both versions in `rounds` alternating rounds of `repeats` × 1,000 packets. */
export function runParse(rounds: number, repeats: number): ParseResult {
  const v4 = parserFor(4);
  const v5 = parserFor(5);
  const time = (parse: () => number) => {
    let ns = 0;
    for (let i = 0; i < repeats; i++) ns += parse();
    return ns / (repeats * PACKETS);
  };
  time(v4); // warm-up
  time(v5);
  const a: number[] = [];
  const b: number[] = [];
  for (let r = 0; r < rounds; r++) {
    if (r % 2) b.push(time(v5));
    a.push(time(v4));
    if (r % 2 === 0) b.push(time(v5));
  }
  return { v311Ns: median(a), v5Ns: median(b) };
}

if (require.main === module) {
  const r = runParse(9, 100);
  console.log(
    `PUBLISH parse: ${r.v311Ns.toFixed(0)} ns over 3.1.1, ${r.v5Ns.toFixed(0)} ns over 5`,
  );
}
