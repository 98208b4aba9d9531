/**
 * The dashboard on a slow network, in chromium: the page's network is throttled through the
 * DevTools protocol while a flood of large readings goes through a private Mosquitto. The
 * example server (a child process) must keep its memory bounded (it conflates what waits for the
 * page), and once the network is back the page shows the latest readings and how many it skipped.
 */
import { readFile } from "node:fs/promises";
import type { MqttClient } from "mqtt";
import mqtt from "mqtt";
import type { Page } from "playwright-core";
// chai 6 is ESM-only: import its types statically, the module itself dynamically.
import type { expect as chaiExpect } from "chai" with { "resolution-mode": "import" };
import { SENSORS } from "../../example/fleet";
import type { Example, ExamplePages } from "../support/example";
import { examplePages, startExample, stopExample } from "../support/example";
import type { MosquittoHandle } from "../support/mosquitto";
import { startMosquitto } from "../support/mosquitto";
import type { Held } from "../support/inspector";
import { Inspector, inspectorUrl } from "../support/inspector";
import { freePort, sleep, waitFor, withTimeout } from "../support/util";
import type { Browser } from "./browser";
import { launchBrowserWith, screenshot } from "./browser";
import { UI_TIMEOUT_MS, badge } from "./pages";

let expect: typeof chaiExpect;

/** What the throttled page may download, in bytes per second. */
const THROTTLE_BYTES_PER_S = 16 * 1024;
/** The flood: this many readings of ~2 kB, at about this rate. */
const FLOOD_MESSAGES = 40_000;
const FLOOD_PER_S = 5_000;
const PAD = "x".repeat(2000);
/**
 * What the server holds (V8 heap in use + Buffers, after a full garbage collection) may grow by
 * at most this much over its level before the flood, at any of the readings taken during the
 * flood and after it while the page is still throttled. With slow-socket handling it holds the
 * page's bounded write buffer (`delivery.highWaterMark`, 1 MiB), the latest reading of each
 * topic and the recovery history (`maxBytes` 256 KiB); without it (a `delivery.highWaterMark` of
 * 2 GiB in the example, tried by hand) everything the page has not read: tens of MiB.
 *
 * Its RSS is logged but not bounded: during the flood V8's old space fills with garbage (readings
 * promoted while they waited for their turn) until its next mark-compact, whose moment varies run
 * to run: the RSS peak grew by 24–30 MiB in most runs and by up to 102 MiB in others, on a quiet
 * machine too (--trace-gc: old space at 99 MB before a mark-compact left 25 MB).
 */
const HELD_GROWTH_LIMIT_MIB = 32;
/** How often the server's held memory is read during the flood (each reading a full GC). */
const HELD_EVERY_MS = 500;
const MiB = 1024 * 1024;

/** The resident set size of process `pid` in MiB, from /proc/<pid>/status. */
async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (!kb) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(kb[1]) / 1024;
}

describe("example dashboard on a throttled network in chromium (e2e)", function () {
  this.timeout(60_000);

  let browser: Browser;
  let example: Example;
  let pages: ExamplePages;
  let mosquitto: MosquittoHandle;
  let publisher: MqttClient | undefined;
  let inspector: Inspector | undefined;
  const pageErrors: string[] = [];

  before(async function () {
    ({ expect } = await import("chai"));
    // QoS 0 messages to the bridge must not be dropped by the broker while it lags behind
    mosquitto = await startMosquitto({ extraConfig: ["max_queued_messages 0"] });
    example = startExample(
      {
        PORT: String(await freePort()),
        MQTT_URL: mosquitto.url,
        // the fleet publishes its retained statuses, and no reading during the test: the readings
        // the page shows are the test's
        FLEET_INTERVAL_MS: "60000",
      },
      // the test reads what the server holds through its inspector
      ["--inspect=127.0.0.1:0"],
    );
    [browser, pages] = await launchBrowserWith(examplePages(example));
    // printed on stderr at its start, before the page URLs
    await waitFor(() => inspectorUrl(example.stderr) !== undefined, { timeoutMs: 5000 });
    inspector = await Inspector.connect(inspectorUrl(example.stderr)!);
    browser.context.on("page", (page) => {
      page.on("pageerror", (err) => pageErrors.push(`${page.url()}: ${err.message}`));
    });
    publisher = await withTimeout(
      mqtt.connectAsync(mosquitto.url, { reconnectPeriod: 0 }),
      5000,
      "publisher connected",
    );
  });

  afterEach(async function () {
    if (this.currentTest?.state === "failed") {
      for (const [i, page] of browser.context.pages().entries()) {
        await screenshot(page, `failed-slow-page-${i}`).catch(() => {});
      }
      console.log(`example stdout:\n${example.stdout}\nexample stderr:\n${example.stderr}`);
    }
  });

  after(async function () {
    if (publisher) await withTimeout(publisher.endAsync(true), 2000, "publisher end");
    await browser?.close();
    // before the example stops: a process with a session attached waits for it at its exit
    await inspector?.close();
    if (example) await stopExample(example);
    await mosquitto?.stop();
  });

  /** Readings of every online sensor, round-robin over temp and humidity, paced. */
  async function flood(d: MqttClient, topics: string[]): Promise<void> {
    const started = Date.now();
    const chunk = 250;
    for (let s = 0; s < FLOOD_MESSAGES; s += chunk) {
      let written!: Promise<void>;
      for (let i = s; i < s + chunk; i++) {
        const reading = { value: 10 + (i % 10), unit: "", ts: Date.now(), pad: PAD };
        written = new Promise<void>((resolve) =>
          d.publish(topics[i % topics.length], JSON.stringify(reading), { qos: 0 }, () =>
            resolve(),
          ),
        );
      }
      await withTimeout(written, 10_000, "flood chunk written");
      // pacing, not synchronisation: keep to FLOOD_PER_S
      const due = started + ((s + chunk) / FLOOD_PER_S) * 1000;
      if (due > Date.now()) await sleep(due - Date.now());
    }
  }

  it("keeps the server's memory bounded, then shows the latest readings and the skipped note", async function () {
    const page: Page = await browser.context.newPage();
    await page.goto(pages.dashboard);
    await badge(page, "connected");
    await page.waitForFunction(
      (n) => document.querySelectorAll("#fleet-rows tr").length === n,
      SENSORS.length,
      { timeout: UI_TIMEOUT_MS },
    );
    const online = SENSORS.filter((s) => s.online).map((s) => s.id);
    const topics = online.flatMap((id) => [`sensors/${id}/temp`, `sensors/${id}/humidity`]);

    const pid = example.child.pid!;
    const heldBefore = await inspector!.held();
    const before = await rssMiB(pid);
    let peak = before;
    const sampler = setInterval(() => {
      rssMiB(pid).then(
        (mib) => (peak = Math.max(peak, mib)),
        () => {},
      );
    }, 100);

    const cdp = await browser.context.newCDPSession(page);
    try {
      await cdp.send("Network.enable");
      await cdp.send("Network.emulateNetworkConditions", {
        offline: false,
        latency: 0,
        downloadThroughput: THROTTLE_BYTES_PER_S,
        uploadThroughput: THROTTLE_BYTES_PER_S,
      });
      const started = Date.now();
      // what the server holds, read every HELD_EVERY_MS during the flood and once after it
      const readings: Held[] = [];
      let flooding = true;
      const reader = (async () => {
        while (flooding) {
          readings.push(await inspector!.held());
          await sleep(HELD_EVERY_MS); // pacing: each reading is a full GC of the server
        }
      })();
      try {
        await flood(publisher!, topics);
        // the current values, last on each topic
        for (const [i, topic] of topics.entries()) {
          const reading = { value: 50 + i, unit: "", ts: Date.now() };
          await publisher!.publishAsync(topic, JSON.stringify(reading), { qos: 1 });
        }
      } finally {
        flooding = false;
        await reader;
      }
      const floodMs = Date.now() - started;
      // the flood has reached the server when its last readings did (they went QoS 1); the page
      // is still throttled: what waits for it is held now
      readings.push(await inspector!.held());
      clearInterval(sampler);
      const growth = (h: Held): number => (h.total - heldBefore.total) / MiB;
      const most = readings.reduce((a, b) => (growth(b) > growth(a) ? b : a));
      console.log(
        `      flood of ${FLOOD_MESSAGES} × 2 kB in ${floodMs} ms; server holds ` +
          `${(heldBefore.total / MiB).toFixed(1)} MiB before, at most ` +
          `${(most.total / MiB).toFixed(1)} (heap ${(most.heapUsed / MiB).toFixed(1)} + ` +
          `buffers ${(most.external / MiB).toFixed(1)}) in ${readings.length} readings; ` +
          `RSS ${before.toFixed(0)} → peak ${peak.toFixed(0)} MiB`,
      );
      expect(readings.length, "readings during the flood").to.be.greaterThan(4);
      expect(growth(most), `held memory growth ${growth(most).toFixed(1)} MiB`).to.be.lessThan(
        HELD_GROWTH_LIMIT_MIB,
      );

      await cdp.send("Network.emulateNetworkConditions", {
        offline: false,
        latency: 0,
        downloadThroughput: -1,
        uploadThroughput: -1,
      });
      // every online sensor shows its last temperature and humidity
      // (no named functions in page code: tsx would wrap them in a helper the page lacks)
      await page.waitForFunction(
        (want) =>
          want.every(
            ({ id, temp, humidity }) =>
              document.querySelector(`tr[data-sensor="${id}"] [data-field="temp"]`)?.textContent ===
                `${temp.toFixed(1)} °C` &&
              document.querySelector(`tr[data-sensor="${id}"] [data-field="humidity"]`)
                ?.textContent === `${humidity} %`,
          ),
        online.map((id, i) => ({ id, temp: 50 + 2 * i, humidity: 51 + 2 * i })),
        { timeout: 20_000 },
      );
      const skipped = await page.$eval("#skipped", (el) => ({
        count: Number((el as HTMLElement).dataset.count),
        text: el.textContent,
        hidden: (el as HTMLElement).hidden,
      }));
      console.log(`      caught up; the page says "${skipped.text}"`);
      expect(skipped.count, "skipped updates").to.be.greaterThan(0);
      expect(skipped.hidden).to.equal(false);
      expect(skipped.text).to.equal(`${skipped.count} updates skipped`);
      await screenshot(page, "dashboard-after-slow-network");
    } finally {
      clearInterval(sampler);
      await cdp.detach().catch(() => {});
    }
    expect(pageErrors, "uncaught errors in the page").to.deep.equal([]);
  });
});
