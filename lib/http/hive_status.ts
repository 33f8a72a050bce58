/**
 * The `/status` contract: what `GET /status` returns (at least `id`, `role`, `leader`, `peers`
 * and `redis`, which outside checks rely on) and the runtime's counters and history inside it.
 * Its own module, so the HTTP surface, the tools and the tests read the contract without
 * importing the runtime.
 *
 * @example
 * ```ts
 * import type { HiveStatus } from "./hive_status.ts";
 * const status: HiveStatus = await (await fetch("http://127.0.0.11:8080/status")).json();
 * console.log(status.role, status.leader);
 * ```
 */

import { DROP_REASONS, type DropReason } from "../election/codec.ts";
import { SOURCE_MISMATCH } from "../net/source_address.ts";
import type { HttpServerStats } from "./http_server.ts";
import type { ElectionEvent, ElectionSnapshot } from "../election/election.ts";
import type { ProxyEngine } from "../proxy/proxy_engine.ts";
import type { FenceMode } from "../election/fence.ts";
import type { FenceActuatorStats, FenceApplied } from "../hive/fence_actuator.ts";
import type { ProcessMemory } from "./process_metrics.ts";
import type { RedisObservation, RedisTarget } from "../redis/redis_state.ts";

/** Most entries kept in {@link HiveStatus.history}. */
export const MAX_HISTORY = 50;
/** Upper bounds of the failover-duration histogram buckets. */
export const FAILOVER_BUCKETS_MS = [100, 250, 500, 1000, 2000, 5000, 10_000] as const;

/**
 * Every reason the runtime drops a datagram before the election sees it: the decoder's
 * ({@link DROP_REASONS}, counted by the receive loop's envelope filter and by the codec),
 * `source-mismatch` (the UDP source is not the signed `from`, see lib/net/source_address.ts) and
 * `overload` (kept for the contract; always 0 since the receive loop runs on the main thread and
 * queues nothing: lib/net/udp_ffi.ts).
 */
export const DATAGRAM_DROP_REASONS = [...DROP_REASONS, SOURCE_MISMATCH, "overload"] as const;

/** One of {@link DATAGRAM_DROP_REASONS}. */
export type DatagramDropReason = DropReason | typeof SOURCE_MISMATCH | "overload";

/** Counters of the runtime (the election has its own). */
export interface RuntimeStats {
  datagramsReceived: number;
  datagramsDropped: Record<DatagramDropReason, number>;
  redisCommands: number;
  enforceFailures: number;
  observations: number;
  stateFileErrors: number;
  /** Accepts of the master proxy that failed (out of file descriptors...). */
  proxyAcceptErrors: number;
  /** Repeated warning lines not written (lib/common/rate_limited_log.ts). */
  logLinesSuppressed: number;
}

/** `/status`: the contract (`id`, `role`, `leader`, `peers`, `redis`) that outside checks rely on, and more. */
export interface HiveStatus {
  id: string;
  role: ElectionSnapshot["role"];
  leader: string | null;
  peers: {
    address: string;
    role: string | null;
    leader: string | null;
    live: boolean;
    lastHeardAgoMs: number | null;
    inPeerSet: boolean;
    redis: ElectionSnapshot["redis"] | null;
  }[];
  redis: ElectionSnapshot["redis"] & {
    target: RedisTarget;
    observation: RedisObservation | null;
    /**
     * Followers: the local redis has reached an offset the leader reported after this
     * replication link came up (a link can be up while redis still holds back the stream, up
     * to a second after a full sync); null when not a linked follower.
     */
    caughtUpWithLeader: boolean | null;
  };
  eligible: boolean;
  lineage: ElectionSnapshot["lineage"];
  electionStartMs: number | null;
  leaderSinceMs: number | null;
  proxy: {
    /** The engine that runs the proxy (`--proxy-engine`), or null when there is no proxy. */
    engine: ProxyEngine | null;
    /** Why that engine (e.g. `auto: linux/x86_64 with --allow-ffi`), or null. */
    engineReason: string | null;
    /** Threads serving the proxy port (epoll: lib/proxy/proxy_workers.ts; 1 for deno), or null. */
    workers: number | null;
    /**
     * Where that number came from: `flag` (`--proxy-workers`), the cgroup CPU limit (e.g.
     * `cgroup cpu.max 150000/100000`), `cpus` (no limit: the machine's CPUs), or the Deno
     * engine's main thread; null when there is no proxy.
     */
    workersSource: string | null;
    target: ElectionSnapshot["proxyTarget"];
    /**
     * Where new connections actually go: `host:port`, `unix:<path>` (its own redis's socket
     * while leading with `--redis-socket`) or `none`; null when there is no proxy.
     */
    upstream: string | null;
    listening: boolean;
    stats: Record<string, number> | null;
  };
  discovery: Record<string, unknown>;
  election: ElectionSnapshot["stats"];
  runtime: RuntimeStats;
  /** Recent role changes, elections and lineage changes, newest last (at most {@link MAX_HISTORY}). */
  history: HistoryEntry[];
  /** Time from losing a leader to knowing the next one, as a cumulative histogram. */
  failovers: FailoverHistogram;
  /** The write fence (lib/election/fence.ts, lib/hive/fence_actuator.ts). */
  fence: FenceStatus;
  uptimeMs: number;
  lastTickAgoMs: number;
  /**
   * The hive process's memory (resident, and the main isolate's V8 heap); absent from a status
   * made without a process (tests, the simulator).
   */
  process?: ProcessMemory;
  /** How this node is protected; see docs/security.md. */
  security: SecurityStatus;
  /** The HTTP server's connections, refusals and timeouts, or null when it does not run. */
  http: HttpServerStats | null;
  /** The open-file limit and what the proxy may hold within it (lib/net/fd_limit.ts). */
  limits: {
    /** Soft `nofile` limit in force (after raising it to the hard one), null if unknown/unlimited. */
    nofileSoft: number | null;
    /** Hard `nofile` limit, null if unknown or unlimited. */
    nofileHard: number | null;
    /** The proxy's connection cap in force (`--max-connections`, lowered to fit the limit). */
    maxConnections: number;
  };
}

/** The node's protection, as `/status` and the status page show it. */
export interface SecurityStatus {
  /** Heartbeats are signed and only signed ones are accepted (a secret is set). */
  authenticated: boolean;
  /**
   * Warnings an operator must see, e.g. that the node runs without a secret
   * (`--insecure-no-secret`) or that `--max-connections` was lowered to fit the descriptor limit.
   */
  warnings: string[];
}

/** The fence as `/status` shows it. */
export interface FenceStatus {
  /** `--fence`: on, off or auto. */
  mode: FenceMode;
  /** The fence applies now (leading, mode and peer set size). */
  armed: boolean;
  /** Leading and fenced: the local redis refuses (or holds) writes. */
  fenced: boolean;
  /** Why, in words. */
  reason: string;
  /** Peers whose lease echo counts now. */
  heard: string[];
  /** Nodes needed, itself included, and the peer set's size, itself included. */
  needed: number;
  peerSetSize: number;
  /** What was last done to redis: unknown, idle, held (paused), refusing, open. */
  applied: FenceApplied;
  /** Milliseconds fenced now (0 when not fenced). */
  fencedForMs: number;
  /** Milliseconds fenced in total since the start, the current fence included. */
  fencedTotalMs: number;
  /** Actuator counters: holds, refusals, lifts, failures. */
  actuator: FenceActuatorStats;
  /** The last fence command error, or null. */
  lastError: string | null;
}

/** One remembered event. */
export interface HistoryEntry {
  atWallMs: number;
  kind: ElectionEvent["kind"];
  message: string;
}

/** Prometheus-style histogram of failover durations. */
export interface FailoverHistogram {
  /** Upper bounds (ms) of the buckets, {@link FAILOVER_BUCKETS_MS}. */
  bucketsMs: readonly number[];
  /** Cumulative counts: failovers that took at most `bucketsMs[i]`. */
  bucketCounts: number[];
  count: number;
  sumMs: number;
  /** The last one, or null. */
  lastMs: number | null;
}
