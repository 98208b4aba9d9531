/**
 * The example's pages in a real browser (Debian's chromium through playwright-core): the example
 * runs as a child process on free ports, as `npm start` runs it, and raw MQTT clients (MQTT.js)
 * play the devices and terminals. Screenshots go to test-results/screenshots/; with
 * UPDATE_DOCS_SCREENSHOT=1 the dashboard's is also saved as docs/dashboard.png (the README's).
 */
import { copyFile, mkdir } from "node:fs/promises";
import path from "node:path";
import type { MqttClient } from "mqtt";
import type { Page } from "playwright-core";
// chai 6 is ESM-only: import its types statically, the module itself dynamically.
import type { expect as chaiExpect } from "chai" with { "resolution-mode": "import" };
import { SENSORS } from "../../example/fleet";
import type { Example, ExamplePages } from "../support/example";
import { examplePages, startExample, stopExample } from "../support/example";
import { freePort, withTimeout } from "../support/util";
import type { Browser } from "./browser";
import { launchBrowserWith, screenshot } from "./browser";
import {
  UI_TIMEOUT_MS,
  badge,
  chatLines,
  chatShows,
  device,
  moreReadingsThan,
  openChat,
  readings,
} from "./pages";

let expect: typeof chaiExpect;

/** Readings every 250 ms: the charts fill up while the other tests run. */
const FLEET_INTERVAL_MS = 250;
const DOCS_SCREENSHOT = path.resolve(__dirname, "..", "..", "docs", "dashboard.png");

describe("example pages in chromium (e2e)", function () {
  this.timeout(60_000);

  let browser: Browser;
  let example: Example;
  let env: Record<string, string>;
  let pages: ExamplePages;
  let mqttPort: number;
  let dashboard: Page;
  let chat: Page;
  const clients: MqttClient[] = [];
  /** Uncaught errors in any page: there must be none. */
  const pageErrors: string[] = [];
  /** Requests of the pages that failed (a missing favicon would be one: a 404 in the console). */
  const failedRequests: string[] = [];

  before(async function () {
    ({ expect } = await import("chai"));
    const webPort = await freePort();
    mqttPort = await freePort();
    while (mqttPort === webPort) mqttPort = await freePort();
    env = {
      PORT: String(webPort),
      MQTT_PORT: String(mqttPort),
      FLEET_INTERVAL_MS: String(FLEET_INTERVAL_MS),
    };
    example = startExample(env);
    [browser, pages] = await launchBrowserWith(examplePages(example));
    browser.context.on("page", (page) => {
      page.on("pageerror", (err) => pageErrors.push(`${page.url()}: ${err.message}`));
      page.on("response", (res) => {
        if (res.status() >= 400) failedRequests.push(`${res.status()} ${res.url()}`);
      });
    });
  });

  afterEach(async function () {
    if (this.currentTest?.state === "failed") {
      const title = this.currentTest.title.replace(/\W+/g, "-").slice(0, 60);
      for (const [i, page] of browser.context.pages().entries()) {
        await screenshot(page, `failed-${title}-${i}`).catch(() => {});
      }
      console.log(`example stdout:\n${example.stdout}\nexample stderr:\n${example.stderr}`);
    }
    await Promise.all(clients.splice(0).map((c) => withTimeout(c.endAsync(true), 2000, "end")));
    expect(pageErrors, "uncaught errors in the pages").to.deep.equal([]);
    expect(failedRequests, "failed requests of the pages").to.deep.equal([]);
  });

  after(async function () {
    await browser?.close();
    if (example) await stopExample(example);
  });

  it("dashboard: the retained status of every sensor at first paint, then live readings", async function () {
    dashboard = await browser.context.newPage();
    const started = Date.now();
    await dashboard.goto(pages.dashboard);
    await dashboard.waitForFunction(
      (n) => document.querySelectorAll("#fleet-rows tr").length === n,
      SENSORS.length,
      { timeout: UI_TIMEOUT_MS },
    );
    const complete = Date.now() - started;
    await badge(dashboard, "connected");

    // every sensor with the state it last published, including the one that is offline
    const rows = await dashboard.$$eval("#fleet-rows tr", (trs) =>
      trs.map((tr) => ({
        id: tr.dataset.sensor,
        retained: tr.dataset.retained,
        state: tr.querySelector('[data-field="state"]')?.textContent,
        battery: tr.querySelector('[data-field="battery"]')?.textContent,
      })),
    );
    expect(rows.map((r) => r.id).sort()).to.deep.equal(SENSORS.map((s) => s.id).sort());
    for (const spec of SENSORS) {
      const row = rows.find((r) => r.id === spec.id)!;
      // from the broker's retained messages, replayed by the bridge as the page subscribed
      expect(row.retained, spec.id).to.equal("true");
      expect(row.state, spec.id).to.equal(spec.online ? "online" : "offline");
      expect(row.battery, spec.id).to.match(/^\d+ %$/);
    }

    expect(complete, "ms from navigation to a complete status table").to.be.below(5000);

    // then live readings, drawn into the charts: a series for every sensor that is online
    const online = SENSORS.filter((s) => s.online);
    const before = await readings(dashboard);
    await moreReadingsThan(dashboard, before + 2 * online.length);
    expect(await dashboard.locator(".uplot canvas").count()).to.equal(2);
    for (const chart of ["#chart-temp", "#chart-humidity"]) {
      const legend = await dashboard.locator(`${chart} + .legend`).innerText();
      for (const spec of online) expect(legend, chart).to.include(spec.name);
    }
  });

  it("chat: a raw MQTT publish appears in the room", async function () {
    chat = await openChat(browser, pages.chat);
    const terminal = await device(mqttPort);
    clients.push(terminal);
    await terminal.publishAsync("chat/lobby", "hello from a terminal");
    await chatShows(chat, "hello from a terminal");
    expect(await chatLines(chat, "hello from a terminal")).to.equal(1);
  });

  it("chat: a line typed in the page reaches a raw MQTT subscriber, and shows once in every page", async function () {
    const other = await openChat(browser, pages.chat);
    const subscriber = await device(mqttPort);
    clients.push(subscriber);
    await subscriber.subscribeAsync("chat/lobby");
    const received = new Promise<unknown>((resolve) => {
      subscriber.on("message", (topic, payload) => {
        const text = payload.toString();
        if (topic === "chat/lobby" && text.includes("hi from the browser")) {
          resolve(JSON.parse(text));
        }
      });
    });

    await chat.fill("#name", "alice");
    await chat.fill("#text", "hi from the browser");
    await chat.press("#text", "Enter");
    expect(await withTimeout(received, UI_TIMEOUT_MS, "the MQTT subscriber")).to.deep.equal({
      user: "alice",
      text: "hi from the browser",
    });
    expect(await chat.inputValue("#text")).to.equal("");

    // a message published after it arrives after it (order per topic): then count the copies
    await subscriber.publishAsync("chat/lobby", "sentinel");
    for (const page of [chat, other]) {
      await chatShows(page, "sentinel");
      expect(await chatLines(page, "hi from the browser")).to.equal(1);
    }
    await other.close();
  });

  it("chat: a forbidden publish shows the error to the user, once", async function () {
    const result = chat.locator("#try-result");
    const tried = (text: RegExp) =>
      chat.waitForFunction(
        (source) => new RegExp(source).test(document.getElementById("try-result")!.innerText),
        text.source,
        { timeout: UI_TIMEOUT_MS },
      );
    await chat.fill("#try-topic", "admin/x");
    await chat.click("#try button");
    await tried(/^Refused: FORBIDDEN/);
    expect(await result.getAttribute("data-code")).to.equal("FORBIDDEN");
    // one display per refusal: beside the form that asked, not in the page's banner too
    expect(await chat.locator("#error").isHidden(), "the banner").to.equal(true);
    await screenshot(chat, "chat");

    // the next try answers in its place
    await chat.fill("#try-topic", "chat/rules");
    await chat.click("#try button");
    await tried(/^Published to chat\/rules\./);
    expect(await result.getAttribute("data-code")).to.equal("");
  });

  it("dashboard: fits a 390 px wide screen, the fleet table included (screenshot)", async function () {
    const phone = await browser.context.newPage();
    try {
      await phone.setViewportSize({ width: 390, height: 844 });
      await phone.goto(pages.dashboard);
      await phone.waitForFunction(
        (n) => document.querySelectorAll("#fleet-rows tr").length === n,
        SENSORS.length,
        { timeout: UI_TIMEOUT_MS },
      );
      const widths = await phone.evaluate(() => ({
        page: document.documentElement.scrollWidth,
        table: document.getElementById("fleet-rows")!.closest("table")!.getBoundingClientRect()
          .right,
      }));
      expect(widths.table, "the fleet table's right edge").to.be.at.most(390);
      expect(widths.page, "the page's width (no sideways scrolling)").to.be.at.most(390);
      await screenshot(phone, "dashboard-390px");
    } finally {
      await phone.close();
    }
  });

  it("dashboard: charts filled with readings (screenshot)", async function () {
    // about 10 s of readings; most of them arrived during the chat tests
    const enough = (10_000 / FLEET_INTERVAL_MS) * 2 * SENSORS.filter((s) => s.online).length;
    await dashboard.waitForFunction(
      (n) => Number(document.getElementById("readings")?.dataset.count) >= n,
      enough,
      { timeout: 30_000 },
    );
    await dashboard.evaluate(() => new Promise((resolve) => requestAnimationFrame(resolve)));
    const file = await screenshot(dashboard, "dashboard");
    if (process.env.UPDATE_DOCS_SCREENSHOT === "1") {
      await mkdir(path.dirname(DOCS_SCREENSHOT), { recursive: true });
      await copyFile(file, DOCS_SCREENSHOT);
    }
  });

  it("both pages recover after the example server restarts", async function () {
    const before = await readings(dashboard);
    await stopExample(example, "SIGKILL");
    await Promise.all([badge(dashboard, "disconnected"), badge(chat, "disconnected")]);
    await screenshot(dashboard, "dashboard-server-down");

    // the same ports again: the pages reconnect by themselves, the helper resubscribes
    example = startExample(env);
    await examplePages(example);
    await Promise.all([badge(dashboard, "connected"), badge(chat, "connected")]);
    await moreReadingsThan(dashboard, before);
    expect(await dashboard.locator("#fleet-rows tr").count()).to.equal(SENSORS.length);

    // retained: the chat gets it whether it restores its subscription before or after this
    const terminal = await device(mqttPort);
    clients.push(terminal);
    await terminal.publishAsync("chat/lobby", "after the restart", { qos: 1, retain: true });
    await chatShows(chat, "after the restart");
    expect(await chatLines(chat, "after the restart")).to.equal(1);
    await screenshot(dashboard, "dashboard-after-restart");
  });
});
