/**
 * Every branch of `readiness()` and `replicationLag()`, on hand-made statuses.
 */

import assert from "node:assert/strict";
import type { HiveStatus } from "../../lib/http/hive_status.ts";
import { readiness, READY_MAX_LAG_BYTES, replicationLag } from "../../lib/http/readiness.ts";
import {
  followerStatus,
  LEADER,
  LEADER_OFFSET,
  leaderStatus,
  REDIS_PORT,
} from "./hive_status_samples.ts";

function expectNotReady(status: HiveStatus, reason: string): void {
  assert.deepEqual(readiness(status), { ready: false, reason });
}

function leaderPeer(s: HiveStatus): HiveStatus["peers"][number] {
  const p = s.peers.find((x) => x.address === LEADER);
  assert.ok(p, "fixture has a leader peer");
  return p;
}

function obs(s: HiveStatus): NonNullable<HiveStatus["redis"]["observation"]> {
  const o = s.redis.observation;
  assert.ok(o, "fixture has an observation");
  return o;
}

Deno.test("readiness: starting and candidate are never ready", () => {
  const s = followerStatus();
  s.role = "starting";
  s.leader = null;
  expectNotReady(s, "starting: listening for a leader");
  s.role = "candidate";
  s.electionStartMs = 1_700_000_000_000;
  expectNotReady(s, "candidate: election in progress");
});

Deno.test("readiness: a settled leader is ready; each missing part is named", () => {
  assert.deepEqual(readiness(leaderStatus()), {
    ready: true,
    reason: "leader: redis is master, proxy listening",
  });
  let s = leaderStatus();
  s.redis.observation = null;
  expectNotReady(s, "leader: redis not observed yet");
  s = leaderStatus();
  obs(s).up = false;
  expectNotReady(s, "leader: redis not reachable");
  s = leaderStatus();
  obs(s).role = "replica";
  expectNotReady(s, "leader: redis is replica, not master yet");
  s = leaderStatus();
  obs(s).loading = true;
  expectNotReady(s, "leader: redis is loading its dataset");
  s = leaderStatus();
  s.proxy.listening = false;
  expectNotReady(s, "leader: proxy not listening");
  s = leaderStatus();
  s.proxy.target = null;
  expectNotReady(s, "leader: proxy has no target yet");
});

Deno.test("readiness: a caught-up follower is ready", () => {
  const s = followerStatus();
  obs(s).offset = LEADER_OFFSET - 100;
  assert.deepEqual(readiness(s), {
    ready: true,
    reason: `follower: replicating from ${LEADER}, 100 bytes behind`,
  });
  // Ahead of the leader's (older) report counts as 0 behind.
  obs(s).offset = LEADER_OFFSET + 500;
  assert.deepEqual(readiness(s), {
    ready: true,
    reason: `follower: replicating from ${LEADER}, 0 bytes behind`,
  });
});

Deno.test("readiness: follower branches about its own redis", () => {
  let s = followerStatus();
  s.leader = null;
  expectNotReady(s, "follower: no leader known");
  s = followerStatus();
  s.redis.observation = null;
  expectNotReady(s, "follower: redis not observed yet");
  s = followerStatus();
  obs(s).up = false;
  expectNotReady(s, "follower: redis not reachable");
  s = followerStatus();
  s.redis.target = { kind: "parked" };
  expectNotReady(s, `follower: redis parked until leader ${LEADER} can be synced from`);
  s = followerStatus();
  s.redis.target = { kind: "follow", host: "127.0.4.13", port: REDIS_PORT, expectRunId: null };
  expectNotReady(s, `follower: redis not yet pointed at leader ${LEADER}`);
  s = followerStatus();
  s.redis.target = { kind: "leader" };
  expectNotReady(s, `follower: redis not yet pointed at leader ${LEADER}`);
  s = followerStatus();
  Object.assign(obs(s), { role: "master", masterHost: null, masterPort: null });
  expectNotReady(s, `follower: redis is master, not yet a replica of ${LEADER}:${REDIS_PORT}`);
  s = followerStatus();
  Object.assign(obs(s), { masterHost: "127.0.0.1", masterPort: 1 });
  expectNotReady(
    s,
    `follower: redis replicates from 127.0.0.1:1, not the leader ${LEADER}:${REDIS_PORT}`,
  );
  s = followerStatus();
  obs(s).masterPort = 6390; // right host, wrong port
  expectNotReady(
    s,
    `follower: redis replicates from ${LEADER}:6390, not the leader ${LEADER}:${REDIS_PORT}`,
  );
  s = followerStatus();
  obs(s).loading = true;
  expectNotReady(s, `follower: redis loading the dataset from ${LEADER}`);
  s = followerStatus();
  obs(s).linkUp = false;
  expectNotReady(s, `follower: replication link to ${LEADER} down`);
});

Deno.test("readiness: follower branches about the leader's report", () => {
  let s = followerStatus();
  s.peers = s.peers.filter((p) => p.address !== LEADER);
  expectNotReady(s, `follower: no heartbeat report from leader ${LEADER} yet`);
  s = followerStatus();
  leaderPeer(s).redis = null;
  expectNotReady(s, `follower: no heartbeat report from leader ${LEADER} yet`);
  s = followerStatus();
  Object.assign(leaderPeer(s), { live: false, lastHeardAgoMs: 1234 });
  expectNotReady(s, `follower: leader ${LEADER} not heard for 1234 ms`);
  s = followerStatus();
  Object.assign(leaderPeer(s), { live: false, lastHeardAgoMs: null });
  expectNotReady(s, `follower: leader ${LEADER} not heard`);
  s = followerStatus();
  leaderPeer(s).redis!.up = false;
  expectNotReady(s, `follower: leader ${LEADER} reports its redis down`);
  s = followerStatus();
  obs(s).replId = "0000000000000000000000000000000000000000";
  expectNotReady(s, `follower: replication id differs from leader ${LEADER}'s (sync not done)`);
});

Deno.test("readiness: the lag bound is inclusive and configurable", () => {
  const s = followerStatus();
  obs(s).offset = LEADER_OFFSET - READY_MAX_LAG_BYTES;
  assert.equal(readiness(s).ready, true);
  obs(s).offset = LEADER_OFFSET - READY_MAX_LAG_BYTES - 1;
  expectNotReady(
    s,
    `follower: ${
      READY_MAX_LAG_BYTES + 1
    } bytes behind leader ${LEADER} (max ${READY_MAX_LAG_BYTES})`,
  );
  obs(s).offset = LEADER_OFFSET - 10;
  assert.equal(readiness(s, { maxLagBytes: 10 }).ready, true);
  assert.deepEqual(readiness(s, { maxLagBytes: 9 }), {
    ready: false,
    reason: `follower: 10 bytes behind leader ${LEADER} (max 9)`,
  });
  assert.throws(() => readiness(s, { maxLagBytes: -1 }), /maxLagBytes/);
  assert.throws(() => readiness(s, { maxLagBytes: 0.5 }), /maxLagBytes/);
});

Deno.test("readiness: an unknown role is a programmer error", () => {
  const s = followerStatus();
  (s as { role: string }).role = "emperor";
  assert.throws(() => readiness(s), /unknown role "emperor"/);
});

Deno.test("replicationLag: follower, leader, and when it cannot be told", () => {
  let s = followerStatus();
  obs(s).offset = LEADER_OFFSET - 4096;
  assert.deepEqual(replicationLag(s), {
    leader: LEADER,
    leaderOffset: LEADER_OFFSET,
    offset: LEADER_OFFSET - 4096,
    lagBytes: 4096,
  });
  obs(s).offset = LEADER_OFFSET + 1;
  assert.equal(replicationLag(s)?.lagBytes, 0);
  s = leaderStatus();
  assert.deepEqual(replicationLag(s), {
    leader: LEADER,
    leaderOffset: LEADER_OFFSET,
    offset: LEADER_OFFSET,
    lagBytes: 0,
  });
  s = followerStatus();
  s.role = "candidate";
  assert.equal(replicationLag(s), null);
  s = followerStatus();
  s.leader = null;
  assert.equal(replicationLag(s), null);
  s = followerStatus();
  obs(s).up = false;
  assert.equal(replicationLag(s), null);
  s = followerStatus();
  leaderPeer(s).redis = null;
  assert.equal(replicationLag(s), null);
  s = followerStatus();
  leaderPeer(s).redis!.up = false;
  assert.equal(replicationLag(s), null);
  s = followerStatus();
  obs(s).replId = "another";
  assert.equal(replicationLag(s), null);
});

Deno.test("readiness: a linked follower not yet at an offset the leader reported since the link came up", () => {
  const s = followerStatus();
  s.redis.caughtUpWithLeader = false;
  expectNotReady(
    s,
    `follower: link to ${LEADER} up, not yet at an offset the leader reported since`,
  );
  s.redis.caughtUpWithLeader = true;
  assert.equal(readiness(s).ready, true);
});
