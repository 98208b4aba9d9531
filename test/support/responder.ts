/**
 * A "responder" for the request / response tests: a real MQTT.js client (a device) that
 * subscribes to request topics and answers each request on its response topic with its
 * correlation data, as an MQTT 5 command executor does.
 */
import type { IPublishPacket, MqttClient } from "mqtt";
import { matches } from "../../lib";

/** A request as the responder received it. */
export interface IncomingRequest {
  topic: string;
  /** The payload as text. */
  text: string;
  packet: IPublishPacket;
  responseTopic: string | undefined;
  correlationData: Buffer | undefined;
  /** Publishes a reply to the request's response topic with its correlation data (QoS 1). */
  reply(payload: string | Buffer, userProperties?: Record<string, string>): Promise<void>;
  /** Publishes to the request's response topic with other correlation data (or none). */
  spoof(payload: string, correlationData: Buffer | undefined): Promise<void>;
}

/** What {@link respond} returns: the requests received, in order of arrival. */
export interface Responder {
  requests: IncomingRequest[];
}

/**
 * Serves requests on `filter` with `device`: each is recorded and handed to `onRequest`, which
 * answers (or not) as the test needs. The default answers `reply:<payload>` once.
 */
export async function respond(
  device: MqttClient,
  filter: string,
  onRequest: (req: IncomingRequest) => void | Promise<void> = (req) =>
    req.reply(`reply:${req.text}`),
): Promise<Responder> {
  const requests: IncomingRequest[] = [];
  device.on("message", (topic, payload, packet) => {
    if (!matches(filter, topic)) return;
    const props = packet.properties ?? {};
    const publishTo = (body: string | Buffer, properties: IPublishPacket["properties"]) =>
      device
        .publishAsync(props.responseTopic ?? "", body, { qos: 1, properties })
        .then(() => undefined);
    const req: IncomingRequest = {
      topic,
      text: payload.toString(),
      packet,
      responseTopic: props.responseTopic,
      correlationData: props.correlationData,
      reply: (body, userProperties) =>
        publishTo(body, {
          correlationData: props.correlationData,
          ...(userProperties ? { userProperties } : {}),
        }),
      spoof: (body, correlationData) => publishTo(body, correlationData ? { correlationData } : {}),
    };
    requests.push(req);
    void Promise.resolve(onRequest(req)).catch(() => undefined);
  });
  await device.subscribeAsync(filter, { qos: 1 });
  return { requests };
}
