/** The runtime's policy (lib/hive/policy.ts), shared by the runtime and the simulator. */

import assert from "node:assert/strict";
import {
  caughtUpWithLeader,
  chooseSuccessor,
  needsEnforce,
  NOT_LINKED,
  proxyUpstream,
  shouldReconcile,
  trackCatchUp,
} from "../../lib/hive/policy.ts";
import { REDIS_DOWN, type RedisObservation } from "../../lib/redis/redis_state.ts";

function replica(host: string, linkUp: boolean, loading = false): RedisObservation {
  return {
    up: true,
    runId: "r",
    role: "replica",
    masterHost: host,
    masterPort: 6379,
    linkUp,
    loading,
    replId: null,
    offset: 0,
  };
}

Deno.test("needsEnforce: a mismatch, or a follower whose link is down and not syncing", () => {
  const follow = { kind: "follow" as const, host: "10.0.0.1", port: 6379, expectRunId: "x" };
  assert.equal(needsEnforce(replica("10.0.0.1", true), follow), false);
  assert.equal(needsEnforce(replica("10.0.0.1", false, true), follow), false, "syncing");
  assert.equal(needsEnforce(replica("10.0.0.1", false), follow), true, "guard re-check");
  assert.equal(needsEnforce(replica("10.0.0.2", true), follow), true, "points elsewhere");
  assert.equal(needsEnforce(replica("127.0.0.1", false), { kind: "parked" }), true, "port 6379");
  assert.equal(
    needsEnforce({ ...replica("127.0.0.1", false), masterPort: 1 }, { kind: "parked" }),
    false,
  );
  assert.equal(needsEnforce(REDIS_DOWN, { kind: "leader" }), true, "down: enforce when back");
  assert.equal(
    needsEnforce({ ...replica("x", false), role: "master" }, { kind: "leader" }),
    false,
  );
});

Deno.test("shouldReconcile: only an up redis, not right after an enforce, not while one is queued", () => {
  const follow = { kind: "follow" as const, host: "10.0.0.1", port: 6379, expectRunId: "x" };
  const obs = replica("10.0.0.1", false);
  assert.equal(shouldReconcile(obs, follow, { reconcile: true, enforcing: false }), true);
  assert.equal(shouldReconcile(obs, follow, { reconcile: false, enforcing: false }), false);
  assert.equal(shouldReconcile(obs, follow, { reconcile: true, enforcing: true }), false);
  assert.equal(
    shouldReconcile(REDIS_DOWN, { kind: "leader" }, { reconcile: true, enforcing: false }),
    false,
  );
});

Deno.test("trackCatchUp: caught up once the offset reaches the leader's, heard after the link came up", () => {
  const follow = { kind: "follow" as const, host: "10.0.0.1", port: 6379, expectRunId: "x" };
  const base = { role: "follower" as const, leader: "10.0.0.1", target: follow };
  let c = trackCatchUp(NOT_LINKED, {
    ...base,
    nowMono: 100,
    obs: { ...replica("10.0.0.1", true), offset: 5 },
    leaderLast: { heardMono: 90, offset: 50 }, // heard before the link came up: not a target
  });
  assert.equal(c.linkUpMono, 100);
  assert.equal(caughtUpWithLeader(c), false);
  c = trackCatchUp(c, {
    ...base,
    nowMono: 200,
    obs: { ...replica("10.0.0.1", true), offset: 40 },
    leaderLast: { heardMono: 150, offset: 60 },
  });
  assert.equal(c.targetOffset, 60);
  assert.equal(caughtUpWithLeader(c), false);
  c = trackCatchUp(c, {
    ...base,
    nowMono: 300,
    obs: { ...replica("10.0.0.1", true), offset: 60 },
    leaderLast: { heardMono: 250, offset: 90 },
  });
  assert.equal(caughtUpWithLeader(c), true, "reached the offset it was given");
  const down = trackCatchUp(c, {
    ...base,
    nowMono: 400,
    obs: replica("10.0.0.1", false),
    leaderLast: { heardMono: 350, offset: 90 },
  });
  assert.equal(caughtUpWithLeader(down), null, "link down: starts over");
  const other = trackCatchUp(c, {
    ...base,
    leader: "10.0.0.2",
    nowMono: 400,
    obs: replica("10.0.0.1", true),
    leaderLast: null,
  });
  assert.equal(caughtUpWithLeader(other), false, "another leader: starts over");
});

Deno.test("chooseSuccessor: the synced one, else the highest offset read, else the first candidate", () => {
  const candidates = [{ address: "10.0.0.2" }, { address: "10.0.0.3" }];
  assert.equal(
    chooseSuccessor(candidates, {
      ok: true,
      chosen: { host: "10.0.0.3", port: 6379 },
      masterOffset: 9,
      replicaOffset: 9,
      waitedMs: 1,
    }),
    "10.0.0.3",
  );
  const offsets = [
    { host: "10.0.0.2", port: 6379, offset: 7 },
    { host: "10.0.0.3", port: 6379, offset: 8 },
  ];
  assert.equal(
    chooseSuccessor(candidates, { ok: false, reason: "t", masterOffset: 9, offsets }),
    "10.0.0.3",
  );
  const unread = offsets.map((o) => ({ ...o, offset: null }));
  assert.equal(
    chooseSuccessor(candidates, { ok: false, reason: "t", masterOffset: 9, offsets: unread }),
    "10.0.0.2",
  );
  assert.equal(chooseSuccessor(candidates, null), "10.0.0.2");
  assert.throws(() => chooseSuccessor([], null), RangeError);
});

Deno.test("proxyUpstream: the own redis goes through --redis-socket when set; other targets stay TCP", () => {
  const socket = "/run/redis/redis.sock";
  const local = { redisHost: "127.0.0.1", redisPort: 6379, redisSocket: socket };
  assert.deepEqual(proxyUpstream({ host: "127.0.0.1", port: 6379 }, local), { path: socket });
  assert.deepEqual(proxyUpstream({ host: "127.0.0.1", port: 6380 }, local), {
    host: "127.0.0.1",
    port: 6380,
  });
  assert.deepEqual(proxyUpstream({ host: "10.0.0.7", port: 6379 }, local), {
    host: "10.0.0.7",
    port: 6379,
  });
  assert.equal(proxyUpstream(null, local), null);
  assert.deepEqual(
    proxyUpstream({ host: "127.0.0.1", port: 6379 }, { ...local, redisSocket: null }),
    { host: "127.0.0.1", port: 6379 },
  );
});
