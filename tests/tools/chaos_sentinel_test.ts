/**
 * The chaos harness's Redis Sentinel system (`deno task chaos --system sentinel|
 * sentinel-min-replicas`): its pods' configuration, its readers of Sentinel's replies, its test
 * of a settled cluster, the per-run comparison figures and the flags, all pure; and, as root
 * with `ip netns`, one real Sentinel pod set (`rs-*` namespaces on 198.51.100.0/24) that forms,
 * fails over once when its master pod dies, and leaves nothing behind. Without root the real
 * test is registered as ignored with a name that says why.
 */

import assert from "node:assert/strict";
import {
  MIN_REPLICAS_MAX_LAG_S,
  SENTINEL_DOWN_AFTER_MS,
  SENTINEL_FAILOVER_TIMEOUT_MS,
  SENTINEL_QUORUM,
  sentinelConf,
  sentinelRedisArgs,
} from "../../tools/chaos/sentinel_config.ts";
import { parseMasterAddr, parseSentinelMaster } from "../../tools/chaos/sentinel_reply.ts";
import {
  describeSentinelLook,
  sentinelSettledMaster,
  type SentinelView,
} from "../../tools/chaos/sentinel_cluster.ts";
import { compareRuns, comparisonTable, spread } from "../../tools/chaos/comparison.ts";
import { emptyReport, type RunReport } from "../../tools/chaos/runner.ts";
import { parseChaosArgs } from "../../tools/chaos.ts";
import {
  bridgeIp,
  bridgeNamespace,
  currentNetwork,
  HIVE_NETWORK,
  listNamespaces,
  podAddress,
  SENTINEL_NETWORK,
  useNetwork,
  whyNoNamespaces,
} from "../../tools/chaos/network.ts";
import { networkOf } from "../../tools/chaos/system.ts";

const M = "198.51.100.11";
const R1 = "198.51.100.12";
const R2 = "198.51.100.13";

Deno.test("chaos sentinel: redis arguments: the first pod masters, the others replicate it", () => {
  const master = sentinelRedisArgs({ ip: M, dir: "/tmp/p1", masterIp: M, minReplicas: false });
  assert.ok(!master.includes("--replicaof"));
  assert.ok(!master.includes("--min-replicas-to-write"));
  assert.deepEqual(master.slice(master.indexOf("--replica-announce-ip"), -2), [
    "--replica-announce-ip",
    M,
  ]);
  const replica = sentinelRedisArgs({ ip: R1, dir: "/tmp/p2", masterIp: M, minReplicas: true });
  const at = replica.indexOf("--replicaof");
  assert.deepEqual(replica.slice(at, at + 3), ["--replicaof", M, "6379"]);
  const lag = replica.indexOf("--min-replicas-max-lag");
  assert.equal(replica[replica.indexOf("--min-replicas-to-write") + 1], "1");
  assert.equal(replica[lag + 1], String(MIN_REPLICAS_MAX_LAG_S));
  assert.equal(replica[replica.indexOf("--save") + 1], ""); // no persistence, as the hive's pods
  assert.throws(
    () => sentinelRedisArgs({ ip: "pod-1", dir: "/tmp/p", masterIp: M, minReplicas: false }),
    /not an IPv4 address/,
  );
});

Deno.test("chaos sentinel: sentinel.conf monitors the master with the chosen timings", () => {
  const conf = sentinelConf({ ip: R2, dir: "/tmp/p3", masterIp: M });
  const lines = conf.trim().split("\n");
  assert.ok(lines.includes(`sentinel monitor hive ${M} 6379 ${SENTINEL_QUORUM}`));
  assert.ok(lines.includes(`sentinel down-after-milliseconds hive ${SENTINEL_DOWN_AFTER_MS}`));
  assert.ok(lines.includes(`sentinel failover-timeout hive ${SENTINEL_FAILOVER_TIMEOUT_MS}`));
  assert.ok(lines.includes(`sentinel announce-ip ${R2}`));
  assert.ok(lines.includes("port 26379"));
  assert.equal(SENTINEL_QUORUM, 2); // a majority of 3: the cut-off sentinel cannot fail over
  assert.throws(() => sentinelConf({ ip: R2, dir: "relative", masterIp: M }), /absolute/);
  assert.throws(() => sentinelConf({ ip: R2, dir: "/tmp/p", masterIp: "::1" }), /IPv4/);
});

Deno.test("chaos sentinel: get-master-addr-by-name and SENTINEL master replies are read", () => {
  assert.deepEqual(parseMasterAddr([M, "6379"]), { ip: M, port: 6379 });
  assert.equal(parseMasterAddr(null), null);
  assert.throws(() => parseMasterAddr([M]), /unexpected/);
  assert.throws(() => parseMasterAddr([M, "0"]), /unexpected/);
  assert.throws(() => parseMasterAddr(["master.local", "6379"]), /unexpected/);
  const state = parseSentinelMaster([
    "name",
    "hive",
    "ip",
    M,
    "port",
    "6379",
    "flags",
    "master,s_down",
    "num-slaves",
    "2",
    "num-other-sentinels",
    "2",
    "config-epoch",
    "3",
  ]);
  assert.deepEqual(state, {
    ip: M,
    flags: ["master", "s_down"],
    replicas: 2,
    otherSentinels: 2,
    configEpoch: 3,
  });
  assert.throws(() => parseSentinelMaster(["ip", M, "flags"]), /unexpected/);
  assert.throws(() => parseSentinelMaster(["ip", M, "flags", "master"]), /lacks num-slaves/);
  assert.throws(() => parseSentinelMaster("ERR"), /unexpected/);
});

function view(ip: string, over: Partial<SentinelView> = {}): SentinelView {
  return {
    ip,
    redis: ip === M
      ? { up: true, role: "master", runId: "m", masterHost: null, linkUp: false, offset: 10 }
      : { up: true, role: "replica", runId: ip, masterHost: M, linkUp: true, offset: 10 },
    sentinel: { ip: M, flags: ["master"], replicas: 2, otherSentinels: 2, configEpoch: 1 },
    ...over,
  };
}

Deno.test("chaos sentinel: settled only when every sentinel and every redis agree", () => {
  const good = [view(M), view(R1), view(R2)];
  assert.equal(sentinelSettledMaster(good), M);
  // A sentinel that names another master, or none.
  const other = { ip: R1, flags: ["master"], replicas: 2, otherSentinels: 2, configEpoch: 2 };
  assert.equal(sentinelSettledMaster([view(M), view(R1, { sentinel: other }), view(R2)]), null);
  assert.equal(sentinelSettledMaster([view(M), view(R1), view(R2, { sentinel: null })]), null);
  // A failover in progress, or a master still seen down.
  const down = {
    ip: M,
    flags: ["master", "o_down"],
    replicas: 2,
    otherSentinels: 2,
    configEpoch: 1,
  };
  assert.equal(sentinelSettledMaster([view(M, { sentinel: down }), view(R1), view(R2)]), null);
  // A sentinel that has not yet discovered the others.
  const alone = { ip: M, flags: ["master"], replicas: 2, otherSentinels: 0, configEpoch: 0 };
  assert.equal(sentinelSettledMaster([view(M), view(R1, { sentinel: alone }), view(R2)]), null);
  // A replica whose link is down, or that follows another master; a stale master not yet demoted.
  const linkDown = view(R1);
  if (linkDown.redis.up) linkDown.redis = { ...linkDown.redis, linkUp: false };
  assert.equal(sentinelSettledMaster([view(M), linkDown, view(R2)]), null);
  const stale = view(R2, {
    redis: { up: true, role: "master", runId: "s", masterHost: null, linkUp: false, offset: 9 },
  });
  assert.equal(sentinelSettledMaster([view(M), view(R1), stale]), null);
  // The named master's redis must answer master.
  const demoted = view(M, {
    redis: { up: true, role: "replica", runId: "m", masterHost: R1, linkUp: true, offset: 9 },
  });
  assert.equal(sentinelSettledMaster([demoted, view(R1), view(R2)]), null);
  assert.equal(sentinelSettledMaster([]), null);
  assert.match(describeSentinelLook(good), /198\.51\.100\.12: replica of 198\.51\.100\.11 link up/);
});

function run(scenario: string, lost: number, splitBrainMs: number, windowMs: number): RunReport {
  return {
    ...emptyReport(scenario, 1),
    lost,
    splitBrainMs,
    acked: 3000,
    workloadMs: 6000,
    windows: [{ startMs: 0, endMs: windowMs / 2 }, { startMs: 10_000, endMs: 10_000 + windowMs }],
  };
}

Deno.test("chaos comparison: lost, split-brain and unavailability per run as min/median/max", () => {
  assert.deepEqual(spread([5, 1, 3, 2]), { min: 1, median: 2, max: 5 });
  assert.ok(Number.isNaN(spread([]).median));
  const reports = [
    run("leader-isolated", 400, 0, 2000),
    run("leader-isolated", 500, 900, 2600),
    run("leader-isolated", 450, 700, 2400),
    { ...run("leader-isolated", 9999, 9999, 9999), error: "harness failed" },
    run("one-way-partition", 1, 0, 100),
  ];
  const f = compareRuns("leader-isolated", reports);
  assert.equal(f.runs, 3);
  assert.equal(f.failedRuns, 1);
  assert.deepEqual(f.lostPerRun, { min: 400, median: 450, max: 500 });
  assert.deepEqual(f.splitBrainMs, { min: 0, median: 700, max: 900 });
  assert.deepEqual(f.longestUnavailableMs, { min: 2000, median: 2400, max: 2600 });
  assert.equal(f.splitBrainRuns, 2);
  assert.deepEqual(f.ackedPerSecond, { min: 500, median: 500, max: 500 });
  const table = comparisonTable("sentinel", [f]);
  assert.match(table, /\| sentinel \| leader-isolated \| 3 \(\+1 failed\) \| 400 \/ 450 \/ 500 \|/);
  assert.match(table, /\| 0 \/ 700 \/ 900 ms \| 2 of 3 \|/);
});

Deno.test("chaos flags: --system picks Sentinel and the scenarios that run on it", () => {
  assert.equal(parseChaosArgs([]).system, "hive");
  const s = parseChaosArgs(["--system", "sentinel"]);
  assert.deepEqual(s.scenarios, ["leader-isolated", "one-way-partition", "follower-isolated"]);
  assert.equal(
    parseChaosArgs(["--system", "sentinel-min-replicas", "--scenarios", "leader-isolated"])
      .system,
    "sentinel-min-replicas",
  );
  assert.throws(
    () => parseChaosArgs(["--system", "sentinel", "--scenarios", "master-pod-killed"]),
    /master-pod-killed does not run on sentinel/,
  );
  assert.throws(() => parseChaosArgs(["--system", "raft"]), /--system: expected one of/);
});

Deno.test("chaos network: Sentinel's plan is rs-* on 198.51.100.0/24, the hive's untouched", () => {
  assert.equal(networkOf("hive"), HIVE_NETWORK);
  assert.equal(networkOf("sentinel-min-replicas"), SENTINEL_NETWORK);
  assert.equal(currentNetwork(), HIVE_NETWORK);
  try {
    useNetwork(SENTINEL_NETWORK);
    assert.equal(podAddress(2), "198.51.100.12");
    assert.equal(bridgeNamespace(), "rs-br");
    assert.equal(bridgeIp(), "198.51.100.1");
  } finally {
    useNetwork(HIVE_NETWORK);
  }
  assert.equal(podAddress(2), "192.0.2.12");
  assert.throws(() => useNetwork({ prefix: "rh-", subnet: "10.0.0" }), /unknown network plan/);
});

// ------------------------------------------------------- a real Sentinel set (root + ip netns)

useNetwork(SENTINEL_NETWORK);
const unavailable = await whyNoNamespaces().finally(() => useNetwork(HIVE_NETWORK));

if (unavailable !== null) {
  console.warn(
    `\n!!! chaos_sentinel_test: the real Sentinel set CANNOT RUN here: ${unavailable}.\n` +
      "!!! It is reported as ignored, NOT passed.\n",
  );
  Deno.test({
    name: `chaos sentinel set: SKIPPED: needs root and ip netns (${unavailable})`,
    ignore: true,
    fn() {},
  });
} else {
  Deno.test({
    name: "chaos sentinel set: 3 redis + 3 sentinels form, fail over once when the master pod " +
      "dies, and leave nothing behind",
    async fn() {
      const { ChaosSession } = await import("../../tools/chaos/session.ts");
      const { SentinelCluster } = await import("../../tools/chaos/sentinel_cluster.ts");
      const { liveProcesses } = await import("../../tools/chaos/process.ts");
      useNetwork(SENTINEL_NETWORK);
      try {
        const session = await ChaosSession.open({ log: () => {} });
        const dir = session.dir;
        try {
          const cluster = await SentinelCluster.start(session, { pods: 3, minReplicas: true });
          const before = await cluster.waitSettled();
          assert.equal(before.leader.ip, M); // the first pod starts as master
          assert.ok(cluster.pods.every((p) => p.namespace.startsWith("rs-")));
          const victim = cluster.pods.find((p) => p === before.leader);
          assert.ok(victim !== undefined);
          await victim.kill();
          const after = await cluster.waitSettled({ notLeader: victim });
          assert.ok([R1, R2].includes(after.leader.ip), `new master ${after.leader.ip}`);
          // The survivors' sentinels agree on it, in a new configuration epoch.
          const views = await cluster.look();
          assert.ok(views.every((v) => v.sentinel !== null && v.sentinel.configEpoch >= 1));
        } finally {
          await session.close();
        }
        assert.deepEqual(await listNamespaces(), []); // no rs-* left
        assert.equal(liveProcesses.size, 0);
        await assert.rejects(Deno.stat(dir), Deno.errors.NotFound);
      } finally {
        useNetwork(HIVE_NETWORK);
      }
    },
  });
}
