/**
 * End to end, real processes and real clients: a 3-node hive (redis-server + hive per node),
 * and four sentinel-aware clients given only the hives' Sentinel endpoints: ioredis in sentinel
 * mode, node-redis `createSentinel`, redis-py `Sentinel` (/usr/bin/python3) and `redis-cli`.
 * Each discovers the master and writes; the master redis is SIGKILLed; each must write to the
 * new master by itself, and no acknowledged write may be lost. The time each took is printed
 * (not asserted: the machine is shared; `deno task bench sentinel` measures it).
 * A raw subscriber checks the `+sdown`, `+failover-end`, `+switch-master` messages.
 * Loopback addresses 127.0.16.21 to 127.0.16.23.
 */

import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { LocalCluster } from "../../testing/local_cluster.ts";
import {
  SENTINEL_CLIENTS,
  type SentinelWriter,
  startSentinelWriter,
} from "../../testing/sentinel_clients.ts";
import { eventually } from "../../testing/wait.ts";
import { longestGapMs } from "../../tools/bench/stats.ts";

const ADDRESSES = ["127.0.16.21", "127.0.16.22", "127.0.16.23"];
/** Acknowledged writes each client makes before the crash, and again after it. */
const WRITES_EACH_SIDE = 20;
/** Bound of the wait for every client to write again after the crash. */
const RECOVERY_BOUND_MS = 30_000;

Deno.test({
  name: "e2e sentinel: ioredis, node-redis, redis-py and redis-cli follow a master crash by " +
    "themselves, losing no acknowledged write",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await LocalCluster.run(
      { addresses: ADDRESSES, discovery: { kind: "static" } },
      async (cluster) => {
        const first = await cluster.waitForSettled();
        const sentinelPort = cluster.ports.sentinel;
        const redisPort = cluster.ports.redis;
        const sentinels = ADDRESSES.map((host) => ({ host, port: sentinelPort }));

        // Every endpoint names the leader's redis, at its own address and redis port.
        for (const host of ADDRESSES) {
          const probe = new Redis({ host, port: sentinelPort, lazyConnect: true });
          await probe.connect();
          try {
            assert.deepEqual(
              await probe.call("SENTINEL", "get-master-addr-by-name", "mymaster"),
              [first.leader, String(redisPort)],
              `the endpoint on ${host}`,
            );
          } finally {
            probe.disconnect();
          }
        }

        // A subscriber on a follower's endpoint, to all events.
        const events: string[] = [];
        const subscriber = new Redis({ host: first.followers[0], port: sentinelPort });
        await subscriber.psubscribe("*");
        subscriber.on("pmessage", (_p: string, channel: string, message: string) => {
          events.push(`${channel} ${message}`);
        });

        const writers: SentinelWriter[] = [];
        try {
          for (const client of SENTINEL_CLIENTS) {
            writers.push(
              await startSentinelWriter(client, {
                sentinels,
                masterName: "mymaster",
                prefix: `sentinel-e2e:${client}`,
              }),
            );
          }
          await eventually(
            "every client writes before the crash",
            () => writers.every((w) => w.acks.length >= WRITES_EACH_SIDE),
            { timeoutMs: RECOVERY_BOUND_MS },
          );

          const old = cluster.node(first.leader);
          const killedAt = Date.now();
          await old.killRedis();
          const afterCrash = (w: SentinelWriter) => w.acks.filter((a) => a.atMs > killedAt).length;
          await eventually(
            "every client writes after the crash",
            () => writers.every((w) => afterCrash(w) >= WRITES_EACH_SIDE),
            { timeoutMs: RECOVERY_BOUND_MS },
          ).catch((e) => {
            const state = writers.map((w) =>
              `${w.client}: ${afterCrash(w)} acks after the crash, ${w.failures} failures` +
              (w.lastError === undefined ? "" : ` (last: ${w.lastError})`)
            );
            throw new Error(`${e.message}: ${state.join("; ")}`);
          });
          const acks = new Map<string, string[]>();
          for (const w of writers) {
            const mine = await w.stop();
            acks.set(w.client, mine.map((a) => a.key));
            console.log(
              `${w.client}: ${mine.length} writes acknowledged, ${w.failures} failed attempts, ` +
                `longest pause between two acknowledged writes ${
                  Math.round(longestGapMs(mine))
                } ms`,
            );
          }

          const after = await cluster.waitForSettled({
            notLeader: old.address,
            nodes: first.followers,
          });
          assert.ok(first.followers.includes(after.leader));
          for (const host of ADDRESSES) {
            const probe = new Redis({ host, port: sentinelPort, lazyConnect: true });
            await probe.connect();
            try {
              assert.deepEqual(
                await probe.call("SENTINEL", "get-master-addr-by-name", "mymaster"),
                [after.leader, String(redisPort)],
                `the endpoint on ${host} after the failover`,
              );
            } finally {
              probe.disconnect();
            }
          }
          // Every acknowledged write, before and after the crash, is on the new master.
          for (const [client, keys] of acks) {
            const missing = await cluster.node(after.leader).missingKeys(keys);
            assert.deepEqual(
              missing,
              [],
              `${client}: ${missing.length} of ${keys.length} acknowledged writes lost ` +
                `(last acknowledged: ${keys.at(-1)})`,
            );
          }
          // The subscriber saw the master go down, then the switch to the new one.
          const oldAddr = `${first.leader} ${redisPort}`;
          await eventually(
            "+switch-master",
            () => events.some((e) => e.startsWith("+switch-master")),
            {
              timeoutMs: 5_000,
            },
          );
          const switchAt = events.indexOf(
            `+switch-master mymaster ${oldAddr} ${after.leader} ${redisPort}`,
          );
          assert.ok(switchAt >= 0, `+switch-master to the new leader in ${events.join(" | ")}`);
          assert.ok(
            events.indexOf(`+sdown master mymaster ${oldAddr}`) < switchAt &&
              events.includes(`+sdown master mymaster ${oldAddr}`),
            `+sdown before +switch-master: ${events.join(" | ")}`,
          );
          assert.equal(events[switchAt - 1], `+failover-end master mymaster ${oldAddr}`);
        } finally {
          for (const w of writers) await w.stop().catch(() => {});
          subscriber.disconnect();
        }
      },
    );
  },
});
