/**
 * The real redis controller against a busy real redis-server: a long script, `CLIENT KILL TYPE
 * normal`, `CLIENT PAUSE ... ALL`, a hung process (SIGSTOP), a script stuck past
 * `busy-reply-threshold` (killed by the controller), and a crash (observed down at once).
 * Loopback 127.0.12.1 to 127.0.12.9.
 */
import assert from "node:assert/strict";
import {
  createRedisController,
  HIVE_CLIENT_NAME,
  type RedisController,
  type RedisControllerEvent,
  type RedisControllerOptions,
} from "../../lib/redis/redis_controller.ts";
import { REDIS_DOWN, type RedisObservation } from "../../lib/redis/redis_state.ts";
import { type RedisProcess, withRedis } from "../../testing/redis_server.ts";
import { eventually, sleep } from "../../testing/wait.ts";
import { respCommand } from "../../testing/resp_client.ts";
import { spinScript } from "../../testing/busy_script.ts";

const PORT = 16379;

async function withController<T>(
  redis: RedisProcess,
  extra: Partial<RedisControllerOptions>,
  fn: (ctl: RedisController, events: RedisControllerEvent[]) => Promise<T>,
): Promise<T> {
  const events: RedisControllerEvent[] = [];
  const ctl = createRedisController({
    host: redis.host,
    port: redis.port,
    password: null,
    announceIp: redis.host,
    onEvent: (e) => events.push(e),
    ...extra,
  });
  try {
    await eventually("controller observes redis up", async () => (await ctl.observe()).up);
    return await fn(ctl, events);
  } finally {
    await ctl.close();
  }
}

/** Observes every 20 ms until `done` settles; returns every observation. */
async function observeWhile(ctl: RedisController, done: Promise<unknown>): Promise<
  RedisObservation[]
> {
  let finished = false;
  const ended = done.finally(() => finished = true);
  const seen: RedisObservation[] = [];
  while (!finished) {
    seen.push(await ctl.observe());
    await sleep(20);
  }
  await ended;
  seen.push(await ctl.observe());
  return seen;
}

Deno.test("a 2 s Lua script: busy with the last answer, never down; answering after", async () => {
  await withRedis([{ host: "127.0.12.1", port: PORT }], async ([redis]) => {
    assert.ok(redis);
    await withController(redis, {}, async (ctl, events) => {
      const before = await ctl.observe();
      const script = respCommand(redis.host, redis.port, spinScript(2_000), { timeoutMs: 10_000 });
      await sleep(100);
      const seen = await observeWhile(ctl, script);
      assert.equal(seen.filter((o) => !o.up).length, 0, "never observed down");
      assert.ok(seen.some((o) => o.busy === true), "observed busy while the script ran");
      for (const o of seen) assert.equal(o.runId, before.runId);
      const after = seen.at(-1)!;
      assert.equal(after.busy, undefined, "a fresh answer after the script");
      assert.ok(events.some((e) => e.kind === "health" && e.health.state === "busy"));
      assert.ok(!events.some((e) => e.kind === "health" && e.health.state === "dead"));
    });
  });
});

Deno.test("CLIENT KILL TYPE normal kills the monitoring connection: reconnect at once, same run_id, never down", async () => {
  await withRedis([{ host: "127.0.12.2", port: PORT }], async ([redis]) => {
    assert.ok(redis);
    await withController(redis, {}, async (ctl) => {
      let lost = 0;
      ctl.onConnectionLost(() => lost++);
      const before = await ctl.observe();
      const list = String(await redis.command("CLIENT", "LIST"));
      assert.match(list, new RegExp(`name=${HIVE_CLIENT_NAME} `), "the connection is named");
      assert.match(list, /flags=e\b|flags=\w*e\w* /, "and not evicted (CLIENT NO-EVICT on)");
      const killed = await respCommand(redis.host, redis.port, [
        "CLIENT",
        "KILL",
        "TYPE",
        "normal",
        "SKIPME",
        "yes",
      ]);
      assert.ok(Number(killed) >= 1);
      await eventually("the loss is reported", () => lost >= 1);
      const obs = await ctl.observe();
      assert.ok(obs.up, "not down after a killed connection");
      assert.equal(obs.runId, before.runId);
      await eventually("answering on a new connection", async () => {
        const o = await ctl.observe();
        return o.up && o.busy === undefined;
      });
      assert.match(String(await redis.command("CLIENT", "LIST")), /name=redis-hive /);
    });
  });
});

Deno.test("CLIENT PAUSE 1000 ALL: busy, never down", async () => {
  await withRedis([{ host: "127.0.12.3", port: PORT }], async ([redis]) => {
    assert.ok(redis);
    await withController(redis, {}, async (ctl) => {
      await redis.command("CLIENT", "PAUSE", "1000", "ALL");
      const seen = await observeWhile(ctl, sleep(1_200));
      assert.equal(seen.filter((o) => !o.up).length, 0);
      assert.ok(seen.some((o) => o.busy === true));
    });
  });
});

Deno.test("a hung redis (SIGSTOP) is busy first, dead (hung) after the hang timeout, then up", async () => {
  await withRedis([{ host: "127.0.12.4", port: PORT }], async ([redis]) => {
    assert.ok(redis);
    await withController(redis, { hangMs: 600 }, async (ctl, events) => {
      await redis.kill("SIGSTOP");
      try {
        const first = await ctl.observe();
        assert.ok(first.up && first.busy === true, "busy at first");
        await eventually("dead after the hang timeout", async () => !(await ctl.observe()).up);
        assert.deepEqual(await ctl.observe(), REDIS_DOWN);
        assert.ok(
          events.some((e) =>
            e.kind === "health" && e.health.state === "dead" && e.health.reason === "hung"
          ),
        );
        const r = await ctl.enforce({ kind: "parked" });
        assert.ok(!r.ok && r.reason === "redis-down");
      } finally {
        await redis.kill("SIGCONT");
      }
      await eventually("answering again", async () => (await ctl.observe()).busy === undefined);
    });
  });
});

Deno.test("SIGKILL: observed down at once (connection lost, reconnect refused), no hang wait", async () => {
  await withRedis([{ host: "127.0.12.5", port: PORT }], async ([redis]) => {
    assert.ok(redis);
    await withController(redis, {}, async (ctl, events) => {
      let lost = false;
      ctl.onConnectionLost(() => lost = true);
      await redis.kill("SIGKILL");
      await eventually("loss reported", () => lost);
      // The default hang timeout is 5 s; the refusal decides well before.
      assert.deepEqual(await ctl.observe(), REDIS_DOWN);
      assert.ok(
        events.some((e) =>
          e.kind === "health" && e.health.state === "dead" && e.health.reason === "refused"
        ),
        JSON.stringify(events),
      );
    });
  });
});

Deno.test("a read-only script stuck past busy-reply-threshold gets SCRIPT KILL at the hang timeout; redis answers again", async () => {
  await withRedis([{
    host: "127.0.12.6",
    port: PORT,
    extraArgs: ["--busy-reply-threshold", "200"],
  }], async ([redis]) => {
    assert.ok(redis);
    await withController(redis, { hangMs: 800 }, async (ctl, events) => {
      const script = respCommand(redis.host, redis.port, spinScript(60_000), {
        timeoutMs: 20_000,
      }).then(() => "finished", (e) => String(e));
      await sleep(300);
      const seen = await observeWhile(ctl, script);
      assert.match(await script, /killed by user/i);
      const kill = events.find((e) => e.kind === "script-kill");
      assert.ok(kill !== undefined, "the controller sent SCRIPT KILL");
      assert.ok(seen.every((o) => o.up), "never down: the kill came before the grace ran out");
      assert.ok(seen.some((o) => o.busy === true));
      await eventually("answering", async () => (await ctl.observe()).busy === undefined);
    });
  });
});

Deno.test("a script that wrote cannot be killed: dead (hung) after the hang timeout and the grace", async () => {
  await withRedis([{
    host: "127.0.12.7",
    port: PORT,
    extraArgs: ["--busy-reply-threshold", "200"],
  }], async ([redis]) => {
    assert.ok(redis);
    await withController(redis, { hangMs: 600 }, async (ctl, events) => {
      const writing = [
        "EVAL",
        "redis.call('SET', 'k', 'v'); while true do end",
        "0",
      ];
      void respCommand(redis.host, redis.port, writing, { timeoutMs: 20_000 }).catch(() => {});
      await sleep(300);
      await eventually("dead", async () => !(await ctl.observe()).up, { timeoutMs: 10_000 });
      const kill = events.find((e) => e.kind === "script-kill");
      assert.ok(kill !== undefined && kill.kind === "script-kill");
      assert.ok(kill.results.some((r) => /UNKILLABLE/.test(r.answer)), JSON.stringify(kill));
      await respCommand(redis.host, redis.port, ["SHUTDOWN", "NOSAVE"]).catch(() => {});
    });
  });
});
