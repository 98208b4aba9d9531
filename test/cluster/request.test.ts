/**
 * MQTT 5 request / response in the worker topology: web nodes authorize and forward requests to
 * the worker, which owns the response topic, and answer their socket's ack from the worker's
 * reply. Glossary: "worker" = a worker bridge in this process (its stats readable); "web node" =
 * a Socket.IO server of this process with a forward bridge; "client" = a socket.io-client;
 * "responder" = a plain MQTT.js client answering requests (test/support/responder.ts).
 */
import { expect } from "chai";
import type { Socket as ClientSocket } from "socket.io-client";
import type { RequestAck } from "../../lib";
import type { WorkerWorld } from "../support/cluster-worker";
import { useWorkerWorld } from "../support/cluster-worker";
import { request } from "../support/harness";
import type { IncomingRequest } from "../support/responder";
import { respond } from "../support/responder";
import { waitFor } from "../support/util";

const ask = (c: ClientSocket, arg: unknown, timeoutMs = 8000) =>
  request<RequestAck>(c, "mqtt.request", arg, timeoutMs);
const codeOf = (ack: RequestAck) => (ack.ok ? "ok" : ack.error.code);

describe("request / response in the worker topology (Redis, Mosquitto)", function () {
  this.timeout(20_000);
  let world: WorkerWorld;
  const getWorld = useWorkerWorld();
  before(() => {
    world = getWorld();
  });

  const OPEN = { request: ["#"] };

  it("forwards requests from every node to the worker: concurrent replies never cross", async () => {
    const worker = await world.startLocalWorker();
    const [a, b] = [await world.startNode(OPEN), await world.startNode(OPEN)];
    await Promise.all([a.bridge.ready, b.bridge.ready]);
    const d = await world.device();
    const held: IncomingRequest[] = [];
    await respond(d, "wr/#", async (req) => {
      held.push(req);
      if (held.length < 24) return;
      for (const x of held.reverse()) await x.reply(`reply:${x.text}`);
    });
    const clients = [await world.client(a), await world.client(b)];
    const acks = await Promise.all(
      clients.flatMap((c, i) =>
        Array.from({ length: 12 }, (_, j) =>
          ask(c, { topic: `wr/${j % 3}`, payload: `${i}-${j}` }),
        ),
      ),
    );
    expect(acks.map((x) => (x.ok ? x.reply.payload : x.error.code))).to.deep.equal(
      clients.flatMap((_, i) => Array.from({ length: 12 }, (_, j) => `reply:${i}-${j}`)),
    );
    // one response topic for the cluster: the worker's
    const topics = new Set(held.map((x) => x.responseTopic));
    expect([...topics]).to.deep.equal([worker.bridge.stats().requests.responseTopic]);
    const w = worker.bridge.stats().requests;
    expect(w).to.include({ sent: 24, answered: 24, inFlight: 0, ignored: 0 });
    for (const node of [a, b]) {
      expect(node.bridge.stats().requests).to.include({ received: 12, answered: 12, inFlight: 0 });
      expect(node.bridge.stats().requests.responseTopic).to.equal(undefined);
    }
  });

  it("carries the worker's TIMEOUT, refusals and first replies back; refuses on the web node", async () => {
    const worker = await world.startLocalWorker({ limits: { requestTimeoutMs: 2000 } });
    const a = await world.startNode({ request: ["ok/#"] });
    await a.bridge.ready;
    const d = await world.device();
    await respond(d, "ok/#", async (req) => {
      if (req.topic === "ok/silent") return;
      const wrong = Buffer.alloc(16, 7);
      await req.spoof("spoofed", wrong);
      await req.reply(`first:${req.text}`);
      await req.reply(`second:${req.text}`);
    });
    const c = await world.client(a);
    const timedOut = await ask(c, { topic: "ok/silent", payload: 1, timeoutMs: 300 });
    expect(codeOf(timedOut)).to.equal("TIMEOUT");
    const answered = await ask(c, { topic: "ok/twice", payload: "x" });
    expect(answered.ok && answered.reply.payload, JSON.stringify(answered)).to.equal("first:x");
    expect(codeOf(await ask(c, { topic: "no/x", payload: 1 }))).to.equal("FORBIDDEN");
    // the web node's own bound is 60 s: the worker's 2 s bound caps what the node accepted
    const started = Date.now();
    const capped = await ask(c, { topic: "ok/silent", payload: 1, timeoutMs: 5000 });
    expect(codeOf(capped)).to.equal("TIMEOUT");
    expect(Date.now() - started).to.be.within(1900, 4500);
    const tooLong = await ask(c, { topic: "ok/x", payload: 1, timeoutMs: 60_001 });
    expect(tooLong.ok === false && tooLong.error).to.include({ code: "INVALID_ARGUMENT" });
    await waitFor(() => worker.bridge.stats().requests.ignored === 2, {
      message: "the spoofed and the second reply, ignored by the worker",
    });
    expect(worker.bridge.stats().requests).to.include({ timedOut: 2, answered: 1, inFlight: 0 });
    expect(a.bridge.stats().rejected).to.include({ TIMEOUT: 2, FORBIDDEN: 1, INVALID_ARGUMENT: 1 });
  });

  it("gives a request up on the worker when its socket disconnects on a web node", async () => {
    const worker = await world.startLocalWorker();
    const a = await world.startNode(OPEN);
    await a.bridge.ready;
    const d = await world.device();
    const r = await respond(d, "gone/#", () => undefined);
    const c = await world.client(a);
    for (let i = 0; i < 2; i++) {
      c.emit("mqtt.request", { topic: "gone/x", payload: i, timeoutMs: 30_000 }, () => undefined);
    }
    await waitFor(() => r.requests.length === 2, { message: "the responder got both" });
    expect(worker.bridge.stats().requests.inFlight).to.equal(2);
    c.disconnect();
    await waitFor(
      () =>
        a.bridge.stats().requests.inFlight === 0 && worker.bridge.stats().requests.inFlight === 0,
      { timeoutMs: 3000, message: "nothing left in flight on the node and the worker" },
    );
    expect(worker.bridge.stats().requests.cancelled).to.equal(2);
    for (const req of r.requests) await req.reply("nobody waits");
    await waitFor(() => worker.bridge.stats().requests.ignored === 2);
  });

  it("refuses requests with MQTT5_REQUIRED when the worker speaks MQTT 3.1.1", async () => {
    await world.startLocalWorker({}, { protocolVersion: 4 });
    const a = await world.startNode(OPEN);
    await a.bridge.ready;
    await waitFor(() => a.bridge.stats().protocolVersion === 4);
    const c = await world.client(a);
    const ack = await ask(c, { topic: "v4/x", payload: 1 });
    expect(codeOf(ack)).to.equal("MQTT5_REQUIRED");
    const server = await a.bridge.request("v4/x", 1).then(
      () => "ok",
      (err: { code: string }) => err.code,
    );
    expect(server).to.equal("MQTT5_REQUIRED");
  });
});
