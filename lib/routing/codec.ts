import { isUtf8 } from "node:buffer";
import type { IPublishPacket } from "mqtt";
import type { ResolvedOptions } from "../options";

/** Result of decoding a broker payload: the value, and whether the requested format failed. */
export interface Decoded {
  value: unknown;
  /** true when the payload did not fit the requested format and is passed on in a wider one */
  fallback: boolean;
}

/** A broker payload decoder, chosen once from the `decode` option. */
export type PayloadDecoder = (payload: Buffer, packet: IPublishPacket) => Decoded;

/**
 * Encodes what a socket sent as `payload` into the bytes to publish: strings as UTF-8, binary
 * (`Buffer`, `ArrayBuffer`, typed arrays, `DataView`) as is, anything else as JSON. Returns
 * `undefined` when the value cannot be encoded without changing it (a string with lone
 * surrogates, `undefined`, a function, a `BigInt`, a cycle).
 */
export function encodePayload(payload: unknown): Buffer | undefined {
  if (typeof payload === "string") {
    // [MQTT-1.5.4-1] spirit: Buffer.from would silently turn lone surrogates into U+FFFD.
    return payload.isWellFormed() ? Buffer.from(payload, "utf8") : undefined;
  }
  // binary is copied: what was validated (and shown to hooks) is what gets published
  if (payload instanceof ArrayBuffer) return Buffer.from(new Uint8Array(payload));
  if (ArrayBuffer.isView(payload)) {
    return Buffer.from(new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength));
  }
  if (payload === undefined || typeof payload === "function" || typeof payload === "symbol") {
    return undefined;
  }
  try {
    const json = JSON.stringify(payload);
    return typeof json === "string" ? Buffer.from(json, "utf8") : undefined;
  } catch {
    return undefined; // BigInt, cycles, a throwing toJSON
  }
}

/** Drops `__proto__` keys and `constructor.prototype`, so parsed JSON is plain data. */
function safeReviver(key: string, value: unknown): unknown {
  if (key === "__proto__") return undefined;
  if (
    key === "constructor" &&
    typeof value === "object" &&
    value !== null &&
    Object.prototype.hasOwnProperty.call(value, "prototype")
  ) {
    return undefined;
  }
  return value;
}

const JSON_START = /^[\s]*[{["\-0-9tfn]/;
/**
 * Cheap pre-check for a number `JSON.parse` may change: 16 or more digits in one number (a
 * decimal point may split them; up to 15 significant digits always survive a double), or an
 * exponent of 3 digits (overflow to Infinity, underflow to 0). The lookbehind starts a match only
 * at the start of a run of digits, so a long run is not retried at every digit.
 */
const RISKY_NUMBER = /(?<![0-9.])(?:\.?[0-9]){16}|[0-9][eE][+-]?[0-9]{3}/;
const NUMBER_CHAR = /[0-9eE+\-.]/;

/**
 * A number's text in one spelling: sign, significant digits and decimal exponent
 * ("-1.50e2" → "-15e3"), so that "1.0", "1e0" and "1" compare equal; every zero is "0".
 */
function canonicalNumber(text: string): string {
  let i = 0;
  const sign = text.charCodeAt(0) === 0x2d ? "-" : "";
  if (sign) i = 1;
  const e = text.search(/[eE]/);
  const mantissa = e < 0 ? text.slice(i) : text.slice(i, e);
  const exponent = e < 0 ? 0 : Number(text.slice(e + 1));
  const dot = mantissa.indexOf(".");
  let digits = dot < 0 ? mantissa : mantissa.slice(0, dot) + mantissa.slice(dot + 1);
  let point = dot < 0 ? mantissa.length : dot;
  const lead = digits.length - digits.replace(/^0+/, "").length;
  digits = digits.slice(lead).replace(/0+$/, "");
  point -= lead;
  return digits === "" ? "0" : `${sign}${digits}e${point + exponent}`;
}

/**
 * Would `JSON.parse` change a number of `text` (asked once {@link RISKY_NUMBER} matched)? A number survives when the double it becomes
 * is written back (as Socket.IO will, with JSON.stringify) as the same decimal: so
 * `0.30000000000000004` survives, while `12345678901234567890`, `1234567.1234567891`, `1e400`
 * (Infinity) and `1e-400` (0) do not.
 */
function losesNumbers(text: string): boolean {
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // skip a string, with its escapes
      i++;
      while (i < n) {
        const d = text.charCodeAt(i);
        if (d === 0x5c) i += 2;
        else if (d === 0x22) break;
        else i++;
      }
      i++;
    } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      const start = i;
      while (i < n && NUMBER_CHAR.test(text[i])) i++;
      const token = text.slice(start, i);
      const value = Number(token);
      if (!Number.isFinite(value)) return true;
      if (canonicalNumber(token) !== canonicalNumber(String(value))) return true;
    } else {
      i++;
    }
  }
  return false;
}

/**
 * Parses JSON text as plain data, or returns `undefined` when it is not JSON or when parsing
 * would lose information (a number that does not survive, e.g. `1e400` or
 * `12345678901234567890`, or a top-level number written differently, e.g. `1.0`).
 */
export function parseJson(text: string): { value: unknown } | undefined {
  if (!JSON_START.test(text)) return undefined;
  // one scan decides: plain text takes the fast path; anything that could be a prototype key (an
  // escaped one too: `"\u005f_proto__"`) or a number JSON.parse would change takes the careful one
  const risky = RISKY_NUMBER.test(text);
  const careful =
    risky || text.includes("__proto__") || text.includes("constructor") || text.includes("\\");
  let value: unknown;
  try {
    value = careful ? JSON.parse(text, safeReviver) : JSON.parse(text);
  } catch {
    return undefined;
  }
  if (risky && losesNumbers(text)) return undefined;
  if (typeof value === "number" && JSON.stringify(value) !== text.trim()) return undefined;
  return { value };
}

function decodeAuto(payload: Buffer): Decoded {
  if (!isUtf8(payload)) return { value: payload, fallback: false };
  const text = payload.toString("utf8");
  const json = parseJson(text);
  return { value: json ? json.value : text, fallback: false };
}

function decodeJson(payload: Buffer): Decoded {
  const json = isUtf8(payload) ? parseJson(payload.toString("utf8")) : undefined;
  return json ? { value: json.value, fallback: false } : { value: payload, fallback: true };
}

function decodeText(payload: Buffer): Decoded {
  return isUtf8(payload)
    ? { value: payload.toString("utf8"), fallback: false }
    : { value: payload, fallback: true };
}

function decodeBinary(payload: Buffer): Decoded {
  return { value: payload, fallback: false };
}

/**
 * Builds the decoder for the `decode` option. Nothing is ever lost: a payload that does not fit the
 * requested format, or that a custom decoder throws on, is passed on as bytes and counted.
 */
export function createDecoder(decode: ResolvedOptions["decode"]): PayloadDecoder {
  switch (decode) {
    case "auto":
      return decodeAuto;
    case "json":
      return decodeJson;
    case "text":
      return decodeText;
    case "binary":
      return decodeBinary;
    default:
      return (payload, packet) => {
        try {
          return { value: decode(payload, packet), fallback: false };
        } catch {
          return { value: payload, fallback: true };
        }
      };
  }
}
