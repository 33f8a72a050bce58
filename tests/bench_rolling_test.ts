/**
 * The parts of `deno task bench rolling` (tools/bench_rolling.ts) that decide its figures: the
 * write-pause measure, the quantiles, the lost-write check (`EXISTS` in batches against a real
 * redis-server) and the rotating writer (against two real redis-servers standing in for proxies).
 * The benchmark itself runs real clusters for minutes, so it is run by hand, not here.
 *
 * Loopback addresses: 127.0.5.56 and 127.0.5.57.
 */

import assert from "node:assert/strict";
import {
  type Ack,
  EXISTS_BATCH,
  longestGapMs,
  missingKeys,
  quantile,
  RotatingWriter,
} from "../tools/bench_rolling.ts";
import { eventually, sleep, withRedis } from "./fixtures/redis_server.ts";

const A = "127.0.5.56";
const B = "127.0.5.57";
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

Deno.test("RotatingWriter: writes unique keys, moves off an avoided proxy, reconnects after a failure", async () => {
  await withRedis([{ host: A, port: PORT }, { host: B, port: PORT }], async ([a, b]) => {
    const writer = new RotatingWriter([A, B], PORT, "w", 1);
    writer.start();
    let stopped = false;
    try {
      // It starts on A (the first in turn); avoiding A moves every later write to B.
      await eventually("writes on A", async () => Number(await a!.command("DBSIZE")) > 20);
      writer.avoid(A);
      const onA = Number(await a!.command("DBSIZE"));
      await eventually("writes on B", async () => Number(await b!.command("DBSIZE")) > 20);
      await sleep(50);
      assert.ok(Number(await a!.command("DBSIZE")) <= onA + 1, "A got writes after avoid");
      // B dies: writes fail until A is allowed again, then go to A.
      writer.allow(A);
      await b!.kill("SIGKILL");
      await eventually(
        "writes on A again",
        async () => Number(await a!.command("DBSIZE")) > onA + 20,
      );
      assert.ok(writer.failureCount >= 1);
      assert.throws(() => writer.avoid("127.0.5.99"), /unknown/);
      const log = await writer.stop();
      stopped = true;
      // Every acknowledged key is unique and on A or was on B; acks are in time order.
      assert.equal(new Set(log.map((x) => x.key)).size, log.length);
      assert.ok(log.every((x, i) => i === 0 || x.atMs >= (log[i - 1] as Ack).atMs));
      const lostOnA = await missingKeys(A, PORT, log.map((x) => x.key));
      assert.ok(lostOnA.length > 0 && lostOnA.length < log.length, "the B keys are not on A");
    } finally {
      if (!stopped) await writer.stop();
    }
  });
});
