/**
 * Scenario tests of the election, told as stories: several nodes of the real state machine in
 * the simulated world (sim/world.ts), with the checker (sim/checker.ts) watching the safety rules
 * at every step. No sockets, no real time: each story runs in milliseconds and replays exactly.
 */

import assert from "node:assert/strict";
import { Checker } from "../../sim/checker.ts";
import { type SimNode, World } from "../../sim/world.ts";

const FAILURE_MS = 1000;
const ELECTION_WINDOW_MS = 400;

function story(nodes: number, seed = 1): { world: World; checker: Checker } {
  const world = new World({ seed, nodes, failureMs: FAILURE_MS, heartbeatMs: 200 });
  for (const n of world.nodes) world.setDns(n, "full");
  const checker = new Checker(world, { settleMs: 3 * FAILURE_MS, graceMs: 6 * FAILURE_MS });
  return { world, checker };
}

function leaders(world: World): SimNode[] {
  return world.nodes.filter((n) => n.hive?.role === "leader");
}

function theLeader(world: World): SimNode {
  const ls = leaders(world);
  assert.equal(ls.length, 1, `expected one leader, got ${ls.map((n) => n.address)}`);
  return ls[0]!;
}

/** Runs until `cond` holds, at most `limitMs`; returns the time it took. */
function until(world: World, cond: () => boolean, limitMs: number, what: string): number {
  const start = world.now;
  world.run(limitMs, cond);
  assert.ok(cond(), `${what}: not within ${limitMs} ms`);
  return world.now - start;
}

function assertSettled(checker: Checker): void {
  assert.deepEqual(checker.violations, []);
  assert.ok(checker.converged(), "one leader, everyone following it with a live link");
}

function originOf(n: SimNode): number {
  assert.ok(n.redis !== null, `${n.address} has no redis`);
  return n.redis.origin.id;
}

Deno.test("cold start of 3: one leader, two replicas in sync, one dataset", () => {
  const { world, checker } = story(3);
  world.startAll();
  until(world, () => checker.converged(), 5000, "cold start");
  world.run(3000);
  assertSettled(checker);
  const leader = theLeader(world);
  for (const n of world.nodes) assert.equal(originOf(n), originOf(leader));
});

Deno.test("simultaneous start with equal clocks: the alphabetically first address wins the tie", () => {
  const { world, checker } = story(5);
  world.startAll();
  until(world, () => checker.converged(), 5000, "cold start");
  assert.equal(theLeader(world).address, "10.0.0.1");
  assert.deepEqual(checker.violations, []);
});

Deno.test("a newcomer hears the leader and follows it at once, with no election", () => {
  const { world, checker } = story(4);
  for (const n of world.nodes.slice(0, 3)) world.startNode(n);
  until(
    world,
    () =>
      leaders(world).length === 1 &&
      world.nodes.slice(0, 3).every((n) => n.hive!.role !== "candidate"),
    10_000,
    "first three settle (they wait for the missing fourth up to the empty-promotion delay)",
  );
  world.run(2000);
  const leader = theLeader(world);
  const electionsBefore = world.nodes.slice(0, 3).reduce((s, n) => s + n.hive!.stats.elections, 0);
  const newcomer = world.nodes[3]!;
  world.startNode(newcomer);
  const tookMs = until(
    world,
    () => newcomer.hive!.role === "follower" && newcomer.hive!.leader === leader.address,
    FAILURE_MS,
    "newcomer follows",
  );
  assert.ok(tookMs < FAILURE_MS, "followed before its startup listening window ended");
  assert.equal(newcomer.hive!.stats.elections, 0, "the newcomer never ran an election");
  const electionsAfter = world.nodes.slice(0, 3).reduce((s, n) => s + n.hive!.stats.elections, 0);
  assert.equal(electionsAfter, electionsBefore, "nobody else ran one either");
  until(world, () => checker.converged(), 3000, "newcomer syncs");
  assert.equal(theLeader(world), leader);
  assert.equal(originOf(newcomer), originOf(leader));
});

Deno.test("the leader's pod is lost: a follower holding the dataset takes over", () => {
  const { world, checker } = story(3);
  world.startAll();
  until(world, () => checker.converged(), 5000, "cold start");
  world.run(2000);
  const old = theLeader(world);
  const dataset = originOf(old);
  world.crashNode(old);
  const tookMs = until(
    world,
    () => leaders(world).length === 1 && theLeader(world).redis?.role === "master",
    5000,
    "failover",
  );
  // Failure detection plus one election window, and a few ticks of slack.
  assert.ok(tookMs <= FAILURE_MS + ELECTION_WINDOW_MS + 300, `failover took ${tookMs} ms`);
  const next = theLeader(world);
  assert.notEqual(next, old);
  assert.equal(originOf(next), dataset, "the new master holds the old dataset");
  world.startNode(old);
  until(world, () => checker.converged(), 5000, "old pod rejoins");
  assert.equal(theLeader(world), next, "the returning pod follows, it does not take over");
  assert.equal(originOf(old), dataset);
  assert.deepEqual(checker.violations, []);
});

for (const parked of [true, false]) {
  const how = parked ? "parked (as the manifests start it)" : "as a plain master";
  Deno.test(`the leader's redis crashes and restarts empty within 300 ms, ${how}: nothing is wiped`, () => {
    const { world, checker } = story(3, parked ? 11 : 12);
    world.startAll();
    until(world, () => checker.converged(), 5000, "cold start");
    world.run(2000);
    const old = theLeader(world);
    const dataset = originOf(old);
    world.crashRedis(old);
    world.queue.after(250, () => world.startRedis(old, parked));
    const tookMs = until(
      world,
      () => leaders(world).length === 1 && theLeader(world) !== old,
      3000,
      "a new leader",
    );
    // The old leader reports its redis down at once: no failure timeout to wait for.
    assert.ok(tookMs < FAILURE_MS, `failover took ${tookMs} ms`);
    until(world, () => checker.converged(), 5000, "settles");
    assert.deepEqual(checker.violations, []);
    for (const n of world.nodes) assert.equal(originOf(n), dataset, `${n.address} kept the data`);
    assert.equal(old.hive!.role, "follower", "the restarted redis is demoted");
  });
}

Deno.test("the leader's hive dies while its redis lives, then comes back: one leader, old redis demoted", () => {
  const { world, checker } = story(3, 5);
  world.startAll();
  until(world, () => checker.converged(), 5000, "cold start");
  world.run(1000);
  const old = theLeader(world);
  const dataset = originOf(old);
  world.crashHive(old);
  until(world, () => leaders(world).some((n) => n !== old), 5000, "a new leader");
  world.startHive(old);
  until(world, () => checker.converged(), 5000, "settles");
  assert.notEqual(theLeader(world), old);
  assert.equal(old.redis!.role, "replica");
  for (const n of world.nodes) assert.equal(originOf(n), dataset);
  assert.deepEqual(checker.violations, []);
});

Deno.test("partition and heal: the isolated old leader yields to the larger group", () => {
  const { world, checker } = story(5, 3);
  world.startAll();
  until(world, () => checker.converged(), 5000, "cold start");
  world.run(1000);
  const old = theLeader(world);
  const minority = [old, world.nodes.find((n) => n !== old)!];
  const majority = world.nodes.filter((n) => !minority.includes(n));
  for (const a of minority) {
    for (const b of majority) {
      world.block(a, b);
      world.block(b, a);
    }
  }
  checker.disturb();
  until(world, () => majority.some((n) => n.hive!.role === "leader"), 5000, "majority elects");
  const majorityLeader = majority.find((n) => n.hive!.role === "leader")!;
  assert.equal(old.hive!.role, "leader", "no quorum: the minority keeps its leader");
  world.run(2000);
  world.healPartitions();
  checker.disturb();
  until(world, () => checker.converged(), 5000, "heal");
  assert.equal(theLeader(world), majorityLeader, "the larger group's leader stays");
  assert.deepEqual(checker.violations, []);
});

Deno.test("clock skew changes who wins, never whether they agree", () => {
  const { world, checker } = story(3, 9);
  // 10.0.0.3's clock runs 5 s behind: its election timestamp looks earliest.
  world.nodes[2]!.wallSkewMs = -5000;
  world.nodes[0]!.wallSkewMs = 4000;
  world.startAll();
  until(world, () => checker.converged(), 5000, "cold start");
  assert.equal(theLeader(world).address, "10.0.0.3");
  world.run(3000);
  assertSettled(checker);
});

Deno.test("a new redis that restarted empty is not promoted while a peer holds the dataset", () => {
  const { world, checker } = story(3, 21);
  world.startAll();
  until(world, () => checker.converged(), 5000, "cold start");
  world.run(1000);
  const leader = theLeader(world);
  const dataset = originOf(leader);
  // The leader's pod is lost for good and, at the same moment, every follower's redis
  // restarts empty: the dataset is gone, but the followers cannot know it at once.
  const followers = world.nodes.filter((n) => n !== leader);
  world.crashNode(leader);
  for (const f of followers) world.crashRedis(f);
  world.run(300);
  for (const f of followers) world.startRedis(f, true);
  world.run(3 * FAILURE_MS);
  assert.equal(leaders(world).length, 0, "no empty redis is elected right away");
  assert.ok(followers.every((f) => f.hive!.lineage === null));
  // The dataset is gone with the pod; after the empty-promotion delay they elect anew.
  until(world, () => leaders(world).length === 1, 10_000, "a fresh leader");
  assert.notEqual(originOf(theLeader(world)), dataset);
  assert.deepEqual(checker.violations, []);
});

Deno.test("the checker catches a wipe: a replica that syncs from a master restarted empty", () => {
  // No hives here: redis processes driven by hand, so nothing protects the replica.
  const world = new World({ seed: 2, nodes: 2 });
  const checker = new Checker(world, { settleMs: 3000, graceMs: 6000 });
  const [a, b] = world.nodes as [SimNode, SimNode];
  world.startRedis(a, true);
  world.startRedis(b, true);
  world.enforce(a, { kind: "leader" });
  world.enforce(b, { kind: "follow", host: a.address, port: 6379, expectRunId: null });
  world.run(200);
  assert.equal(b.redis!.link, "up");
  a.redisStartsParked = true; // not the documented plain-master limitation: count it as a wipe
  world.crashRedis(a);
  world.startRedis(a, false);
  world.run(2000); // b's replication cron reconnects to the empty master
  assert.equal(checker.violations.length, 1);
  assert.equal(checker.violations[0]!.rule, "dataset wiped");
});

Deno.test("rolling update: the leader hands over at once, with no election, and nothing is wiped", () => {
  const { world, checker } = story(3, 31);
  world.startAll();
  until(world, () => checker.converged(), 5000, "cold start");
  world.run(1000);
  for (let round = 0; round < 6; round++) {
    const old = theLeader(world);
    const dataset = originOf(old);
    const electionsBefore = world.nodes.reduce((s, n) => s + (n.hive?.stats.elections ?? 0), 0);
    const successor = world.gracefulStop(old, 300);
    assert.ok(successor !== null, "a caught-up follower exists");
    const tookMs = until(
      world,
      () =>
        leaders(world).length === 1 && theLeader(world).address === successor &&
        theLeader(world).redis?.role === "master",
      1000,
      "the successor leads",
    );
    assert.ok(tookMs < 100, `handover took ${tookMs} ms`);
    const electionsAfter = world.nodes.reduce((s, n) => s + (n.hive?.stats.elections ?? 0), 0);
    assert.equal(electionsAfter, electionsBefore, "no election");
    world.run(500);
    world.startNode(old);
    until(world, () => checker.converged(), 5000, "the pod is back");
    for (const n of world.nodes) assert.equal(originOf(n), dataset);
  }
  assert.deepEqual(checker.violations, []);
});

function elections(world: World): number {
  return world.nodes.reduce((s, n) => s + (n.hive?.stats.elections ?? 0), 0);
}

function leaderChanges(world: World): number {
  return world.nodes.reduce((s, n) => s + (n.hive?.stats.leaderChanges ?? 0), 0);
}

Deno.test("a busy leader's redis (scripts, pauses up to just under the hang timeout) keeps its leader", () => {
  const { world, checker } = story(3, 41);
  world.startAll();
  until(world, () => checker.converged(), 5000, "cold start");
  world.run(1000);
  const leader = theLeader(world);
  const changes = leaderChanges(world);
  for (const busyMs of [700, 2000, world.redisHangMs - 200]) {
    world.busyRedis(leader, busyMs);
    world.run(busyMs + 1000);
    assert.equal(theLeader(world), leader, `after ${busyMs} ms busy`);
    assert.equal(leaderChanges(world), changes, `no leader change after ${busyMs} ms busy`);
  }
  until(world, () => checker.converged(), 5000, "settled");
  assert.deepEqual(checker.violations, []);
});

Deno.test("the leader's redis paused past the hang timeout: handed over to a follower, no election", () => {
  const { world, checker } = story(3, 42);
  world.startAll();
  until(world, () => checker.converged(), 5000, "cold start");
  world.run(1000);
  const old = theLeader(world);
  const dataset = originOf(old);
  const before = elections(world);
  world.busyRedis(old, world.redisHangMs + 2000);
  world.run(world.redisHangMs - 100);
  assert.equal(theLeader(world), old, "still leading within the hang timeout");
  const tookMs = until(
    world,
    () => leaders(world).length === 1 && theLeader(world) !== old,
    500,
    "a new leader",
  );
  assert.ok(tookMs < 200, `handed over ${tookMs} ms after the hang timeout`);
  assert.equal(elections(world), before, "a crash handoff, not an election");
  until(world, () => checker.converged(), 8000, "the paused redis answers again and follows");
  for (const n of world.nodes) assert.equal(originOf(n), dataset);
  assert.deepEqual(checker.violations, []);
});

Deno.test("crash handoff: the master redis crashes, the most caught-up follower leads within milliseconds, no election", () => {
  const { world, checker } = story(3, 43);
  world.startAll();
  until(world, () => checker.converged(), 5000, "cold start");
  world.run(1000);
  const old = theLeader(world);
  const dataset = originOf(old);
  const before = elections(world);
  world.crashRedis(old);
  const tookMs = until(
    world,
    () =>
      leaders(world).length === 1 && theLeader(world) !== old &&
      theLeader(world).redis?.role === "master",
    1000,
    "a new master",
  );
  // Crash seen at once, offsets read (3 ms), handoff heard (a datagram), REPLICAOF NO ONE.
  assert.ok(tookMs < 50, `took ${tookMs} ms`);
  assert.equal(elections(world), before, "no election");
  world.startRedis(old, true);
  until(world, () => checker.converged(), 5000, "settles");
  for (const n of world.nodes) assert.equal(originOf(n), dataset);
  assert.deepEqual(checker.violations, []);
});

for (const how of ["partitioned", "stalled", "restarted empty"] as const) {
  Deno.test(`crash handoff: the successor is ${how} at the crash: bounded, then an election; nothing wiped`, () => {
    const { world, checker } = story(3, 44);
    world.startAll();
    until(world, () => checker.converged(), 5000, "cold start");
    world.run(1000);
    const old = theLeader(world);
    const dataset = originOf(old);
    const heir = world.byAddress(old.hive!.successors(world.instant(old))[0]!.address)!;
    world.crashRedis(old);
    if (how === "partitioned") {
      for (const m of world.nodes) if (m !== heir) world.block(heir, m), world.block(m, heir);
    } else if (how === "stalled") world.stallHive(heir, 1500);
    else {
      world.crashRedis(heir);
      world.queue.after(200, () => world.startRedis(heir, true));
    }
    until(
      world,
      () => world.nodes.some((n) => n !== old && n.hive?.role === "leader"),
      5000,
      "some node leads",
    );
    world.run(500);
    world.healPartitions();
    world.startRedis(old, true);
    until(world, () => checker.converged(), 10_000, "settles");
    for (const n of world.nodes) assert.equal(originOf(n), dataset, `${n.address} kept the data`);
    assert.deepEqual(checker.violations, []);
  });
}
