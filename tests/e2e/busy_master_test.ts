/**
 * End to end, real processes: a busy master redis is not a dead one. Through the proxy of a
 * real 3-node hive (default flags: `--redis-hang-ms` 5000), a 2 s Lua script, `CLIENT KILL TYPE
 * normal SKIPME yes`, `CLIENT PAUSE 1000 ALL` and a big `DEL` cost no leader change and close
 * no proxied connection; a script stuck past `busy-reply-threshold` is ended by `SCRIPT KILL`
 * sent through the proxy (and a stuck function by `FUNCTION KILL`), and one left alone is ended
 * by the hive itself at the hang timeout.
 * Loopback addresses 127.0.12.21 to 127.0.12.23.
 */

import assert from "node:assert/strict";
import { LocalCluster, type SettledCluster } from "../../testing/local_cluster.ts";
import { respCommand, type RespValue } from "../../testing/resp_client.ts";
import { assertSettledWithData, electionCounts, keysNamed } from "./e2e_assertions.ts";
import { sleep } from "../../testing/wait.ts";
import { spinScript } from "../../testing/busy_script.ts";

/** Deadline of one command that waits behind a busy redis (never a timing assertion). */
const SLOW_COMMAND_TIMEOUT_MS = 30_000;
/** Members of the big set whose `DEL` blocks redis (about 0.5 to 1 s here). */
const BIG_SET_MEMBERS = 1_000_000;
/** Members added per script while building it (each script well under a second). */
const BIG_SET_CHUNK = 100_000;

function sumOf(counts: Map<string, { elections: number; leaderChanges: number }>) {
  let elections = 0;
  let leaderChanges = 0;
  for (const c of counts.values()) {
    elections += c.elections;
    leaderChanges += c.leaderChanges;
  }
  return { elections, leaderChanges };
}

/** Waits until settled with the same leader and asserts no election and no leader change. */
async function assertNoLeaderChange(
  cluster: LocalCluster,
  before: SettledCluster,
  what: string,
): Promise<SettledCluster> {
  const after = await cluster.waitForSettled({ leader: before.leader });
  assert.deepEqual(
    sumOf(electionCounts(after)),
    sumOf(electionCounts(before)),
    `${what}: elections and leader changes, summed over the nodes`,
  );
  for (const [address, s] of after.statuses) {
    const was = before.statuses.get(address)?.proxy.stats;
    const now = s.proxy.stats;
    assert.equal(now?.targetChanges, was?.targetChanges, `${what}: ${address} proxy re-pointed`);
    assert.equal(
      now?.closedByTargetChange,
      was?.closedByTargetChange,
      `${what}: ${address} closed proxied connections`,
    );
  }
  return after;
}

Deno.test("e2e: a busy master (script, CLIENT KILL, CLIENT PAUSE, big DEL, stuck script) is not failed over", async (t) => {
  await LocalCluster.run({
    addresses: ["127.0.12.21", "127.0.12.22", "127.0.12.23"],
    discovery: { kind: "static" },
  }, async (cluster) => {
    let settled = await cluster.waitForSettled();
    const leader = cluster.node(settled.leader);
    const follower = cluster.node(settled.followers[0]!);
    const viaFollower = (args: string[]) =>
      respCommand(follower.address, follower.ports.proxy, args, {
        timeoutMs: SLOW_COMMAND_TIMEOUT_MS,
      });
    {
      await t.step(
        "a 2 s Lua script: its client gets its answer; a SET waits behind it",
        async () => {
          const script = viaFollower(spinScript(2_000));
          const set = (async () => {
            await sleep(200);
            return await respCommand(leader.address, leader.ports.proxy, ["SET", "during", "1"], {
              timeoutMs: SLOW_COMMAND_TIMEOUT_MS,
            });
          })();
          assert.equal(await script, 1);
          assert.equal(await set, "OK");
          settled = await assertNoLeaderChange(cluster, settled, "2 s script");
        },
      );

      await t.step("CLIENT KILL TYPE normal SKIPME yes through the proxy", async () => {
        const killed = await viaFollower(["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"]);
        assert.ok(Number(killed) >= 1, `killed ${killed}`);
        settled = await assertNoLeaderChange(cluster, settled, "CLIENT KILL");
      });

      await t.step("CLIENT PAUSE 1000 ALL through the proxy", async () => {
        assert.equal(await viaFollower(["CLIENT", "PAUSE", "1000", "ALL"]), "OK");
        assert.equal(await viaFollower(["SET", "after-pause", "1"]), "OK");
        settled = await assertNoLeaderChange(cluster, settled, "CLIENT PAUSE");
      });

      await t.step("a big DEL through the proxy", async () => {
        for (let i = 0; i < BIG_SET_MEMBERS / BIG_SET_CHUNK; i++) {
          const from = i * BIG_SET_CHUNK;
          const added = await viaFollower([
            "EVAL",
            "local n = 0; for j = tonumber(ARGV[1]), tonumber(ARGV[2]), 5000 do " +
            "local t = {}; for k = j, j + 4999 do t[#t + 1] = k end; " +
            "n = n + redis.call('SADD', KEYS[1], unpack(t)) end; return n",
            "1",
            "big",
            String(from),
            String(from + BIG_SET_CHUNK - 1),
          ]);
          assert.equal(added, BIG_SET_CHUNK);
        }
        await cluster.waitForSettled({ leader: settled.leader });
        assert.equal(await viaFollower(["DEL", "big"]), 1);
        settled = await assertNoLeaderChange(cluster, settled, "big DEL");
      });

      await t.step(
        "a script stuck past busy-reply-threshold: SCRIPT KILL through the proxy ends it",
        async () => {
          assert.equal(
            await leader.redisCommand("CONFIG", "SET", "busy-reply-threshold", "200"),
            "OK",
          );
          const stuck = viaFollower(spinScript(600_000)).then(
            (v: RespValue) => `answered ${v}`,
            (e: unknown) => String(e),
          );
          // Redis answers -BUSY through the proxy once the script is past the threshold.
          for (;;) {
            const reply = await viaFollower(["GET", "x"]).catch((e) => String(e));
            if (/BUSY/.test(String(reply))) break;
            await sleep(50);
          }
          assert.equal(await viaFollower(["SCRIPT", "KILL"]), "OK");
          assert.match(await stuck, /killed by user/i);
          settled = await assertNoLeaderChange(cluster, settled, "SCRIPT KILL");
        },
      );

      await t.step(
        "a function stuck past busy-reply-threshold: FUNCTION KILL through the proxy ends it",
        async () => {
          const library = "#!lua name=hivespin\n" +
            "redis.register_function{function_name='hivespin', flags={'no-writes'}, " +
            "callback=function(keys, args) while true do end end}";
          assert.equal(await viaFollower(["FUNCTION", "LOAD", "REPLACE", library]), "hivespin");
          const stuck = viaFollower(["FCALL_RO", "hivespin", "0"]).then(
            (v: RespValue) => `answered ${v}`,
            (e: unknown) => String(e),
          );
          for (;;) {
            const reply = await viaFollower(["GET", "x"]).catch((e) => String(e));
            if (/BUSY/.test(String(reply))) break;
            await new Promise((r) => setTimeout(r, 50));
          }
          assert.equal(await viaFollower(["FUNCTION", "KILL"]), "OK");
          assert.match(await stuck, /killed by user/i);
          settled = await assertNoLeaderChange(cluster, settled, "FUNCTION KILL");
        },
      );

      await t.step(
        "a script left stuck: the hive kills it at --redis-hang-ms, no failover",
        async () => {
          const stuck = viaFollower(spinScript(600_000)).then(
            (v: RespValue) => `answered ${v}`,
            (e: unknown) => String(e),
          );
          assert.match(await stuck, /killed by user/i);
          settled = await assertNoLeaderChange(cluster, settled, "hive's SCRIPT KILL");
          assert.ok(
            leader.hive?.lines.some((l) => /SCRIPT KILL: OK/.test(l)),
            "the leader's hive logged its SCRIPT KILL",
          );
          await leader.redisCommand("CONFIG", "SET", "busy-reply-threshold", "5000");
        },
      );

      const keys = keysNamed("busy", 200);
      await follower.writeThroughProxy(keys);
      await assertSettledWithData(cluster, keys, { followers: 2, leader: settled.leader });
    }
  });
});
