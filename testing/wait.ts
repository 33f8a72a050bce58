/**
 * Waiting, for tests and tools: one `sleep` and one polling helper ({@link eventually}), so
 * neither is written again in each file. Deadlines use the monotonic clock (`performance.now()`),
 * so a wall-clock step cannot cut a wait short or stretch it.
 *
 * @example
 * ```ts
 * import { eventually, sleep } from "./wait.ts";
 * await sleep(10);
 * let n = 0;
 * await eventually("n reaches 3", () => ++n >= 3, { intervalMs: 1 });
 * ```
 */

/** How long {@link eventually} polls by default. */
export const EVENTUALLY_TIMEOUT_MS = 10_000;

/** Pause between two polls of {@link eventually} by default. */
export const EVENTUALLY_INTERVAL_MS = 20;

/**
 * Resolves after `ms` milliseconds.
 *
 * @example
 * ```ts
 * await sleep(50);
 * ```
 */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Polls `check` until it returns a value other than `undefined`/`false` (and returns it), or
 * throws after `timeoutMs` naming `what` and the last value or error seen. For "eventually"
 * conditions only: never a timed assertion.
 *
 * @example
 * ```ts
 * const ready = await eventually("the flag is set", () => true);
 * ```
 */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  opts: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? EVENTUALLY_TIMEOUT_MS;
  const intervalMs = opts.intervalMs ?? EVENTUALLY_INTERVAL_MS;
  const deadline = performance.now() + timeoutMs;
  let last: unknown = undefined;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
      last = value;
    } catch (e) {
      last = e;
    }
    if (performance.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for: ${what} (last: ${String(last)})`,
      );
    }
    await sleep(intervalMs);
  }
}
