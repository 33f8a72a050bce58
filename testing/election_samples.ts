/**
 * Sample inputs of the election, for tests and tools: valid heartbeats (a plain follower's, and
 * the forged leader claim the security tests and the flood bench send) and an election's
 * options, so each test file states only what it changes.
 *
 * @example
 * ```ts
 * import { forgedLeaderHeartbeat, sampleElectionOptions, sampleHeartbeat } from "./election_samples.ts";
 * const hb = sampleHeartbeat("10.0.0.1", 1, { role: "leader", leader: "10.0.0.1" });
 * const claim = forgedLeaderHeartbeat("127.0.13.59", 1, { runId: null });
 * const options = sampleElectionOptions("10.0.0.5", { maxPeers: 4 });
 * ```
 */

import type { ElectionOptions } from "../lib/election/election.ts";
import { type Heartbeat, HEARTBEAT_VERSION, UNKNOWN_REDIS } from "../lib/election/heartbeat.ts";

/** The wall-clock time samples are sent at unless told otherwise. */
export const SAMPLE_WALL_MS = 1_700_000_000_000;

/**
 * A follower's heartbeat that follows nobody yet, every field valid (election port 7379, redis
 * port 6379, sent at {@link SAMPLE_WALL_MS}, redis unknown), with `extra` on top.
 */
export function sampleHeartbeat(
  from: string,
  seq: number,
  extra: Partial<Heartbeat> = {},
): Heartbeat {
  return {
    version: HEARTBEAT_VERSION,
    from,
    electionPort: 7379,
    redisPort: 6379,
    bootId: "0000000000000001",
    seq,
    sentMs: SAMPLE_WALL_MS,
    role: "follower",
    leader: null,
    electionStartMs: null,
    leaderSinceMs: null,
    groupSize: 0,
    handoffTo: null,
    redis: UNKNOWN_REDIS,
    ...extra,
  };
}

/** Options of {@link forgedLeaderHeartbeat}. */
export interface ForgedLeaderOptions {
  /** The claimed redis run_id (default 40 × `e`); null claims none (skipping the run_id guard). */
  runId?: string | null;
  electionPort?: number;
  redisPort?: number;
  /** Default `00000000000000ee`. */
  bootId?: string;
  /** The claimed group size (default 1024, the largest accepted). */
  groupSize?: number;
}

/**
 * A leader claim built to win everywhere, sent now: the oldest lineage, the largest group,
 * leading since the epoch, a master far ahead. Election port 17379 and redis port 16379 unless
 * told (the local clusters' ports).
 */
export function forgedLeaderHeartbeat(
  from: string,
  seq: number,
  opts: ForgedLeaderOptions = {},
): Heartbeat {
  return sampleHeartbeat(from, seq, {
    electionPort: opts.electionPort ?? 17379,
    redisPort: opts.redisPort ?? 16379,
    bootId: opts.bootId ?? "00000000000000ee",
    sentMs: Date.now(),
    role: "leader",
    leader: from,
    leaderSinceMs: 1,
    groupSize: opts.groupSize ?? 1024,
    redis: {
      ...UNKNOWN_REDIS,
      up: true,
      role: "master",
      runId: opts.runId === undefined ? "e".repeat(40) : opts.runId,
      replId: "e".repeat(40),
      offset: 1_000_000_000,
      lineage: { bornMs: 1, bornBy: from },
    },
  });
}

/**
 * An election's options: node `self`, election port 7379, redis 6379 on 127.0.0.1, boot id
 * `00000000000000aa`, heartbeats every 200 ms, failure after 1000 ms, 8 peers at most, with
 * `extra` on top.
 */
export function sampleElectionOptions(
  self: string,
  extra: Partial<ElectionOptions> = {},
): ElectionOptions {
  return {
    self,
    electionPort: 7379,
    redisPort: 6379,
    localRedis: { host: "127.0.0.1", port: 6379 },
    bootId: "00000000000000aa",
    heartbeatMs: 200,
    failureMs: 1000,
    maxPeers: 8,
    ...extra,
  };
}
