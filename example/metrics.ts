/**
 * The example's `/metrics` route: the bridge's counters and broker-to-socket histogram in the
 * Prometheus text format (README, "Metrics (Prometheus)"), e.g. `curl localhost:3000/metrics`.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { METRICS_CONTENT_TYPE } from "../lib";
import type { MqttBridge } from "../lib";
import { sendText } from "./static";

/**
 * Answers `req` when it is for `/metrics` (true), with the metrics of `bridge()` (503 while the
 * example has no bridge yet); false leaves it to the other routes.
 */
export function serveMetrics(
  req: IncomingMessage,
  res: ServerResponse,
  bridge: () => MqttBridge | undefined,
): boolean {
  if (new URL(req.url ?? "/", "http://localhost").pathname !== "/metrics") return false;
  if (req.method !== "GET" && req.method !== "HEAD") {
    sendText(res, 405, "Method Not Allowed", { Allow: "GET, HEAD" });
    return true;
  }
  const b = bridge();
  if (!b) {
    sendText(res, 503, "Service Unavailable");
    return true;
  }
  b.metrics().then(
    (text) => {
      res.writeHead(200, { "Content-Type": METRICS_CONTENT_TYPE, "Cache-Control": "no-cache" });
      res.end(req.method === "HEAD" ? undefined : text);
    },
    () => sendText(res, 500, "Internal Server Error"),
  );
  return true;
}
