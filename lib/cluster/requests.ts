import createDebug from "debug";
import type { Backend } from "../core";
import { MqttBridgeError } from "../errors";
import type { Limits } from "../options";
import { own } from "../options";
import type { BridgeMessage } from "../protocol";
import { isPlainObject } from "../sockets/validate";
import type { ValidRequest } from "../sockets/validate-request";
import { checkRequestProperties, parseRequestTimeout } from "../sockets/validate-request";
import type { ValidPublish } from "../sockets/validate";
import type { Drop } from "./checks";
import { checkAck, checkPublish } from "./checks";
import { fromWireMessage, toWireMessage } from "./deliver";
import type { WirePublish, WireRequest } from "./messages";
import { toWire } from "./messages";

const debug = createDebug("socket.io-mqtt-bridge:worker");

/**
 * MQTT 5 requests in the worker topology. A web node forwards a socket's request to the worker
 * ({@link EVENTS.request}), which owns the only broker connection and so the response topic, and
 * answers with the reply; a node whose socket disconnects tells the worker to give the request up
 * ({@link EVENTS.cancel}). Every message is checked on arrival, as in lib/cluster/checks.ts.
 */

/** A request as it travels from a web node to the worker. */
export interface WireRequestBody {
  publish: WirePublish;
  timeoutMs: number;
}

/** The worker's answer to a request: the reply as JSON (binary as base64), or the failure. */
export type WireRequestAnswer =
  | { ok: true; reply: string }
  | { ok: false; error: { code: string; message: string; reasonCode?: number } };

/** Encodes a validated request for the worker. */
export function toWireRequest(msg: ValidPublish, timeoutMs: number): WireRequestBody {
  return { publish: toWire(msg), timeoutMs };
}

/**
 * Checks a forwarded request as a socket's is checked, with the worker's own limits. Its timeout,
 * already within the web node's `limits.requestTimeoutMs`, is capped at the worker's: a node never
 * gets a refusal for a request it accepted.
 */
export function checkRequestBody(raw: unknown, limits: Limits): ValidRequest {
  if (!isPlainObject(raw)) {
    throw new MqttBridgeError("INVALID_ARGUMENT", "a request must be an object");
  }
  const asked = own(raw, "timeoutMs");
  const capped =
    typeof asked === "number" && asked > limits.requestTimeoutMs ? limits.requestTimeoutMs : asked;
  const timeoutMs = parseRequestTimeout(capped, limits);
  // properties are checked as MQTT 5 ones: over 3.1.1 the request is refused as such
  const msg = checkPublish(own(raw, "publish"), limits, true);
  if (msg.retain) throw new MqttBridgeError("INVALID_ARGUMENT", "a request is never retained");
  checkRequestProperties(msg);
  return { msg, timeoutMs };
}

/**
 * The web node's side: what the worker answered, as the reply or the error to throw. `undefined`
 * (no answer in time, or the node is closing) is `BROKER_UNAVAILABLE`.
 */
export function readAnswer(res: unknown, drop: Drop): BridgeMessage {
  if (res === undefined) {
    throw new MqttBridgeError("BROKER_UNAVAILABLE", "no bridge worker answered");
  }
  if (isPlainObject(res) && own(res, "ok") === true) {
    const body = own(res, "reply");
    let reply: BridgeMessage | undefined;
    try {
      reply = typeof body === "string" ? fromWireMessage(JSON.parse(body)) : undefined;
    } catch {
      reply = undefined;
    }
    if (reply) return reply;
  } else {
    const ack = checkAck(res);
    if (ack && !ack.ok) {
      const { code, message, reasonCode } = ack.error;
      throw new MqttBridgeError(code, message, reasonCode === undefined ? {} : { reasonCode });
    }
  }
  drop("request reply: malformed");
  throw new MqttBridgeError("BROKER_UNAVAILABLE", "the bridge worker's answer was malformed");
}

/**
 * The worker's side: the requests forwarded by the nodes, sent through the worker's own
 * requester (its `limits.requestsInFlight` bounds the whole cluster's), each until its answer or
 * its cancellation.
 */
export class ForwardedRequests {
  /** `node|id` → the request's abort controller. */
  private readonly waiting = new Map<string, AbortController>();

  constructor(
    private readonly backend: Backend,
    private readonly limits: Limits,
  ) {}

  /** Sends a node's request; resolves with the answer to send back. Throws when malformed. */
  answer(body: unknown, req: WireRequest): Promise<WireRequestAnswer> {
    const { msg, timeoutMs } = checkRequestBody(body, this.limits);
    const key = `${req.node}|${req.id}`;
    const controller = new AbortController();
    this.waiting.set(key, controller);
    return this.backend
      .request(msg, timeoutMs, controller.signal)
      .then((reply): WireRequestAnswer => ({
        ok: true,
        reply: JSON.stringify(toWireMessage(reply)),
      }))
      .finally(() => {
        if (this.waiting.get(key) === controller) this.waiting.delete(key);
      });
  }

  /** A node gave request `req.id` up (its socket disconnected). */
  cancel(req: WireRequest): void {
    const controller = this.waiting.get(`${req.node}|${req.id}`);
    if (!controller) return;
    debug("node %s gave up its request %d", req.node, req.id);
    controller.abort(new MqttBridgeError("BROKER_UNAVAILABLE", "the requesting socket left"));
  }
}
