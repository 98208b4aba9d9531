/**
 * The example (example/server.ts) as a user runs it: a child process with its own embedded broker,
 * reached by a browser-like socket.io-client and a device (MQTT.js), stopped with a signal. Also the
 * port helpers of example/ports.ts.
 */
import { request as httpRequest } from "node:http";
import net from "node:net";
import mqtt from "mqtt";
import type { MqttClient } from "mqtt";
import { io as ioc } from "socket.io-client";
import type { Socket as ClientSocket } from "socket.io-client";
// chai 6 is ESM-only: import its types statically, the module itself dynamically.
import type { expect as chaiExpect } from "chai" with { "resolution-mode": "import" };
import { SENSORS } from "../../example/fleet";
import { METRICS_CONTENT_TYPE } from "../../lib";
import { StartupError, listenOnPort, portFromEnv } from "../../example/ports";
import type { Example } from "../support/example";
import {
  START_TIMEOUT_MS,
  examplePages,
  spawnNode,
  startExample,
  stopExample,
} from "../support/example";
import { startMosquitto } from "../support/mosquitto";
import { parseExposition, valueOf } from "../support/prometheus";
import { startRedis } from "../support/redis";
import { freePort, onceEvent, waitFor, withTimeout } from "../support/util";

let expect: typeof chaiExpect;

/** Waits for the printed chat page URL (see {@link examplePages}). */
async function pageUrl(example: Example): Promise<string> {
  return (await examplePages(example)).chat;
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

      expect(example.stdout).to.include(`Dashboard: http://127.0.0.1:${webPort}/dashboard.html`);

      // the pages and their bundled scripts (built at start-up); nothing outside example/public
      const get = (file: string) => withTimeout(fetch(`${url}${file}`), 5000, `GET /${file}`);
      const page = await get("");
      expect(page.status).to.equal(200);
      expect(page.headers.get("content-type")).to.match(/^text\/html/);
      expect(await page.text()).to.include('<script src="build/chat.js" defer></script>');
      const dashboard = await get("dashboard.html");
      expect(dashboard.status).to.equal(200);
      expect(await dashboard.text()).to.include('<script src="build/dashboard.js" defer></script>');
      for (const [file, type] of [
        ["build/chat.js", /^text\/javascript/],
        ["build/dashboard.js", /^text\/javascript/],
        ["build/dashboard.css", /^text\/css/],
        ["style.css", /^text\/css/],
      ] as const) {
        const res = await get(file);
        expect(res.status, file).to.equal(200);
        expect(res.headers.get("content-type"), file).to.match(type);
        expect((await res.text()).length, file).to.be.above(100);
      }
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

      // the bridge's metrics for Prometheus, counting what just happened
      const metrics = await get("metrics");
      expect(metrics.status).to.equal(200);
      expect(metrics.headers.get("content-type")).to.equal(METRICS_CONTENT_TYPE);
      const families = parseExposition(await metrics.text(), { prefix: "socketio_mqtt_bridge_" });
      const metric = (name: string, labels?: Record<string, string>) =>
        valueOf(families, `socketio_mqtt_bridge_${name}`, labels);
      expect(metric("broker_connected")).to.equal(1);
      expect(metric("refusals_total", { code: "FORBIDDEN" })).to.equal(1);
      expect(metric("publishes_acked_total")).to.equal(1);
      expect(metric("messages_delivered_total")).to.be.at.least(1);
      expect(metric("broker_to_socket_seconds_count")).to.be.at.least(1);
      expect(example.stdout).to.include(
        `Metrics (Prometheus): http://127.0.0.1:${webPort}/metrics`,
      );

      // the fleet's last-known state is replayed to a socket as it subscribes
      const statuses = new Map<string, unknown>();
      socket.on("mqtt.message", (msg: { topic: string; payload: unknown; retain: boolean }) => {
        if (msg.topic.endsWith("/status") && msg.retain) statuses.set(msg.topic, msg.payload);
      });
      const sensors = (await socket.timeout(5000).emitWithAck("mqtt.subscribe", "sensors/#")) as {
        ok: boolean;
      };
      expect(sensors.ok).to.equal(true);
      await waitFor(() => statuses.size === SENSORS.length, { message: "every sensor's status" });
      expect(statuses.get("sensors/garage/status")).to.include({ state: "offline" });

      // MQTT over WebSocket on the web server's /mqtt
      const wsDevice = await withTimeout(
        mqtt.connectAsync(`ws://127.0.0.1:${webPort}/mqtt`, {
          protocolVersion: 4,
          reconnectPeriod: 0,
        }),
        5000,
        "device connected over WebSocket",
      );
      devices.push(wsDevice);
      const overWs = new Promise<[{ topic: string; payload: unknown }]>((resolve) => {
        const onMessage = (msg: { topic: string; payload: unknown }) => {
          if (msg.payload !== "over websocket") return;
          socket.off("mqtt.message", onMessage);
          resolve([msg]);
        };
        socket.on("mqtt.message", onMessage);
      });
      await wsDevice.publishAsync("chat/lobby", "over websocket");
      const [wsMessage] = await withTimeout(overWs, 5000, "message over WebSocket");
      expect(wsMessage).to.include({ topic: "chat/lobby", payload: "over websocket" });

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

    it("exits 1 with a one-line message on a bad setting", async function () {
      for (const [env, message] of [
        [{ TOPOLOGY: "forward" }, "TOPOLOGY=forward needs REDIS_URL"],
        [{ TOPOLOGY: "worker" }, 'TOPOLOGY must be "embedded" or "forward"'],
        [{ REDIS_URL: "http://x" }, "REDIS_URL must start with redis:// or rediss://"],
        [{ MQTT_URL: "nope" }, "MQTT_URL is not a URL"],
        [{ PORT: "http" }, "PORT must be a port number"],
      ] as const) {
        example = startExample({ ...env, MQTT_PORT: "0" });
        const exit = await withTimeout(example.exited, START_TIMEOUT_MS, "exit");
        expect(exit, JSON.stringify(env)).to.deep.equal({ code: 1, signal: null });
        expect(example.stderr.trim().split("\n"), example.stderr).to.have.length(1);
        expect(example.stderr).to.include(`error: ${message}`);
      }
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

  describe("clusters (REDIS_URL, TOPOLOGY=forward)", function () {
    const examples: Example[] = [];
    const sockets: ClientSocket[] = [];
    const devices: MqttClient[] = [];
    const stops: (() => Promise<void>)[] = [];

    afterEach(async function () {
      for (const socket of sockets.splice(0)) socket.disconnect();
      await Promise.all(devices.splice(0).map((d) => withTimeout(d.endAsync(true), 2000, "end")));
      await Promise.all(examples.splice(0).map((e) => stopExample(e)));
      for (const stop of stops.splice(0).reverse()) await stop();
    });

    async function connectSocket(url: string): Promise<ClientSocket> {
      const socket = ioc(url, { transports: ["websocket"], forceNew: true, reconnection: false });
      sockets.push(socket);
      await onceEvent(socket, "connect", 5000);
      return socket;
    }

    /** Texts of the chat/lobby messages `socket` received, in order. */
    function chatTexts(socket: ClientSocket): string[] {
      const texts: string[] = [];
      socket.on("mqtt.message", (msg: { topic: string; payload: unknown }) => {
        if (msg.topic === "chat/lobby") texts.push(JSON.stringify(msg.payload));
      });
      return texts;
    }

    async function subscribe(socket: ClientSocket, filter: string): Promise<void> {
      const ack = (await socket.timeout(5000).emitWithAck("mqtt.subscribe", filter)) as {
        ok: boolean;
      };
      expect(ack, filter).to.include({ ok: true });
    }

    async function publish(socket: ClientSocket, payload: unknown): Promise<void> {
      const ack = (await socket
        .timeout(5000)
        .emitWithAck("mqtt.publish", { topic: "chat/lobby", payload })) as { ok: boolean };
      expect(ack.ok).to.equal(true);
    }

    it("REDIS_URL: a second node that uses the first one's broker (the printed command) forms a cluster", async function () {
      const redis = await startRedis();
      stops.push(() => redis.stop());
      const a = startExample({ PORT: "0", MQTT_PORT: "0", REDIS_URL: redis.url });
      examples.push(a);
      const pagesA = await examplePages(a);
      expect(a.stdout).to.include(`Socket.IO adapter: Redis at ${redis.url}`);
      const next = /^ {2}PORT=\d+ REDIS_URL=(\S+) MQTT_URL=(\S+) npm start$/m.exec(a.stdout);
      expect(next, a.stdout).to.not.equal(null);
      expect(next![1]).to.equal(redis.url);
      const b = startExample({
        PORT: "0",
        MQTT_PORT: "0",
        REDIS_URL: next![1],
        MQTT_URL: next![2],
      });
      examples.push(b);
      const pagesB = await examplePages(b);
      expect(b.stdout).to.include("Device fleet: not started on this node");
      expect(b.stdout).to.not.include("aedes");

      const [sa, sb] = await Promise.all([connectSocket(pagesA.chat), connectSocket(pagesB.chat)]);
      const [ta, tb] = [chatTexts(sa), chatTexts(sb)];
      await Promise.all([subscribe(sa, "chat/lobby"), subscribe(sb, "chat/lobby")]);
      await publish(sa, { user: "a", text: "from node A" });
      await publish(sb, { user: "b", text: "from node B" });
      const expected = [
        JSON.stringify({ user: "a", text: "from node A" }),
        JSON.stringify({ user: "b", text: "from node B" }),
      ];
      await waitFor(() => ta.length >= 2 && tb.length >= 2, { message: "both messages on both" });
      // once each, on each node (a duplicate would arrive before a later message of the topic)
      await publish(sa, "end");
      await waitFor(() => ta.length >= 3 && tb.length >= 3, { message: "the last message" });
      for (const texts of [ta, tb]) {
        // two publishers on two connections: their relative order is the broker's
        expect([...texts.slice(0, 2)].sort()).to.deep.equal(expected);
        expect(texts.slice(2)).to.deep.equal(['"end"']);
      }
    });

    it("REDIS_URL unreachable: serves anyway, says so once, and stops within 2 s on SIGTERM", async function () {
      const deadRedis = await freePort(); // nothing listens there
      const node = startExample({
        PORT: "0",
        MQTT_PORT: "0",
        REDIS_URL: `redis://127.0.0.1:${deadRedis}`,
      });
      examples.push(node);
      await examplePages(node);
      await waitFor(() => node.stderr.includes("ECONNREFUSED"), { message: "the Redis error" });
      const started = Date.now();
      node.child.kill("SIGTERM");
      const exit = await withTimeout(node.exited, 3000, "exit after SIGTERM");
      expect(exit, node.stderr).to.deep.equal({ code: 0, signal: null });
      expect(Date.now() - started).to.be.below(2000);
      expect(node.stderr.trim().split("\n"), node.stderr).to.have.length(1);
    });

    it("TOPOLOGY=forward: a web node without a broker connection, served by the printed worker command", async function () {
      const [redis, mosquitto] = await Promise.all([startRedis(), startMosquitto()]);
      stops.push(
        () => redis.stop(),
        () => mosquitto.stop(),
      );
      const node = startExample({
        PORT: "0",
        TOPOLOGY: "forward",
        REDIS_URL: redis.url,
        MQTT_URL: mosquitto.url,
      });
      examples.push(node);
      const pages = await examplePages(node);
      const command = /^ {2}npx tsx (lib\/cli\.ts worker .*)$/m.exec(node.stdout);
      expect(command, node.stdout).to.not.equal(null);
      expect(command![1]).to.equal(
        `lib/cli.ts worker --mqtt ${mosquitto.url} --redis ${redis.url}`,
      );
      expect(node.stdout).to.include("Device fleet: not started on this node");

      // the printed command, as `node --import tsx` (what `npx tsx` runs)
      const worker = spawnNode(command![1].split(" "));
      examples.push(worker);
      await waitFor(() => node.stdout.includes("MQTT bridge: connected to the bridge worker"), {
        timeoutMs: START_TIMEOUT_MS,
        message: `the node to find the worker\n${worker.stdout}${worker.stderr}`,
      });

      const socket = await connectSocket(pages.chat);
      const texts = chatTexts(socket);
      await subscribe(socket, "chat/lobby");
      const device = await withTimeout(
        mqtt.connectAsync(mosquitto.url, { reconnectPeriod: 0 }),
        5000,
        "device",
      );
      devices.push(device);
      await device.subscribeAsync("chat/lobby");
      const fromSocket = new Promise<string>((resolve) => {
        device.on("message", (_topic, payload) => resolve(payload.toString()));
      });
      await publish(socket, "from the browser");
      expect(await withTimeout(fromSocket, 5000, "device message")).to.equal("from the browser");
      await device.publishAsync("chat/lobby", "from a device");
      await waitFor(() => texts.includes('"from a device"'), { message: "the device's message" });
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
