/**
 * Unit tests for lib/errors.ts: the MqttBridgeError class, toAck (the `{ ok: false, error }`
 * acknowledgement sent to sockets) and optionError (the message of a refused option).
 */
import { expect } from "chai";
import { MqttBridgeError, optionError, toAck } from "../../lib/errors";
import { ERROR_CODES } from "../../lib/protocol";

describe("errors", () => {
  describe("MqttBridgeError", () => {
    it("carries a code, a message and a name, and is an Error", () => {
      const err = new MqttBridgeError("FORBIDDEN", 'not allowed to publish to "a"');
      expect(err).to.be.instanceOf(Error);
      expect(err).to.be.instanceOf(MqttBridgeError);
      expect(err.name).to.equal("MqttBridgeError");
      expect(err.code).to.equal("FORBIDDEN");
      expect(err.message).to.equal('not allowed to publish to "a"');
      expect(err.reasonCode).to.equal(undefined);
      expect(err.cause).to.equal(undefined);
      expect(err.stack).to.be.a("string").that.contains("MqttBridgeError");
    });

    it("carries an MQTT 5 reason code and a cause", () => {
      const cause = new Error("suback 0x87");
      const err = new MqttBridgeError("BROKER_REJECTED", "refused", { reasonCode: 0x87, cause });
      expect(err.reasonCode).to.equal(0x87);
      expect(err.cause).to.equal(cause);
    });

    it("keeps a reason code of 0", () => {
      expect(new MqttBridgeError("BROKER_REJECTED", "x", { reasonCode: 0 }).reasonCode).to.equal(0);
    });

    for (const code of ERROR_CODES) {
      it(`has a default message for ${code}`, () => {
        const err = new MqttBridgeError(code);
        expect(err.code).to.equal(code);
        expect(err.message).to.be.a("string").and.not.equal("");
      });
    }

    it("lists the stable codes of API.md, and MQTT5_REQUIRED of request / response", () => {
      expect([...ERROR_CODES].sort()).to.deep.equal(
        [
          "INVALID_ARGUMENT",
          "INVALID_TOPIC",
          "INVALID_FILTER",
          "FORBIDDEN",
          "PAYLOAD_TOO_LARGE",
          "TOO_MANY_SUBSCRIPTIONS",
          "RATE_LIMITED",
          "BROKER_UNAVAILABLE",
          "BROKER_REJECTED",
          "TIMEOUT",
          "MQTT5_REQUIRED",
        ].sort(),
      );
    });
  });

  describe("toAck", () => {
    it("answers { ok: false, error: { code, message } } without a reason code", () => {
      const ack = toAck(new MqttBridgeError("INVALID_TOPIC", "topic must not be empty"));
      expect(ack).to.deep.equal({
        ok: false,
        error: { code: "INVALID_TOPIC", message: "topic must not be empty" },
      });
      expect(ack.error).not.to.have.property("reasonCode");
    });

    it("adds the reason code when there is one", () => {
      const ack = toAck(new MqttBridgeError("PAYLOAD_TOO_LARGE", "too big", { reasonCode: 0x95 }));
      expect(ack).to.deep.equal({
        ok: false,
        error: { code: "PAYLOAD_TOO_LARGE", message: "too big", reasonCode: 0x95 },
      });
    });

    it("keeps a reason code of 0", () => {
      const ack = toAck(new MqttBridgeError("BROKER_REJECTED", "x", { reasonCode: 0 }));
      expect(ack.error.reasonCode).to.equal(0);
    });

    it("uses the default message of the code", () => {
      expect(toAck(new MqttBridgeError("TIMEOUT")).error).to.deep.equal({
        code: "TIMEOUT",
        message: new MqttBridgeError("TIMEOUT").message,
      });
    });

    it("never sends the cause", () => {
      const cause = new Error("secret: password=hunter2");
      const ack = toAck(new MqttBridgeError("BROKER_REJECTED", "refused", { cause }));
      expect(JSON.stringify(ack)).not.to.contain("hunter2");
      expect(Object.keys(ack.error).sort()).to.deep.equal(["code", "message"]);
    });

    const unknown: [string, unknown][] = [
      ["an Error", new Error("ECONNREFUSED 10.0.0.7:1883 password=hunter2")],
      ["a TypeError", new TypeError("Cannot read properties of undefined (reading 'hunter2')")],
      [
        "an error with a code and a reason code (MQTT.js ErrorWithReasonCode)",
        Object.assign(new Error("hunter2"), { code: 135, reasonCode: 0x87 }),
      ],
      ["an object shaped like our error", { code: "FORBIDDEN", message: "hunter2", reasonCode: 1 }],
      ["a string", "hunter2"],
      ["undefined", undefined],
      ["null", null],
      ["a number", 42],
    ];
    for (const [what, err] of unknown) {
      it(`turns ${what} into BROKER_UNAVAILABLE with a generic message`, () => {
        const ack = toAck(err);
        expect(ack).to.deep.equal({
          ok: false,
          error: {
            code: "BROKER_UNAVAILABLE",
            message: new MqttBridgeError("BROKER_UNAVAILABLE").message,
          },
        });
        expect(JSON.stringify(ack)).not.to.contain("hunter2");
      });
    }

    it("answers plain JSON data (what Socket.IO sends)", () => {
      const ack = toAck(new MqttBridgeError("FORBIDDEN", "no", { reasonCode: 0x87 }));
      expect(JSON.parse(JSON.stringify(ack))).to.deep.equal(ack);
    });

    it("answers a fresh object on every call", () => {
      const err = new MqttBridgeError("FORBIDDEN");
      const a = toAck(err);
      const b = toAck(err);
      expect(a).not.to.equal(b);
      expect(a.error).not.to.equal(b.error);
    });
  });

  describe("optionError", () => {
    it("builds the documented TypeError", () => {
      const err = optionError("ackTimeoutMs", "a positive integer", -1);
      expect(err).to.be.instanceOf(TypeError);
      expect(err.message).to.equal(
        "Expected `ackTimeoutMs` to be a positive integer, got `-1` (number)",
      );
    });

    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    const cases: [string, unknown, string][] = [
      ["a string", "x", '`"x"` (string)'],
      ["null", null, "`null` (null)"],
      ["undefined", undefined, "`undefined` (undefined)"],
      ["true", true, "`true` (boolean)"],
      ["an array", [1, 2], "`[1,2]` (object)"],
      ["an object", { a: 1 }, '`{"a":1}` (object)'],
      ["a function", () => 1, "`[function]` (function)"],
      ["a BigInt", 10n, "`10` (bigint)"],
      ["a symbol", Symbol("s"), "`Symbol(s)` (symbol)"],
      ["a cycle", cycle, "`[object Object]` (object)"],
    ];
    for (const [what, value, shown] of cases) {
      it(`describes ${what} as ${shown}`, () => {
        expect(optionError("x", "y", value).message).to.equal(
          `Expected \`x\` to be y, got ${shown}`,
        );
      });
    }

    it("describes NaN and Infinity as themselves", () => {
      expect(optionError("x", "y", NaN).message).to.equal(
        "Expected `x` to be y, got `NaN` (number)",
      );
      expect(optionError("x", "y", Infinity).message).to.equal(
        "Expected `x` to be y, got `Infinity` (number)",
      );
      expect(optionError("x", "y", -Infinity).message).to.equal(
        "Expected `x` to be y, got `-Infinity` (number)",
      );
    });
  });
});
