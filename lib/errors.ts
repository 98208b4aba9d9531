import type { AckError, AckFailure, ErrorCode } from "./protocol";

/** Default messages of each error code, used when a more precise one is not given. */
const MESSAGES: Record<ErrorCode, string> = {
  // input
  INVALID_ARGUMENT: "invalid argument",
  INVALID_TOPIC: "invalid topic name",
  INVALID_FILTER: "invalid topic filter",
  // policy
  FORBIDDEN: "not allowed",
  PAYLOAD_TOO_LARGE: "payload too large",
  TOO_MANY_SUBSCRIPTIONS: "too many subscriptions",
  RATE_LIMITED: "publish rate exceeded",
  // broker
  BROKER_UNAVAILABLE: "the MQTT broker is not connected",
  BROKER_REJECTED: "the MQTT broker refused the request",
  TIMEOUT: "the MQTT broker did not answer in time",
  // request / response
  MQTT5_REQUIRED: "requests need an MQTT 5 broker connection",
};

/**
 * The one error class of the bridge: a stable `code` from API.md, an optional MQTT 5 `reasonCode`
 * and the original error as `cause`.
 *
 * @example
 * throw new MqttBridgeError("FORBIDDEN", `not allowed to publish to "${topic}"`);
 */
export class MqttBridgeError extends Error {
  override name = "MqttBridgeError";
  /** A stable error code (see API.md). */
  readonly code: ErrorCode;
  /** The MQTT 5 reason code the broker answered with, when there is one. */
  readonly reasonCode?: number;

  constructor(code: ErrorCode, message?: string, opts?: { reasonCode?: number; cause?: unknown }) {
    super(message ?? MESSAGES[code], opts?.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    if (opts?.reasonCode !== undefined) this.reasonCode = opts.reasonCode;
  }
}

/** The refusal of an action the authorization rules do not allow (`what`: "publish to …"). */
export function forbidden(what: string): MqttBridgeError {
  return new MqttBridgeError("FORBIDDEN", `not allowed to ${what}`, { reasonCode: 0x87 });
}

/**
 * A request beyond a rate or a bound (`RATE_LIMITED`); the MQTT 5 reason code is 0x96 (Message rate
 * too high) unless a bound calls for another (0x97 Quota exceeded).
 */
export function rateLimited(message: string, reasonCode = 0x96): MqttBridgeError {
  return new MqttBridgeError("RATE_LIMITED", message, { reasonCode });
}

/** What an operation gets once the bridge is closed (or closing). */
export function closedError(): MqttBridgeError {
  return new MqttBridgeError("BROKER_UNAVAILABLE", "the bridge is closed");
}

/** Turns any error into the `{ ok: false, error }` acknowledgement of the socket protocol. */
export function toAck(err: unknown): AckFailure {
  const error: AckError =
    err instanceof MqttBridgeError
      ? { code: err.code, message: err.message }
      : { code: "BROKER_UNAVAILABLE", message: MESSAGES.BROKER_UNAVAILABLE };
  if (err instanceof MqttBridgeError && err.reasonCode !== undefined) {
    error.reasonCode = err.reasonCode;
  }
  return { ok: false, error };
}

/** Describes a value for an option error message: `-1 (number)`. */
function describe(value: unknown): string {
  let shown: string;
  try {
    shown =
      typeof value === "function"
        ? "[function]"
        : typeof value === "number"
          ? String(value)
          : (JSON.stringify(value) ?? String(value));
  } catch {
    shown = String(value);
  }
  return `\`${shown}\` (${value === null ? "null" : typeof value})`;
}

/**
 * A programmer error in the options of `mqttBridge()`: thrown synchronously, as a `TypeError`.
 *
 * @example
 * optionError("ackTimeoutMs", "a positive integer", -1)
 * // TypeError: Expected `ackTimeoutMs` to be a positive integer, got `-1` (number)
 */
export function optionError(name: string, expected: string, got: unknown): TypeError {
  return new TypeError(`Expected \`${name}\` to be ${expected}, got ${describe(got)}`);
}

/**
 * An option key that `mqttBridge()` does not know, thrown synchronously as a `TypeError`: with the
 * closest known key when one is close, else with the list of known keys.
 *
 * @example
 * unknownOptionError("alow", "allow", ["mqtt", "allow"])
 * // TypeError: Unknown option `alow`, did you mean `allow`?
 */
export function unknownOptionError(
  name: string,
  suggestion: string | undefined,
  known: readonly string[],
): TypeError {
  return new TypeError(
    suggestion === undefined
      ? `Unknown option \`${name}\`; known options: ${known.map((k) => `\`${k}\``).join(", ")}`
      : `Unknown option \`${name}\`, did you mean \`${suggestion}\`?`,
  );
}
