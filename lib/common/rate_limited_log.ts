/**
 * Repeated warnings, rate-limited with counts. The first occurrence of a kind of line is
 * logged at once; the next ones within {@link RATE_LIMIT_WINDOW_MS} are only counted, and the
 * count is logged with the next line of that kind after the window, or by {@link
 * RateLimitedLog.flush} once the window has passed: `... (N more in the last 10 s)`. So a flood
 * of refused datagrams or connections writes at most one line per kind per window, and nothing
 * is lost from the logs but repetition.
 *
 * Kinds are keys the caller chooses (for example `"peer-refused"`), bounded by
 * {@link MAX_RATE_LIMITED_KEYS}: a new key past the bound is counted under one overflow key.
 *
 * @example
 * ```ts
 * import { RateLimitedLog } from "./rate_limited_log.ts";
 * const limiter = new RateLimitedLog((line) => console.warn(line), () => performance.now());
 * for (let i = 0; i < 1000; i++) limiter.log("refused", "connection refused: cap reached");
 * // one line now; "connection refused: cap reached (999 more in the last 10 s)" after 10 s
 * // (from the next log() of that kind, or from flush())
 * ```
 */

/** Lines of one kind are logged at most once per this window. */
export const RATE_LIMIT_WINDOW_MS = 10_000;
/** Most kinds tracked at once; more share one overflow kind. */
export const MAX_RATE_LIMITED_KEYS = 256;

const OVERFLOW_KEY = "(other)";

interface KindState {
  /** When the last line of this kind was written. */
  loggedAtMs: number;
  /** Lines suppressed since. */
  suppressed: number;
  /** The last suppressed line, written with the count. */
  lastLine: string;
}

/** Writes one line (with its structured properties, if any). */
export type LineWriter = (line: string, properties?: Record<string, unknown>) => void;

/** A rate limiter of log lines by kind. Not thread-safe (one per thread). */
export class RateLimitedLog {
  readonly #kinds = new Map<string, KindState>();
  /** Lines suppressed in total (for `/metrics`). */
  suppressedTotal = 0;

  /** `write` writes a line; `nowMs` is a monotonic clock in ms. */
  constructor(
    private readonly write: LineWriter,
    private readonly nowMs: () => number,
    private readonly windowMs: number = RATE_LIMIT_WINDOW_MS,
  ) {
    if (!(windowMs > 0)) throw new Error(`RateLimitedLog: windowMs must be > 0, got ${windowMs}`);
  }

  /** Logs `line` now, or counts it when a line of `kind` was logged within the window. */
  log(kind: string, line: string, properties?: Record<string, unknown>): void {
    const now = this.nowMs();
    let key = kind;
    if (!this.#kinds.has(key) && this.#kinds.size >= MAX_RATE_LIMITED_KEYS) key = OVERFLOW_KEY;
    const state = this.#kinds.get(key);
    if (state === undefined) {
      this.#kinds.set(key, { loggedAtMs: now, suppressed: 0, lastLine: line });
      this.write(line, properties);
      return;
    }
    if (now - state.loggedAtMs < this.windowMs) {
      state.suppressed++;
      state.lastLine = line;
      this.suppressedTotal++;
      return;
    }
    this.write(line + this.#suffix(state.suppressed), {
      ...properties,
      suppressed: state.suppressed,
    });
    state.loggedAtMs = now;
    state.suppressed = 0;
  }

  /**
   * Writes the count of every kind whose window has passed with lines suppressed (their last
   * line, with the count), and forgets kinds quiet for a whole window. Call it now and then
   * (the hive does every second).
   */
  flush(): void {
    const now = this.nowMs();
    for (const [key, state] of this.#kinds) {
      if (now - state.loggedAtMs < this.windowMs) continue;
      if (state.suppressed > 0) {
        this.write(state.lastLine + this.#suffix(state.suppressed - 1), {
          suppressed: state.suppressed - 1,
        });
        state.loggedAtMs = now;
        state.suppressed = 0;
      } else {
        this.#kinds.delete(key);
      }
    }
  }

  #suffix(n: number): string {
    return n === 0 ? "" : ` (${n} more in the last ${Math.round(this.windowMs / 1000)} s)`;
  }
}
