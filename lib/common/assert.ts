/**
 * The argument checks every library module runs at its boundary (tools call the libraries
 * without `parseConfig`), written once: each throws a `RangeError` (a `TypeError` for a value of
 * the wrong type) whose message names the component and the option, the accepted range and the
 * value, e.g. `MasterProxy: holdMs must be an integer in 0..3600000, got -1`.
 *
 * `parseConfig` (lib/hive/config.ts) checks the same limits on flags, with its own error type
 * that names the flag; the limits themselves are defined once, next to what they bound.
 *
 * @example
 * ```ts
 * import { checkInteger, checkPositive } from "./assert.ts";
 * checkInteger("MasterProxy", "holdMs", 3000, 0, 3_600_000); // 3000
 * checkPositive("PeerDiscovery", "refreshMs", 2000); // 2000
 * ```
 */

/**
 * Upper bound of every duration option, in milliseconds (one hour): a larger value is a typo,
 * and `setTimeout` overflows past 2^31 - 1 ms.
 */
export const MAX_DURATION_MS = 3_600_000;

function prefix(who: string): string {
  return who === "" ? "" : `${who}: `;
}

/**
 * `value` when it is an integer in `min..max` (inclusive), else a `RangeError`.
 *
 * @example
 * ```ts
 * checkInteger("MasterProxy", "workers", 2, 1, 16); // 2
 * ```
 */
export function checkInteger(
  who: string,
  name: string,
  value: number,
  min: number,
  max: number,
): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(
      `${prefix(who)}${name} must be an integer in ${min}..${max}, got ${value}`,
    );
  }
  return value;
}

/**
 * `value` when it is a finite number above 0, else a `RangeError`.
 *
 * @example
 * ```ts
 * checkPositive("DNS", "timeoutMs", 1000); // 1000
 * ```
 */
export function checkPositive(who: string, name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) {
    throw new RangeError(`${prefix(who)}${name} must be a positive number, got ${value}`);
  }
  return value;
}

/**
 * `value` when it is an integer of at least 1, else a `RangeError`.
 *
 * @example
 * ```ts
 * checkPositiveInteger("createRedisController", "commandTimeoutMs", 1000); // 1000
 * ```
 */
export function checkPositiveInteger(who: string, name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(`${prefix(who)}${name} must be a positive integer, got ${value}`);
  }
  return value;
}

/**
 * Throws an `Error` saying an invariant broke (a bug, not bad input) unless `condition` holds.
 *
 * @example
 * ```ts
 * invariant([1, 2].length === 2, "two items");
 * ```
 */
export function invariant(condition: boolean, message: string): asserts condition {
  if (!condition) throw new Error(`invariant broken: ${message}`);
}
