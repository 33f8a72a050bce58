/**
 * What the Sentinel endpoint reports, and how it is read from the election: a pure function of
 * an {@link ElectionSnapshot}, so what is safe to announce is decided in one place.
 *
 * The master is announced only when the election has a proxy target: the leader's redis once
 * the hive has confirmed it is a master (the leader observed its own redis answering as
 * master, or a follower heard the leader's heartbeat say so). While there is none (an election,
 * a crashed master redis, a handoff in progress, a leader that stopped acknowledging writes)
 * the master is null: `SENTINEL get-master-addr-by-name` answers a null array and the clients
 * retry, as they do with Sentinel during a failover. The proxy obeys the same target, so the
 * endpoint never sends a client where the proxy would not.
 *
 * Addresses are the nodes' announced addresses (pod IPs) and their redis ports as their
 * heartbeats say, never `--redis-host` (which is how a hive reaches its own redis, usually
 * 127.0.0.1). The other sentinels are the other hives on the same `--sentinel-port` (every pod
 * of a Deployment has the same ports).
 *
 * @example
 * ```ts
 * import { sentinelViewOf } from "./sentinel_view.ts";
 * import type { ElectionSnapshot } from "../election/election.ts";
 * declare const snapshot: ElectionSnapshot; // hive.election.snapshot(clock.now())
 * const view = sentinelViewOf(snapshot, {
 *   redisPort: 6379,
 *   sentinelPort: 26379,
 * });
 * console.log(view.master); // { ip: "10.0.0.7", port: 6379, runId: "..." } or null
 * ```
 */

import type { ElectionSnapshot } from "../election/election.ts";

/** The master as announced. */
export interface SentinelMaster {
  ip: string;
  port: number;
  /** Its redis `run_id` (empty when unknown). */
  runId: string;
}

/** One replica: a redis that is not the master, as its hive last reported it. */
export interface SentinelReplica {
  ip: string;
  port: number;
  runId: string;
  /** Its hive is heard and its redis answers. */
  up: boolean;
  /** Its replication link to the master is up. */
  linkUp: boolean;
  offset: number;
}

/** Another hive's Sentinel endpoint. */
export interface SentinelPeer {
  ip: string;
  port: number;
  /** Its heartbeats are heard. */
  live: boolean;
}

/** Everything the endpoint answers from. */
export interface SentinelView {
  /** This hive's address (its node id). */
  self: string;
  /** The confirmed master, or null while there is none. */
  master: SentinelMaster | null;
  replicas: SentinelReplica[];
  /** The other hives' endpoints (this one excluded, as Sentinel does). */
  sentinels: SentinelPeer[];
}

/** What {@link sentinelViewOf} needs besides the snapshot. */
export interface SentinelViewOptions {
  /** This node's redis port (`--redis-port`), announced for its own redis. */
  redisPort: number;
  /** The Sentinel port every hive listens on (`--sentinel-port`). */
  sentinelPort: number;
}

/**
 * The view of the endpoint for an election snapshot.
 *
 * @example
 * ```ts
 * import { sentinelViewOf } from "./sentinel_view.ts";
 * import type { ElectionSnapshot } from "../election/election.ts";
 * declare const snapshot: ElectionSnapshot;
 * const view = sentinelViewOf(snapshot, { redisPort: 6379, sentinelPort: 26379 });
 * ```
 */
export function sentinelViewOf(
  snap: ElectionSnapshot,
  opts: SentinelViewOptions,
): SentinelView {
  let master: SentinelMaster | null = null;
  if (snap.proxyTarget !== null && snap.leader !== null) {
    if (snap.role === "leader") {
      master = { ip: snap.id, port: opts.redisPort, runId: snap.redis.runId ?? "" };
    } else {
      const leader = snap.peers.find((p) => p.address === snap.leader);
      master = {
        ip: snap.proxyTarget.host,
        port: snap.proxyTarget.port,
        runId: leader?.last?.redis.runId ?? "",
      };
    }
  }
  const replicas: SentinelReplica[] = [];
  const isMaster = (ip: string) => master !== null && master.ip === ip;
  if (!isMaster(snap.id) && snap.redis.role === "replica") {
    replicas.push({
      ip: snap.id,
      port: opts.redisPort,
      runId: snap.redis.runId ?? "",
      up: snap.redis.up,
      linkUp: snap.redis.linkUp,
      offset: snap.redis.offset,
    });
  }
  for (const p of snap.peers) {
    const hb = p.last;
    if (hb === null || isMaster(p.address) || hb.redis.role !== "replica") continue;
    replicas.push({
      ip: p.address,
      port: hb.redisPort,
      runId: hb.redis.runId ?? "",
      up: p.live && hb.redis.up,
      linkUp: p.live && hb.redis.linkUp,
      offset: hb.redis.offset,
    });
  }
  replicas.sort((a, b) => a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : 0);
  const sentinels = snap.peers
    .filter((p) => p.address !== snap.id && (p.inPeerSet || p.live))
    .map((p) => ({ ip: p.address, port: opts.sentinelPort, live: p.live }));
  return { self: snap.id, master, replicas, sentinels };
}
