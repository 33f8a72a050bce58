/**
 * Readiness: whether this node should receive traffic (`GET /readyz`), decided from its
 * {@link HiveStatus} alone, with a one-line reason Kubernetes shows in its events.
 *
 * Ready means the role has settled and the local redis does what that role needs:
 *
 * - a **leader**'s redis is up, master, not loading, and the master proxy listens with a target;
 * - a **follower**'s redis is up, a replica of the leader's redis (the address the election
 *   pointed it at), its link is up, it is not loading, it holds the leader's replication id and
 *   its offset is at most {@link READY_MAX_LAG_BYTES} behind the offset the leader last reported
 *   in its heartbeat;
 * - a node still `starting` or `candidate` is never ready.
 *
 * Every reason starts with the role and a colon (`follower: replication link to 127.0.0.13
 * down`), so a reason alone tells what the node is and what it waits for.
 *
 * @example
 * ```ts
 * import { readiness } from "./readiness.ts";
 * declare const hive: { status(): import("./hive_status.ts").HiveStatus }; // a running Hive
 * const { ready, reason } = readiness(hive.status());
 * console.log(ready ? "ready" : `not ready: ${reason}`);
 * ```
 */

import type { HiveStatus } from "./hive_status.ts";

/**
 * A follower whose redis is more than this many bytes behind the leader's last reported offset
 * is not ready. Heartbeats carry the leader's offset every `heartbeatMs` (200 ms by default), so
 * a caught-up replica under a steady write load lags by about what the leader writes in that
 * time; 1 MiB leaves room for about 5 MB/s of writes before readiness flaps.
 */
export const READY_MAX_LAG_BYTES = 1_048_576;

/** The answer of {@link readiness}. */
export interface Readiness {
  /** True when `/readyz` answers 200. */
  ready: boolean;
  /** One line, starting with the role: why (not) ready. */
  reason: string;
}

/** Options of {@link readiness}. */
export interface ReadinessOptions {
  /** Largest replication lag (bytes) of a ready follower; default {@link READY_MAX_LAG_BYTES}. */
  maxLagBytes?: number;
}

/** Where a follower's replication stands against the leader's last report. */
export interface ReplicationLag {
  /** The leader's address. */
  leader: string;
  /** `master_repl_offset` the leader last reported in its heartbeat. */
  leaderOffset: number;
  /** This node's own observed offset. */
  offset: number;
  /**
   * Bytes behind the leader's report, never negative (the leader's report is up to one
   * heartbeat old, so a caught-up replica can be ahead of it).
   */
  lagBytes: number;
}

/**
 * This node's replication lag behind the leader, or null when it cannot be told: the node does
 * not follow a leader, its redis was not observed up, the leader's redis report is missing or
 * down, or the two hold different replication ids (offsets of different histories do not
 * compare). A leader lags by 0 behind itself.
 *
 * @example
 * ```ts
 * import { replicationLag } from "./readiness.ts";
 * declare const hive: { status(): import("./hive_status.ts").HiveStatus }; // a running Hive
 * const lag = replicationLag(hive.status());
 * if (lag !== null) console.log(`${lag.lagBytes} bytes behind ${lag.leader}`);
 * ```
 */
export function replicationLag(status: HiveStatus): ReplicationLag | null {
  const obs = status.redis.observation;
  if (obs === null || !obs.up || status.leader === null) return null;
  if (status.role === "leader") {
    return { leader: status.id, leaderOffset: obs.offset, offset: obs.offset, lagBytes: 0 };
  }
  if (status.role !== "follower") return null;
  const report = leaderPeer(status)?.redis ?? null;
  if (report === null || !report.up) return null;
  if (report.replId !== null && obs.replId !== null && report.replId !== obs.replId) return null;
  return {
    leader: status.leader,
    leaderOffset: report.offset,
    offset: obs.offset,
    lagBytes: Math.max(0, report.offset - obs.offset),
  };
}

/**
 * Decides readiness from a status; pure.
 *
 * @example
 * ```ts
 * import { readiness } from "./readiness.ts";
 * declare const hive: { status(): import("./hive_status.ts").HiveStatus }; // a running Hive
 * const r = readiness(hive.status());
 * // { ready: false, reason: "candidate: election in progress" }
 * ```
 */
export function readiness(status: HiveStatus, options: ReadinessOptions = {}): Readiness {
  const maxLagBytes = options.maxLagBytes ?? READY_MAX_LAG_BYTES;
  if (!Number.isSafeInteger(maxLagBytes) || maxLagBytes < 0) {
    throw new RangeError(`maxLagBytes must be a non-negative integer, got ${maxLagBytes}`);
  }
  switch (status.role) {
    case "starting":
      return notReady("starting: listening for a leader");
    case "candidate":
      return notReady("candidate: election in progress");
    case "leader":
      return leaderReadiness(status);
    case "follower":
      return followerReadiness(status, maxLagBytes);
    default:
      throw new Error(`readiness: unknown role ${JSON.stringify(status.role)}`);
  }
}

function leaderReadiness(status: HiveStatus): Readiness {
  const obs = status.redis.observation;
  if (obs === null) return notReady("leader: redis not observed yet");
  if (!obs.up) return notReady("leader: redis not reachable");
  if (obs.role !== "master") return notReady(`leader: redis is ${obs.role}, not master yet`);
  if (obs.loading) return notReady("leader: redis is loading its dataset");
  if (!status.proxy.listening) return notReady("leader: proxy not listening");
  if (status.proxy.target === null) return notReady("leader: proxy has no target yet");
  return { ready: true, reason: "leader: redis is master, proxy listening" };
}

function followerReadiness(status: HiveStatus, maxLagBytes: number): Readiness {
  const leader = status.leader;
  if (leader === null) return notReady("follower: no leader known");
  const obs = status.redis.observation;
  if (obs === null) return notReady("follower: redis not observed yet");
  if (!obs.up) return notReady("follower: redis not reachable");
  const target = status.redis.target;
  if (target.kind === "parked") {
    return notReady(`follower: redis parked until leader ${leader} can be synced from`);
  }
  if (target.kind !== "follow" || target.host !== leader) {
    return notReady(`follower: redis not yet pointed at leader ${leader}`);
  }
  const want = `${target.host}:${target.port}`;
  if (obs.role !== "replica") {
    return notReady(`follower: redis is ${obs.role}, not yet a replica of ${want}`);
  }
  if (obs.masterHost !== target.host || obs.masterPort !== target.port) {
    return notReady(
      `follower: redis replicates from ${obs.masterHost}:${obs.masterPort}, not the leader ${want}`,
    );
  }
  if (obs.loading) return notReady(`follower: redis loading the dataset from ${leader}`);
  if (!obs.linkUp) return notReady(`follower: replication link to ${leader} down`);
  const peer = leaderPeer(status);
  if (peer === null || peer.redis === null) {
    return notReady(`follower: no heartbeat report from leader ${leader} yet`);
  }
  if (!peer.live) {
    const ago = peer.lastHeardAgoMs === null ? "" : ` for ${peer.lastHeardAgoMs} ms`;
    return notReady(`follower: leader ${leader} not heard${ago}`);
  }
  if (!peer.redis.up) return notReady(`follower: leader ${leader} reports its redis down`);
  if (peer.redis.replId !== null && obs.replId !== null && peer.redis.replId !== obs.replId) {
    return notReady(`follower: replication id differs from leader ${leader}'s (sync not done)`);
  }
  if (status.redis.caughtUpWithLeader === false) {
    return notReady(
      `follower: link to ${leader} up, not yet at an offset the leader reported since`,
    );
  }
  const lagBytes = Math.max(0, peer.redis.offset - obs.offset);
  if (lagBytes > maxLagBytes) {
    return notReady(`follower: ${lagBytes} bytes behind leader ${leader} (max ${maxLagBytes})`);
  }
  return { ready: true, reason: `follower: replicating from ${leader}, ${lagBytes} bytes behind` };
}

function leaderPeer(status: HiveStatus): HiveStatus["peers"][number] | null {
  return status.peers.find((p) => p.address === status.leader) ?? null;
}

function notReady(reason: string): Readiness {
  return { ready: false, reason };
}
