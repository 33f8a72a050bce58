/** The redis-server test fixture itself (loopback 127.0.2.51-.55). */
import assert from "node:assert/strict";
import { type RedisProcess, startRedis, withRedis } from "../../testing/redis_server.ts";
import { encodeCommand, parseReply, RespReplyError } from "../../testing/resp_client.ts";

const PORT = 16379;

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

function processAlive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

Deno.test("fixture: restart gives an empty process with a new run_id; stop cleans up", async () => {
  const redis = await startRedis({ host: "127.0.2.51", port: PORT });
  try {
    const runId = (await redis.info("server")).get("run_id");
    const pid = redis.pid;
    await redis.command("SET", "k", "v");
    await redis.restart();
    assert.notEqual(redis.pid, pid);
    assert.equal(processAlive(pid), false);
    assert.notEqual((await redis.info("server")).get("run_id"), runId);
    assert.equal(await redis.command("DBSIZE"), 0);
    assert.equal((await redis.info("replication")).get("role"), "master");
    await redis.restart({ parked: true });
    const repl = await redis.info("replication");
    assert.equal(repl.get("master_host"), "127.0.0.1");
    assert.equal(repl.get("master_port"), "1");
  } finally {
    await redis.stop();
  }
  assert.equal(redis.running, false);
  assert.equal(await exists(redis.dir), false);
  await redis.stop(); // idempotent
});

Deno.test("fixture: withRedis stops every process when the body throws", async () => {
  let seen: RedisProcess[] = [];
  await assert.rejects(
    withRedis([
      { host: "127.0.2.52", port: PORT, parked: true },
      { host: "127.0.2.53", port: PORT, password: "pw" },
    ], async (redises) => {
      seen = redises;
      assert.equal((await redises[0]!.info("replication")).get("master_port"), "1");
      assert.equal(await redises[1]!.command("PING"), "PONG"); // authenticated
      throw new Error("body failed");
    }),
    /body failed/,
  );
  assert.equal(seen.length, 2);
  for (const r of seen) {
    assert.equal(r.running, false);
    assert.equal(await exists(r.dir), false);
  }
});

Deno.test("fixture: a start that fails (address in use) throws with the log, leaves nothing", async () => {
  await withRedis([{ host: "127.0.2.54", port: PORT }], async () => {
    await assert.rejects(
      startRedis({ host: "127.0.2.54", port: PORT }),
      /exited at start[\s\S]*(in use|bind)/i,
    );
  });
  await assert.rejects(startRedis({ host: "10.0.0.1", port: PORT }), /loopback/);
  await assert.rejects(startRedis({ host: "127.0.2.55", port: 0 }), /bad port/);
});

Deno.test("fixture: RESP encoding and reply parsing", () => {
  const enc = new TextEncoder();
  assert.equal(
    new TextDecoder().decode(encodeCommand(["SET", "k", "é"])),
    "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\né\r\n",
  );
  assert.deepEqual(parseReply(enc.encode("*2\r\n$1\r\na\r\n:5\r\n"), 0), {
    value: ["a", 5],
    next: 15,
  });
  assert.equal(parseReply(enc.encode("$5\r\nab"), 0), undefined);
  const err = parseReply(enc.encode("-NOMASTERLINK x\r\n"), 0);
  assert.ok(err?.value instanceof RespReplyError && err.value.message === "NOMASTERLINK x");
  assert.deepEqual(parseReply(enc.encode("$-1\r\n"), 0), { value: null, next: 5 });
});
