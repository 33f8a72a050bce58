/**
 * The vocabulary shared by the election and the redis controller: what the hive observed of its
 * local redis, and what role it wants that redis to have.
 *
 * @example
 * ```ts
 * import { PARKED_MASTER, type RedisTarget } from "./redis_state.ts";
 * const park: RedisTarget = { kind: "parked" }; // enforced as REPLICAOF 127.0.0.1 1
 * console.log(PARKED_MASTER.port); // 1
 * ```
 */

/** One observation of the local redis (ROLE / INFO replication and server). */
export interface RedisObservation {
  /** The observation succeeded (connected, answered within the command timeout). */
  up: boolean;
  /** `run_id` from INFO server; null when down. */
  runId: string | null;
  /** `role` from INFO replication. */
  role: "master" | "replica" | "unknown";
  /** For a replica: `master_host`. */
  masterHost: string | null;
  /** For a replica: `master_port`. */
  masterPort: number | null;
  /** For a replica: `master_link_status:up`. */
  linkUp: boolean;
  /** `loading:1` from INFO persistence (or a sync in progress). */
  loading: boolean;
  /** `master_replid`. */
  replId: string | null;
  /** `master_repl_offset`. */
  offset: number;
  /**
   * Redis is busy (a slow answer, `-BUSY`, a master loading, a reconnect under way) but not
   * dead: the other fields are those of its last answer. Absent (or false) on a fresh answer.
   */
  busy?: boolean;
}

/** The observation of a redis that could not be reached. */
export const REDIS_DOWN: RedisObservation = {
  up: false,
  runId: null,
  role: "unknown",
  masterHost: null,
  masterPort: null,
  linkUp: false,
  loading: false,
  replId: null,
  offset: 0,
};

/**
 * The role the election wants the local redis to have.
 *
 * - `leader`: `REPLICAOF NO ONE`.
 * - `follow`: `REPLICAOF host port`, but only after checking that the redis at host:port has
 *   `run_id == expectRunId` (when not null): a leader whose redis just restarted empty must
 *   never be synced from, even before its own hive noticed.
 * - `parked`: `REPLICAOF` {@link PARKED_MASTER}, an address that never answers, so the redis
 *   keeps its data and refuses to be synced from (`-NOMASTERLINK`).
 */
export type RedisTarget =
  | { kind: "leader" }
  | { kind: "follow"; host: string; port: number; expectRunId: string | null }
  | { kind: "parked" };

/** Where a parked redis "replicates" from: a loopback port nothing listens on. */
export const PARKED_MASTER: { host: string; port: number } = { host: "127.0.0.1", port: 1 };

/** Where the master proxy forwards new connections, or null to hold them (no master known). */
export type ProxyTarget = { host: string; port: number } | null;

/** True when two redis targets ask for the same thing. */
export function sameRedisTarget(a: RedisTarget, b: RedisTarget): boolean {
  if (a.kind !== b.kind) return false;
  if (a.kind === "follow" && b.kind === "follow") {
    return a.host === b.host && a.port === b.port && a.expectRunId === b.expectRunId;
  }
  return true;
}

/** True when two proxy targets are the same address (or both null). */
export function sameProxyTarget(a: ProxyTarget, b: ProxyTarget): boolean {
  if (a === null || b === null) return a === b;
  return a.host === b.host && a.port === b.port;
}
