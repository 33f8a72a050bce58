/**
 * The runtime loop (lib/hive/hive.ts) on in-memory parts: three hives in one process, talking over
 * the in-memory UDP network, each steering an in-memory redis. The same `Hive` code as
 * production; only what touches the world is swapped (the real parts are covered by the
 * contract suites and the end-to-end tests).
 */

import assert from "node:assert/strict";
import { eventually } from "../../testing/wait.ts";
import { Hive } from "../../lib/hive/hive.ts";
import { parseConfig } from "../../lib/hive/config.ts";
import { MemoryNetwork } from "../../lib/net/udp_transport.ts";
import { MemoryRedisNetwork } from "../../lib/redis/memory_redis_controller.ts";

const ADDRESSES = ["10.9.0.1", "10.9.0.2", "10.9.0.3"];

function until(cond: () => boolean, timeoutMs: number, what: string): Promise<true> {
  return eventually(what, () => cond() || undefined, { timeoutMs });
}

Deno.test("three hives on in-memory parts: elect, replicate, fail over, hand over", async () => {
  const udp = new MemoryNetwork();
  const redisNet = new MemoryRedisNetwork();
  const redis = ADDRESSES.map((a) => redisNet.addRedis(a, 6379, { parked: true }));
  const hives: Hive[] = [];
  try {
    for (const address of ADDRESSES) {
      const config = parseConfig(
        [
          "--peers",
          ADDRESSES.join(","),
          "--announce-ip",
          address,
          "--bind",
          address,
          "--redis-host",
          address,
        ],
        { HIVE_SECRET: "hive-test-secret" },
        () => "",
      );
      hives.push(
        await Hive.start(config, {
          udp: (bind) => Promise.resolve(udp.listen(bind)),
          redis: (announceIp) =>
            redisNet.controller({ host: address, port: 6379, password: null, announceIp }),
          proxy: false,
          http: false,
          sentinel: false,
        }),
      );
    }
    const leaders = () => hives.filter((h) => h.status().role === "leader");
    const settled = () =>
      leaders().length === 1 &&
      hives.every((h) => h.status().leader === leaders()[0]!.self) &&
      redis.every((r) => r.role === "master" || r.linkUp);
    await until(settled, 5000, "cold start");
    const first = leaders()[0]!;
    const firstRedis = redis[ADDRESSES.indexOf(first.self)]!;
    firstRedis.write("k", "v");
    await until(() => redis.every((r) => r.data.get("k") === "v"), 2000, "replication");
    await until(
      () =>
        hives.filter((h) => h.status().role === "follower").every((h) =>
          h.status().redis.caughtUpWithLeader === true
        ),
      2000,
      "followers reach an offset the leader reported after their link came up",
    );

    // The leader's redis crashes: it says so at once and a follower takes over.
    firstRedis.crash();
    await until(() => leaders().length === 1 && leaders()[0] !== first, 3000, "failover");
    const second = leaders()[0]!;
    assert.equal(redis[ADDRESSES.indexOf(second.self)]!.data.get("k"), "v", "data kept");
    // The Sentinel endpoints announce the new master once every hive confirmed it.
    await until(
      () => hives.every((h) => h.sentinelView().master?.ip === second.self),
      3000,
      "the Sentinel view names the new master",
    );
    // It restarts empty, parked: it is resynced, never promoted.
    firstRedis.start({ parked: true });
    await until(settled, 5000, "the restarted redis rejoins");
    assert.equal(firstRedis.data.get("k"), "v");
    assert.ok(first.status().failovers.count >= 1, "the failover was measured");

    // A graceful shutdown of the leader hands over with no election.
    const electionsBefore = hives.reduce((n, h) => n + h.status().election.elections, 0);
    await second.shutdown();
    const rest = hives.filter((h) => h !== second);
    await until(
      () =>
        rest.filter((h) => h.status().role === "leader").length === 1 &&
        rest.every((h) => h.status().proxy.target !== null),
      3000,
      "handover",
    );
    const electionsAfter = rest.reduce((n, h) => n + h.status().election.elections, 0) +
      second.status().election.elections;
    assert.equal(electionsAfter, electionsBefore, "no election during the handover");
    const third = rest.find((h) => h.status().role === "leader")!;
    assert.ok(rest.every((h) => h.sentinelView().master?.ip === third.self));
    assert.equal(redis[ADDRESSES.indexOf(third.self)]!.data.get("k"), "v");
  } finally {
    await Promise.all(hives.map((h) => h.stop()));
  }
});
