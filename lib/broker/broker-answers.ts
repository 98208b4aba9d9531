import type { IPublishPacket, ISubscriptionGrant } from "mqtt";
import { MqttBridgeError } from "../errors";
import type { QoS } from "../protocol";

/** Maps an MQTT.js error to ours, keeping the reason code and cause. */
export function brokerError(err: unknown, what: string): MqttBridgeError {
  if (err instanceof MqttBridgeError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  const message = err instanceof Error ? err.message : String(err);
  if (typeof code === "number" && code >= 0x80) {
    return new MqttBridgeError("BROKER_REJECTED", `${what}: ${message}`, {
      reasonCode: code,
      cause: err,
    });
  }
  return new MqttBridgeError("BROKER_UNAVAILABLE", `${what}: ${message}`, { cause: err });
}

/**
 * The outcome of a one-filter SUBSCRIBE as MQTT.js reports it. A refused SUBACK comes as an error
 * carrying the packet, its reason code in `granted`; otherwise the grant's QoS is the reason code.
 * No grant at all means MQTT.js sent nothing (it took the filter for subscribed already, see
 * `resubscribe`): not a success.
 */
export function subackResult(
  err: Error | null,
  granted: ISubscriptionGrant[] | undefined,
): [Error | null, QoS?] {
  const code = err
    ? (err as { packet?: { granted?: unknown[] } }).packet?.granted?.[0]
    : granted?.[0]?.qos;
  if (typeof code === "number" && code >= 0x80) {
    return [new MqttBridgeError("BROKER_REJECTED", "subscription refused", { reasonCode: code })];
  }
  if (err) return [brokerError(err, "subscribe")];
  if (typeof code !== "number") {
    return [new MqttBridgeError("BROKER_UNAVAILABLE", "MQTT.js sent no SUBSCRIBE (no grant)")];
  }
  return [null, code as QoS];
}

/** An upper bound of a PUBLISH packet's size, to honour the broker's Maximum Packet Size. */
export function estimatePacketSize(
  topic: string,
  payload: Buffer,
  properties: IPublishPacket["properties"],
): number {
  let size = 5 + 2 + Buffer.byteLength(topic) + 2 + payload.length + 4;
  if (properties) {
    for (const [key, value] of Object.entries(properties)) {
      if (key === "userProperties" && value) {
        for (const [k, v] of Object.entries(value as Record<string, string | string[]>)) {
          for (const item of Array.isArray(v) ? v : [v])
            size += 5 + Buffer.byteLength(k) + Buffer.byteLength(item);
        }
      } else if (typeof value === "string") size += 3 + Buffer.byteLength(value);
      else if (Buffer.isBuffer(value)) size += 3 + value.length;
      else size += 5;
    }
  }
  return size;
}
