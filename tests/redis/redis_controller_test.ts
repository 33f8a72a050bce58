/**
 * The real redis controller against real redis-server processes (loopback 127.0.2.31-.40).
 * The enforce/observe semantics shared with the in-memory controller are in
 * redis_controller_contract_test.ts; this file covers what only a real redis shows.
 */
import assert from "node:assert/strict";
import {
  createRedisController,
  DEFAULT_COMMAND_TIMEOUT_MS,
  RECONNECT_INITIAL_DELAY_MS,
  RECONNECT_MAX_DELAY_MS,
  reconnectDelayMs,
  type RedisController,
  type RedisControllerOptions,
} from "../../lib/redis/redis_controller.ts";
import { PARKED_MASTER, REDIS_DOWN } from "../../lib/redis/redis_state.ts";
import { type RedisProcess, withRedis } from "../../testing/redis_server.ts";
import { eventually, sleep } from "../../testing/wait.ts";
import { respCommand, RespReplyError } from "../../testing/resp_client.ts";

const PORT = 16379;
/** An allotted address where nothing listens. */
const NOWHERE = { host: "127.0.2.40", port: 16399 };

async function withController<T>(
  redis: { host: string; port: number; password?: string | null },
  extra: Partial<RedisControllerOptions>,
  fn: (ctl: RedisController) => Promise<T>,
): Promise<T> {
  const ctl = createRedisController({
    host: redis.host,
    port: redis.port,
    password: redis.password ?? null,
    announceIp: redis.host,
    ...extra,
  });
  try {
    return await fn(ctl);
  } finally {
    await ctl.close();
  }
}

async function connected(ctl: RedisController) {
  return await eventually("controller observes redis up", async () => {
    const obs = await ctl.observe();
    return obs.up ? obs : undefined;
  });
}

async function runIdOf(redis: RedisProcess): Promise<string> {
  const runId = (await redis.info("server")).get("run_id");
  assert.ok(runId !== undefined && /^[0-9a-f]{40}$/.test(runId), `bad run_id ${runId}`);
  return runId;
}

async function writeKeys(redis: RedisProcess, prefix: string, count: number): Promise<void> {
  for (let i = 0; i < count; i++) await redis.command("SET", `${prefix}${i}`, `v${i}`);
}

async function dbsize(redis: RedisProcess): Promise<number> {
  return Number(await redis.command("DBSIZE"));
}

Deno.test("reconnectDelayMs doubles from the initial delay up to the cap", () => {
  const delays = [1, 2, 3, 4, 5, 6, 7, 8].map((n) =>
    reconnectDelayMs(n, RECONNECT_INITIAL_DELAY_MS, RECONNECT_MAX_DELAY_MS)
  );
  assert.deepEqual(delays, [20, 40, 80, 160, 320, 640, 1000, 1000]);
  assert.equal(reconnectDelayMs(10_000, 20, 1000), 1000);
  assert.throws(() => reconnectDelayMs(0, 20, 1000), /positive integer/);
});

Deno.test("createRedisController rejects bad options with a clear error", () => {
  const good = { host: "127.0.2.31", port: PORT, password: null, announceIp: "127.0.2.31" };
  assert.throws(() => createRedisController({ ...good, host: "" }), /host must be/);
  assert.throws(() => createRedisController({ ...good, port: 0 }), /port must be 1\.\.65535/);
  assert.throws(() => createRedisController({ ...good, announceIp: "" }), /announceIp/);
  assert.throws(() => createRedisController({ ...good, password: "" }), /password/);
  assert.throws(() => createRedisController({ ...good, commandTimeoutMs: 0 }), /commandTimeoutMs/);
  assert.throws(
    () => createRedisController({ ...good, reconnectInitialDelayMs: 50, reconnectMaxDelayMs: 10 }),
    /reconnectMaxDelayMs/,
  );
  assert.equal(DEFAULT_COMMAND_TIMEOUT_MS, 500);
});

Deno.test("observe: a master and its replica, link up after the sync, offsets equal", async () => {
  await withRedis([
    { host: "127.0.2.31", port: PORT },
    { host: "127.0.2.32", port: PORT },
  ], async ([master, replica]) => {
    assert.ok(master && replica);
    await replica.command("REPLICAOF", master.host, String(master.port));
    await withController(master, {}, async (mctl) => {
      await withController(replica, {}, async (rctl) => {
        await eventually("replica link up", async () => (await rctl.observe()).linkUp);
        // The master's replication offset only moves once it has a replica (a backlog).
        await writeKeys(master, "k", 20);
        const m = await connected(mctl);
        assert.equal(m.role, "master");
        assert.equal(m.runId, await runIdOf(master));
        assert.equal(m.masterHost, null);
        assert.equal(m.linkUp, false);
        assert.ok(m.offset > 0, "the master's offset counts the writes");
        const r = await eventually("replica caught up", async () => {
          const obs = await rctl.observe();
          return obs.linkUp && obs.offset === m.offset ? obs : undefined;
        });
        assert.equal(r.role, "replica");
        assert.equal(r.masterHost, master.host);
        assert.equal(r.masterPort, master.port);
        assert.equal(r.replId, m.replId);
        assert.equal(r.loading, false);
        assert.equal(r.runId, await runIdOf(replica));
        assert.notEqual(r.runId, m.runId);
        assert.equal(await dbsize(replica), 20);
      });
    });
  });
});

Deno.test("enforce sets replica-announce-ip once per connection; the master shows it", async () => {
  const announceIp = "127.0.2.39"; // only announced, never connected to
  await withRedis([
    { host: "127.0.2.31", port: PORT },
    { host: "127.0.2.32", port: PORT },
  ], async ([master, replica]) => {
    assert.ok(master && replica);
    await withController(replica, { announceIp }, async (ctl) => {
      await connected(ctl);
      const first = await ctl.enforce({
        kind: "follow",
        host: master.host,
        port: master.port,
        expectRunId: await runIdOf(master),
      });
      assert.deepEqual(first, {
        ok: true,
        commands: [
          `CONFIG SET replica-announce-ip ${announceIp}`,
          `REPLICAOF ${master.host} ${master.port}`,
        ],
        warnings: [],
      });
      assert.deepEqual(await replica.command("CONFIG", "GET", "replica-announce-ip"), [
        "replica-announce-ip",
        announceIp,
      ]);
      await eventually(
        "master lists the replica under its announced address",
        async () =>
          (await master.info("replication")).get("slave0")?.startsWith(`ip=${announceIp},`),
      );
      const again = await ctl.enforce({
        kind: "follow",
        host: master.host,
        port: master.port,
        expectRunId: await runIdOf(master),
      });
      assert.deepEqual(again, { ok: true, commands: [], warnings: [] });
    });
  });
});

Deno.test("with a password: AUTH, masterauth set by enforce, the guard reads with it", async () => {
  const password = "hive-test-secret";
  await withRedis([
    { host: "127.0.2.31", port: PORT, password, masterauth: false },
    { host: "127.0.2.32", port: PORT, password, masterauth: false },
  ], async ([master, replica]) => {
    assert.ok(master && replica);
    await writeKeys(master, "p", 5);
    await withController({ ...replica, password }, {}, async (ctl) => {
      await connected(ctl);
      const result = await ctl.enforce({
        kind: "follow",
        host: master.host,
        port: master.port,
        expectRunId: await runIdOf(master),
      });
      assert.deepEqual(result.commands, [
        `CONFIG SET replica-announce-ip ${replica.host}`,
        "CONFIG SET masterauth <redacted>",
        `REPLICAOF ${master.host} ${master.port}`,
      ]);
      assert.ok(result.ok);
      assert.ok(!JSON.stringify(result).includes(password), "the password is never reported");
      await eventually("replica synced with masterauth", async () => (await ctl.observe()).linkUp);
      assert.equal(await dbsize(replica), 5);
    });
    // Without the password the controller cannot observe: down, not a crash.
    await withController({ ...replica, password: null }, {}, async (ctl) => {
      await sleep(100);
      assert.deepEqual(await ctl.observe(), REDIS_DOWN);
      const r = await ctl.enforce({ kind: "leader" });
      assert.equal(r.ok ? "ok" : r.reason, "redis-down");
    });
  });
});

Deno.test("guard: never points at a restarted (empty) target; the replica keeps its keys", async () => {
  await withRedis([
    { host: "127.0.2.31", port: PORT },
    { host: "127.0.2.32", port: PORT },
  ], async ([leader, replica]) => {
    assert.ok(leader && replica);
    await writeKeys(leader, "g", 50);
    const leaderRunId = await runIdOf(leader);
    const follow = {
      kind: "follow",
      host: leader.host,
      port: leader.port,
      expectRunId: leaderRunId,
    } as const;
    await withController(replica, {}, async (ctl) => {
      await connected(ctl);
      assert.ok((await ctl.enforce(follow)).ok);
      await eventually("replica synced", async () => (await ctl.observe()).linkUp);
      assert.equal(await dbsize(replica), 50);

      // The leader's redis dies: the guard cannot read it, so the replica is parked.
      await leader.kill("SIGKILL");
      const unreachable = await ctl.enforce(follow);
      assert.equal(unreachable.ok, false);
      assert.ok(!unreachable.ok && unreachable.reason === "guard-unreachable");
      assert.deepEqual(unreachable.commands, ["REPLICAOF 127.0.0.1 1"]);

      // It comes back empty with a new run_id: still refused, nothing more issued.
      await leader.restart();
      assert.notEqual(await runIdOf(leader), leaderRunId);
      const mismatch = await ctl.enforce(follow);
      assert.ok(!mismatch.ok && mismatch.reason === "guard-mismatch", JSON.stringify(mismatch));
      assert.match(mismatch.detail, new RegExp(`expected ${leaderRunId}`));
      assert.deepEqual(mismatch.commands, []);
      // Longer than redis's 1 s replication cron: a wrongly pointed replica would have synced.
      await sleep(1_500);
      const obs = await ctl.observe();
      assert.equal(obs.masterHost, PARKED_MASTER.host);
      assert.equal(obs.masterPort, PARKED_MASTER.port);
      assert.equal(await dbsize(replica), 50);
      assert.equal(await replica.command("GET", "g49"), "v49");
    });
  });
});

Deno.test("guard: a follower already pointing at a restarted leader is parked", async () => {
  await withRedis([
    { host: "127.0.2.31", port: PORT },
    { host: "127.0.2.32", port: PORT },
  ], async ([leader, replica]) => {
    assert.ok(leader && replica);
    const follow = {
      kind: "follow",
      host: leader.host,
      port: leader.port,
      expectRunId: await runIdOf(leader),
    } as const;
    await withController(replica, {}, async (ctl) => {
      await connected(ctl);
      assert.ok((await ctl.enforce(follow)).ok);
      await leader.restart();
      const result = await ctl.enforce(follow);
      assert.ok(!result.ok);
      assert.match(result.reason, /^guard-(mismatch|unreachable)$/);
      assert.deepEqual(result.commands, ["REPLICAOF 127.0.0.1 1"]);
      const obs = await ctl.observe();
      assert.equal(obs.masterPort, PARKED_MASTER.port);
    });
  });
});

Deno.test("parked: keeps its keys and answers -NOMASTERLINK; a redis pointed at it keeps its own", async () => {
  await withRedis([
    { host: "127.0.2.33", port: PORT },
    { host: "127.0.2.34", port: PORT },
  ], async ([parked, third]) => {
    assert.ok(parked && third);
    await writeKeys(parked, "a", 30);
    await writeKeys(third, "b", 7);
    await withController(parked, {}, async (ctl) => {
      await connected(ctl);
      const result = await ctl.enforce({ kind: "parked" });
      assert.deepEqual(result.commands, [
        `CONFIG SET replica-announce-ip ${parked.host}`,
        "REPLICAOF 127.0.0.1 1",
      ]);
      // Raw sync requests get -NOMASTERLINK.
      for (const args of [["SYNC"], ["PSYNC", "?", "-1"]]) {
        await assert.rejects(
          respCommand(parked.host, parked.port, args),
          (e: unknown) => e instanceof RespReplyError && /^NOMASTERLINK/.test(e.message),
        );
      }
      await third.command("REPLICAOF", parked.host, String(parked.port));
      // A few replication cron rounds (1 s each): the link never comes up, no data moves.
      for (let i = 0; i < 5; i++) {
        await sleep(500);
        const info: Map<string, string> = await third.info("replication");
        assert.equal(info.get("master_link_status"), "down");
        assert.equal(await dbsize(third), 7);
        assert.equal(await dbsize(parked), 30);
      }
      assert.match(await third.readLog(), /NOMASTERLINK/);
      const obs = await ctl.observe();
      assert.equal(obs.role, "replica");
      assert.equal(obs.linkUp, false);
    });
  });
});

Deno.test("a restarted redis: connection lost fires, the controller reconnects, new run_id, setup again", async () => {
  await withRedis([{ host: "127.0.2.35", port: PORT }], async ([redis]) => {
    assert.ok(redis);
    await withController(redis, {}, async (ctl) => {
      let lost = 0;
      ctl.onConnectionLost(() => lost++);
      const before = await connected(ctl);
      assert.deepEqual((await ctl.enforce({ kind: "leader" })).commands, [
        `CONFIG SET replica-announce-ip ${redis.host}`,
      ]);
      await redis.kill("SIGKILL");
      await eventually("connection lost reported", () => lost === 1);
      assert.deepEqual(await ctl.observe(), REDIS_DOWN);
      const down = await ctl.enforce({ kind: "leader" });
      assert.ok(!down.ok && down.reason === "redis-down");
      assert.deepEqual(down.commands, []);

      await redis.restart({ parked: true });
      const after = await eventually("reconnected", async () => {
        const obs = await ctl.observe();
        return obs.up ? obs : undefined;
      });
      assert.notEqual(after.runId, before.runId);
      assert.equal(after.runId, await runIdOf(redis));
      assert.equal(after.role, "replica");
      assert.deepEqual((await ctl.enforce({ kind: "leader" })).commands, [
        `CONFIG SET replica-announce-ip ${redis.host}`,
        "REPLICAOF NO ONE",
      ]);
      assert.equal(lost, 1);
    });
  });
});

Deno.test("a hung redis (SIGSTOP) observes down within the command timeout, then up", async () => {
  const commandTimeoutMs = 300;
  await withRedis([{ host: "127.0.2.36", port: PORT }], async ([redis]) => {
    assert.ok(redis);
    await withController(redis, { commandTimeoutMs }, async (ctl) => {
      await connected(ctl);
      await redis.kill("SIGSTOP");
      try {
        const start = performance.now();
        assert.deepEqual(await ctl.observe(), REDIS_DOWN);
        const elapsedMs = performance.now() - start;
        // Bounded by the command timeout (generous margin for a noisy machine), not hanging.
        assert.ok(elapsedMs < commandTimeoutMs + 4_000, `observe took ${elapsedMs} ms`);
        const r = await ctl.enforce({ kind: "parked" });
        assert.ok(!r.ok && r.reason === "redis-down");
      } finally {
        await redis.kill("SIGCONT");
      }
      const obs = await connected(ctl);
      assert.equal(obs.role, "master");
    });
  });
});

Deno.test("onConnectionLost fires on SIGKILL and not on close()", async () => {
  await withRedis([{ host: "127.0.2.37", port: PORT }], async ([redis]) => {
    assert.ok(redis);
    const ctl = createRedisController({
      host: redis.host,
      port: redis.port,
      password: null,
      announceIp: redis.host,
    });
    let lost = 0;
    try {
      ctl.onConnectionLost(() => lost++);
      await connected(ctl);
      assert.equal(lost, 0);
      await redis.kill("SIGKILL");
      await eventually("connection lost fired", () => lost > 0);
      assert.equal(lost, 1);
      await redis.restart();
      await connected(ctl);
    } finally {
      await ctl.close();
    }
    await sleep(50);
    assert.equal(lost, 1, "close() is not a loss");
    assert.deepEqual(await ctl.observe(), REDIS_DOWN);
    const r = await ctl.enforce({ kind: "leader" });
    assert.ok(!r.ok && r.reason === "redis-down" && /closed/.test(r.detail));
  });
});

Deno.test("renamed CONFIG is reported as a warning, once per connection; REPLICAOF still works", async () => {
  await withRedis([
    { host: "127.0.2.38", port: PORT, extraArgs: ["--rename-command", "CONFIG", ""] },
  ], async ([redis]) => {
    assert.ok(redis);
    await withController(redis, {}, async (ctl) => {
      await connected(ctl);
      const first = await ctl.enforce({ kind: "parked" });
      assert.ok(first.ok);
      assert.equal(first.warnings.length, 1);
      assert.match(
        first.warnings[0] ?? "",
        /CONFIG SET replica-announce-ip .*rejected.*unknown command/,
      );
      assert.deepEqual(first.commands.slice(-1), ["REPLICAOF 127.0.0.1 1"]);
      const second = await ctl.enforce({ kind: "parked" });
      assert.deepEqual(second, { ok: true, commands: [], warnings: [] });
    });
  });
});

Deno.test("a renamed REPLICAOF fails the enforce with command-failed, without throwing", async () => {
  await withRedis([
    { host: "127.0.2.38", port: PORT, extraArgs: ["--rename-command", "REPLICAOF", ""] },
  ], async ([redis]) => {
    assert.ok(redis);
    await withController(redis, {}, async (ctl) => {
      await connected(ctl);
      const result = await ctl.enforce({ kind: "parked" });
      assert.ok(!result.ok && result.reason === "command-failed", JSON.stringify(result));
      assert.match(result.detail, /REPLICAOF 127\.0\.0\.1 1: rejected/);
      assert.equal((await ctl.observe()).role, "master");
    });
  });
});

Deno.test("no redis at first: observe down, enforce fails; it starts later and is seen", async () => {
  const ctl = createRedisController({
    host: "127.0.2.39",
    port: PORT,
    password: null,
    announceIp: "127.0.2.39",
  });
  try {
    assert.deepEqual(await ctl.observe(), REDIS_DOWN);
    const r = await ctl.enforce({ kind: "leader" });
    assert.ok(!r.ok && r.reason === "redis-down");
    await withRedis([{ host: "127.0.2.39", port: PORT }], async ([redis]) => {
      assert.ok(redis);
      const obs = await connected(ctl);
      assert.equal(obs.runId, await runIdOf(redis));
    });
  } finally {
    await ctl.close();
  }
});

Deno.test("guard-unreachable parks; bad targets are refused; enforces run one at a time", async () => {
  await withRedis([{ host: "127.0.2.31", port: PORT }], async ([redis]) => {
    assert.ok(redis);
    await withController(redis, {}, async (ctl) => {
      await connected(ctl);
      const r = await ctl.enforce({ kind: "follow", ...NOWHERE, expectRunId: "0".repeat(40) });
      assert.ok(!r.ok && r.reason === "guard-unreachable", JSON.stringify(r));
      assert.deepEqual(r.commands.slice(-1), ["REPLICAOF 127.0.0.1 1"]);

      const self = await ctl.enforce({
        kind: "follow",
        host: redis.host,
        port: redis.port,
        expectRunId: null,
      });
      assert.ok(!self.ok && self.reason === "bad-target" && /itself/.test(self.detail));
      const badPort = await ctl.enforce({ kind: "follow", host: "x", port: 0, expectRunId: null });
      assert.ok(!badPort.ok && badPort.reason === "bad-target");
      assert.deepEqual(badPort.commands, []);

      // Started together, they run in call order: the last one wins, each issues its command.
      const [a, b, c] = await Promise.all([
        ctl.enforce({ kind: "leader" }),
        ctl.enforce({ kind: "parked" }),
        ctl.enforce({ kind: "leader" }),
      ]);
      assert.deepEqual([a.commands, b.commands, c.commands], [
        ["REPLICAOF NO ONE"],
        ["REPLICAOF 127.0.0.1 1"],
        ["REPLICAOF NO ONE"],
      ]);
      assert.equal((await ctl.observe()).role, "master");
    });
  });
});

Deno.test("pauseAndSync: pauses writes and names the first candidate that processed every write", async () => {
  await withRedis([
    { host: "127.0.2.33", port: PORT },
    { host: "127.0.2.34", port: PORT },
    { host: "127.0.2.35", port: PORT, parked: true },
  ], async ([master, linked, parked]) => {
    assert.ok(master && linked && parked);
    await linked.command("REPLICAOF", master.host, String(master.port));
    await withController(master, {}, async (ctl) => {
      await connected(ctl);
      await writeKeys(master, "h", 50);
      await eventually("replica caught up", async () => {
        const m = Number((await master.info("replication")).get("master_repl_offset"));
        const r = Number((await linked.info("replication")).get("slave_repl_offset"));
        return m > 0 && r === m;
      });
      // The parked one comes first in the list: it never catches up, the linked one does.
      const sync = await ctl.pauseAndSync([parked, linked], 1000, 500);
      assert.ok(sync.ok, JSON.stringify(sync));
      assert.deepEqual(sync.chosen, { host: linked.host, port: linked.port });
      assert.equal(sync.replicaOffset, sync.masterOffset);
      // Writes are paused: a SET waits until the pause ends.
      const started = Date.now();
      assert.equal(await master.command("SET", "during-pause", "x"), "OK");
      assert.ok(Date.now() - started >= 300, "the write waited for the pause to end");
      // Only a candidate that is not linked: no successor, its offset is reported.
      const none = await ctl.pauseAndSync([parked], 200, 100);
      assert.equal(none.ok, false);
      assert.ok(!none.ok && none.offsets.length === 1 && none.masterOffset !== null);
    });
  });
});

Deno.test("with socket: the controller talks to its own redis through the Unix socket, not host:port", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hive-ctl-socket-" });
  const socket = `${dir}/redis.sock`;
  try {
    await withRedis([{
      host: "127.0.2.35",
      port: PORT,
      extraArgs: ["--unixsocket", socket, "--unixsocketperm", "700"],
    }], async ([redis]) => {
      // host:port lead nowhere: only the socket can make this controller see redis up.
      await withController({ ...NOWHERE }, { socket, announceIp: "127.0.2.35" }, async (ctl) => {
        const obs = await connected(ctl);
        assert.equal(obs.runId, await runIdOf(redis!));
        const clients = String(await redis!.command("CLIENT", "LIST"));
        assert.match(clients, new RegExp(`laddr=${socket}:0 `), clients);
      });
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  assert.throws(
    () =>
      createRedisController({ ...NOWHERE, password: null, announceIp: "x", socket: "rel.sock" }),
    /socket must be an absolute path/,
  );
});
