/**
 * Unit tests for lib/sockets/authorize.ts: deny by default, rule lists (covers() for subscribe,
 * matches() for publish and retain), `{placeholders}` filled from the socket, and hook functions.
 *
 * The sockets here are plain objects with the three fields placeholders may read (`id`, `data`,
 * `handshake`), cast to Socket.
 */
import { expect } from "chai";
import type { Socket } from "socket.io";
import { createAuthorizer, type Authorizer } from "../../lib/sockets/authorize";
import type { AllowOptions } from "../../lib/options";
import type { PublishRequest } from "../../lib/protocol";

function fakeSocket(fields: { id?: unknown; data?: unknown; handshake?: unknown } = {}): Socket {
  return {
    id: "abc",
    data: { userId: "u1" },
    handshake: { auth: { user: "alice" }, query: { room: "r1" } },
    ...fields,
  } as unknown as Socket;
}

const SOCKET = fakeSocket();

function message(topic: string): PublishRequest {
  return { topic, payload: "x", qos: 0, retain: false };
}

/** Resolves a check that may be sync or async. */
async function allowed(result: boolean | Promise<boolean>): Promise<boolean> {
  return result;
}

function canSubscribe(a: Authorizer, filter: string, socket = SOCKET): Promise<boolean> {
  return allowed(a.subscribe(socket, filter));
}

function canPublish(a: Authorizer, topic: string, socket = SOCKET): Promise<boolean> {
  return allowed(a.publish(socket, topic, message(topic)));
}

function canRetain(a: Authorizer, topic: string, socket = SOCKET): Promise<boolean> {
  return allowed(a.retain(socket, topic, message(topic)));
}

describe("authorize", () => {
  describe("deny by default", () => {
    for (const [what, allow] of [
      ["no rules", {}],
      ["empty rule lists", { subscribe: [], publish: [], retain: [] }],
    ] as [string, AllowOptions][]) {
      it(`refuses every subscribe, publish and retain with ${what}`, async () => {
        const a = createAuthorizer(allow);
        for (const filter of ["a", "#", "+/#", "$SYS/#", "sensors/1/temp"]) {
          expect(await canSubscribe(a, filter), filter).to.equal(false);
        }
        for (const topic of ["a", "chat/lobby", "$SYS/x"]) {
          expect(await canPublish(a, topic), topic).to.equal(false);
          expect(await canRetain(a, topic), topic).to.equal(false);
        }
      });
    }

    it("answers synchronously when there are no rules", () => {
      const a = createAuthorizer({});
      expect(a.subscribe(SOCKET, "a")).to.equal(false);
      expect(a.publish(SOCKET, "a", message("a"))).to.equal(false);
      expect(a.retain(SOCKET, "a", message("a"))).to.equal(false);
    });

    it("does not let publish rules grant subscriptions or retain, nor the reverse", async () => {
      const a = createAuthorizer({ publish: ["#"] });
      expect(await canPublish(a, "a/b")).to.equal(true);
      expect(await canSubscribe(a, "a/b")).to.equal(false);
      expect(await canRetain(a, "a/b")).to.equal(false);
      const b = createAuthorizer({ subscribe: ["#"], retain: ["#"] });
      expect(await canPublish(b, "a/b")).to.equal(false);
    });
  });

  describe("rule lists", () => {
    const subscribeCases: [string[], string, boolean][] = [
      // subscribe uses covers(): every topic the filter can match must be allowed
      [["sensors/#"], "sensors/+/temp", true],
      [["sensors/#"], "sensors/#", true],
      [["sensors/#"], "sensors", true],
      [["sensors/#"], "sensors/a/b/c", true],
      [["sensors/#"], "#", false],
      [["sensors/#"], "+/temp", false],
      [["sensors/#"], "other/x", false],
      [["chat/+"], "chat/lobby", true],
      [["chat/+"], "chat/+", true],
      [["chat/+"], "chat/#", false],
      [["chat/+"], "chat", false],
      [["chat/+"], "chat/a/b", false],
      [["a/b", "c/+"], "c/d", true],
      [["a/b", "c/+"], "a/b", true],
      [["a/b", "c/+"], "a/c", false],
      [["Sport/Tennis"], "sport/tennis", false],
    ];
    for (const [rules, filter, expected] of subscribeCases) {
      it(`subscribe ${JSON.stringify(rules)} ${expected ? "covers" : "does not cover"} "${filter}"`, async () => {
        expect(await canSubscribe(createAuthorizer({ subscribe: rules }), filter)).to.equal(
          expected,
        );
      });
    }

    const publishCases: [string[], string, boolean][] = [
      // publish and retain use matches()
      [["chat/+"], "chat/lobby", true],
      [["chat/+"], "chat/", true],
      [["chat/+"], "chat", false],
      [["chat/+"], "chat/a/b", false],
      [["sensors/#"], "sensors", true],
      [["sensors/#"], "sensors/1/temp", true],
      [["sensors/#"], "other", false],
      [["a/b"], "a/b", true],
      [["a/b"], "a/b/", false],
    ];
    for (const [rules, topic, expected] of publishCases) {
      it(`publish and retain ${JSON.stringify(rules)} ${expected ? "match" : "do not match"} "${topic}"`, async () => {
        expect(await canPublish(createAuthorizer({ publish: rules }), topic)).to.equal(expected);
        expect(await canRetain(createAuthorizer({ retain: rules }), topic)).to.equal(expected);
      });
    }

    describe("[MQTT-4.7.2-1] $-topics are not reached through a leading wildcard", () => {
      const a = createAuthorizer({ subscribe: ["#", "+/#"], publish: ["#"], retain: ["+/+"] });
      for (const filter of ["$SYS/#", "$SYS/x", "$SYS/+", "$share/g/x", "$x"]) {
        it(`a "#" rule does not allow subscribing to "${filter}"`, async () => {
          expect(await canSubscribe(a, filter)).to.equal(false);
        });
      }
      for (const topic of ["$SYS/x", "$SYS/broker/clients", "$x"]) {
        it(`a "#" rule does not allow publishing to "${topic}"`, async () => {
          expect(await canPublish(a, topic)).to.equal(false);
        });
      }
      it('a "+/+" rule does not allow retaining on "$SYS/x"', async () => {
        expect(await canRetain(a, "$SYS/x")).to.equal(false);
        expect(await canRetain(a, "a/x")).to.equal(true);
      });
      it('a "#" rule allows ordinary filters and topics', async () => {
        expect(await canSubscribe(a, "a/#")).to.equal(true);
        expect(await canSubscribe(a, "#")).to.equal(true);
        expect(await canPublish(a, "a/$b")).to.equal(true);
      });
      it("an explicit $SYS rule allows $SYS", async () => {
        const sys = createAuthorizer({ subscribe: ["$SYS/#"], publish: ["$SYS/+"] });
        expect(await canSubscribe(sys, "$SYS/broker/#")).to.equal(true);
        expect(await canPublish(sys, "$SYS/x")).to.equal(true);
      });
    });
  });

  describe("placeholders", () => {
    it("fills {id} from the socket id", async () => {
      const a = createAuthorizer({ subscribe: ["users/{id}/#"], publish: ["users/{id}/out"] });
      expect(await canSubscribe(a, "users/abc/#")).to.equal(true);
      expect(await canSubscribe(a, "users/abc/x")).to.equal(true);
      expect(await canSubscribe(a, "users/other/#")).to.equal(false);
      expect(await canSubscribe(a, "users/+/#")).to.equal(false);
      expect(await canPublish(a, "users/abc/out")).to.equal(true);
      expect(await canPublish(a, "users/abd/out")).to.equal(false);
    });

    it("fills {data.userId} from socket.data", async () => {
      const a = createAuthorizer({ subscribe: ["users/{data.userId}/#"] });
      expect(await canSubscribe(a, "users/u1/inbox")).to.equal(true);
      expect(await canSubscribe(a, "users/u2/inbox")).to.equal(false);
    });

    it("fills {handshake.auth.user} and {handshake.query.room}", async () => {
      const a = createAuthorizer({
        publish: ["chat/{handshake.auth.user}", "rooms/{handshake.query.room}/+"],
      });
      expect(await canPublish(a, "chat/alice")).to.equal(true);
      expect(await canPublish(a, "chat/bob")).to.equal(false);
      expect(await canPublish(a, "rooms/r1/msg")).to.equal(true);
      expect(await canPublish(a, "rooms/r2/msg")).to.equal(false);
    });

    it("fills several placeholders in one rule, and inside a level", async () => {
      const a = createAuthorizer({ subscribe: ["{data.userId}/{handshake.auth.user}/u-{id}"] });
      expect(await canSubscribe(a, "u1/alice/u-abc")).to.equal(true);
      expect(await canSubscribe(a, "u1/alice/u-abd")).to.equal(false);
    });

    it("reads placeholders per socket at check time", async () => {
      const a = createAuthorizer({ subscribe: ["users/{data.userId}/#"] });
      const data = { userId: "u1" };
      const socket = fakeSocket({ data });
      expect(await canSubscribe(a, "users/u1/#", socket)).to.equal(true);
      data.userId = "u9";
      expect(await canSubscribe(a, "users/u1/#", socket)).to.equal(false);
      expect(await canSubscribe(a, "users/u9/#", socket)).to.equal(true);
      expect(await canSubscribe(a, "users/u1/#", fakeSocket({ data: { userId: "u1" } }))).to.equal(
        true,
      );
    });

    it("allows finite numbers", async () => {
      const a = createAuthorizer({
        subscribe: ["users/{data.userId}/#"],
        publish: ["n/{data.userId}"],
      });
      for (const [value, level] of [
        [42, "42"],
        [0, "0"],
        [-1, "-1"],
        [1.5, "1.5"],
      ] as const) {
        const socket = fakeSocket({ data: { userId: value } });
        expect(await canSubscribe(a, `users/${level}/#`, socket), String(value)).to.equal(true);
        expect(await canPublish(a, `n/${level}`, socket), String(value)).to.equal(true);
      }
    });

    describe("values that never match", () => {
      const subscribeProbes = [
        "users/+/#",
        "users/#",
        "#",
        "+/#",
        "users/a/b/#",
        "users//#",
        "users/u1/#",
        "users/undefined/#",
        "users/null/#",
        "users/[object Object]/#",
        "users/true/#",
        "users/NaN/#",
        "users/Infinity/#",
        "users/x/#",
      ];
      const publishProbes = [
        "users/x/y",
        "users/a/b/c",
        "users//c",
        "users/u1/c",
        "users/undefined/c",
        "users/[object Object]/c",
        "users/NaN/c",
      ];
      const values: [string, unknown][] = [
        ['"+"', "+"],
        ['"#"', "#"],
        ['"a/b"', "a/b"],
        ['"/"', "/"],
        ['"x+"', "x+"],
        ["an empty string", ""],
        ["U+0000", "\u0000"],
        ["a string with U+0000", "u1\u0000"],
        ["undefined", undefined],
        ["null", null],
        ["true", true],
        ["NaN", NaN],
        ["Infinity", Infinity],
        ["a BigInt", 1n],
        ["an object", { toString: () => "u1" }],
        ["an array", ["u1"]],
        ["a function", () => "u1"],
        ["a symbol", Symbol("u1")],
      ];
      for (const [what, value] of values) {
        it(`never matches with data.userId = ${what}`, async () => {
          const a = createAuthorizer({
            subscribe: ["users/{data.userId}/#"],
            publish: ["users/{data.userId}/+"],
            retain: ["users/{data.userId}/+"],
          });
          const socket = fakeSocket({ data: { userId: value } });
          for (const filter of subscribeProbes) {
            expect(await canSubscribe(a, filter, socket), filter).to.equal(false);
          }
          for (const topic of publishProbes) {
            expect(await canPublish(a, topic, socket), topic).to.equal(false);
            expect(await canRetain(a, topic, socket), topic).to.equal(false);
          }
        });
      }

      it('never widens a rule through "+" or "#" from handshake.auth', async () => {
        const a = createAuthorizer({ subscribe: ["{handshake.auth.user}/inbox"] });
        for (const user of ["+", "#"]) {
          const socket = fakeSocket({ handshake: { auth: { user } } });
          expect(await canSubscribe(a, `${user}/inbox`, socket)).to.equal(false);
          expect(await canSubscribe(a, "+/inbox", socket)).to.equal(false);
          expect(await canSubscribe(a, "#", socket)).to.equal(false);
        }
      });

      it("never matches inherited properties", async () => {
        const a = createAuthorizer({
          subscribe: ["users/{data.userId}/#", "h/{handshake.auth.user}"],
        });
        const data = Object.create({ userId: "u1" }) as object;
        const auth = Object.create({ user: "alice" }) as object;
        const handshake = Object.create({ auth: { user: "alice" } }) as object;
        expect(await canSubscribe(a, "users/u1/#", fakeSocket({ data }))).to.equal(false);
        expect(await canSubscribe(a, "h/alice", fakeSocket({ handshake: { auth } }))).to.equal(
          false,
        );
        expect(await canSubscribe(a, "h/alice", fakeSocket({ handshake }))).to.equal(false);
      });

      it("never matches Object.prototype members", async () => {
        const a = createAuthorizer({
          subscribe: ["users/{data.toString}/#", "c/{data.constructor}"],
        });
        expect(await canSubscribe(a, "users/function toString() { [native code] }/#")).to.equal(
          false,
        );
        expect(await canSubscribe(a, "c/function Object() { [native code] }")).to.equal(false);
      });

      it("never matches when a step of the path is missing or not an object", async () => {
        const a = createAuthorizer({ subscribe: ["u/{data.user.id}", "h/{handshake.auth.user}"] });
        const cases: [object, string][] = [
          [{ data: undefined }, "u/u1"],
          [{ data: null }, "u/u1"],
          [{ data: "u1" }, "u/u1"],
          [{ data: { user: "u1" } }, "u/u1"],
          [{ data: { user: null } }, "u/u1"],
          [{ handshake: undefined }, "h/alice"],
          [{ handshake: { auth: null } }, "h/alice"],
          [{ handshake: {} }, "h/alice"],
        ];
        for (const [fields, filter] of cases) {
          const socket = fakeSocket(fields);
          expect(await canSubscribe(a, filter, socket), JSON.stringify(fields)).to.equal(false);
          expect(await canSubscribe(a, "u/undefined", socket)).to.equal(false);
        }
        const ok = fakeSocket({ data: { user: { id: "u1" } } });
        expect(await canSubscribe(a, "u/u1", ok)).to.equal(true);
      });

      it("still applies the other rules when one placeholder cannot be filled", async () => {
        const a = createAuthorizer({ subscribe: ["users/{data.userId}/#", "public/#"] });
        const socket = fakeSocket({ data: {} });
        expect(await canSubscribe(a, "public/news", socket)).to.equal(true);
        expect(await canSubscribe(a, "users/u1/#", socket)).to.equal(false);
      });
    });

    it('never opens $-topics through a placeholder value starting with "$"', async () => {
      const a = createAuthorizer({
        subscribe: ["{data.userId}/#"],
        publish: ["{handshake.auth.user}/+"],
      });
      const socket = fakeSocket({
        data: { userId: "$SYS" },
        handshake: { auth: { user: "$SYS" } },
      });
      expect(await canSubscribe(a, "$SYS/#", socket)).to.equal(false);
      expect(await canSubscribe(a, "$SYS/broker/clients", socket)).to.equal(false);
      expect(await canPublish(a, "$SYS/x", socket)).to.equal(false);
    });
  });

  describe("invalid rules throw a TypeError at createAuthorizer time", () => {
    const cases: [string, AllowOptions, string][] = [
      ["an invalid subscribe filter", { subscribe: ["a/#/b"] }, "allow.subscribe"],
      ["a partial-level +", { subscribe: ["sport+"] }, "allow.subscribe"],
      ["an empty rule", { subscribe: [""] }, "allow.subscribe"],
      ["U+0000 in a publish rule", { publish: ["a\u0000"] }, "allow.publish"],
      ['"#/" as a retain rule', { retain: ["#/"] }, "allow.retain"],
      ["a lone surrogate", { publish: ["a/\uD800"] }, "allow.publish"],
      ["a malformed shared subscription", { subscribe: ["$share//x"] }, "allow.subscribe"],
      [
        "a placeholder that makes the filter invalid",
        { subscribe: ["a/{id}+"] },
        "allow.subscribe",
      ],
      ["a placeholder next to #", { subscribe: ["a/{id}#"] }, "allow.subscribe"],
      ["a placeholder rooted at user", { subscribe: ["u/{user}"] }, "allow.subscribe"],
      ["a placeholder rooted at socket", { publish: ["u/{socket.id}"] }, "allow.publish"],
      [
        "a placeholder rooted at constructor",
        { publish: ["u/{constructor.name}"] },
        "allow.publish",
      ],
      ["a placeholder rooted at __proto__", { retain: ["u/{__proto__.x}"] }, "allow.retain"],
      [
        "a placeholder rooted at request",
        { subscribe: ["u/{request.headers.host}"] },
        "allow.subscribe",
      ],
      ["a placeholder rooted at nsp", { subscribe: ["u/{nsp.name}"] }, "allow.subscribe"],
    ];
    for (const [what, allow, name] of cases) {
      it(`throws for ${what}, naming \`${name}\``, () => {
        expect(() => createAuthorizer(allow))
          .to.throw(TypeError)
          .with.property("message")
          .that.matches(new RegExp(`^Expected \`${name.replace(".", "\\.")}\` to be `));
      });
    }

    it("accepts valid rules with placeholders of every root", () => {
      expect(() =>
        createAuthorizer({
          subscribe: ["users/{id}/#", "{data.a.b}/+", "$SYS/#", "x/{handshake.auth.user}"],
          publish: ["+/{handshake.query.q}"],
          retain: ["r/{data.userId}"],
        }),
      ).not.to.throw();
    });
  });

  describe("hook functions", () => {
    it("returns a sync true or false as is, without a promise", () => {
      const yes = createAuthorizer({
        subscribe: () => true,
        publish: () => true,
        retain: () => true,
      });
      const no = createAuthorizer({ subscribe: () => false, publish: () => false });
      expect(yes.subscribe(SOCKET, "a")).to.equal(true);
      expect(yes.publish(SOCKET, "a", message("a"))).to.equal(true);
      expect(yes.retain(SOCKET, "a", message("a"))).to.equal(true);
      expect(no.subscribe(SOCKET, "a")).to.equal(false);
      expect(no.publish(SOCKET, "a", message("a"))).to.equal(false);
    });

    it("resolves async hooks", async () => {
      const yes = createAuthorizer({ subscribe: () => Promise.resolve(true) });
      const no = createAuthorizer({ subscribe: () => Promise.resolve(false) });
      const later = createAuthorizer({
        publish: () => new Promise<boolean>((resolve) => setTimeout(() => resolve(true), 5)),
      });
      expect(await canSubscribe(yes, "a")).to.equal(true);
      expect(await canSubscribe(no, "a")).to.equal(false);
      expect(await canPublish(later, "a")).to.equal(true);
    });

    it("denies when the hook throws", async () => {
      const a = createAuthorizer({
        subscribe: () => {
          throw new Error("boom");
        },
      });
      expect(a.subscribe(SOCKET, "a")).to.equal(false);
      expect(await canSubscribe(a, "a")).to.equal(false);
    });

    it("denies when the hook rejects", async () => {
      const a = createAuthorizer({ publish: () => Promise.reject(new Error("boom")) });
      expect(await canPublish(a, "a")).to.equal(false);
      const b = createAuthorizer({
        publish: async () => {
          await Promise.resolve();
          throw new Error("boom");
        },
      });
      expect(await canPublish(b, "a")).to.equal(false);
    });

    const truthy: [string, unknown][] = [
      ["1", 1],
      ['"yes"', "yes"],
      ['"true"', "true"],
      ["an object", {}],
      ["an array", [true]],
      ["a function", () => true],
    ];
    for (const [what, value] of truthy) {
      it(`denies when the hook returns ${what} (only true allows)`, async () => {
        const sync = createAuthorizer({ subscribe: (() => value) as () => boolean });
        const async = createAuthorizer({
          subscribe: (() => Promise.resolve(value)) as () => Promise<boolean>,
        });
        expect(await canSubscribe(sync, "a")).to.equal(false);
        expect(await canSubscribe(async, "a")).to.equal(false);
      });
    }

    for (const [what, value] of [
      ["undefined", undefined],
      ["null", null],
      ["0", 0],
    ] as const) {
      it(`denies when the hook returns ${what}`, async () => {
        const a = createAuthorizer({ publish: (() => value) as unknown as () => boolean });
        expect(await canPublish(a, "a")).to.equal(false);
      });
    }

    it("passes the socket and the filter to the subscribe hook", () => {
      const calls: unknown[][] = [];
      const a = createAuthorizer({
        subscribe: (...args) => {
          calls.push(args);
          return true;
        },
      });
      expect(a.subscribe(SOCKET, "a/+")).to.equal(true);
      expect(calls).to.have.length(1);
      expect(calls[0][0]).to.equal(SOCKET);
      expect(calls[0][1]).to.equal("a/+");
    });

    it("passes the socket, the topic and the message to the publish and retain hooks", () => {
      const calls: unknown[][] = [];
      const hook = (...args: unknown[]) => {
        calls.push(args);
        return true;
      };
      const a = createAuthorizer({ publish: hook, retain: hook });
      const msg = message("a/b");
      expect(a.publish(SOCKET, "a/b", msg)).to.equal(true);
      expect(a.retain(SOCKET, "a/b", msg)).to.equal(true);
      expect(calls).to.deep.equal([
        [SOCKET, "a/b", msg],
        [SOCKET, "a/b", msg],
      ]);
      expect(calls[0][2]).to.equal(msg);
    });

    it("calls the hook on every check (no caching)", () => {
      let n = 0;
      const a = createAuthorizer({ subscribe: () => ++n > 1 });
      expect(a.subscribe(SOCKET, "a")).to.equal(false);
      expect(a.subscribe(SOCKET, "a")).to.equal(true);
    });
  });
});
