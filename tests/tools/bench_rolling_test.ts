/**
 * The parts of `deno task bench rolling` (tools/bench/rolling.ts) that decide its figures: the
 * write-pause measure, the quantiles and the lost-write check (`EXISTS` in batches against a real
 * redis-server). Its write client is tested in bench_writer_test.ts. The benchmark itself runs
 * real clusters for minutes, so it is run by hand, not here.
 *
 * Loopback address: 127.0.5.56.
 */

import assert from "node:assert/strict";
import { EXISTS_BATCH, longestGapMs, missingKeys, quantile } from "../../tools/bench/rolling.ts";
import type { Ack } from "../../tools/bench/writer.ts";
import { withRedis } from "../../testing/redis_server.ts";

const A = "127.0.5.56";
const PORT = 16379;

const acks = (...times: number[]): Ack[] => times.map((atMs, i) => ({ key: `k${i}`, atMs }));

Deno.test("longestGapMs: whole log, and only gaps that overlap the window", () => {
  const log = acks(0, 10, 400, 410, 420, 900, 905);
  assert.equal(longestGapMs(log), 480);
  assert.equal(longestGapMs(log, 0, 100), 390); // 10 -> 400 overlaps [0, 100]
  assert.equal(longestGapMs(log, 405, 415), 10);
  assert.equal(longestGapMs(log, 500, 600), 480); // inside the gap 420 -> 900
  assert.equal(longestGapMs(log, 950, 1000), 0);
  assert.equal(longestGapMs(acks(5)), 0);
  assert.throws(() => longestGapMs(acks(10, 5)), /out of order/);
});

Deno.test("quantile: nearest rank", () => {
  assert.equal(quantile([3, 1, 2, 4], 0.5), 2);
  assert.equal(quantile([3, 1, 2, 4], 0.95), 4);
  assert.equal(quantile([7], 0.95), 7);
  assert.ok(Number.isNaN(quantile([], 0.5)));
  assert.throws(() => quantile([1], 0), RangeError);
});

Deno.test("missingKeys: EXISTS in batches finds exactly the absent keys (real redis)", async () => {
  await withRedis([{ host: A, port: PORT }], async ([redis]) => {
    const keys = Array.from({ length: EXISTS_BATCH * 2 + 7 }, (_, i) => `key:${i}`);
    const absent = new Set([3, EXISTS_BATCH + 1, EXISTS_BATCH * 2 + 6].map((i) => `key:${i}`));
    const present = keys.filter((k) => !absent.has(k));
    for (let i = 0; i < present.length; i += 500) {
      const batch = present.slice(i, i + 500);
      await redis!.command("MSET", ...batch.flatMap((k) => [k, k]));
    }
    assert.deepEqual(await missingKeys(A, PORT, keys), [...absent]);
    assert.deepEqual(await missingKeys(A, PORT, present), []);
  });
});
