/**
 * Unit tests of the election state machine, one node at a time, with hand-made heartbeats and
 * observations: no world, no network.
 */

import assert from "node:assert/strict";
import {
  compareCandidates,
  compareLeaders,
  compareLineage,
  Election as RealElection,
  type ElectionAction,
  type ElectionOptions,
} from "../../lib/election/election.ts";
import {
  type Heartbeat,
  HEARTBEAT_VERSION,
  type Lineage,
  UNKNOWN_REDIS,
} from "../../lib/election/heartbeat.ts";
import { REDIS_DOWN, type RedisObservation } from "../../lib/redis/redis_state.ts";
import type { Instant } from "../../lib/common/clock.ts";
import { sampleElectionOptions } from "../../testing/election_samples.ts";

/** `sentMs` of the hand-made heartbeats: stamped with the receive time (a fresh heartbeat). */
const SENT_ON_RECEIVE = -1;

/** The election, with hand-made heartbeats stamped fresh when they arrive. */
class Election extends RealElection {
  override receive(hb: Heartbeat, now: Instant): ElectionAction[] {
    return super.receive(hb.sentMs === SENT_ON_RECEIVE ? { ...hb, sentMs: now.wallMs } : hb, now);
  }
}

const SELF = "10.0.0.5";
const WALL0 = 1_700_000_000_000;

function options(extra: Partial<ElectionOptions> = {}): ElectionOptions {
  return sampleElectionOptions(SELF, extra);
}

function at(ms: number): Instant {
  return { monoMs: ms, wallMs: WALL0 + ms };
}

function master(runId = "run-self", replId = "repl-self"): RedisObservation {
  return {
    up: true,
    runId,
    role: "master",
    masterHost: null,
    masterPort: null,
    linkUp: false,
    loading: false,
    replId,
    offset: 0,
  };
}

function replicaOf(
  host: string,
  linkUp: boolean,
  runId = "run-self",
  replId = "repl-x",
): RedisObservation {
  return { ...master(runId, replId), role: "replica", masterHost: host, masterPort: 6379, linkUp };
}

const LINEAGE: Lineage = { bornMs: WALL0 - 60_000, bornBy: "10.0.0.1" };

function leaderHb(from: string, seq: number, extra: Partial<Heartbeat> = {}): Heartbeat {
  return {
    version: HEARTBEAT_VERSION,
    from,
    electionPort: 7379,
    redisPort: 6379,
    bootId: `boot-${from}`,
    seq,
    sentMs: SENT_ON_RECEIVE,
    role: "leader",
    leader: from,
    electionStartMs: null,
    leaderSinceMs: WALL0 - 30_000,
    groupSize: 2,
    handoffTo: null,
    redis: {
      ...UNKNOWN_REDIS,
      up: true,
      role: "master",
      runId: `run-${from}`,
      replId: `repl-${from}`,
      lineage: LINEAGE,
    },
    ...extra,
  };
}

function events(actions: ElectionAction[]): string[] {
  return actions.flatMap((a) => a.type === "event" ? [a.event.kind] : []);
}

function redisTargets(actions: ElectionAction[]): string[] {
  return actions.flatMap((a) => a.type === "redis" ? [JSON.stringify(a.target)] : []);
}

Deno.test("ranking: older lineage first, then larger group, earlier leadership, first address", () => {
  const young: Lineage = { bornMs: 2, bornBy: "10.0.0.1" };
  const old: Lineage = { bornMs: 1, bornBy: "10.0.0.9" };
  assert.ok(compareLineage(old, young) < 0);
  assert.ok(compareLineage(young, null) < 0, "any lineage beats none");
  assert.equal(compareLineage(null, null), 0);
  const base = { address: "10.0.0.2", lineage: old, groupSize: 2, leaderSinceMs: 10 };
  assert.ok(compareLeaders({ ...base, lineage: young, groupSize: 9 }, base) > 0, "lineage first");
  assert.ok(compareLeaders({ ...base, groupSize: 3 }, base) < 0, "larger group wins");
  assert.ok(compareLeaders({ ...base, leaderSinceMs: 5 }, base) < 0, "earlier leadership wins");
  assert.ok(compareLeaders({ ...base, address: "10.0.0.1" }, base) < 0, "first address wins");
  const c = { address: "10.0.0.2", lineage: null, offset: 0, electionStartMs: 100 };
  assert.ok(compareCandidates({ ...c, electionStartMs: 99 }, c) < 0, "first to start wins");
  assert.ok(compareCandidates({ ...c, address: "10.0.0.10" }, c) < 0, "alphabetical tie-break");
  assert.ok(compareCandidates({ ...c, lineage: young, electionStartMs: 500 }, c) < 0);
  // Within one lineage, the redis with more data wins, whoever started first.
  const d = { ...c, lineage: old, offset: 5000 };
  assert.ok(compareCandidates({ ...d, offset: 6000, electionStartMs: 900 }, d) < 0, "more data");
  assert.ok(compareCandidates({ ...d, lineage: young, offset: 9999 }, d) > 0, "lineage first");
});

Deno.test("bad options fail loudly", () => {
  assert.throws(() => new Election(options({ heartbeatMs: 0 })), /heartbeatMs/);
  assert.throws(() => new Election(options({ failureMs: 300 })), /failureMs/);
  // The same ratio as --failure-ms (FAILURE_TO_HEARTBEAT_MIN_RATIO): 2.5 heartbeats is too few.
  assert.throws(() => new Election(options({ failureMs: 500 })), /at least 3 x heartbeatMs/);
  assert.doesNotThrow(() => new Election(options({ failureMs: 600 })));
  assert.throws(() => new Election(options({ maxPeers: 0 })), /maxPeers/);
  const e = new Election(options());
  assert.throws(() => e.tick({ monoMs: NaN, wallMs: 0 }), /invalid instant/);
});

Deno.test("starting: a heartbeat from a leader makes it follow at once and point its redis", () => {
  const e = new Election(options());
  e.setPeers([SELF, "10.0.0.1"], at(0));
  e.observeRedis(replicaOf("127.0.0.1", false), at(1));
  assert.equal(e.role, "starting");
  const actions = e.receive(leaderHb("10.0.0.1", 1), at(20));
  assert.equal(e.role, "follower");
  assert.equal(e.leader, "10.0.0.1");
  assert.deepEqual(redisTargets(actions), [
    JSON.stringify({ kind: "follow", host: "10.0.0.1", port: 6379, expectRunId: "run-10.0.0.1" }),
  ]);
  const proxy = actions.find((a) => a.type === "proxy");
  assert.deepEqual(proxy, { type: "proxy", target: { host: "10.0.0.1", port: 6379 } });
  assert.equal(e.stats.elections, 0);
});

Deno.test("starting alone with data nowhere: listens, then stands, then leads and births a lineage", () => {
  const e = new Election(options());
  e.setPeers([SELF, "10.0.0.6"], at(0));
  e.observeRedis(master(), at(0));
  const peer: Heartbeat = {
    ...leaderHb("10.0.0.6", 1),
    role: "starting",
    leader: null,
    leaderSinceMs: null,
    groupSize: 0,
    redis: { ...UNKNOWN_REDIS, up: true, role: "master", runId: "r6" },
  };
  e.receive(peer, at(100));
  e.tick(at(900));
  assert.equal(e.role, "starting", "still listening inside the startup window");
  assert.ok(events(e.tick(at(1000))).includes("election-started"));
  assert.equal(e.role, "candidate");
  e.receive({ ...peer, seq: 2 }, at(1100));
  e.tick(at(1300));
  assert.equal(e.role, "candidate", "the election window has not passed");
  const won = e.tick(at(1400));
  assert.equal(e.role, "leader");
  assert.ok(events(won).includes("elected"));
  assert.deepEqual(e.lineage, { bornMs: WALL0 + 1400, bornBy: SELF });
  assert.deepEqual(redisTargets(won), [JSON.stringify({ kind: "leader" })]);
});

Deno.test("a better candidate makes this one wait; its leadership makes this one follow", () => {
  const e = new Election(options({ self: "10.0.0.5" }));
  e.setPeers(["10.0.0.5", "10.0.0.2"], at(0));
  e.observeRedis(master(), at(0));
  const rival: Heartbeat = {
    ...leaderHb("10.0.0.2", 1),
    role: "candidate",
    leader: null,
    leaderSinceMs: null,
    groupSize: 0,
    electionStartMs: WALL0 + 900, // started before us
    redis: { ...UNKNOWN_REDIS, up: true, role: "master", runId: "r2" },
  };
  e.receive({ ...rival, role: "starting", electionStartMs: null }, at(50));
  e.tick(at(1000));
  assert.equal(e.role, "candidate");
  e.receive({ ...rival, seq: 2 }, at(1050));
  e.tick(at(1500));
  assert.equal(e.role, "candidate", "the earlier candidate ranks first: do not declare");
  e.receive(
    leaderHb("10.0.0.2", 3, {
      redis: { ...rival.redis, lineage: { bornMs: WALL0 + 1450, bornBy: "10.0.0.2" } },
    }),
    at(1550),
  );
  assert.equal(e.role, "follower");
  assert.equal(e.leader, "10.0.0.2");
});

Deno.test("a follower whose leader goes silent for failureMs starts an election", () => {
  const e = new Election(options());
  e.setPeers([SELF, "10.0.0.1"], at(0));
  e.observeRedis(replicaOf("127.0.0.1", false), at(0));
  e.receive(leaderHb("10.0.0.1", 1), at(10));
  e.observeRedis(replicaOf("10.0.0.1", true, "run-self", "repl-10.0.0.1"), at(50));
  assert.deepEqual(e.lineage, LINEAGE, "synced: it holds the leader's lineage");
  e.tick(at(1000));
  assert.equal(e.role, "follower");
  const actions = e.tick(at(1010));
  assert.equal(e.role, "candidate");
  assert.ok(events(actions).includes("election-started"));
  assert.deepEqual(redisTargets(actions), [JSON.stringify({ kind: "parked" })]);
});

Deno.test("a leader that reports its redis down is given up at once, not after failureMs", () => {
  const e = new Election(options());
  e.setPeers([SELF, "10.0.0.1"], at(0));
  e.observeRedis(replicaOf("127.0.0.1", false), at(0));
  e.receive(leaderHb("10.0.0.1", 1), at(10));
  e.observeRedis(replicaOf("10.0.0.1", true, "run-self", "repl-10.0.0.1"), at(50));
  const down = leaderHb("10.0.0.1", 2);
  down.redis = { ...down.redis, up: false, role: "unknown" };
  e.receive(down, at(60));
  assert.equal(e.role, "candidate");
});

Deno.test("restart safety: a new run_id parks the local redis first and drops the lineage", () => {
  const e = new Election(options());
  e.setPeers([SELF, "10.0.0.1"], at(0));
  e.observeRedis(replicaOf("127.0.0.1", false), at(0));
  e.receive(leaderHb("10.0.0.1", 1), at(10));
  e.observeRedis(replicaOf("10.0.0.1", true, "run-self", "repl-10.0.0.1"), at(50));
  assert.notEqual(e.lineage, null);
  const actions = e.observeRedis(master("run-new", "repl-new"), at(100));
  assert.ok(events(actions).includes("redis-restarted"));
  assert.equal(e.lineage, null);
  const targets = redisTargets(actions);
  assert.equal(targets[0], JSON.stringify({ kind: "parked" }), "parked before anything else");
  assert.equal(
    targets.at(-1),
    JSON.stringify({
      kind: "follow",
      host: "10.0.0.1",
      port: 6379,
      expectRunId: "run-10.0.0.1",
    }),
  );
});

Deno.test("a follower whose link to the leader breaks parks until the leader speaks again", () => {
  const e = new Election(options());
  e.setPeers([SELF, "10.0.0.1"], at(0));
  e.observeRedis(replicaOf("127.0.0.1", false), at(0));
  e.receive(leaderHb("10.0.0.1", 1), at(10));
  e.observeRedis(replicaOf("10.0.0.1", true, "run-self", "repl-10.0.0.1"), at(50));
  const broke = e.observeRedis(replicaOf("10.0.0.1", false, "run-self", "repl-10.0.0.1"), at(100));
  assert.ok(events(broke).includes("parked-on-link-loss"));
  assert.deepEqual(redisTargets(broke), [JSON.stringify({ kind: "parked" })]);
  assert.equal(e.role, "follower", "still following: only the redis is parked");
  const again = e.receive(leaderHb("10.0.0.1", 2), at(200));
  assert.equal(JSON.parse(redisTargets(again)[0]!).kind, "follow");
});

Deno.test("an empty node is not eligible while it has recently heard a peer holding the dataset", () => {
  const e = new Election(options());
  e.setPeers([SELF, "10.0.0.1"], at(0));
  e.observeRedis(master(), at(0));
  const holder: Heartbeat = { ...leaderHb("10.0.0.1", 1), role: "follower", leader: null };
  e.receive(holder, at(10));
  e.tick(at(4000));
  assert.equal(e.role, "follower");
  assert.equal(e.leader, null, "waits: not eligible");
  assert.equal(e.snapshot(at(4000)).eligible, false);
  assert.equal(e.snapshot(at(10 + 5000)).eligible, true, "after the empty-promotion delay");
});

Deno.test("an empty node never follows a leader without data while it holds a lineage", () => {
  const e = new Election(options());
  e.setPeers([SELF, "10.0.0.1", "10.0.0.2"], at(0));
  e.observeRedis(replicaOf("127.0.0.1", false), at(0));
  e.receive(leaderHb("10.0.0.1", 1), at(10));
  e.observeRedis(replicaOf("10.0.0.1", true, "run-self", "repl-10.0.0.1"), at(50));
  // Another leader with a younger lineage shows up: not followed.
  const younger = leaderHb("10.0.0.2", 1, {
    groupSize: 5,
    redis: { ...leaderHb("10.0.0.2", 1).redis, lineage: { bornMs: WALL0, bornBy: "10.0.0.2" } },
  });
  e.receive(younger, at(60));
  assert.equal(e.leader, "10.0.0.1");
});

Deno.test("two leaders meet: the one with the smaller group follows the other", () => {
  const e = new Election(options({ self: "10.0.0.1" }));
  e.setPeers(["10.0.0.1", "10.0.0.9"], at(0));
  e.observeRedis(master(), at(0));
  const starting = leaderHb("10.0.0.9", 1, { role: "starting", leader: null, leaderSinceMs: null });
  e.receive({ ...starting, redis: { ...starting.redis, lineage: null } }, at(50));
  e.tick(at(1000));
  e.tick(at(1400));
  assert.equal(e.role, "leader");
  const myLineage = e.lineage!;
  const bigger = leaderHb("10.0.0.9", 2, {
    groupSize: 3,
    leaderSinceMs: WALL0 + 5000,
    redis: { ...starting.redis, lineage: myLineage },
  });
  e.receive(bigger, at(1500));
  assert.equal(e.role, "follower");
  assert.equal(e.leader, "10.0.0.9");
});

Deno.test("stale, duplicate and previous-boot heartbeats are dropped and counted", () => {
  const e = new Election(options());
  e.setPeers([SELF, "10.0.0.1"], at(0));
  e.receive(leaderHb("10.0.0.1", 5), at(10));
  e.receive(leaderHb("10.0.0.1", 5), at(11));
  e.receive(leaderHb("10.0.0.1", 4), at(12));
  assert.equal(e.stats.heartbeatsStale, 2);
  e.receive(leaderHb("10.0.0.1", 1, { bootId: "new-boot" }), at(13));
  e.receive(leaderHb("10.0.0.1", 6), at(14)); // the old boot again
  assert.equal(e.stats.heartbeatsStale, 2);
  assert.equal(e.stats.heartbeatsOldBoot, 1);
  e.receive(leaderHb(SELF, 1), at(15));
  assert.equal(e.stats.heartbeatsFromSelf, 1);
});

Deno.test("the peer table is bounded by maxPeers; refusals are counted", () => {
  const e = new Election(options({ maxPeers: 2 }));
  const actions = e.setPeers(["10.0.0.1", "10.0.0.2", "10.0.0.3"], at(0));
  assert.equal(e.snapshot(at(0)).peers.length, 2);
  assert.equal(e.stats.peersRefused, 1);
  assert.ok(events(actions).includes("peer-refused"));
  e.receive(leaderHb("10.0.0.4", 1), at(5));
  assert.equal(e.stats.peersRefused, 2);
});

Deno.test("heartbeats: every heartbeatMs to every peer, at once on a change, replies to newcomers", () => {
  const e = new Election(options());
  const sends = (actions: ElectionAction[]) => actions.filter((a) => a.type === "send");
  assert.equal(sends(e.setPeers([SELF, "10.0.0.1", "10.0.0.2"], at(0))).length, 1);
  assert.equal(sends(e.tick(at(100))).length, 0);
  const due = sends(e.tick(at(200)));
  assert.equal(due.length, 1);
  assert.deepEqual(due[0]!.type === "send" && due[0]!.to.map((t) => t.host), [
    "10.0.0.1",
    "10.0.0.2",
  ]);
  const seqs = [e.tick(at(400)), e.tick(at(600))].flatMap(sends).map((a) =>
    a.type === "send" ? a.heartbeat.seq : 0
  );
  assert.ok(seqs[1]! > seqs[0]!, "sequence numbers increase");
  // A new peer is answered at once, by unicast.
  const reply = sends(
    e.receive({ ...leaderHb("10.0.0.3", 1), role: "starting", leader: null }, at(650)),
  );
  assert.equal(reply.length, 1);
  assert.deepEqual(reply[0]!.type === "send" && reply[0]!.to, [{ host: "10.0.0.3", port: 7379 }]);
  // A change of report goes out at once.
  assert.equal(sends(e.observeRedis(master(), at(660))).length, 1);
});

Deno.test("restored state: the same redis process keeps its lineage across a hive restart", () => {
  const e = new Election(options({ restored: { runId: "run-self", lineage: LINEAGE } }));
  const actions = e.observeRedis(replicaOf("10.0.0.1", true), at(0));
  assert.deepEqual(e.lineage, LINEAGE);
  assert.ok(actions.some((a) => a.type === "persist"));
  const other = new Election(options({ restored: { runId: "another-run", lineage: LINEAGE } }));
  other.observeRedis(master(), at(0));
  assert.equal(other.lineage, null, "another redis process: the lineage is not restored");
});

Deno.test("handoff: the leader names its most caught-up follower, which takes over with no election", () => {
  const e = new Election(options({ self: "10.0.0.1" }));
  e.setPeers(["10.0.0.1", "10.0.0.2", "10.0.0.3"], at(0));
  e.observeRedis(master(), at(0));
  for (const p of ["10.0.0.2", "10.0.0.3"]) {
    e.receive({ ...leaderHb(p, 1), role: "starting", leader: null, redis: UNKNOWN_REDIS }, at(10));
  }
  e.tick(at(1000));
  e.tick(at(1400));
  assert.equal(e.role, "leader");
  const lineage = e.lineage;
  const follower = (from: string, seq: number, offset: number, linkUp = true): Heartbeat => ({
    ...leaderHb(from, seq),
    role: "follower",
    leader: "10.0.0.1",
    leaderSinceMs: null,
    redis: { ...leaderHb(from, seq).redis, role: "replica", linkUp, offset, lineage },
  });
  e.receive(follower("10.0.0.2", 2, 500), at(1500));
  e.receive(follower("10.0.0.3", 2, 900), at(1500));
  assert.equal(e.successor(at(1500)), "10.0.0.3", "the most caught-up follower");
  e.receive(follower("10.0.0.3", 3, 900, false), at(1510));
  assert.equal(e.successor(at(1510)), "10.0.0.2", "a follower with its link down does not qualify");
  const actions = e.handOff("10.0.0.2", at(1520));
  assert.equal(e.role, "follower");
  assert.equal(e.leader, "10.0.0.2");
  const sent = actions.find((a) => a.type === "send");
  assert.ok(sent?.type === "send" && sent.heartbeat.handoffTo === "10.0.0.2");
  assert.deepEqual(
    redisTargets(actions),
    [JSON.stringify({ kind: "parked" })],
    "read-only at once",
  );
  assert.deepEqual(actions.find((a) => a.type === "proxy"), { type: "proxy", target: null });
  // The successor has not claimed yet: the old leader waits, it does not stand.
  e.tick(at(1600));
  assert.equal(e.role, "follower");

  // On the successor's side: a heartbeat from its leader naming it makes it lead at once.
  const s = new Election(options({ self: "10.0.0.2" }));
  s.setPeers(["10.0.0.1", "10.0.0.2"], at(0));
  s.observeRedis(replicaOf("127.0.0.1", false, "run-self"), at(0));
  s.receive(leaderHb("10.0.0.1", 1), at(10));
  s.observeRedis(replicaOf("10.0.0.1", true, "run-self", "repl-10.0.0.1"), at(20));
  const handing: Heartbeat = {
    ...leaderHb("10.0.0.1", 2),
    role: "follower",
    leader: "10.0.0.2",
    handoffTo: "10.0.0.2",
  };
  const took = s.receive(handing, at(30));
  assert.equal(s.role, "leader");
  assert.ok(events(took).includes("role-changed"));
  assert.equal(s.stats.elections, 0);
  // A third node waits for the successor instead of standing.
  const t = new Election(options({ self: "10.0.0.3" }));
  t.setPeers(["10.0.0.1", "10.0.0.2", "10.0.0.3"], at(0));
  t.observeRedis(replicaOf("127.0.0.1", false, "run-self"), at(0));
  t.receive(leaderHb("10.0.0.1", 1), at(10));
  t.receive({ ...handing, seq: 3 }, at(40));
  assert.equal(t.role, "follower");
  assert.equal(t.leader, "10.0.0.1", "still waiting for the successor to claim");
  t.receive(leaderHb("10.0.0.2", 1), at(50));
  assert.equal(t.leader, "10.0.0.2");
  assert.equal(t.stats.elections, 0);
});

Deno.test("one-way cut: a worse-ranked leader that keeps leading for failureMs is followed", () => {
  const e = new Election(options({ self: "10.0.0.1" }));
  e.setPeers(["10.0.0.1", "10.0.0.9"], at(0));
  e.observeRedis(master(), at(0));
  const starting = leaderHb("10.0.0.9", 1, { role: "starting", leader: null, leaderSinceMs: null });
  e.receive({ ...starting, redis: { ...starting.redis, lineage: null } }, at(50));
  e.tick(at(1000));
  e.tick(at(1400));
  assert.equal(e.role, "leader");
  // 10.0.0.9 leads too, ranks after this node (later leadership) and never yields: it does
  // not hear this node.
  const worse = (seq: number) =>
    leaderHb("10.0.0.9", seq, {
      groupSize: 1,
      leaderSinceMs: WALL0 + 9000,
      redis: { ...starting.redis, lineage: e.lineage },
    });
  e.receive(worse(2), at(1500));
  e.receive(worse(3), at(2000));
  assert.equal(e.role, "leader", "within failureMs it may still yield: keep leading");
  e.receive(worse(4), at(2510));
  assert.equal(e.role, "follower");
  assert.equal(e.leader, "10.0.0.9");
});

/** A leader 10.0.0.1 with followers 10.0.0.2 (offset 500) and 10.0.0.3 (offset 900). */
function leaderWithFollowers(): Election {
  const e = new Election(options({ self: "10.0.0.1" }));
  e.setPeers(["10.0.0.1", "10.0.0.2", "10.0.0.3"], at(0));
  e.observeRedis(master(), at(0));
  for (const p of ["10.0.0.2", "10.0.0.3"]) {
    e.receive({ ...leaderHb(p, 1), role: "starting", leader: null, redis: UNKNOWN_REDIS }, at(10));
  }
  e.tick(at(1000));
  e.tick(at(1400));
  assert.equal(e.role, "leader");
  const lineage = e.lineage;
  for (const [from, offset] of [["10.0.0.2", 500], ["10.0.0.3", 900]] as const) {
    e.receive({
      ...leaderHb(from, 2),
      role: "follower",
      leader: "10.0.0.1",
      leaderSinceMs: null,
      redis: { ...leaderHb(from, 2).redis, role: "replica", linkUp: true, offset, lineage },
    }, at(1500));
  }
  return e;
}

Deno.test("crash handoff: a leader whose redis died stops leading at once and asks for the offsets; no election", () => {
  const e = leaderWithFollowers();
  const elections = e.stats.elections;
  const actions = e.observeRedis(REDIS_DOWN, at(1600));
  assert.equal(e.role, "follower");
  assert.equal(e.leader, null);
  const ask = actions.find((a) => a.type === "crash-handoff");
  assert.deepEqual(ask, {
    type: "crash-handoff",
    candidates: [
      { address: "10.0.0.3", redisPort: 6379 },
      { address: "10.0.0.2", redisPort: 6379 },
    ],
  });
  assert.ok(events(actions).includes("crash-handoff"));
  const sent = actions.find((a) => a.type === "send");
  assert.ok(sent?.type === "send" && sent.heartbeat.handoffTo === "10.0.0.1", "choosing: wait");
  assert.deepEqual(actions.find((a) => a.type === "proxy"), { type: "proxy", target: null });
  // Only a candidate may be chosen; the runtime picks the most caught up by the real offsets.
  e.handOff("10.0.0.9", at(1605));
  assert.equal(e.leader, null);
  const handed = e.handOff("10.0.0.2", at(1610));
  assert.equal(e.leader, "10.0.0.2");
  const hb = handed.find((a) => a.type === "send");
  assert.ok(hb?.type === "send" && hb.heartbeat.handoffTo === "10.0.0.2");
  assert.equal(e.stats.elections, elections);
  // The successor claims: the crash handoff is over, the old leader just follows.
  e.receive(leaderHb("10.0.0.2", 5), at(1620));
  const later = e.tick(at(1900));
  assert.equal(e.leader, "10.0.0.2");
  assert.ok(!events(later).includes("crash-handoff-abandoned"));
  assert.equal(e.snapshot(at(1900)).role, "follower");
});

Deno.test("crash handoff: the followers wait for the choice instead of standing, then follow the successor", () => {
  const t = new Election(options({ self: "10.0.0.3" }));
  t.setPeers(["10.0.0.1", "10.0.0.2", "10.0.0.3"], at(0));
  t.observeRedis(replicaOf("127.0.0.1", false, "run-self"), at(0));
  t.receive(leaderHb("10.0.0.1", 1), at(10));
  const choosing: Heartbeat = {
    ...leaderHb("10.0.0.1", 2),
    role: "follower",
    leader: null,
    handoffTo: "10.0.0.1",
    redis: { ...leaderHb("10.0.0.1", 2).redis, up: false, role: "unknown" },
  };
  t.receive(choosing, at(20));
  assert.equal(t.role, "follower");
  assert.equal(t.leader, "10.0.0.1", "waits while the dead master's hive chooses");
  assert.equal(t.stats.elections, 0);
  t.receive({ ...choosing, seq: 3, leader: "10.0.0.2", handoffTo: "10.0.0.2" }, at(25));
  assert.equal(t.leader, "10.0.0.1", "waits for the successor to claim");
  t.receive(leaderHb("10.0.0.2", 1), at(30));
  assert.equal(t.leader, "10.0.0.2");
  assert.equal(t.stats.elections, 0);
});

Deno.test("crash handoff falls back to the election: no candidate answered, or the successor did not lead in time", () => {
  // No offset read: abandoned at once; the followers then see "leader stepped down" and stand.
  const a = leaderWithFollowers();
  a.observeRedis(REDIS_DOWN, at(1600));
  const gaveUp = a.abandonCrashHandoff("no candidate answered", at(1700));
  assert.ok(events(gaveUp).includes("crash-handoff-abandoned"));
  const hb = gaveUp.find((x) => x.type === "send");
  assert.ok(hb?.type === "send" && hb.heartbeat.handoffTo === null && hb.heartbeat.leader === null);
  // A late choice after giving up is ignored.
  a.handOff("10.0.0.2", at(1710));
  assert.equal(a.leader, null);

  // Chosen, but the successor never claims: after crashHandoffMs the old leader gives up.
  const b = leaderWithFollowers();
  b.observeRedis(REDIS_DOWN, at(1600));
  b.handOff("10.0.0.3", at(1605));
  b.tick(at(1600 + b.timing.crashHandoffMs - 1));
  assert.equal(b.leader, "10.0.0.3");
  const timedOut = b.tick(at(1600 + b.timing.crashHandoffMs));
  assert.ok(events(timedOut).includes("crash-handoff-abandoned"));
  assert.equal(b.leader, null);

  // Never chosen (the runtime is stuck): the same bound.
  const c = leaderWithFollowers();
  c.observeRedis(REDIS_DOWN, at(1600));
  assert.ok(events(c.tick(at(1600 + c.timing.crashHandoffMs))).includes("crash-handoff-abandoned"));

  // No eligible follower at all (both silent): a plain step-down, as before.
  const d = leaderWithFollowers();
  d.tick(at(2600));
  assert.equal(d.role, "leader");
  const down = d.observeRedis(REDIS_DOWN, at(2600));
  assert.ok(!down.some((x) => x.type === "crash-handoff"));
  assert.equal(d.role, "follower");
});

Deno.test("crash handoff after an empty restart seen first (new run_id): the lost lineage's followers are the candidates", () => {
  const e = leaderWithFollowers();
  const actions = e.observeRedis(master("run-new", "repl-new"), at(1600));
  assert.ok(events(actions).includes("redis-restarted"));
  assert.equal(e.lineage, null);
  const ask = actions.find((a) => a.type === "crash-handoff");
  assert.ok(ask?.type === "crash-handoff" && ask.candidates.length === 2);
  assert.equal(e.role, "follower");
  assert.ok(redisTargets(actions).every((t) => !t.includes('"leader"')), "never re-promoted");
});

Deno.test("early win: a candidate that hears every live peer stand below it leads before the window closes", () => {
  const setup = () => {
    const e = new Election(options());
    e.setPeers([SELF, "10.0.0.1", "10.0.0.9"], at(0));
    e.observeRedis(replicaOf("127.0.0.1", false), at(0));
    e.receive(leaderHb("10.0.0.1", 1), at(10));
    e.observeRedis(replicaOf("10.0.0.1", true, "run-self", "repl-10.0.0.1"), at(50));
    e.receive(
      { ...leaderHb("10.0.0.9", 1), role: "follower", leader: "10.0.0.1", leaderSinceMs: null },
      at(60),
    );
    assert.equal(e.lineage?.bornBy, LINEAGE.bornBy);
    return e;
  };
  const rival = (seq: number, startMs: number): Heartbeat => ({
    ...leaderHb("10.0.0.9", seq),
    role: "candidate",
    leader: null,
    leaderSinceMs: null,
    electionStartMs: WALL0 + startMs,
    redis: { ...leaderHb("10.0.0.9", seq).redis, role: "replica" },
  });

  // The leader's pod is lost: silent for failureMs. The other follower keeps talking.
  const e = setup();
  e.receive(
    { ...rival(2, 0), role: "follower", leader: "10.0.0.1", electionStartMs: null },
    at(900),
  );
  e.tick(at(1010));
  assert.equal(e.role, "candidate");
  // Still a follower peer: no early win; its candidacy (started later, so it ranks below) is.
  e.tick(at(1100));
  assert.equal(e.role, "candidate");
  e.receive(rival(3, 1030), at(1040));
  assert.equal(e.role, "leader", "led at once, before the 400 ms window");
  assert.equal(e.stats.elections, 1);

  // A rival that ranks first (it stood earlier): wait, and follow it when it leads.
  const f = setup();
  f.receive(
    { ...rival(2, 0), role: "follower", leader: "10.0.0.1", electionStartMs: null },
    at(900),
  );
  f.tick(at(1010));
  f.receive(rival(3, 1000), at(1020));
  assert.equal(f.role, "candidate");
  f.tick(at(1010 + f.timing.electionWindowMs));
  assert.equal(f.role, "candidate", "the better rival wins the window");
});
