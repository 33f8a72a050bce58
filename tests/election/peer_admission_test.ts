/**
 * The peer table's admission rules (lib/election/peer_admission.ts, applied by the election):
 * listed peers (DNS or --peers) always get a place ahead of peers only heard, a refused listed
 * peer is retried without a new DNS answer, and a leader claim without a redis run_id is never
 * followed (the run_id guard could not check it).
 */

import assert from "node:assert/strict";
import { Election, type ElectionAction } from "../../lib/election/election.ts";
import { evictionVictim } from "../../lib/election/peer_admission.ts";
import { type Heartbeat, UNKNOWN_REDIS } from "../../lib/election/heartbeat.ts";
import {
  SAMPLE_WALL_MS,
  sampleElectionOptions,
  sampleHeartbeat,
} from "../../testing/election_samples.ts";
import type { Instant } from "../../lib/common/clock.ts";

const SELF = "10.0.0.5";
const WALL0 = SAMPLE_WALL_MS;

function at(ms: number): Instant {
  return { monoMs: ms, wallMs: WALL0 + ms };
}

function election(maxPeers: number): Election {
  return new Election(sampleElectionOptions(SELF, { maxPeers }));
}

const hb = sampleHeartbeat;

function leaderHb(from: string, seq: number, runId: string | null): Heartbeat {
  return hb(from, seq, {
    role: "leader",
    leader: from,
    leaderSinceMs: WALL0 - 30_000,
    groupSize: 99,
    redis: {
      ...UNKNOWN_REDIS,
      up: true,
      role: "master",
      runId,
      replId: "repl",
      lineage: { bornMs: 1, bornBy: "10.0.0.1" },
    },
  });
}

function events(actions: ElectionAction[]): string[] {
  return actions.flatMap((a) => a.type === "event" ? [a.event.kind] : []);
}

function tracked(e: Election, now: Instant): string[] {
  return e.snapshot(now).peers.map((p) => p.address);
}

Deno.test("admission: peers only heard fill the table, a listed newcomer still gets a place", () => {
  const e = election(4);
  e.setPeers([SELF, "10.0.0.1"], at(0));
  for (let i = 0; i < 10; i++) e.receive(hb(`10.66.0.${i + 1}`, 1), at(10 + i));
  assert.equal(tracked(e, at(20)).length, 4, "bounded by maxPeers");
  assert.ok(tracked(e, at(20)).includes("10.0.0.1"), "a listed peer is never pushed out");
  assert.equal(e.stats.peersRefused, 7);
  const actions = e.setPeers([SELF, "10.0.0.1", "10.0.0.2"], at(30));
  assert.ok(tracked(e, at(30)).includes("10.0.0.2"), "the listed newcomer got a place");
  assert.deepEqual(events(actions), ["peer-evicted"]);
  assert.equal(e.stats.peersEvicted, 1);
  // Heard-only peers cannot take it back.
  e.receive(hb("10.66.0.99", 1), at(40));
  assert.ok(tracked(e, at(40)).includes("10.0.0.2"));
  assert.ok(!tracked(e, at(40)).includes("10.66.0.99"));
  // The newcomer's heartbeats are heard.
  e.receive(hb("10.0.0.2", 1), at(50));
  assert.equal(e.peer("10.0.0.2", at(50))?.last?.seq, 1);
});

Deno.test("admission: the victim is heard-only, not the leader, heard least recently", () => {
  const views = [
    { address: "10.0.0.1", inPeerSet: true, lastHeardMono: null },
    { address: "10.0.0.7", inPeerSet: false, lastHeardMono: 5 },
    { address: "10.0.0.8", inPeerSet: false, lastHeardMono: 50 },
    { address: "10.0.0.9", inPeerSet: false, lastHeardMono: 1 },
  ];
  assert.equal(evictionVictim(views, null), "10.0.0.9");
  assert.equal(evictionVictim(views, "10.0.0.9"), "10.0.0.7");
  assert.equal(evictionVictim(views.slice(0, 1), null), null);
  assert.equal(
    evictionVictim([
      { address: "10.0.0.3", inPeerSet: false, lastHeardMono: null },
      { address: "10.0.0.4", inPeerSet: false, lastHeardMono: null },
    ], null),
    "10.0.0.4",
  );
});

Deno.test("admission: a refused listed peer is retried without a new peer set", () => {
  const e = election(1);
  e.setPeers([SELF], at(0));
  // A heard-only leader takes the only place; this node follows it.
  e.observeRedis({
    up: true,
    runId: "run-self",
    role: "replica",
    masterHost: "127.0.0.1",
    masterPort: 1,
    linkUp: false,
    loading: false,
    replId: null,
    offset: 0,
  }, at(0));
  e.receive(leaderHb("10.66.0.1", 1, "run-x"), at(10));
  assert.equal(e.leader, "10.66.0.1");
  // A listed peer cannot evict the followed leader: refused once, counted once.
  e.setPeers([SELF, "10.0.0.2"], at(20));
  assert.equal(e.stats.peersRefused, 1);
  for (let t = 100; t <= 900; t += 100) e.tick(at(t));
  assert.equal(e.stats.peersRefused, 1, "retries are not counted again");
  assert.ok(!tracked(e, at(900)).includes("10.0.0.2"));
  // The leader falls silent and is no longer followed: the listed peer gets its place at once.
  for (let t = 1000; t <= 1200; t += 50) e.tick(at(t));
  assert.notEqual(e.leader, "10.66.0.1");
  assert.ok(tracked(e, at(1200)).includes("10.0.0.2"), "retried with the same peer set");
});

Deno.test("admission: a leader claim without a redis run_id is never followed", () => {
  const e = election(8);
  e.setPeers([SELF, "10.0.0.1"], at(0));
  e.receive(leaderHb("10.0.0.1", 1, null), at(10));
  e.tick(at(20));
  assert.notEqual(e.leader, "10.0.0.1", "runId null would skip the run_id guard");
  e.receive(leaderHb("10.0.0.1", 2, "run-1"), at(30));
  assert.equal(e.leader, "10.0.0.1");
});
