/**
 * Keeping a real redis busy on purpose, for the busy-versus-dead tests and the chaos suite's
 * busy-master scenario: a read-only Lua script that spins on redis's own clock, so it can be
 * ended by `SCRIPT KILL` and answers `-BUSY` to everyone else past `busy-reply-threshold`.
 *
 * @example
 * ```ts
 * import { spinScript } from "./busy_script.ts";
 * const command = spinScript(2000); // ["EVAL", "...", "0"]: send it with any RESP client
 * ```
 */

/** The `EVAL` command of a read-only Lua script that spins for `ms` milliseconds of redis's clock. */
export function spinScript(ms: number): string[] {
  return [
    "EVAL",
    "local t = redis.call('TIME'); local s = t[1] * 1000 + t[2] / 1000; " +
    "while true do local n = redis.call('TIME'); " +
    `if n[1] * 1000 + n[2] / 1000 - s > ${ms} then break end end return 1`,
    "0",
  ];
}
