import createDebug from "debug";
import type { Socket } from "socket.io";
import { optionError } from "../errors";
import type { AllowOptions, PublishRule, SubscribeRule } from "../options";
import type { PublishRequest } from "../protocol";
import { MQTT_MAX_TOPIC_BYTES, checkTopicFilter, covers, matches } from "../topic";

const debug = createDebug("socket.io-mqtt-bridge:authorize");

/**
 * Authorization: deny by default. Rule lists are compiled once; a rule may hold placeholders such
 * as `{data.userId}` filled from the socket at check time. A filled value that is empty, not a
 * string or number, starts with `$`, or contains `+`, `#`, `/` or U+0000 makes its rule match
 * nothing, so a user id like `"+"` never widens a rule.
 */

/** A placeholder path: `id`, `data.x.y` or `handshake.auth.x` / `handshake.query.x`. */
const PLACEHOLDER = /\{([A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*)\}/g;
const ROOTS = new Set(["id", "data", "handshake"]);
const WILDCARD_OR_SEPARATOR = /[+#/]/;

type Template = string | { path: string[] };
type CompiledRule = { kind: "static"; filter: string } | { kind: "template"; parts: Template[] };

/** Reads `path` from the socket through own properties only. */
function lookup(socket: Socket, path: string[]): string | undefined {
  let cur: unknown = socket;
  for (const key of path) {
    if (typeof cur !== "object" || cur === null) return undefined;
    if (!(cur === socket || Object.prototype.hasOwnProperty.call(cur, key))) return undefined;
    cur = (cur as Record<string, unknown>)[key];
  }
  if (typeof cur === "number" && Number.isFinite(cur)) return String(cur);
  if (typeof cur !== "string" || cur.length === 0) return undefined;
  // a value must stay one ordinary level: no wildcard, separator or NUL, and no leading "$"
  // (which would open the broker's reserved topics to a rule like "{data.userId}/#")
  if (cur.startsWith("$") || WILDCARD_OR_SEPARATOR.test(cur) || cur.includes("\u0000")) {
    return undefined;
  }
  return cur;
}

function compile(name: string, rules: readonly string[]): CompiledRule[] {
  return rules.map((rule) => {
    const parts: Template[] = [];
    let last = 0;
    for (const m of rule.matchAll(PLACEHOLDER)) {
      const path = m[1].split(".");
      if (!ROOTS.has(path[0])) {
        throw optionError(name, "placeholders rooted at id, data or handshake", rule);
      }
      if (m.index > last) parts.push(rule.slice(last, m.index));
      parts.push({ path });
      last = m.index + m[0].length;
    }
    if (last < rule.length) parts.push(rule.slice(last));
    const sample = parts.map((p) => (typeof p === "string" ? p : "x")).join("");
    if (
      checkTopicFilter(sample, { maxBytes: MQTT_MAX_TOPIC_BYTES, maxLevels: 10_000 }) !== undefined
    ) {
      throw optionError(name, "valid MQTT topic filters", rule);
    }
    return parts.every((p) => typeof p === "string")
      ? { kind: "static", filter: rule }
      : { kind: "template", parts };
  });
}

/** The rule's filter for this socket, or undefined when a placeholder cannot be filled safely. */
function fill(rule: CompiledRule, socket: Socket): string | undefined {
  if (rule.kind === "static") return rule.filter;
  let out = "";
  for (const part of rule.parts) {
    if (typeof part === "string") {
      out += part;
    } else {
      const value = lookup(socket, part.path);
      if (value === undefined) return undefined;
      out += value;
    }
  }
  return out;
}

type Check<A extends unknown[]> = (socket: Socket, ...args: A) => boolean | Promise<boolean>;

function fromRule<A extends [string, ...unknown[]]>(
  name: string,
  rule: SubscribeRule | PublishRule | undefined,
  test: (rule: string, value: string) => boolean,
): Check<A> {
  if (rule === undefined) return () => false;
  if (typeof rule === "function") {
    const fn = rule as unknown as (socket: Socket, ...args: A) => boolean | Promise<boolean>;
    return (socket, ...args) => {
      try {
        const result = fn(socket, ...args);
        if (typeof result === "boolean") return result;
        return Promise.resolve(result).then(
          (r) => r === true,
          (err: unknown) => {
            debug("%s hook rejected: %O", name, err);
            return false;
          },
        );
      } catch (err) {
        debug("%s hook threw: %O", name, err);
        return false;
      }
    };
  }
  const compiled = compile(name, rule);
  return (socket, ...args) => {
    const value = args[0];
    for (const r of compiled) {
      const filter = fill(r, socket);
      if (filter !== undefined && test(filter, value)) return true;
    }
    return false;
  };
}

/** The compiled authorization checks; a hook that throws or rejects denies. */
export interface Authorizer {
  /** May `socket` subscribe to `filter` (every topic it can match)? */
  subscribe: Check<[filter: string]>;
  /** May `socket` publish this message to `topic`? */
  publish: Check<[topic: string, message: PublishRequest]>;
  /** May `socket` publish to `topic` with `retain: true`? */
  retain: Check<[topic: string, message: PublishRequest]>;
  /** May `socket` send an MQTT 5 request to `topic` (`mqtt.request`)? */
  request: Check<[topic: string, message: PublishRequest]>;
}

/** Compiles the `allow` option; throws a `TypeError` for an invalid rule. */
export function createAuthorizer(allow: AllowOptions): Authorizer {
  return {
    subscribe: fromRule<[string]>("allow.subscribe", allow.subscribe, covers),
    publish: fromRule<[string, PublishRequest]>("allow.publish", allow.publish, matches),
    retain: fromRule<[string, PublishRequest]>("allow.retain", allow.retain, matches),
    request: fromRule<[string, PublishRequest]>("allow.request", allow.request, matches),
  };
}
