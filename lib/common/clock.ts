/**
 * Time, as the hive reads it: a monotonic clock for local timeouts and the wall clock for the
 * timestamps nodes exchange. The election never reads a clock itself; the runtime passes an
 * {@link Instant} into every event.
 *
 * @example
 * ```ts
 * import { systemClock } from "./clock.ts";
 * const now = systemClock.now();
 * console.log(now.monoMs >= 0, now.wallMs > 1.7e12);
 * ```
 */

/** One reading of both clocks. */
export interface Instant {
  /** Monotonic milliseconds (never jumps; only differences are meaningful). */
  monoMs: number;
  /** Wall-clock milliseconds since the Unix epoch (may jump, may be skewed between nodes). */
  wallMs: number;
}

/** A source of {@link Instant}s. */
export interface Clock {
  /** Reads both clocks. */
  now(): Instant;
}

/**
 * The monotonic source, alone: whole milliseconds of `performance.now()` (never jumps; only
 * differences within one thread are meaningful: a worker thread has its own time origin). For
 * hot loops that need deadlines without allocating an {@link Instant} (the epoll engine).
 *
 * @example
 * ```ts
 * const deadline = monotonicMs() + 1000;
 * console.log(monotonicMs() < deadline); // true
 * ```
 */
export function monotonicMs(): number {
  return Math.floor(performance.now());
}

/** The real clock: {@link monotonicMs} and `Date.now()`, in whole milliseconds. */
export const systemClock: Clock = {
  now: () => ({ monoMs: monotonicMs(), wallMs: Date.now() }),
};

/**
 * A clock the caller moves by hand, for tests and the simulator.
 *
 * @example
 * ```ts
 * const clock = new ManualClock(0, 1_700_000_000_000);
 * clock.advance(250);
 * console.log(clock.now().monoMs); // 250
 * ```
 */
export class ManualClock implements Clock {
  /** Creates a clock at the given readings. */
  constructor(private monoMs: number, private wallMs: number) {}

  /** Moves both clocks forward by `ms` (which must not be negative). */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new Error(`ManualClock.advance: negative or NaN step ${ms}`);
    this.monoMs += ms;
    this.wallMs += ms;
  }

  /** Reads both clocks. */
  now(): Instant {
    return { monoMs: this.monoMs, wallMs: this.wallMs };
  }
}
