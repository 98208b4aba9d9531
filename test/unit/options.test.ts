/**
 * Unit tests for lib/options.ts: every default, every refused option (a TypeError naming the
 * option), the three forms of the `mqtt` option, and options objects built from hostile JSON.
 */
import { expect } from "chai";
import mqtt from "mqtt";
import {
  DEFAULT_ACK_TIMEOUT_MS,
  DEFAULT_CLUSTER,
  DEFAULT_LIMITS,
  DEFAULT_RECONNECT,
  resolveOptions,
  type Limits,
  type MqttBridgeOptions,
} from "../../lib/options";
import { DEFAULT_DELIVERY } from "../../lib/delivery/options";
import { DEFAULT_RECOVERY } from "../../lib/routing/recovery-options";
import { DEFAULT_EVENTS } from "../../lib/protocol";

/** The option message shape of STYLE.md B.5: Expected `name` to be …, got `value` (type). */
function optionMessage(name: string): RegExp {
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`^Expected \`${escaped}\` to be .+, got \`.*\` \\(\\w+\\)$`, "s");
}

/** Calls resolveOptions with anything (hostile callers do not respect the types). */
function resolve(opts: unknown) {
  return resolveOptions(opts as MqttBridgeOptions);
}

function expectOptionError(opts: unknown, name: string): void {
  let thrown: unknown;
  try {
    resolve(opts);
  } catch (err) {
    thrown = err;
  }
  expect(thrown, `resolveOptions(${String(JSON.stringify(opts))})`).to.be.instanceOf(TypeError);
  expect((thrown as TypeError).message).to.match(optionMessage(name));
}

const LIMIT_KEYS = Object.keys(DEFAULT_LIMITS) as (keyof Limits)[];

describe("options", () => {
  describe("defaults", () => {
    it("applies every default when called without options", () => {
      for (const resolved of [resolveOptions(), resolveOptions({}), resolve(undefined)]) {
        expect(resolved).to.deep.equal({
          mqtt: { kind: "options", options: { url: "mqtt://localhost:1883" } },
          closeClient: false,
          allow: {},
          decode: "auto",
          echo: true,
          retained: true,
          events: {
            message: "mqtt.message",
            unsubscribed: "mqtt.unsubscribed",
            publish: "mqtt.publish",
            subscribe: "mqtt.subscribe",
            unsubscribe: "mqtt.unsubscribe",
            messages: "mqtt.messages",
            options: "mqtt.options",
            request: "mqtt.request",
          },
          roomPrefix: "mqtt:",
          ackTimeoutMs: 10_000,
          limits: {
            payloadBytes: 65_536,
            subscriptionsPerSocket: 100,
            publishRate: 100,
            publishBurst: 200,
            topicBytes: 1024,
            topicLevels: 32,
            userProperties: 32,
            userPropertyBytes: 8192,
            retainedMessages: 10_000,
            retainedBytes: 16_777_216,
            subscribeQos: 1,
            subscribeRate: 20,
            subscribeBurst: 200,
            brokerSubscriptions: 100_000,
            offlineQueue: 0,
            publishQueue: 1000,
            requestsPerSocket: 16,
            requestsInFlight: 1000,
            requestTimeoutMs: 60_000,
          },
          reconnect: { minDelayMs: 1000, maxDelayMs: 30_000, jitter: 0.2 },
          topology: "embedded",
          delivery: {
            batch: true,
            maxBatch: 256,
            highWaterMark: 1_048_576,
            slow: "conflate",
            maxWaitingBytes: 67_108_864,
            checkMs: 100,
          },
          recovery: {
            windowMs: 120_000,
            maxMessages: 10_000,
            maxBytes: 33_554_432,
            maxLingering: 1000,
          },
          cluster: { heartbeatMs: 1000, workerTimeoutMs: 3500, syncIntervalMs: 5000 },
        });
      }
    });

    it("exports the defaults as frozen constants", () => {
      expect(DEFAULT_ACK_TIMEOUT_MS).to.equal(10_000);
      expect(DEFAULT_LIMITS).to.be.frozen;
      expect(DEFAULT_RECONNECT).to.be.frozen;
      expect(DEFAULT_EVENTS).to.be.frozen;
    });

    it("returns fresh limits, reconnect and events objects on every call", () => {
      const a = resolveOptions();
      const b = resolveOptions();
      expect(a.limits).not.to.equal(DEFAULT_LIMITS);
      expect(a.limits).not.to.equal(b.limits);
      expect(a.reconnect).not.to.equal(DEFAULT_RECONNECT);
      expect(a.events).not.to.equal(DEFAULT_EVENTS);
      a.limits.payloadBytes = 1;
      a.events.message = "changed";
      expect(resolveOptions().limits.payloadBytes).to.equal(65_536);
      expect(resolveOptions().events.message).to.equal("mqtt.message");
    });

    it("fills each missing limit with its default when some are given", () => {
      const { limits } = resolveOptions({ limits: { payloadBytes: 10 } });
      expect(limits).to.deep.equal({ ...DEFAULT_LIMITS, payloadBytes: 10 });
    });

    it("fills each missing reconnect field with its default when some are given", () => {
      expect(resolveOptions({ reconnect: { jitter: 0 } }).reconnect).to.deep.equal({
        minDelayMs: 1000,
        maxDelayMs: 30_000,
        jitter: 0,
      });
    });
  });

  describe("valid values", () => {
    it("takes a topology, refuses an unknown one and an mqtt option on a forward node", () => {
      expect(resolveOptions({ topology: "worker" }).topology).to.equal("worker");
      expect(resolveOptions({ topology: "forward" }).topology).to.equal("forward");
      expect(() => resolveOptions({ topology: "x" as "worker" })).to.throw(TypeError, /topology/);
      expect(() => resolveOptions({ topology: "forward", mqtt: "mqtt://h" })).to.throw(
        TypeError,
        /mqtt/,
      );
      expect(() => resolveOptions({ cluster: { heartbeatMs: 0 } })).to.throw(
        TypeError,
        /cluster\.heartbeatMs/,
      );
    });

    it("keeps 0 as a valid offlineQueue (no `||` default)", () => {
      expect(resolveOptions({ limits: { offlineQueue: 0 } }).limits.offlineQueue).to.equal(0);
      expect(resolveOptions({ limits: { offlineQueue: 5 } }).limits.offlineQueue).to.equal(5);
      expect(resolveOptions({ limits: { publishQueue: 0 } }).limits.publishQueue).to.equal(0);
    });

    it("keeps false for echo, retained and closeClient, and true for closeClient", () => {
      const r = resolveOptions({ echo: false, retained: false, closeClient: false });
      expect([r.echo, r.retained, r.closeClient]).to.deep.equal([false, false, false]);
      expect(resolveOptions({ closeClient: true }).closeClient).to.equal(true);
    });

    it("keeps a jitter of 0 and of 1", () => {
      expect(resolveOptions({ reconnect: { jitter: 0 } }).reconnect.jitter).to.equal(0);
      expect(resolveOptions({ reconnect: { jitter: 1 } }).reconnect.jitter).to.equal(1);
    });

    it("accepts equal minDelayMs and maxDelayMs", () => {
      const r = resolveOptions({ reconnect: { minDelayMs: 5, maxDelayMs: 5 } }).reconnect;
      expect(r).to.deep.equal({ minDelayMs: 5, maxDelayMs: 5, jitter: 0.2 });
    });

    it("accepts limits.topicBytes up to the protocol maximum 65535", () => {
      expect(resolveOptions({ limits: { topicBytes: 65_535 } }).limits.topicBytes).to.equal(65_535);
    });

    for (const decode of ["auto", "json", "text", "binary"] as const) {
      it(`accepts decode "${decode}"`, () => {
        expect(resolveOptions({ decode }).decode).to.equal(decode);
      });
    }

    it("keeps a custom decoder function as is", () => {
      const decode = (payload: Buffer) => payload.length;
      expect(resolveOptions({ decode }).decode).to.equal(decode);
    });

    it("keeps rule lists and hook functions of allow", () => {
      const publish = () => true;
      const allow = { subscribe: ["sensors/#", "users/{id}/#"], publish, retain: [] };
      const resolved = resolveOptions({ allow }).allow;
      expect(resolved.subscribe).to.deep.equal(["sensors/#", "users/{id}/#"]);
      expect(resolved.publish).to.equal(publish);
      expect(resolved.retain).to.deep.equal([]);
      expect(resolved).not.to.equal(allow);
    });

    it("leaves allow keys that were not given out of the resolved object", () => {
      expect(Object.keys(resolveOptions({ allow: { publish: ["a"] } }).allow)).to.deep.equal([
        "publish",
      ]);
    });

    it("renames events and keeps the others at their defaults", () => {
      expect(resolveOptions({ events: { message: "msg", publish: "pub" } }).events).to.deep.equal({
        message: "msg",
        messages: "mqtt.messages",
        options: "mqtt.options",
        request: "mqtt.request",
        unsubscribed: "mqtt.unsubscribed",
        publish: "pub",
        subscribe: "mqtt.subscribe",
        unsubscribe: "mqtt.unsubscribe",
      });
    });

    it("accepts a roomPrefix", () => {
      expect(resolveOptions({ roomPrefix: "bridge#" }).roomPrefix).to.equal("bridge#");
    });
  });

  describe("the mqtt option", () => {
    for (const url of [
      "mqtt://127.0.0.1:9",
      "mqtts://broker.example:8883",
      "ws://127.0.0.1:9/mqtt",
      "wss://broker.example/mqtt",
      "tcp://127.0.0.1:9",
    ]) {
      it(`takes a URL: ${url}`, () => {
        expect(resolveOptions({ mqtt: url }).mqtt).to.deep.equal({
          kind: "options",
          options: { url },
        });
      });
    }

    it("takes MQTT.js options with a url, and copies them", () => {
      const options = { url: "mqtt://127.0.0.1:9", protocolVersion: 4 as const, username: "u" };
      const resolved = resolveOptions({ mqtt: options }).mqtt;
      expect(resolved.kind).to.equal("options");
      if (resolved.kind !== "options") return;
      expect(resolved.options).to.deep.equal(options);
      expect(resolved.options).not.to.equal(options);
      options.username = "changed";
      expect(resolved.options.username).to.equal("u");
    });

    it("takes MQTT.js options without a url", () => {
      expect(resolveOptions({ mqtt: { host: "127.0.0.1", port: 9 } }).mqtt).to.deep.equal({
        kind: "options",
        options: { host: "127.0.0.1", port: 9 },
      });
    });

    it("borrows an MqttClient as is", () => {
      // manualConnect: the client never opens a socket
      const client = mqtt.connect("mqtt://127.0.0.1:9", { manualConnect: true });
      try {
        const resolved = resolveOptions({ mqtt: client }).mqtt;
        expect(resolved.kind).to.equal("client");
        if (resolved.kind === "client") expect(resolved.client).to.equal(client);
        expect(resolveOptions({ mqtt: client }).closeClient).to.equal(false);
      } finally {
        // manualConnect never created a stream, so nothing is open; MQTT.js 5.16's end() reads
        // client.stream and throws without one
        if (client.stream) client.end(true);
      }
    });
  });

  describe("refused options", () => {
    const cases: [string, unknown, string][] = [
      // [what, options, option named in the message]
      ["options null", null, "options"],
      ["options a string", "mqtt://x", "options"],
      ["options an array", [], "options"],
      ["mqtt a number", { mqtt: 1883 }, "mqtt"],
      ["mqtt null", { mqtt: null }, "mqtt"],
      ["mqtt true", { mqtt: true }, "mqtt"],
      ["mqtt an array", { mqtt: ["mqtt://x"] }, "mqtt"],
      ["mqtt a URL without scheme", { mqtt: "localhost:1883" }, "mqtt"],
      ["mqtt an http URL", { mqtt: "http://localhost" }, "mqtt"],
      ["mqtt an empty string", { mqtt: "" }, "mqtt"],
      ["closeClient a string", { closeClient: "yes" }, "closeClient"],
      ["closeClient 1", { closeClient: 1 }, "closeClient"],
      ["allow a string", { allow: "all" }, "allow"],
      ["allow an array", { allow: ["#"] }, "allow"],
      ["allow.subscribe a string", { allow: { subscribe: "a/#" } }, "allow.subscribe"],
      ["allow.subscribe with a number", { allow: { subscribe: [1] } }, "allow.subscribe"],
      ["allow.subscribe with an empty filter", { allow: { subscribe: [""] } }, "allow.subscribe"],
      ["allow.subscribe an object", { allow: { subscribe: {} } }, "allow.subscribe"],
      ["allow.publish with null", { allow: { publish: [null] } }, "allow.publish"],
      ["allow.publish true", { allow: { publish: true } }, "allow.publish"],
      ["allow.retain true", { allow: { retain: true } }, "allow.retain"],
      ["decode an unknown name", { decode: "xml" }, "decode"],
      ["decode a number", { decode: 1 }, "decode"],
      ["decode true", { decode: true }, "decode"],
      ["echo a string", { echo: "false" }, "echo"],
      ["echo 0", { echo: 0 }, "echo"],
      ["echo null", { echo: null }, "echo"],
      ["retained a string", { retained: "true" }, "retained"],
      ["retained 1", { retained: 1 }, "retained"],
      ["events a string", { events: "x" }, "events"],
      ["events an array", { events: [] }, "events"],
      ["events.message empty", { events: { message: "" } }, "events.message"],
      ["events.message a number", { events: { message: 1 } }, "events.message"],
      ["events.publish empty", { events: { publish: "" } }, "events.publish"],
      ["events.subscribe null", { events: { subscribe: null } }, "events.subscribe"],
      ["events.unsubscribe an object", { events: { unsubscribe: {} } }, "events.unsubscribe"],
      ["events not distinct", { events: { publish: "mqtt.subscribe" } }, "events"],
      ["events all the same", { events: { message: "x", publish: "x" } }, "events"],
      ["roomPrefix empty", { roomPrefix: "" }, "roomPrefix"],
      ["roomPrefix a number", { roomPrefix: 1 }, "roomPrefix"],
      ["ackTimeoutMs 0", { ackTimeoutMs: 0 }, "ackTimeoutMs"],
      ["ackTimeoutMs -1", { ackTimeoutMs: -1 }, "ackTimeoutMs"],
      ["ackTimeoutMs 1.5", { ackTimeoutMs: 1.5 }, "ackTimeoutMs"],
      ["ackTimeoutMs a string", { ackTimeoutMs: "10" }, "ackTimeoutMs"],
      ["ackTimeoutMs NaN", { ackTimeoutMs: NaN }, "ackTimeoutMs"],
      ["ackTimeoutMs Infinity", { ackTimeoutMs: Infinity }, "ackTimeoutMs"],
      ["limits a string", { limits: "x" }, "limits"],
      ["limits an array", { limits: [] }, "limits"],
      ["limits.topicBytes above 65535", { limits: { topicBytes: 65_536 } }, "limits.topicBytes"],
      ["limits.offlineQueue -1", { limits: { offlineQueue: -1 } }, "limits.offlineQueue"],
      ["limits.offlineQueue 0.5", { limits: { offlineQueue: 0.5 } }, "limits.offlineQueue"],
      ["reconnect a string", { reconnect: "x" }, "reconnect"],
      ["reconnect.minDelayMs 0", { reconnect: { minDelayMs: 0 } }, "reconnect.minDelayMs"],
      ["reconnect.minDelayMs -5", { reconnect: { minDelayMs: -5 } }, "reconnect.minDelayMs"],
      ["reconnect.minDelayMs 1.5", { reconnect: { minDelayMs: 1.5 } }, "reconnect.minDelayMs"],
      ["reconnect.maxDelayMs 0", { reconnect: { maxDelayMs: 0 } }, "reconnect.maxDelayMs"],
      ["reconnect.maxDelayMs a string", { reconnect: { maxDelayMs: "1" } }, "reconnect.maxDelayMs"],
      [
        "reconnect.maxDelayMs below minDelayMs",
        { reconnect: { minDelayMs: 2000, maxDelayMs: 1000 } },
        "reconnect.maxDelayMs",
      ],
      [
        "reconnect.maxDelayMs below the default minDelayMs",
        { reconnect: { maxDelayMs: 999 } },
        "reconnect.maxDelayMs",
      ],
      ["reconnect.jitter -0.1", { reconnect: { jitter: -0.1 } }, "reconnect.jitter"],
      ["reconnect.jitter 1.1", { reconnect: { jitter: 1.1 } }, "reconnect.jitter"],
      ["reconnect.jitter a string", { reconnect: { jitter: "0.2" } }, "reconnect.jitter"],
      ["reconnect.jitter NaN", { reconnect: { jitter: NaN } }, "reconnect.jitter"],
    ];
    // every limit refuses zero (except the two queues and subscribeQos), negatives, fractions,
    // strings and NaN; a QoS is 0, 1 or 2
    for (const key of LIMIT_KEYS) {
      const bad: unknown[] = [-1, 1.5, "1", NaN, Infinity, null, true];
      if (key !== "offlineQueue" && key !== "publishQueue" && key !== "subscribeQos") bad.push(0);
      if (key === "subscribeQos") bad.push(3);
      for (const value of bad) {
        cases.push([
          `limits.${key} ${String(value)}`,
          { limits: { [key]: value } },
          `limits.${key}`,
        ]);
      }
    }

    for (const [what, opts, name] of cases) {
      it(`throws a TypeError naming \`${name}\` for ${what}`, () => {
        expectOptionError(opts, name);
      });
    }

    it("throws the documented message shape", () => {
      expect(() => resolveOptions({ limits: { payloadBytes: 0 } })).to.throw(
        TypeError,
        "Expected `limits.payloadBytes` to be an integer from 1 to 2147483647, got `0` (number)",
      );
      expect(() => resolveOptions({ limits: { offlineQueue: -1 } })).to.throw(
        TypeError,
        "Expected `limits.offlineQueue` to be an integer from 0 to 2147483647, got `-1` (number)",
      );
    });

    it("takes recovery: false (off) and true (the defaults); refuses bad recovery values", () => {
      expect(resolveOptions({ recovery: false }).recovery).to.equal(false);
      expect(resolveOptions({ recovery: true }).recovery).to.deep.equal(DEFAULT_RECOVERY);
      expect(resolveOptions({ recovery: { windowMs: 0 } }).recovery).to.include({ windowMs: 0 });
      expectOptionError({ recovery: "on" }, "recovery");
      expectOptionError({ recovery: null }, "recovery");
      expectOptionError({ recovery: [] }, "recovery");
      for (const [key, bad] of [
        ["windowMs", -1],
        ["windowMs", 1.5],
        ["maxMessages", 0],
        ["maxMessages", "10"],
        ["maxBytes", 1023],
        ["maxLingering", -1],
        ["maxLingering", NaN],
      ] as const) {
        expectOptionError({ recovery: { [key]: bad } }, `recovery.${key}`);
      }
    });

    it("refuses timer values above 2147483647 ms (setTimeout's maximum)", () => {
      expectOptionError({ ackTimeoutMs: 2_147_483_648 }, "ackTimeoutMs");
      expectOptionError({ reconnect: { minDelayMs: 2_147_483_648 } }, "reconnect.minDelayMs");
      expectOptionError({ reconnect: { maxDelayMs: 2_147_483_648 } }, "reconnect.maxDelayMs");
    });

    it("refuses Socket.IO reserved event names", () => {
      for (const name of ["connect", "connect_error", "disconnect", "disconnecting"]) {
        expectOptionError({ events: { message: name } }, "events.message");
        expectOptionError({ events: { publish: name } }, "events.publish");
      }
      for (const name of ["newListener", "removeListener"]) {
        expectOptionError({ events: { subscribe: name } }, "events.subscribe");
      }
    });

    it("refuses a sparse rule list", () => {
      expectOptionError({ allow: { subscribe: new Array<string>(1) } }, "allow.subscribe");
    });
  });

  describe("unknown keys", () => {
    /** The unknown-key message: names the key with its path, and the closest known one. */
    function expectUnknown(opts: unknown, name: string, suggestion?: string): void {
      let thrown: unknown;
      try {
        resolve(opts);
      } catch (err) {
        thrown = err;
      }
      expect(thrown, `resolveOptions(${String(JSON.stringify(opts))})`).to.be.instanceOf(TypeError);
      const message = (thrown as TypeError).message;
      expect(message).to.include(`Unknown option \`${name}\``);
      if (suggestion === undefined) expect(message).not.to.include("did you mean");
      else expect(message).to.include(`did you mean \`${suggestion}\`?`);
    }

    const typos: [unknown, string, string][] = [
      // [options, unknown key with its path, suggested key]
      [{ alow: { subscribe: ["#"] } }, "alow", "allow"],
      [{ Allow: {} }, "Allow", "allow"],
      [{ ackTimeout: 5 }, "ackTimeout", "ackTimeoutMs"],
      [{ roomprefix: "x:" }, "roomprefix", "roomPrefix"],
      [{ closeclient: true }, "closeclient", "closeClient"],
      [{ topologie: "worker" }, "topologie", "topology"],
      [{ reconect: {} }, "reconect", "reconnect"],
      [{ allow: { subscibe: ["#"] } }, "allow.subscibe", "allow.subscribe"],
      [{ allow: { publsh: ["#"] } }, "allow.publsh", "allow.publish"],
      [{ allow: { retained: ["#"] } }, "allow.retained", "allow.retain"],
      [{ limits: { payloadByte: 1 } }, "limits.payloadByte", "limits.payloadBytes"],
      [{ limits: { publishrate: 1 } }, "limits.publishrate", "limits.publishRate"],
      [{ limits: { offlineQueueSize: 1 } }, "limits.offlineQueueSize", "limits.offlineQueue"],
      [{ reconnect: { minDelay: 1 } }, "reconnect.minDelay", "reconnect.minDelayMs"],
      [{ reconnect: { jiter: 0.1 } }, "reconnect.jiter", "reconnect.jitter"],
      [{ cluster: { heartbeat: 100 } }, "cluster.heartbeat", "cluster.heartbeatMs"],
      [{ cluster: { syncInterval: 100 } }, "cluster.syncInterval", "cluster.syncIntervalMs"],
      [{ events: { mesage: "m" } }, "events.mesage", "events.message"],
      [{ events: { sub: "s" } }, "events.sub", "events.subscribe"],
      // a nested key given at the top level
      [{ payloadBytes: 1 }, "payloadBytes", "limits.payloadBytes"],
      [{ heartbeatMs: 1 }, "heartbeatMs", "cluster.heartbeatMs"],
      [{ delivery: { highWatermark: 1 } }, "delivery.highWatermark", "delivery.highWaterMark"],
      [{ recovery: { window: 1 } }, "recovery.window", "recovery.windowMs"],
    ];
    for (const [opts, name, suggestion] of typos) {
      it(`refuses \`${name}\` and suggests \`${suggestion}\``, () => {
        expectUnknown(opts, name, suggestion);
      });
    }

    it("names an unknown key far from every known one without a suggestion, listing the known ones", () => {
      expectUnknown({ frobnicate: 1 }, "frobnicate");
      expectUnknown({ limits: { zzzzzzzzzz: 1 } }, "limits.zzzzzzzzzz");
      expect(() => resolve({ limits: { zzzzzzzzzz: 1 } })).to.throw(TypeError, /payloadBytes/);
      expect(() => resolve({ allow: { everything: true } })).to.throw(TypeError, /subscribe/);
    });

    it("refuses an unknown key whose value is undefined too (a typo all the same)", () => {
      expectUnknown({ alow: undefined }, "alow", "allow");
      expectUnknown(
        { limits: { payloadByte: undefined } },
        "limits.payloadByte",
        "limits.payloadBytes",
      );
    });

    it("throws the documented message shape", () => {
      expect(() => resolve({ alow: {} })).to.throw(
        TypeError,
        "Unknown option `alow`, did you mean `allow`?",
      );
    });

    it("knows every key of the defaults (a key added to a default table is known at once)", () => {
      const limits = Object.fromEntries(LIMIT_KEYS.map((k) => [k, DEFAULT_LIMITS[k]]));
      expect(() => resolve({ limits })).not.to.throw();
      expect(() => resolve({ reconnect: { ...DEFAULT_RECONNECT } })).not.to.throw();
      expect(() => resolve({ events: { ...DEFAULT_EVENTS } })).not.to.throw();
      expect(() => resolve({ cluster: { ...DEFAULT_CLUSTER } })).not.to.throw();
      expect(() => resolve({ delivery: { ...DEFAULT_DELIVERY } })).not.to.throw();
      expect(() => resolve({ recovery: { ...DEFAULT_RECOVERY } })).not.to.throw();
      expect(() => resolve({ allow: { subscribe: [], publish: [], retain: [] } })).not.to.throw();
    });

    it("takes every documented top-level option", () => {
      const opts: Required<MqttBridgeOptions> = {
        mqtt: "mqtt://127.0.0.1:9",
        closeClient: false,
        allow: {},
        decode: "auto",
        echo: true,
        retained: true,
        events: {},
        roomPrefix: "mqtt:",
        ackTimeoutMs: 1000,
        limits: {},
        reconnect: {},
        topology: "embedded",
        cluster: {},
        delivery: {},
        recovery: {},
      };
      expect(() => resolve(opts)).not.to.throw();
    });

    it("leaves MQTT.js options open-ended (any key passes to MQTT.js)", () => {
      const mqttOptions = { url: "mqtt://127.0.0.1:9", someFutureMqttJsOption: 1, keepalive: 5 };
      expect(() => resolve({ mqtt: mqttOptions })).not.to.throw();
    });
  });

  describe("hostile options objects", () => {
    it("ignores a __proto__ key in the user's options", () => {
      const opts = JSON.parse('{"__proto__": {"echo": false, "roomPrefix": "x:"}}') as unknown;
      expect(resolve(opts)).to.deep.equal(resolveOptions({}));
      expect(({} as Record<string, unknown>).echo).to.equal(undefined);
    });

    it("ignores __proto__ keys in nested options", () => {
      const opts = JSON.parse(
        `{"allow": {"__proto__": {"subscribe": ["#"]}},
          "limits": {"__proto__": {"payloadBytes": 1}},
          "reconnect": {"__proto__": {"jitter": 1}},
          "events": {"__proto__": {"message": "x"}}}`,
      ) as unknown;
      expect(resolve(opts)).to.deep.equal(resolveOptions({}));
      expect(({} as Record<string, unknown>).payloadBytes).to.equal(undefined);
    });

    it("ignores inherited options", () => {
      const opts = Object.create({ echo: false, limits: { payloadBytes: 1 } }) as object;
      expect(resolve(opts)).to.deep.equal(resolveOptions({}));
      const limits = Object.create({ payloadBytes: 1 }) as object;
      expect(resolve({ limits }).limits).to.deep.equal(DEFAULT_LIMITS);
    });

    it("does not pollute Object.prototype through MQTT.js options", () => {
      const options = JSON.parse('{"url": "mqtt://127.0.0.1:9", "__proto__": {"x": 1}}') as object;
      resolve({ mqtt: options });
      expect(({} as Record<string, unknown>).x).to.equal(undefined);
    });
  });
});
