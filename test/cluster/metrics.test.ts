/**
 * bridge.metrics() in the worker topology (a worker and a web node in this process, real Redis and
 * Mosquitto): each process reports its own part. The worker times broker messages up to the frame
 * it sends the web nodes and counts the broker side; the web node counts its sockets' requests and
 * its own deliveries, and times nothing (its messages' time in the bridge is the worker's).
 */
import { expect } from "chai";
import type { WorkerWorld } from "../support/cluster-worker";
import { useWorkerWorld } from "../support/cluster-worker";
import { request } from "../support/harness";
import type { Family } from "../support/prometheus";
import { parseExposition, promtool, valueOf } from "../support/prometheus";
import { freePort, waitFor } from "../support/util";

const P = "socketio_mqtt_bridge_";

async function scrape(bridge: { metrics(): Promise<string> }): Promise<Map<string, Family>> {
  const text = await bridge.metrics();
  const lint = promtool(text);
  expect(lint.output).to.equal("");
  expect(lint.status).to.equal(0);
  return parseExposition(text, { prefix: P });
}

const value = (f: Map<string, Family>, name: string, labels?: Record<string, string>) =>
  valueOf(f, P + name, labels);

describe("metrics in the worker topology", function () {
  this.timeout(30_000);
  let world: WorkerWorld;
  const getWorld = useWorkerWorld();
  before(() => {
    world = getWorld();
  });

  it("the worker times the broker messages up to its frame for the web nodes; the web node counts its sockets and its own deliveries", async () => {
    const worker = await world.startLocalWorker();
    const node = await world.startNode({ subscribe: ["mt/#"], publish: [] });
    await node.bridge.ready;
    const c = await world.client(node);
    let got = 0;
    c.on("mqtt.message", () => got++);
    c.on("mqtt.messages", (list: unknown[]) => (got += list.length));
    expect((await request(c, "mqtt.subscribe", "mt/#")).ok).to.equal(true);
    const denied = await request(c, "mqtt.publish", { topic: "mt/x", payload: 1 });
    expect(denied.error?.code).to.equal("FORBIDDEN");
    const device = await world.device();
    for (let i = 0; i < 10; i++) await device.publishAsync("mt/a", String(i));
    await waitFor(() => got === 10, { message: "10 messages on the web node's socket" });

    const w = await scrape(worker.bridge);
    expect(value(w, "broker_connected")).to.equal(1);
    expect(value(w, "broker_messages_total")).to.equal(10);
    expect(value(w, "broker_subscriptions")).to.be.at.least(1);
    expect(value(w, "broker_to_socket_seconds_count")).to.equal(10);
    expect(value(w, "refusals_total", { code: "FORBIDDEN" })).to.equal(0);

    const n = await scrape(node.bridge);
    expect(value(n, "broker_connected"), "a worker reports a broker connection").to.equal(1);
    expect(value(n, "broker_messages_total")).to.equal(0);
    expect(value(n, "broker_to_socket_seconds_count")).to.equal(0);
    expect(value(n, "subscribes_total")).to.equal(1);
    expect(value(n, "refusals_total", { code: "FORBIDDEN" })).to.equal(1);
    expect(value(n, "delivery_frame_messages_total")).to.equal(10);
  });

  it("the worker command serves /metrics with --metrics: its bridge's, and an empty text while a standby", async () => {
    const [port, standbyPort] = [await freePort(), await freePort()];
    const worker = await world.startWorker({ extra: ["--metrics", `127.0.0.1:${port}`] });
    expect(worker.log.toString()).to.include(`metrics: http://127.0.0.1:${port}/metrics`);
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(res.status).to.equal(200);
    expect(res.headers.get("content-type")).to.equal("text/plain; version=0.0.4; charset=utf-8");
    const w = await scrape({ metrics: () => res.text() });
    expect(value(w, "broker_connected")).to.equal(1);
    expect(value(w, "broker_to_socket_seconds_count")).to.equal(0);
    expect((await fetch(`http://127.0.0.1:${port}/other`)).status).to.equal(404);

    const standby = await world.startWorker({
      extra: ["--metrics", `127.0.0.1:${standbyPort}`],
      until: "standby",
    });
    expect(standby.running).to.equal(true);
    const idle = await fetch(`http://127.0.0.1:${standbyPort}/metrics`);
    expect(idle.status).to.equal(200);
    expect(await idle.text()).to.equal("");
  });
});
