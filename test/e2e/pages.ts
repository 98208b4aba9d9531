/**
 * What the e2e tests ask of the example's pages, and the raw MQTT clients that play devices and
 * terminals. Every wait is bounded.
 */
import mqtt from "mqtt";
import type { MqttClient } from "mqtt";
import type { Page } from "playwright-core";
import { withTimeout } from "../support/util";
import type { Browser } from "./browser";

/** Longest a page may take to show something a test caused. */
export const UI_TIMEOUT_MS = 10_000;

/** Connects a raw MQTT client (a device or a terminal) to the example's embedded broker. */
export async function device(port: number): Promise<MqttClient> {
  return withTimeout(
    mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { protocolVersion: 4, reconnectPeriod: 0 }),
    5000,
    "MQTT client connected",
  );
}

/** The readings counter of the dashboard. */
export function readings(page: Page): Promise<number> {
  return page.$eval("#readings", (el) => Number((el as HTMLElement).dataset.count));
}

/** Waits until the dashboard counted more than `count` readings. */
export async function moreReadingsThan(page: Page, count: number): Promise<void> {
  await page.waitForFunction(
    (n) => Number(document.getElementById("readings")?.dataset.count) > n,
    count,
    { timeout: UI_TIMEOUT_MS },
  );
}

/** Waits for the connection badge of `page` to be in `state`. */
export async function badge(
  page: Page,
  state: "connected" | "disconnected" | "degraded",
  timeoutMs = UI_TIMEOUT_MS,
): Promise<void> {
  await page.waitForSelector(`#connection[data-state="${state}"]`, { timeout: timeoutMs });
}

/** Lines of the chat log of `page` whose text is `text`. */
export function chatLines(page: Page, text: string): Promise<number> {
  return page.$$eval(
    "#log li .text",
    (els, t) => els.filter((el) => el.textContent === t).length,
    text,
  );
}

/** Waits until the chat of `page` shows a line with `text` (once or more). */
export async function chatShows(page: Page, text: string): Promise<void> {
  await page.waitForFunction(
    (t) =>
      Array.from(document.querySelectorAll("#log li .text")).some((el) => el.textContent === t),
    text,
    { timeout: UI_TIMEOUT_MS },
  );
}

/** The texts of the chat lines of `page` (not its notes), in the order shown. */
export function chatTexts(page: Page): Promise<string[]> {
  return page.$$eval("#log li:is(.message, .mqtt) .text", (els) =>
    els.map((el) => el.textContent ?? ""),
  );
}

/** Types `text` in the chat of `page` and waits until it came back from the broker there. */
export async function say(page: Page, text: string): Promise<void> {
  await page.fill("#text", text);
  await page.press("#text", "Enter");
  await chatShows(page, text);
}

/**
 * Takes `page` offline through the DevTools protocol (its open connections fail at once, as when
 * a network goes away); resolves with the function that brings it back.
 */
export async function cutNetwork(browser: Browser, page: Page): Promise<() => Promise<void>> {
  const cdp = await browser.context.newCDPSession(page);
  const conditions = { latency: 0, downloadThroughput: -1, uploadThroughput: -1 };
  await cdp.send("Network.enable");
  await cdp.send("Network.emulateNetworkConditions", { offline: true, ...conditions });
  return async () => {
    await cdp.send("Network.emulateNetworkConditions", { offline: false, ...conditions });
    await cdp.detach().catch(() => {});
  };
}

/** Opens the chat and waits until it listens to chat/lobby. */
export async function openChat(browser: Browser, url: string): Promise<Page> {
  const page = await browser.context.newPage();
  await page.goto(url);
  await badge(page, "connected");
  await page.waitForFunction(() => document.getElementById("topic")?.textContent === "chat/lobby", {
    timeout: UI_TIMEOUT_MS,
  });
  return page;
}
