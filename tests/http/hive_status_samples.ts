/**
 * Hand-made {@link HiveStatus} objects for the tests of the HTTP surface (readiness, metrics,
 * the status server and its page): a settled three-node hive seen from one of its nodes.
 *
 * @example
 * ```ts
 * import { followerStatus } from "./hive_status_samples.ts";
 * const s = followerStatus(); // 127.0.4.12 following 127.0.4.11, caught up
 * s.redis.observation!.linkUp = false;
 * ```
 */

import {
  DATAGRAM_DROP_REASONS,
  type DatagramDropReason,
  type HiveStatus,
} from "../../lib/http/hive_status.ts";
import type { Lineage, RedisReport } from "../../lib/election/heartbeat.ts";
import type { RedisObservation } from "../../lib/redis/redis_state.ts";

/** The leader of the fixture hive. */
export const LEADER = "127.0.4.11";
/** The node whose status {@link followerStatus} shows. */
export const FOLLOWER = "127.0.4.12";
/** The third node. */
export const OTHER = "127.0.4.13";
/** Every node's redis port. */
export const REDIS_PORT = 6379;
/** The leader's replication id. */
export const REPL_ID = "8f1c0e2d3b4a59687766554433221100ffeeddcc";
/** The dataset lineage every node holds. */
export const LINEAGE: Lineage = { bornMs: 1_700_000_000_000, bornBy: LEADER };
/** The leader's replication offset. */
export const LEADER_OFFSET = 5_000_000;

function report(role: RedisReport["role"], offset: number, linkUp: boolean): RedisReport {
  return {
    up: true,
    role,
    runId: `run-${role}-${offset}`,
    replId: REPL_ID,
    offset,
    linkUp,
    loading: false,
    lineage: LINEAGE,
  };
}

function observation(extra: Partial<RedisObservation>): RedisObservation {
  return {
    up: true,
    runId: "run-self",
    role: "replica",
    masterHost: LEADER,
    masterPort: REDIS_PORT,
    linkUp: true,
    loading: false,
    replId: REPL_ID,
    offset: LEADER_OFFSET,
    ...extra,
  };
}

function zeroDrops(): Record<DatagramDropReason, number> {
  return Object.fromEntries(DATAGRAM_DROP_REASONS.map((r) => [r, 0])) as Record<
    DatagramDropReason,
    number
  >;
}

function common(id: string): Omit<HiveStatus, "role" | "leader" | "peers" | "redis"> {
  return {
    id,
    eligible: true,
    lineage: LINEAGE,
    electionStartMs: null,
    leaderSinceMs: 1_700_000_100_000,
    proxy: {
      engine: "epoll",
      engineReason: "auto: linux/x86_64 with --allow-ffi",
      workers: 2,
      workersSource: "cpus",
      target: { host: LEADER, port: REDIS_PORT },
      upstream: `${LEADER}:${REDIS_PORT}`,
      listening: true,
      stats: {
        active: 3,
        proxied: 2,
        waiting: 1,
        total: 40,
        refused: 1,
        held: 5,
        holdTimeouts: 0,
        upstreamFailures: 0,
        closedByTargetChange: 4,
        targetChanges: 2,
        bytesToUpstream: 12_345,
        bytesToClient: 67_890,
        bufferedBytes: 0,
      },
    },
    discovery: {
      attempts: 10,
      resolves: 8,
      failures: 2,
      empties: 0,
      consecutiveFailures: 0,
      droppedPeers: 0,
      lastError: "timeout",
      lastSuccessAgoMs: 1200,
      peers: 3,
    },
    election: {
      heartbeatsReceived: 900,
      heartbeatsStale: 3,
      heartbeatsOldBoot: 0,
      heartbeatsExpired: 0,
      heartbeatsFromSelf: 0,
      heartbeatsSent: 1000,
      peersRefused: 0,
      peersEvicted: 0,
      repliesSuppressed: 0,
      elections: 2,
      leaderChanges: 3,
      fences: 0,
      leaseProbesSent: 0,
      leaseEchoesSent: 0,
      leaseEchoesReceived: 0,
      leaseStale: 0,
    },
    runtime: {
      datagramsReceived: 905,
      datagramsDropped: zeroDrops(),
      redisCommands: 4,
      enforceFailures: 0,
      observations: 600,
      stateFileErrors: 0,
      proxyAcceptErrors: 0,
      logLinesSuppressed: 0,
    },
    history: [
      { atWallMs: 1_700_000_090_000, kind: "election-started", message: "election started: x" },
      {
        atWallMs: 1_700_000_100_000,
        kind: "role-changed",
        message: `candidate -> follower (leader ${LEADER}): heard the leader`,
      },
    ],
    failovers: {
      bucketsMs: [100, 250, 500, 1000, 2000, 5000, 10_000],
      bucketCounts: [0, 1, 2, 2, 3, 3, 3],
      count: 3,
      sumMs: 2_900,
      lastMs: 1_500,
    },
    uptimeMs: 60_000,
    lastTickAgoMs: 10,
    fence: {
      mode: "auto",
      armed: false,
      fenced: false,
      reason: "not leading",
      heard: [],
      needed: 1,
      peerSetSize: 1,
      applied: "idle",
      fencedForMs: 0,
      fencedTotalMs: 0,
      actuator: { holds: 0, refusals: 0, lifts: 0, failures: 0 },
      lastError: null,
    },
    security: { authenticated: true, warnings: [] },
    http: null,
    limits: { nofileSoft: 1_048_576, nofileHard: 1_048_576, maxConnections: 10_000 },
  };
}

/** A caught-up follower ({@link FOLLOWER}) of {@link LEADER}, fresh for every call. */
export function followerStatus(): HiveStatus {
  return {
    ...common(FOLLOWER),
    role: "follower",
    leader: LEADER,
    peers: [
      {
        address: LEADER,
        role: "leader",
        leader: LEADER,
        live: true,
        lastHeardAgoMs: 40,
        inPeerSet: true,
        redis: report("master", LEADER_OFFSET, false),
      },
      {
        address: OTHER,
        role: "follower",
        leader: LEADER,
        live: true,
        lastHeardAgoMs: 90,
        inPeerSet: true,
        redis: report("replica", LEADER_OFFSET - 2_000, true),
      },
    ],
    redis: {
      ...report("replica", LEADER_OFFSET, true),
      target: { kind: "follow", host: LEADER, port: REDIS_PORT, expectRunId: "run-master" },
      observation: observation({}),
      caughtUpWithLeader: true,
    },
  };
}

/** The settled leader ({@link LEADER}), fresh for every call. */
export function leaderStatus(): HiveStatus {
  return {
    ...common(LEADER),
    role: "leader",
    leader: LEADER,
    peers: [FOLLOWER, OTHER].map((address, i) => ({
      address,
      role: "follower",
      leader: LEADER,
      live: true,
      lastHeardAgoMs: 50 + i * 30,
      inPeerSet: true,
      redis: report("replica", LEADER_OFFSET - i * 1_000, true),
    })),
    redis: {
      ...report("master", LEADER_OFFSET, false),
      target: { kind: "leader" },
      caughtUpWithLeader: null,
      observation: observation({
        role: "master",
        masterHost: null,
        masterPort: null,
        linkUp: false,
      }),
    },
    proxy: { ...common(LEADER).proxy, target: { host: "127.0.0.1", port: REDIS_PORT } },
  };
}
