/**
 * The fence actuator (lib/hive/fence_actuator.ts) on a real redis-server 7.0: what a write does
 * while the fence holds it, once the hold turns into a refusal, when the fence lifts, and when
 * the redis is made a replica meanwhile; and the min-replicas-to-write backstop, which holds
 * with no hive at all. Loopback addresses 127.0.14.21 to 127.0.14.29.
 */

import assert from "node:assert/strict";
import {
  createFenceCommands,
  FENCE_BACKSTOP_MAX_LAG_S,
  FenceActuator,
  type FenceCommands,
} from "../../lib/hive/fence_actuator.ts";
import { withRedis } from "../../testing/redis_server.ts";
import { RespConnection, RespReplyError } from "../../testing/resp_connection.ts";

/** A write on its own connection: its reply, or the error's first word. */
async function write(host: string, port: number, key: string): Promise<string> {
  const conn = await RespConnection.open(host, port);
  try {
    return String(await conn.command(["SET", key, "v"]));
  } catch (e) {
    if (e instanceof RespReplyError) return e.message.split(" ")[0]!;
    throw e;
  } finally {
    conn.close();
  }
}

async function command(host: string, port: number, ...args: string[]) {
  const conn = await RespConnection.open(host, port);
  try {
    return await conn.command(args);
  } finally {
    conn.close();
  }
}

/** Resolves to "pending" if `p` has not settled within `ms`. */
async function within<T>(p: Promise<T>, ms: number): Promise<T | "pending"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const r = await Promise.race([
    p,
    new Promise<"pending">((res) => timer = setTimeout(() => res("pending"), ms)),
  ]);
  clearTimeout(timer);
  return r;
}

Deno.test("fence actuator on redis 7.0: held, lifted, refused, made a replica; reads go on", async () => {
  await withRedis([{ host: "127.0.14.21", port: 16421 }], async ([redis]) => {
    const { host, port } = redis!;
    // A hold far longer than any step of the test (a noisy machine), and one that ends fast.
    const fence = new FenceActuator(createFenceCommands({ host, port, password: null }), 4000);
    const quick = new FenceActuator(createFenceCommands({ host, port, password: null }), 200);
    try {
      fence.want({ kind: "open", backstopReplicas: 0 });
      await fence.settled();
      assert.equal(fence.applied, "open");
      assert.equal(await write(host, port, "a"), "OK");

      // Fenced: a write waits; a read does not; lifting in time acknowledges it.
      fence.want({ kind: "fenced" });
      await fence.settled();
      assert.equal(fence.applied, "held");
      const held = write(host, port, "b");
      assert.equal(await within(held, 150), "pending", "the write is held");
      assert.equal(await command(host, port, "GET", "a"), "v", "reads work while fenced");
      fence.want({ kind: "open", backstopReplicas: 0 });
      assert.equal(await held, "OK", "acknowledged once the fence lifts (still the leader)");

      // Fenced past the hold: the held write, and every later one, gets -NOREPLICAS.
      quick.want({ kind: "fenced" });
      await quick.settled();
      const refused = write(host, port, "c");
      assert.equal(await refused, "NOREPLICAS");
      await quick.settled();
      assert.equal(quick.applied, "refusing");
      assert.equal(await write(host, port, "d"), "NOREPLICAS", "refused at once now");
      assert.equal(await command(host, port, "EXISTS", "c"), 0);
      quick.want({ kind: "open", backstopReplicas: 0 });
      await quick.settled();
      assert.equal(await write(host, port, "e"), "OK");

      // Fenced, then made a replica (the merge): the held write gets -READONLY, never OK.
      fence.want({ kind: "fenced" });
      await fence.settled();
      const demoted = write(host, port, "f");
      assert.equal(await within(demoted, 100), "pending");
      await command(host, port, "REPLICAOF", "127.0.0.1", "1");
      fence.want({ kind: "idle" });
      await command(host, port, "CLIENT", "UNPAUSE"); // as the hold's end would
      assert.equal(await demoted, "READONLY");
      assert.deepEqual(fence.stats, { holds: 2, refusals: 0, lifts: 1, failures: 0 });
      assert.deepEqual(quick.stats, { holds: 1, refusals: 1, lifts: 1, failures: 0 });
    } finally {
      await fence.close();
      await quick.close();
    }
  });
});

Deno.test("fence backstop: min-replicas-to-write refuses writes with no replica, hive or not", async () => {
  await withRedis([{ host: "127.0.14.22", port: 16422 }], async ([redis]) => {
    const { host, port } = redis!;
    const fence = new FenceActuator(createFenceCommands({ host, port, password: null }));
    try {
      fence.want({ kind: "open", backstopReplicas: 1 });
      await fence.settled();
      const config = await command(host, port, "CONFIG", "GET", "min-replicas-*") as string[];
      const pairs = new Map<string, string>();
      for (let i = 0; i < config.length; i += 2) pairs.set(config[i]!, config[i + 1]!);
      assert.deepEqual(
        pairs,
        new Map([
          ["min-replicas-to-write", "1"],
          ["min-replicas-max-lag", String(FENCE_BACKSTOP_MAX_LAG_S)],
        ]),
      );
    } finally {
      await fence.close(); // the hive is gone: redis keeps refusing on its own
    }
    assert.equal(await write(host, port, "x"), "NOREPLICAS");
    await withRedis([{ host: "127.0.14.23", port: 16423 }], async ([replica]) => {
      await command(replica!.host, replica!.port, "REPLICAOF", host, String(port));
      let reply = "";
      for (let i = 0; i < 100 && reply !== "OK"; i++) {
        reply = await write(host, port, "y");
        if (reply !== "OK") await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(reply, "OK", "one replica acknowledging: writes accepted");
    });
  });
});

Deno.test("fence actuator: a failed command is retried; suspend stops it; bad hold refused", async () => {
  const calls: string[] = [];
  let failNext = true;
  const fake: FenceCommands = {
    pause(ms) {
      calls.push(`pause ${ms}`);
      if (failNext) {
        failNext = false;
        return Promise.reject(new Error("connection refused"));
      }
      return Promise.resolve();
    },
    minReplicasThenUnpause(n) {
      calls.push(`open ${n}`);
      return Promise.resolve();
    },
    close: () => Promise.resolve(),
  };
  const errors: string[] = [];
  const fence = new FenceActuator(fake, 1000, (e) => errors.push(e));
  fence.want({ kind: "fenced" });
  await fence.settled();
  assert.equal(fence.lastError, "connection refused");
  fence.retry();
  await fence.settled();
  assert.equal(fence.applied, "held");
  assert.equal(fence.lastError, null);
  fence.want({ kind: "fenced" }); // same state: nothing sent
  await fence.settled();
  assert.deepEqual(calls, ["pause 5000", "pause 5000"]);
  fence.suspend();
  fence.want({ kind: "open", backstopReplicas: 1 });
  await fence.settled();
  assert.deepEqual(calls, ["pause 5000", "pause 5000"], "suspended: the handoff owns the pause");
  assert.deepEqual(errors, ["connection refused"]);
  await fence.close();
  assert.throws(() => new FenceActuator(fake, 0), /holdMs must be/);
});
