/**
 * bridge.metrics() on a real Mosquitto: counters and the broker-to-socket histogram move with
 * traffic (socket publishes, refusals, subscriptions, broker messages delivered), the text stays
 * valid for the format's rules and for promtool, and the README's prom-client line gives one
 * valid text with a prom-client registry.
 */
import { expect } from "chai";
import { Registry, collectDefaultMetrics } from "prom-client";
import { METRICS_CONTENT_TYPE } from "../../lib";
import type { Harness } from "../support/harness";
import { request } from "../support/harness";
import { onMosquitto5 } from "../support/mosquitto-suite";
import type { Family } from "../support/prometheus";
import { parseExposition, promtool, promtoolProblems, valueOf } from "../support/prometheus";
import { waitFor } from "../support/util";

const P = "socketio_mqtt_bridge_";

/** The bridge's metrics, checked against the format's rules and by promtool. */
async function scrape(h: Harness): Promise<Map<string, Family>> {
  const text = await h.bridge.metrics();
  const families = parseExposition(text, { prefix: P });
  const lint = promtool(text);
  expect(lint.output).to.equal("");
  expect(lint.status).to.equal(0);
  return families;
}

/** A sample's value; fails when the sample is missing. */
function value(families: Map<string, Family>, name: string, labels?: Record<string, string>) {
  const v = valueOf(families, P + name, labels);
  expect(v, `${name} ${JSON.stringify(labels ?? {})}`).to.be.a("number");
  return v!;
}

describe("metrics: bridge.metrics() with traffic", function () {
  this.timeout(20_000);
  const { setup, uniq } = onMosquitto5("met");

  it("moves its counters with publishes, refusals, subscriptions and deliveries, and times each delivered message", async () => {
    const t = uniq();
    const h = await setup({ allow: { subscribe: [`${t}/#`], publish: [`${t}/#`] } });
    const c = await h.client();
    const got: unknown[] = [];
    c.on("mqtt.message", (m) => got.push(m));
    c.on("mqtt.messages", (list: unknown[]) => got.push(...list));

    const before = await scrape(h);
    expect(value(before, "broker_connected")).to.equal(1);
    expect(value(before, "broker_protocol_version")).to.equal(5);
    expect(value(before, "broker_info", { client_id: h.bridge.stats().clientId! })).to.equal(1);
    expect(value(before, "broker_to_socket_seconds_count")).to.equal(0);

    expect((await request(c, "mqtt.subscribe", `${t}/#`)).ok).to.equal(true);
    const denied = await request(c, "mqtt.subscribe", "elsewhere/#");
    expect(denied.error?.code).to.equal("FORBIDDEN");
    const wild = await request(c, "mqtt.publish", { topic: `${t}/+`, payload: 1 });
    expect(wild.error?.code).to.equal("INVALID_TOPIC");
    expect((await request(c, "mqtt.publish", { topic: `${t}/a`, payload: 1, qos: 1 })).ok).to.equal(
      true,
    );
    // and from a device: 20 broker messages, each one delivered to the socket
    const device = await h.device();
    for (let i = 0; i < 20; i++) await device.publishAsync(`${t}/d`, JSON.stringify({ i }));
    await waitFor(() => got.length === 21, { message: "21 messages delivered" });

    const after = await scrape(h);
    const moved = (name: string, labels?: Record<string, string>) =>
      value(after, name, labels) - value(before, name, labels);
    expect(moved("subscribes_total")).to.equal(1);
    expect(moved("refusals_total", { code: "FORBIDDEN" })).to.equal(1);
    expect(moved("refusals_total", { code: "INVALID_TOPIC" })).to.equal(1);
    expect(moved("refusals_total", { code: "TIMEOUT" })).to.equal(0);
    expect(moved("publishes_total", { source: "socket" })).to.equal(2);
    expect(moved("publishes_acked_total")).to.equal(1);
    expect(moved("broker_messages_total")).to.equal(21);
    expect(moved("messages_delivered_total")).to.equal(21);
    expect(moved("delivery_frame_messages_total")).to.equal(21);
    expect(moved("delivery_frames_total")).to.be.within(1, 21);
    expect(value(after, "broker_subscriptions")).to.be.at.least(1);
    expect(value(after, "rooms")).to.equal(1);
    // one observation per delivered message, none for the refused requests
    expect(moved("broker_to_socket_seconds_count")).to.equal(21);
    expect(value(after, "broker_to_socket_seconds_bucket", { le: "+Inf" })).to.equal(21);
    const sum = value(after, "broker_to_socket_seconds_sum");
    expect(sum).to.be.greaterThan(0);
    expect(sum / 21, "mean seconds in the bridge").to.be.lessThan(0.5);
    // the counters are those of stats()
    const stats = h.bridge.stats();
    expect(value(after, "messages_delivered_total")).to.equal(stats.messages.delivered);
    expect(value(after, "refusals_total", { code: "FORBIDDEN" })).to.equal(
      stats.rejected.FORBIDDEN,
    );
  });

  it("adds to a prom-client registry with the README's line, in one valid text", async () => {
    const h = await setup({ allow: { subscribe: ["#"] } });
    const register = new Registry();
    collectDefaultMetrics({ register });
    expect(register.contentType).to.equal(METRICS_CONTENT_TYPE);
    const bridge = h.bridge;
    // the line of README.md, "Metrics"
    const text = (await register.metrics()) + (await bridge.metrics());
    // prom-client's own defaults draw naming remarks from promtool (gauges named *_total): only
    // the parse and the bridge's families are held to it
    expect(promtoolProblems(text, P)).to.deep.equal([]);
    const families = parseExposition(text, { prefix: P, foreign: true });
    expect(families.has("process_cpu_user_seconds_total")).to.equal(true);
    expect(valueOf(families, `${P}broker_connected`)).to.equal(1);
  });
});
