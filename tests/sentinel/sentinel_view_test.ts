/**
 * What the Sentinel endpoint may announce, from election snapshots: the confirmed master only
 * (the proxy target), at the leader's announced address, never `--redis-host`; null while there
 * is none, during a handoff, or before the leader's redis is seen as master.
 */

import assert from "node:assert/strict";
import type { ElectionSnapshot, PeerView } from "../../lib/election/election.ts";
import { HEARTBEAT_VERSION, type RedisReport } from "../../lib/election/heartbeat.ts";
import { NOT_LEADING } from "../../lib/election/fence.ts";
import { sentinelViewOf } from "../../lib/sentinel/sentinel_view.ts";

const OPTS = { redisPort: 6379, sentinelPort: 26379 };

function redis(role: RedisReport["role"], runId: string, extra: Partial<RedisReport> = {}) {
  return {
    up: true,
    role,
    runId,
    replId: "r",
    offset: 100,
    linkUp: role === "replica",
    loading: false,
    lineage: null,
    ...extra,
  } satisfies RedisReport;
}

function peer(address: string, report: RedisReport, live = true, redisPort = 6379): PeerView {
  return {
    address,
    electionPort: 7379,
    inPeerSet: true,
    lastHeardAgoMs: 10,
    live,
    last: {
      version: HEARTBEAT_VERSION,
      from: address,
      electionPort: 7379,
      redisPort,
      bootId: "b",
      seq: 1,
      sentMs: 0,
      role: report.role === "master" ? "leader" : "follower",
      leader: null,
      electionStartMs: null,
      leaderSinceMs: null,
      groupSize: 0,
      handoffTo: null,
      redis: report,
    },
  };
}

function snapshot(s: Partial<ElectionSnapshot>): ElectionSnapshot {
  return {
    id: "10.0.0.2",
    role: "follower",
    leader: null,
    electionStartMs: null,
    leaderSinceMs: null,
    lineage: null,
    eligible: true,
    redisTarget: { kind: "parked" },
    proxyTarget: null,
    redis: redis("replica", "self"),
    peers: [],
    stats: {
      heartbeatsReceived: 0,
      heartbeatsStale: 0,
      heartbeatsOldBoot: 0,
      heartbeatsExpired: 0,
      heartbeatsFromSelf: 0,
      heartbeatsSent: 0,
      repliesSuppressed: 0,
      peersRefused: 0,
      peersEvicted: 0,
      elections: 0,
      leaderChanges: 0,
      fences: 0,
      leaseProbesSent: 0,
      leaseEchoesSent: 0,
      leaseEchoesReceived: 0,
      leaseStale: 0,
    },
    fence: NOT_LEADING,
    ...s,
  };
}

Deno.test("sentinel view: a follower announces the leader's redis the proxy targets", () => {
  const view = sentinelViewOf(
    snapshot({
      leader: "10.0.0.1",
      proxyTarget: { host: "10.0.0.1", port: 6390 },
      peers: [
        peer("10.0.0.1", redis("master", "run-1"), true, 6390),
        peer("10.0.0.3", redis("replica", "run-3")),
      ],
    }),
    OPTS,
  );
  assert.deepEqual(view.master, { ip: "10.0.0.1", port: 6390, runId: "run-1" });
  assert.deepEqual(view.replicas.map((r) => `${r.ip}:${r.port}:${r.up}`), [
    "10.0.0.2:6379:true",
    "10.0.0.3:6379:true",
  ]);
  assert.deepEqual(view.sentinels, [
    { ip: "10.0.0.1", port: 26379, live: true },
    { ip: "10.0.0.3", port: 26379, live: true },
  ]);
  assert.equal(view.self, "10.0.0.2");
});

Deno.test("sentinel view: the leader announces its own address, not --redis-host", () => {
  const view = sentinelViewOf(
    snapshot({
      id: "10.0.0.1",
      role: "leader",
      leader: "10.0.0.1",
      proxyTarget: { host: "127.0.0.1", port: 6379 },
      redis: redis("master", "run-1"),
      peers: [
        peer("10.0.0.2", redis("replica", "run-2")),
        peer("10.0.0.3", redis("replica", "r3"), false),
      ],
    }),
    OPTS,
  );
  assert.deepEqual(view.master, { ip: "10.0.0.1", port: 6379, runId: "run-1" });
  assert.deepEqual(view.replicas.map((r) => [r.ip, r.up]), [["10.0.0.2", true], [
    "10.0.0.3",
    false,
  ]]);
  assert.deepEqual(view.sentinels.map((s) => [s.ip, s.live]), [["10.0.0.2", true], [
    "10.0.0.3",
    false,
  ]]);
});

Deno.test("sentinel view: no proxy target (election, crashed master, handoff, not yet confirmed): no master", () => {
  for (
    const s of [
      snapshot({ role: "candidate" }),
      // The leader is known, but its redis is not (yet, or any more) a confirmed master.
      snapshot({ leader: "10.0.0.1", peers: [peer("10.0.0.1", redis("replica", "run-1"))] }),
      // A leader whose own redis is down.
      snapshot({
        id: "10.0.0.1",
        role: "leader",
        leader: "10.0.0.1",
        redis: redis("unknown", "x", { up: false }),
      }),
      // A handoff: the old leader follows its successor, whose redis is still a replica.
      snapshot({
        id: "10.0.0.1",
        leader: "10.0.0.2",
        peers: [peer("10.0.0.2", redis("replica", "run-2"))],
      }),
    ]
  ) {
    assert.equal(sentinelViewOf(s, OPTS).master, null, JSON.stringify(s.role));
  }
});
