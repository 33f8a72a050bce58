/**
 * The benchmarks' write client (tools/bench/writer.ts) against real redis-servers standing in
 * for proxies: unique keys, every acknowledged key really written, reconnection after a failure,
 * and the rotation over several endpoints that the rolling-restart benchmark uses.
 *
 * Loopback addresses: 127.0.3.230 and 127.0.3.231.
 */

import assert from "node:assert/strict";
import {
  type Ack,
  ContinuousWriter,
  MAX_ENDPOINTS,
  MAX_WRITE_INTERVAL_MS,
} from "../../tools/bench/writer.ts";
import { type RedisProcess, withRedis } from "../../testing/redis_server.ts";
import { eventually, sleep } from "../../testing/wait.ts";

const A = "127.0.3.230";
const B = "127.0.3.231";
const PORT = 16379;

const dbsize = async (redis: RedisProcess) => Number(await redis.command("DBSIZE"));

/** The keys of `keys` that `redis` holds. */
async function held(redis: RedisProcess, keys: readonly string[]): Promise<Set<string>> {
  const found = new Set<string>();
  for (const key of keys) if (Number(await redis.command("EXISTS", key)) === 1) found.add(key);
  return found;
}

function assertUniqueInOrder(acks: readonly Ack[]): void {
  assert.equal(new Set(acks.map((x) => x.key)).size, acks.length, "a key acknowledged twice");
  assert.ok(
    acks.every((x, i) => i === 0 || x.atMs >= (acks[i - 1] as Ack).atMs),
    "acks out of order",
  );
}

Deno.test("ContinuousWriter: rejects bad options and misuse", () => {
  const one = [{ host: A, port: PORT }];
  const make = (o: Partial<ConstructorParameters<typeof ContinuousWriter>[0]>) =>
    new ContinuousWriter({ endpoints: one, prefix: "p", intervalMs: 1, ...o });
  assert.throws(() => make({ endpoints: [] }), /1 to/);
  const many = Array.from({ length: MAX_ENDPOINTS + 1 }, () => ({ host: A, port: PORT }));
  assert.throws(() => make({ endpoints: many }), /1 to/);
  assert.throws(() => make({ endpoints: [{ host: A, port: 0 }] }), /bad endpoint/);
  assert.throws(() => make({ prefix: "" }), /prefix/);
  assert.throws(() => make({ intervalMs: MAX_WRITE_INTERVAL_MS + 1 }), /intervalMs/);
  assert.throws(() => make({ intervalMs: 1.5 }), /intervalMs/);
  const writer = make({});
  assert.throws(() => writer.avoid(A), /no endpoint/); // its only host
  assert.throws(() => writer.avoid(B), /unknown/);
});

Deno.test("ContinuousWriter: one endpoint, every acked key written, reconnects after a restart", async () => {
  await withRedis([{ host: A, port: PORT }], async ([a]) => {
    const writer = new ContinuousWriter({
      endpoints: [{ host: A, port: PORT }],
      prefix: "one",
      intervalMs: 1,
    });
    writer.start();
    assert.throws(() => writer.start(), /already started/);
    let stopped = false;
    try {
      await eventually("writes", async () => (await dbsize(a!)) > 20);
      const killedAt = performance.now();
      await a!.restart(); // an empty, new process: the connection breaks
      const answeringAt = performance.now();
      await eventually("writes after the restart", async () => (await dbsize(a!)) > 20);
      const log = await writer.stop();
      stopped = true;
      assertUniqueInOrder(log.acks);
      assert.ok(log.failureCount >= 1 && log.failures.length === log.failureCount);
      assert.ok(log.failures.every((f) => f.via === `${A}:${PORT}` && f.error !== ""));
      // What was acknowledged after the restart is all on the new process; before it, gone.
      const after = log.acks.filter((x) => x.atMs > answeringAt).map((x) => x.key);
      const before = log.acks.filter((x) => x.atMs < killedAt).map((x) => x.key);
      assert.ok(after.length > 0 && before.length > 0);
      assert.equal((await held(a!, after)).size, after.length);
      assert.equal((await held(a!, before)).size, 0);
    } finally {
      if (!stopped) await writer.stop();
    }
  });
});

Deno.test("ContinuousWriter: rotation moves off an avoided host and reconnects to the next", async () => {
  await withRedis([{ host: A, port: PORT }, { host: B, port: PORT }], async ([a, b]) => {
    const writer = new ContinuousWriter({
      endpoints: [{ host: A, port: PORT }, { host: B, port: PORT }],
      prefix: "w",
      intervalMs: 1,
    });
    writer.start();
    let stopped = false;
    try {
      // It starts on A (the first in turn); avoiding A moves every later write to B.
      await eventually("writes on A", async () => (await dbsize(a!)) > 20);
      writer.avoid(A);
      assert.throws(() => writer.avoid(B), /no endpoint/);
      const onA = await dbsize(a!);
      await eventually("writes on B", async () => (await dbsize(b!)) > 20);
      await sleep(50);
      assert.ok((await dbsize(a!)) <= onA + 1, "A got writes after avoid");
      // B dies: writes fail until A is allowed again, then go to A.
      writer.allow(A);
      await b!.kill("SIGKILL");
      await eventually("writes on A again", async () => (await dbsize(a!)) > onA + 20);
      assert.ok(writer.log.failureCount >= 1);
      assert.ok(writer.log.failures.some((f) => f.via === `${B}:${PORT}`));
      const log = await writer.stop();
      stopped = true;
      // Every acknowledged key is unique and on A or was on B; acks are in time order.
      assertUniqueInOrder(log.acks);
      const onAKeys = await held(a!, log.acks.map((x) => x.key));
      assert.ok(onAKeys.size > 0 && onAKeys.size < log.acks.length, "the B keys are not on A");
    } finally {
      if (!stopped) await writer.stop();
    }
  });
});
