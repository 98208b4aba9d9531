/**
 * The real browser of the e2e tests: Debian's chromium (apt package `chromium`) driven by
 * playwright-core, headless, with a fresh profile that is removed again. No browser download, no
 * outside network: background networking, component updates and sync are off.
 */
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import type { BrowserContext, Page } from "playwright-core";

/** The browser binary; CHROMIUM_PATH overrides it. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
/** Where the tests put their screenshots (git-ignored). */
export const SCREENSHOTS_DIR = path.resolve(__dirname, "..", "..", "test-results", "screenshots");

const ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

export interface Browser {
  context: BrowserContext;
  /** Closes the browser and removes its profile. Idempotent. */
  close(): Promise<void>;
}

/** Starts chromium with a fresh user-data-dir. */
export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(
      `${CHROMIUM_PATH} not found: install Debian's chromium (apt-get install chromium) or set CHROMIUM_PATH`,
    );
  }
  const profile = await mkdtemp(path.join(os.tmpdir(), "e2e-chromium-"));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: ARGS,
      viewport: { width: 1200, height: 860 },
      timeout: 30_000,
    });
  } catch (err) {
    await rm(profile, { recursive: true, force: true });
    throw err;
  }
  context.setDefaultTimeout(10_000);
  let closing: Promise<void> | undefined;
  return {
    context,
    close: () =>
      (closing ??= (async () => {
        await context.close().catch(() => {});
        await rm(profile, { recursive: true, force: true });
      })()),
  };
}

/**
 * Starts the browser while `other` (e.g. the example's start) runs, and returns both. If either
 * fails, the other is undone where it can be (the browser closed), so that no chromium is left
 * behind to keep the test process alive.
 */
export async function launchBrowserWith<T>(other: Promise<T>): Promise<[Browser, T]> {
  const [browser, result] = await Promise.allSettled([launchBrowser(), other]);
  if (result.status === "rejected") {
    if (browser.status === "fulfilled") await browser.value.close();
    throw result.reason;
  }
  if (browser.status === "rejected") throw browser.reason;
  return [browser.value, result.value];
}

/** Saves a full-page screenshot as `test-results/screenshots/<name>.png`; returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  await mkdir(SCREENSHOTS_DIR, { recursive: true });
  const file = path.join(SCREENSHOTS_DIR, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true, timeout: 10_000 });
  return file;
}
