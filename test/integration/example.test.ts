/**
 * The example (example/server.ts) as a user runs it: a child process with its own embedded broker,
 * reached by a browser-like socket.io-client and a device (MQTT.js), stopped with a signal. Also the
 * port helpers of example/ports.ts.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { request as httpRequest } from "node:http";
import net from "node:net";
import path from "node:path";
import mqtt from "mqtt";
import type { MqttClient } from "mqtt";
import { io as ioc } from "socket.io-client";
import type { Socket as ClientSocket } from "socket.io-client";
// chai 6 is ESM-only: import its types statically, the module itself dynamically.
import type { expect as chaiExpect } from "chai" with { "resolution-mode": "import" };
import { StartupError, listenOnPort, portFromEnv } from "../../example/ports";
import { freePort, onProcessExit, onceEvent, waitFor, withTimeout } from "../support/util";

const root = path.resolve(__dirname, "..", "..");
/** Starting tsx and the example may be slow on a loaded machine. */
const START_TIMEOUT_MS = 20_000;

let expect: typeof chaiExpect;

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A running example process and what it printed so far. */
interface Example {
  child: ChildProcess;
  stdout: string;
  stderr: string;
  exited: Promise<Exit>;
  running: boolean;
}

const children = new Set<ChildProcess>();
onProcessExit(() => {
  for (const child of children) child.kill("SIGKILL");
});

/** Spawns `node --import tsx example/server.ts` with `env` on top of a clean environment. */
function startExample(env: Record<string, string>): Example {
  const base = { ...process.env };
  for (const name of ["PORT", "MQTT_PORT", "MQTT_URL", "HOST"]) delete base[name];
  const child = spawn(process.execPath, ["--import", "tsx", "example/server.ts"], {
    cwd: root,
    env: { ...base, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(child);
  const example: Example = {
    child,
    stdout: "",
    stderr: "",
    running: true,
    exited: new Promise<Exit>((resolve) => {
      child.once("exit", (code, signal) => {
        example.running = false;
        children.delete(child);
        resolve({ code, signal });
      });
    }),
  };
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (example.stdout += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (example.stderr += chunk));
  return example;
}

/** Waits for the printed page URL; fails with the output so far if the example exits or stalls. */
async function pageUrl(example: Example): Promise<string> {
  const pattern = /^Chat page: (http:\/\/\S+)$/m;
  try {
    await waitFor(() => pattern.test(example.stdout) || !example.running, {
      timeoutMs: START_TIMEOUT_MS,
      intervalMs: 50,
      message: "the example to print its page URL",
    });
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${example.stdout}\n${example.stderr}`, {
      cause: err,
    });
  }
  const url = pattern.exec(example.stdout)?.[1];
  if (!url) throw new Error(`the example exited early:\n${example.stdout}\n${example.stderr}`);
  return url;
}

/** GET with a raw (unnormalized) path, as a hostile client may send it. */
function rawGet(port: number, rawPath: string): Promise<{ status: number; body: string }> {
  return withTimeout(
    new Promise((resolve, reject) => {
      const req = httpRequest({ host: "127.0.0.1", port, path: rawPath }, (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (chunk: string) => (body += chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on("error", reject);
      req.end();
    }),
    5000,
    `GET ${rawPath}`,
  );
}

/** Two distinct free ports. */
async function twoPorts(): Promise<[number, number]> {
  const a = await freePort();
  let b = await freePort();
  while (b === a) b = await freePort();
  return [a, b];
}

function listening(server: net.Server, port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve((server.address() as net.AddressInfo).port));
  });
}

function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));
}

describe("example", function () {
  this.timeout(60_000);

  before(async function () {
    ({ expect } = await import("chai"));
  });

  describe("server (child process)", function () {
    let example: Example | undefined;
    const sockets: ClientSocket[] = [];
    const devices: MqttClient[] = [];
    const servers: net.Server[] = [];

    afterEach(async function () {
      for (const socket of sockets.splice(0)) socket.disconnect();
      await Promise.all(devices.splice(0).map((d) => withTimeout(d.endAsync(true), 2000, "end")));
      await Promise.all(servers.splice(0).map(closeServer));
      if (example?.running) {
        example.child.kill("SIGKILL");
        await withTimeout(example.exited, 5000, "example killed");
      }
      example = undefined;
    });

    it("serves the page, bridges socket.io and MQTT both ways, and stops on SIGTERM", async function () {
      const [webPort, mqttPort] = await twoPorts();
      example = startExample({ PORT: String(webPort), MQTT_PORT: String(mqttPort) });
      const url = await pageUrl(example);
      expect(url).to.equal(`http://127.0.0.1:${webPort}/`);
      expect(example.stdout).to.include(
        `mosquitto_pub -h 127.0.0.1 -p ${mqttPort} -t chat/lobby -m hello`,
      );

      // the page and its script; nothing outside example/public
      const page = await withTimeout(fetch(url), 5000, "GET /");
      expect(page.status).to.equal(200);
      expect(page.headers.get("content-type")).to.match(/^text\/html/);
      const html = await page.text();
      expect(html).to.include('<script src="/socket.io/socket.io.js"></script>');
      expect((await withTimeout(fetch(`${url}app.js`), 5000, "GET /app.js")).status).to.equal(200);
      const client = await withTimeout(fetch(`${url}socket.io/socket.io.js`), 5000, "client");
      expect(client.status).to.equal(200);
      for (const raw of ["/../package.json", "/..%2f..%2fpackage.json", "/%2e%2e/server.ts"]) {
        const res = await rawGet(webPort, raw);
        expect(res.status, raw).to.equal(404);
      }

      const socket = ioc(url, { transports: ["websocket"], forceNew: true, reconnection: false });
      sockets.push(socket);
      await onceEvent(socket, "connect", 5000);
      const device = await withTimeout(
        mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, {
          protocolVersion: 4,
          reconnectPeriod: 0,
        }),
        5000,
        "device connected",
      );
      devices.push(device);

      // MQTT -> socket.io
      const sub = (await socket.timeout(5000).emitWithAck("mqtt.subscribe", "chat/lobby")) as {
        ok: boolean;
      };
      expect(sub).to.include({ ok: true, room: "mqtt:chat/lobby" });
      const received = onceEvent<[{ topic: string; payload: unknown }]>(socket, "mqtt.message");
      await device.publishAsync("chat/lobby", "hello");
      const [message] = await received;
      expect(message).to.include({ topic: "chat/lobby", payload: "hello" });

      // socket.io -> MQTT
      await device.subscribeAsync("chat/lobby");
      const delivered = new Promise<string>((resolve) => {
        device.on("message", (topic, payload) => {
          const text = payload.toString();
          if (topic === "chat/lobby" && text !== "hello") resolve(text);
        });
      });
      const pub = (await socket.timeout(5000).emitWithAck("mqtt.publish", {
        topic: "chat/lobby",
        payload: { user: "test", text: "hi" },
      })) as { ok: boolean };
      expect(pub).to.deep.equal({ ok: true });
      expect(JSON.parse(await withTimeout(delivered, 5000, "device message"))).to.deep.equal({
        user: "test",
        text: "hi",
      });

      // the example's authorization
      const forbidden = (await socket.timeout(5000).emitWithAck("mqtt.publish", {
        topic: "admin/x",
        payload: "no",
      })) as { ok: boolean; error: { code: string } };
      expect(forbidden.ok).to.equal(false);
      expect(forbidden.error.code).to.equal("FORBIDDEN");
      const sensors = (await socket.timeout(5000).emitWithAck("mqtt.subscribe", "sensors/#")) as {
        ok: boolean;
      };
      expect(sensors.ok).to.equal(true);

      // graceful stop with a socket and a device still connected
      const started = Date.now();
      example.child.kill("SIGTERM");
      const exit = await withTimeout(example.exited, 3000, "exit after SIGTERM");
      expect(exit, example.stderr).to.deep.equal({ code: 0, signal: null });
      expect(Date.now() - started).to.be.below(3000);
      expect(example.stderr).to.equal("");
    });

    it("exits 1 with a one-line message when the PORT it was given is taken", async function () {
      const blocker = net.createServer();
      servers.push(blocker);
      const webPort = await listening(blocker);
      example = startExample({ PORT: String(webPort), MQTT_PORT: String(await freePort()) });
      const exit = await withTimeout(example.exited, START_TIMEOUT_MS, "exit");
      expect(exit).to.deep.equal({ code: 1, signal: null });
      const lines = example.stderr.trim().split("\n");
      expect(lines, example.stderr).to.have.length(1);
      expect(lines[0]).to.include(`PORT=${webPort}`).and.to.include("already in use");
      expect(example.stderr).to.not.match(/^\s+at /m);
      expect(example.stdout).to.not.include("Chat page");
    });

    it("uses MQTT_URL instead of an embedded broker, and stops within 2 s on SIGINT when it is unreachable", async function () {
      const [webPort, mqttPort] = await twoPorts();
      const deadBroker = await freePort(); // nothing listens there
      example = startExample({
        PORT: String(webPort),
        MQTT_PORT: String(mqttPort),
        MQTT_URL: `mqtt://127.0.0.1:${deadBroker}`,
      });
      await pageUrl(example);
      expect(example.stdout).to.include(
        `mosquitto_pub -h 127.0.0.1 -p ${deadBroker} -t chat/lobby -m hello`,
      );
      expect(example.stdout).to.not.include("aedes");
      // no embedded broker: MQTT_PORT is still free
      const probe = net.createServer();
      servers.push(probe);
      expect(await listening(probe, mqttPort)).to.equal(mqttPort);

      const started = Date.now();
      example.child.kill("SIGINT");
      const exit = await withTimeout(example.exited, 3000, "exit after SIGINT");
      expect(exit, example.stderr).to.deep.equal({ code: 0, signal: null });
      expect(Date.now() - started).to.be.below(2000);
    });
  });

  describe("ports", function () {
    const servers: net.Server[] = [];

    afterEach(async function () {
      await Promise.all(servers.splice(0).map(closeServer));
    });

    function server(): net.Server {
      const s = net.createServer();
      servers.push(s);
      return s;
    }

    it("reads a port from the environment", function () {
      expect(portFromEnv({}, "PORT", 3000)).to.deep.equal({ port: 3000, explicit: false });
      expect(portFromEnv({ PORT: "" }, "PORT", 3000)).to.deep.equal({
        port: 3000,
        explicit: false,
      });
      expect(portFromEnv({ PORT: "8080" }, "PORT", 3000)).to.deep.equal({
        port: 8080,
        explicit: true,
      });
      expect(portFromEnv({ PORT: "0" }, "PORT", 3000)).to.deep.equal({ port: 0, explicit: true });
      for (const bad of ["abc", "-1", "65536", "80a", "1e3"]) {
        expect(() => portFromEnv({ PORT: bad }, "PORT", 3000), bad).to.throw(
          StartupError,
          /^PORT must be a port number/,
        );
      }
    });

    it("listens on a free port as asked", async function () {
      const port = await freePort();
      const opts = { port, explicit: true, host: "127.0.0.1", name: "PORT" };
      expect(await listenOnPort(server(), opts)).to.equal(port);
    });

    it("moves a taken default port to the next free one", async function () {
      const taken = await listening(server());
      const port = await listenOnPort(server(), {
        port: taken,
        explicit: false,
        host: "127.0.0.1",
        name: "PORT",
      });
      expect(port)
        .to.be.above(taken)
        .and.at.most(taken + 20);
    });

    it("refuses a taken explicit port, and gives up after the range", async function () {
      const taken = await listening(server());
      const s = server();
      const explicit = { port: taken, explicit: true, host: "127.0.0.1", name: "MQTT_PORT" };
      let err = await listenOnPort(s, explicit).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).to.be.instanceOf(StartupError);
      expect((err as Error).message).to.equal(
        `MQTT_PORT=${taken}: port ${taken} is already in use on 127.0.0.1`,
      );
      expect(s.listening).to.equal(false);

      const exhausted = { ...explicit, explicit: false, range: 0 };
      err = await listenOnPort(s, exhausted).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).to.be.instanceOf(StartupError);
      expect((err as Error).message).to.equal(
        `port ${taken} is in use on 127.0.0.1; set MQTT_PORT to a free port`,
      );

      // the same server can still listen afterwards
      const free = await freePort();
      expect(await listenOnPort(s, { ...explicit, port: free })).to.equal(free);
    });
  });
});
