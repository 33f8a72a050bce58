/**
 * A real headless Chromium (Debian's `chromium`, driven by `playwright-core`) for the status page:
 * one launcher, shared by the browser test (tests/http/status_page_browser_test.ts) and the
 * screenshot tool (tools/status_screenshot.ts), so both run the same browser the same way.
 *
 * @example
 * ```ts
 * import { withChromium } from "./chromium.ts";
 * await withChromium(async (page) => {
 *   await page.goto("http://127.0.0.1:8080/");
 *   console.log(await page.title());
 * });
 * ```
 */

import { chromium, type Page } from "playwright-core";

/** Where Debian's package puts the browser. */
export const CHROMIUM_PATH = "/usr/bin/chromium";

/** The page size the status page is tested and photographed at. */
export const CHROMIUM_VIEWPORT = { width: 1280, height: 860 } as const;

/** Throws a clear error when the browser is not installed. */
export function requireChromium(): void {
  try {
    Deno.statSync(CHROMIUM_PATH);
  } catch {
    throw new Error(
      `${CHROMIUM_PATH} not found: the browser test needs the Debian package "chromium" ` +
        "(apt-get install -y chromium; .ci/run installs it)",
    );
  }
}

/**
 * Runs `fn` with one page of a fresh headless Chromium (its own temporary profile, no network
 * beyond what the page asks for), then closes the browser and removes the profile.
 */
export async function withChromium<T>(fn: (page: Page) => Promise<T>): Promise<T> {
  requireChromium();
  const userDataDir = await Deno.makeTempDir({ prefix: "redis-hive-chromium-" });
  let context: Awaited<ReturnType<typeof chromium.launchPersistentContext>> | null = null;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-quic",
        "--no-first-run",
        "--disable-component-update",
        "--disable-sync",
      ],
      viewport: CHROMIUM_VIEWPORT,
    });
    const page = context.pages()[0] ?? await context.newPage();
    return await fn(page);
  } finally {
    await context?.close();
    await Deno.remove(userDataDir, { recursive: true });
  }
}
