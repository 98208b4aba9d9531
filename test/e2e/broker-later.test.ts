/**
 * The example's pages in chromium when the broker is not there yet: the example runs with
 * MQTT_URL pointing at a port where nothing listens, the pages show why they get no data, and
 * fill in by themselves once a broker (a private Mosquitto) starts on that port.
 */
// chai 6 is ESM-only: import its types statically, the module itself dynamically.
import type { expect as chaiExpect } from "chai" with { "resolution-mode": "import" };
import type { MqttClient } from "mqtt";
import { SENSORS } from "../../example/fleet";
import type { Example, ExamplePages } from "../support/example";
import { examplePages, startExample, stopExample } from "../support/example";
import type { MosquittoHandle } from "../support/mosquitto";
import { startMosquitto } from "../support/mosquitto";
import { freePort, withTimeout } from "../support/util";
import type { Browser } from "./browser";
import { launchBrowserWith, screenshot } from "./browser";
import { UI_TIMEOUT_MS, badge, chatShows, device, moreReadingsThan } from "./pages";

let expect: typeof chaiExpect;

/** The bridge retries after 1, 2, 4, 8 s (± 20 %): the broker may be found up to ~10 s late. */
const BROKER_FOUND_TIMEOUT_MS = 25_000;

describe("example pages in chromium (e2e): the broker comes later", function () {
  this.timeout(60_000);

  let browser: Browser;
  let example: Example;
  let pages: ExamplePages;
  let mqttPort: number;
  let mosquitto: MosquittoHandle | undefined;
  let terminal: MqttClient | undefined;
  const pageErrors: string[] = [];

  before(async function () {
    ({ expect } = await import("chai"));
    mqttPort = await freePort(); // nothing listens there, yet
    example = startExample({
      PORT: String(await freePort()),
      MQTT_URL: `mqtt://127.0.0.1:${mqttPort}`,
      FLEET_INTERVAL_MS: "250",
    });
    [browser, pages] = await launchBrowserWith(examplePages(example));
    browser.context.on("page", (page) => {
      page.on("pageerror", (err) => pageErrors.push(`${page.url()}: ${err.message}`));
    });
  });

  after(async function () {
    if (terminal) await withTimeout(terminal.endAsync(true), 2000, "end");
    await browser?.close();
    if (example) await stopExample(example);
    await mosquitto?.stop();
  });

  it("both pages show BROKER_UNAVAILABLE, then fill in once the broker is up", async function () {
    const dashboard = await browser.context.newPage();
    const chat = await browser.context.newPage();
    await Promise.all([dashboard.goto(pages.dashboard), chat.goto(pages.chat)]);
    await Promise.all([badge(dashboard, "degraded"), badge(chat, "degraded")]);
    for (const [page, what] of [
      [dashboard, "Subscribing to the sensors failed"],
      [chat, "Joining chat/lobby failed"],
    ] as const) {
      const error = page.locator("#error");
      await error.waitFor({ state: "visible", timeout: UI_TIMEOUT_MS });
      expect(await error.innerText()).to.match(new RegExp(`^${what}: BROKER_UNAVAILABLE`));
    }
    await screenshot(dashboard, "dashboard-no-broker");

    mosquitto = await startMosquitto({ port: mqttPort });
    await Promise.all([
      badge(dashboard, "connected", BROKER_FOUND_TIMEOUT_MS),
      badge(chat, "connected", BROKER_FOUND_TIMEOUT_MS),
    ]);
    // the pages subscribe again by themselves: the fleet's state, its readings, the chat
    await dashboard.waitForFunction(
      (n) => document.querySelectorAll("#fleet-rows tr").length === n,
      SENSORS.length,
      { timeout: UI_TIMEOUT_MS },
    );
    await moreReadingsThan(dashboard, 0);
    await chat.waitForFunction(
      () => document.getElementById("topic")?.textContent === "chat/lobby",
      undefined,
      { timeout: UI_TIMEOUT_MS },
    );
    for (const page of [dashboard, chat]) {
      await page.locator("#error").waitFor({ state: "hidden", timeout: UI_TIMEOUT_MS });
    }
    terminal = await device(mqttPort);
    await terminal.publishAsync("chat/lobby", "the broker is back");
    await chatShows(chat, "the broker is back");
    expect(pageErrors, "uncaught errors in the pages").to.deep.equal([]);
  });
});
