/**
 * The heartbeat: the one message hive nodes exchange, carried in one UDP datagram.
 *
 * This file holds only the message's shape and its constants; the byte encoding (envelope,
 * HMAC, limits) lives in `codec.ts`, and the rules that act on it in `election.ts`.
 *
 * @example
 * ```ts
 * import { HEARTBEAT_VERSION, type Heartbeat } from "./heartbeat.ts";
 * const hb: Heartbeat = {
 *   version: HEARTBEAT_VERSION, from: "127.0.0.11", electionPort: 7379, redisPort: 6379,
 *   bootId: "4f2a9c0d1e7b3a55", seq: 1, sentMs: Date.now(), role: "starting", leader: null,
 *   electionStartMs: null, leaderSinceMs: null, groupSize: 0, handoffTo: null,
 *   redis: UNKNOWN_REDIS,
 * };
 * ```
 */

/**
 * Wire format version. A datagram with another version is dropped and counted. Version 2 added
 * `sentMs` (replay protection across restarts, see replay_guard.ts).
 */
export const HEARTBEAT_VERSION = 2;

/** The role a hive node reports. `starting` listens for a leader before any election. */
export type Role = "starting" | "candidate" | "leader" | "follower";

/** Every role, in the order `/status` documents them. */
export const ROLES: readonly Role[] = ["starting", "candidate", "leader", "follower"];

/**
 * A dataset lineage: which "birth" of the dataset a redis holds.
 *
 * A lineage is born when a leader is elected while no reachable node holds any data (a fresh
 * cluster). Replicas that complete a sync from a leader inherit the leader's lineage; a redis
 * whose process restarts (new `run_id`) loses it. Older lineages (smaller `bornMs`, then
 * smaller `bornBy`) win over younger ones, so an empty node elected in isolation can never
 * overwrite the real dataset when the groups meet again.
 */
export interface Lineage {
  /** Wall-clock milliseconds at which the lineage was born. */
  bornMs: number;
  /** Address of the node that was elected when it was born. */
  bornBy: string;
}

/** What a hive knows about its own redis, as carried in every heartbeat. */
export interface RedisReport {
  /** The hive can talk to its redis (the last observation succeeded). */
  up: boolean;
  /** The redis role as observed, `unknown` while down or not yet observed. */
  role: "master" | "replica" | "unknown";
  /** The redis process's `run_id` (new at every redis start), or null before the first observation. */
  runId: string | null;
  /** `master_replid` from INFO replication. */
  replId: string | null;
  /** `master_repl_offset` from INFO replication. */
  offset: number;
  /** For a replica: `master_link_status:up`. */
  linkUp: boolean;
  /** Redis is loading a dataset (a sync in progress). */
  loading: boolean;
  /** The dataset lineage this redis holds, or null when it holds none (empty, restarted, never synced). */
  lineage: Lineage | null;
}

/** The report of a redis the hive has not observed yet. */
export const UNKNOWN_REDIS: RedisReport = {
  up: false,
  role: "unknown",
  runId: null,
  replId: null,
  offset: 0,
  linkUp: false,
  loading: false,
  lineage: null,
};

/** One heartbeat datagram's content. */
export interface Heartbeat {
  /** Always {@link HEARTBEAT_VERSION}. */
  version: number;
  /** The sender's announced address (its node id). */
  from: string;
  /** The sender's UDP election port. */
  electionPort: number;
  /** The sender's redis port (peers replicate from `from:redisPort`). */
  redisPort: number;
  /** Random id chosen at every process start of the sender. */
  bootId: string;
  /** Increases by one with every heartbeat of this boot; receivers drop stale and duplicate ones. */
  seq: number;
  /**
   * The sender's wall-clock ms when it sent this heartbeat: receivers drop heartbeats older (or
   * newer) than `--max-clock-skew-ms`, and order boots by it (replay_guard.ts).
   */
  sentMs: number;
  /** The sender's role. */
  role: Role;
  /** The leader the sender follows (itself when it leads), or null. */
  leader: string | null;
  /** Wall-clock ms at which the sender started its candidacy (candidates only), else null. */
  electionStartMs: number | null;
  /** Wall-clock ms at which the sender became leader (leaders only), else null. */
  leaderSinceMs: number | null;
  /** Leaders: how many live nodes follow it, itself included. Others: 0. */
  groupSize: number;
  /**
   * A leader handing over (graceful shutdown): the follower it asks to take over at once,
   * with no election. Otherwise null.
   */
  handoffTo: string | null;
  /** What the sender knows of its own redis. */
  redis: RedisReport;
}
