import { expect } from "chai";
import { parseWorkerArgs } from "../../lib/cli";

describe("worker command line", () => {
  const env = {};

  it("reads flags, with defaults", () => {
    expect(
      parseWorkerArgs(["worker", "--mqtt", "mqtt://b:1883", "--redis", "redis://r:6379"], env),
    ).to.deep.equal({
      mqtt: "mqtt://b:1883",
      redis: "redis://r:6379",
      namespaces: ["/"],
      key: "socket.io",
      lockTtlMs: 5000,
    });
  });

  it("reads the environment, and flags win over it", () => {
    const args = parseWorkerArgs(["worker", "--redis", "redis://flag"], {
      MQTT_URL: "mqtt://env",
      REDIS_URL: "redis://env",
      BRIDGE_NAMESPACE: "/a, /b",
      BRIDGE_REDIS_KEY: "k",
      BRIDGE_CONFIG: "c.js",
      BRIDGE_LOCK_TTL: "1500",
    });
    expect(args).to.deep.equal({
      mqtt: "mqtt://env",
      redis: "redis://flag",
      namespaces: ["/a", "/b"],
      key: "k",
      lockTtlMs: 1500,
      config: "c.js",
    });
  });

  it("reads --metrics [HOST:]PORT (or BRIDGE_METRICS)", () => {
    const base = ["worker", "--mqtt", "m", "--redis", "r"];
    expect(parseWorkerArgs([...base, "--metrics", "9464"], env)).to.deep.include({
      metrics: { port: 9464 },
    });
    expect(parseWorkerArgs([...base, "--metrics", "127.0.0.1:9464"], env)).to.deep.include({
      metrics: { host: "127.0.0.1", port: 9464 },
    });
    expect(parseWorkerArgs(base, { BRIDGE_METRICS: "[::1]:9464" })).to.deep.include({
      metrics: { host: "::1", port: 9464 },
    });
    expect(parseWorkerArgs(base, env)).not.to.have.property("metrics");
  });

  it("asks for help with -h or --help", () => {
    expect(parseWorkerArgs(["-h"], env)).to.equal("help");
    expect(parseWorkerArgs(["--help"], env)).to.equal("help");
    expect(parseWorkerArgs(["worker", "-h"], env)).to.equal("help");
  });

  it("answers usage (an error: exit code 2) without a command", () => {
    expect(parseWorkerArgs([], env)).to.equal("usage");
    expect(parseWorkerArgs([], { MQTT_URL: "mqtt://env", REDIS_URL: "redis://env" })).to.equal(
      "usage",
    );
  });

  it("asks for the version with --version or -v, with or without a command", () => {
    expect(parseWorkerArgs(["--version"], env)).to.equal("version");
    expect(parseWorkerArgs(["-v"], env)).to.equal("version");
    expect(parseWorkerArgs(["worker", "--version"], env)).to.equal("version");
  });

  for (const [argv, message] of [
    [["worker"], /--mqtt/],
    [["worker", "--mqtt", "mqtt://x"], /--redis/],
    [["serve"], /unknown command/],
    [["worker", "--mqtt", "m", "--redis", "r", "--namespace", "chat"], /namespace/],
    [["worker", "--mqtt", "m", "--redis", "r", "--lock-ttl", "10"], /lock-ttl/],
    [["worker", "--nope"], /nope/],
    [["worker", "--mqtt", "m", "--redis", "r", "--metrics", "0"], /--metrics/],
    [["worker", "--mqtt", "m", "--redis", "r", "--metrics", "host:"], /--metrics/],
    [["worker", "--mqtt", "m", "--redis", "r", "--metrics", "::1:80"], /--metrics/],
  ] as const) {
    it(`refuses ${argv.join(" ")} with a one-line message`, () => {
      expect(() => parseWorkerArgs([...argv], env)).to.throw(Error, message);
    });
  }
});
