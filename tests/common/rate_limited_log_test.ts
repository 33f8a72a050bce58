import assert from "node:assert/strict";
import { MAX_RATE_LIMITED_KEYS, RateLimitedLog } from "../../lib/common/rate_limited_log.ts";

function setup() {
  let now = 0;
  const lines: string[] = [];
  const limiter = new RateLimitedLog((line) => lines.push(line), () => now, 10_000);
  return { limiter, lines, advance: (ms: number) => now += ms };
}

Deno.test("rate-limited log: one line per kind per window, then the count", () => {
  const { limiter, lines, advance } = setup();
  for (let i = 0; i < 2670; i++) limiter.log("refused", "datagram refused");
  limiter.log("other", "something else");
  assert.deepEqual(lines, ["datagram refused", "something else"]);
  advance(10_000);
  limiter.log("refused", "datagram refused");
  assert.equal(lines[2], "datagram refused (2669 more in the last 10 s)");
  assert.equal(limiter.suppressedTotal, 2669);
});

Deno.test("rate-limited log: flush writes the count once the window passed, and forgets quiet kinds", () => {
  const { limiter, lines, advance } = setup();
  limiter.log("a", "line a 1");
  limiter.log("a", "line a 2");
  limiter.log("a", "line a 3");
  limiter.flush();
  assert.deepEqual(lines, ["line a 1"], "nothing before the window ends");
  advance(10_000);
  limiter.flush();
  assert.deepEqual(lines, ["line a 1", "line a 3 (1 more in the last 10 s)"]);
  advance(10_000);
  limiter.flush(); // quiet for a window: forgotten
  limiter.log("a", "line a 4");
  assert.equal(lines.at(-1), "line a 4", "a new window starts with a plain line");
});

Deno.test("rate-limited log: kinds are bounded", () => {
  const { limiter, lines } = setup();
  for (let i = 0; i < MAX_RATE_LIMITED_KEYS + 100; i++) limiter.log(`kind-${i}`, `line ${i}`);
  assert.equal(lines.length, MAX_RATE_LIMITED_KEYS + 1, "the overflow kind logs once");
  assert.throws(() => new RateLimitedLog(() => {}, () => 0, 0), /windowMs/);
});
