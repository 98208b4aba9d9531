/**
 * Unit tests of the request / response inputs: lib/sockets/validate-request.ts (what a socket or
 * server code may send with a request), the `limits.request*` and `allow.request` options, and
 * the checks of a request forwarded to the worker (lib/cluster/requests.ts).
 */
import { expect } from "chai";
import { MqttBridgeError } from "../../lib/errors";
import { DEFAULT_LIMITS, resolveOptions } from "../../lib/options";
import type { Limits, MqttBridgeOptions } from "../../lib/options";
import { createAuthorizer } from "../../lib/sockets/authorize";
import {
  DEFAULT_REQUEST_TIMEOUT_MS,
  parseRequest,
  parseRequestTimeout,
} from "../../lib/sockets/validate-request";
import { parsePublish } from "../../lib/sockets/validate";
import { checkRequestBody, readAnswer, toWireRequest } from "../../lib/cluster/requests";
import type { Socket } from "socket.io";

const LIMITS: Limits = { ...DEFAULT_LIMITS };

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    if (err instanceof MqttBridgeError) return err.code;
    throw err;
  }
}

describe("request validation", () => {
  it("defaults to QoS 1 and a 10 s timeout, never retained", () => {
    const { msg, timeoutMs } = parseRequest({ topic: "a/b", payload: { x: 1 } }, LIMITS);
    expect(msg).to.include({ topic: "a/b", qos: 1, retain: false });
    expect(msg.payload.toString()).to.equal('{"x":1}');
    expect(timeoutMs).to.equal(DEFAULT_REQUEST_TIMEOUT_MS);
  });

  it("caps the default timeout at limits.requestTimeoutMs", () => {
    expect(parseRequestTimeout(undefined, { ...LIMITS, requestTimeoutMs: 3000 })).to.equal(3000);
    expect(parseRequestTimeout(60_000, LIMITS)).to.equal(60_000);
  });

  const cases: [string, unknown, string][] = [
    ["not an object", "a/b", "INVALID_ARGUMENT"],
    ["an array", [], "INVALID_ARGUMENT"],
    ["timeoutMs 0", { topic: "a", payload: 1, timeoutMs: 0 }, "INVALID_ARGUMENT"],
    ["timeoutMs past the limit", { topic: "a", payload: 1, timeoutMs: 60_001 }, "INVALID_ARGUMENT"],
    ["timeoutMs 1.5", { topic: "a", payload: 1, timeoutMs: 1.5 }, "INVALID_ARGUMENT"],
    ["timeoutMs as a string", { topic: "a", payload: 1, timeoutMs: "10" }, "INVALID_ARGUMENT"],
    ["retain", { topic: "a", payload: 1, retain: false }, "INVALID_ARGUMENT"],
    ["an unknown key", { topic: "a", payload: 1, responseTopic: "r" }, "INVALID_ARGUMENT"],
    ["qos 3", { topic: "a", payload: 1, qos: 3 }, "INVALID_ARGUMENT"],
    ["qos null", { topic: "a", payload: 1, qos: null }, "INVALID_ARGUMENT"],
    ["a wildcard topic", { topic: "a/#", payload: 1 }, "INVALID_TOPIC"],
    ["no topic", { payload: 1 }, "INVALID_TOPIC"],
    ["no payload", { topic: "a" }, "INVALID_ARGUMENT"],
    [
      "properties.responseTopic",
      { topic: "a", payload: 1, properties: { responseTopic: "r" } },
      "INVALID_ARGUMENT",
    ],
    [
      "properties.correlationData",
      { topic: "a", payload: 1, properties: { correlationData: new Uint8Array(2) } },
      "INVALID_ARGUMENT",
    ],
    [
      "properties.messageExpiryInterval",
      { topic: "a", payload: 1, properties: { messageExpiryInterval: 1 } },
      "INVALID_ARGUMENT",
    ],
    [
      "properties.topicAlias",
      { topic: "a", payload: 1, properties: { topicAlias: 1 } },
      "INVALID_ARGUMENT",
    ],
    ["a payload past the limit", { topic: "a", payload: "x".repeat(65_537) }, "PAYLOAD_TOO_LARGE"],
  ];
  for (const [name, raw, code] of cases) {
    it(`refuses ${name} with ${code}`, () => {
      expect(codeOf(() => parseRequest(raw, LIMITS))).to.equal(code);
    });
  }

  it("keeps the properties a request may carry", () => {
    const { msg } = parseRequest(
      {
        topic: "a",
        payload: "x",
        qos: 0,
        properties: { contentType: "text/plain", userProperties: { k: "v" } },
      },
      LIMITS,
    );
    expect(msg.qos).to.equal(0);
    expect(msg.properties).to.deep.include({ contentType: "text/plain" });
    expect({ ...msg.properties?.userProperties }).to.deep.equal({ k: "v" });
  });
});

describe("request options", () => {
  const refused = (opts: unknown, name: string) =>
    expect(() => resolveOptions(opts as MqttBridgeOptions)).to.throw(
      TypeError,
      new RegExp(`^Expected \`${name.replace(".", "\\.")}\``),
    );

  it("refuses limits.request* that are not positive integers, naming the option", () => {
    for (const key of ["requestsPerSocket", "requestsInFlight", "requestTimeoutMs"]) {
      for (const bad of [0, -1, 1.5, "10", null])
        refused({ limits: { [key]: bad } }, `limits.${key}`);
    }
    expect(resolveOptions({ limits: { requestsPerSocket: 1 } }).limits.requestsPerSocket).to.equal(
      1,
    );
  });

  it("compiles allow.request like allow.publish, deny by default", () => {
    refused({ allow: { request: true } }, "allow.request");
    expect(() => createAuthorizer({ request: ["a/#/b"] })).to.throw(TypeError, /allow\.request/);
    const socket = {
      id: "s1",
      data: {},
      handshake: { auth: { user: "ann" } },
    } as unknown as Socket;
    const msg = parsePublish({ topic: "x", payload: 1 }, LIMITS, true).request;
    expect(createAuthorizer({}).request(socket, "x", msg)).to.equal(false);
    expect(createAuthorizer({ publish: ["#"] }).request(socket, "x", msg)).to.equal(false);
    const lists = createAuthorizer({ request: ["cmd/{handshake.auth.user}/+"] });
    expect(lists.request(socket, "cmd/ann/reboot", msg)).to.equal(true);
    expect(lists.request(socket, "cmd/bob/reboot", msg)).to.equal(false);
  });
});

describe("requests forwarded to the worker", () => {
  it("travel to the worker and are checked there with its own limits", () => {
    const { msg } = parseRequest(
      { topic: "a", payload: Buffer.from([0, 255]), properties: { userProperties: { k: "v" } } },
      LIMITS,
    );
    const wire = JSON.parse(JSON.stringify(toWireRequest(msg, 5000))) as unknown;
    const back = checkRequestBody(wire, LIMITS);
    expect(back.timeoutMs).to.equal(5000);
    expect(back.msg.payload).to.deep.equal(Buffer.from([0, 255]));
    expect(back.msg.qos).to.equal(1);
    // the worker's bound caps what the node accepted
    expect(checkRequestBody(wire, { ...LIMITS, requestTimeoutMs: 1000 }).timeoutMs).to.equal(1000);
    expect(codeOf(() => checkRequestBody({ ...(wire as object), timeoutMs: 0 }, LIMITS))).to.equal(
      "INVALID_ARGUMENT",
    );
    const sneaky = toWireRequest({ ...msg, properties: { responseTopic: "elsewhere" } }, 5000);
    expect(codeOf(() => checkRequestBody(sneaky, LIMITS))).to.equal("INVALID_ARGUMENT");
    expect(codeOf(() => checkRequestBody({ ...(wire as object), publish: 1 }, LIMITS))).to.equal(
      "INVALID_ARGUMENT",
    );
  });

  it("answers the node with the reply or a coded error; a malformed answer is dropped", () => {
    const drops: string[] = [];
    const drop = (what: string) => void drops.push(what);
    const reply = readAnswer(
      {
        ok: true,
        reply: JSON.stringify({ topic: "r", payload: "AP8=", b: 1, qos: 1, retain: false }),
      },
      drop,
    );
    expect(reply).to.deep.equal({
      topic: "r",
      payload: Buffer.from([0, 255]),
      qos: 1,
      retain: false,
    });
    const code = (res: unknown) => codeOf(() => readAnswer(res, drop));
    expect(code({ ok: false, error: { code: "TIMEOUT", message: "late" } })).to.equal("TIMEOUT");
    expect(code(undefined)).to.equal("BROKER_UNAVAILABLE");
    expect(drops).to.deep.equal([]);
    expect(code({ ok: true, reply: "{not json" })).to.equal("BROKER_UNAVAILABLE");
    expect(code({ ok: false, error: { code: "NOPE", message: "x" } })).to.equal(
      "BROKER_UNAVAILABLE",
    );
    expect(drops).to.have.length(2);
  });
});
