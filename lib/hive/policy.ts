/**
 * The runtime's policy, as pure functions: the loop's pace (ticks, observations), when to
 * enforce the redis target again (reconcile),
 * whether a follower caught up with its leader (what `/readyz` reports), where the proxy sends
 * new connections, and which follower a leader hands over to on a graceful shutdown.
 *
 * Both the runtime (lib/hive/hive.ts) and the simulator (sim/world.ts) call these functions, so
 * the simulator checks the runtime's policy itself, not a copy of it: a wrong rule here fails
 * simulator seeds.
 *
 * @example
 * ```ts
 * import { needsEnforce } from "./policy.ts";
 * import { REDIS_DOWN } from "../redis/redis_state.ts";
 * needsEnforce(REDIS_DOWN, { kind: "leader" }); // true: enforce when the redis is back
 * ```
 */

import { inTargetState } from "../redis/redis_enforce.ts";
import type { ProxyTarget, RedisObservation, RedisTarget } from "../redis/redis_state.ts";
import type { ProxyUpstream } from "../proxy/proxy_options.ts";
import type { HandoffSync } from "../redis/redis_controller.ts";
import type { Role } from "../election/heartbeat.ts";

// ---- the loop's pace ------------------------------------------------------------------------

/** Interval between two election ticks. */
export const TICK_MS = 50;

/** Longest interval between two observations of the local redis. */
export const MAX_OBSERVE_INTERVAL_MS = 100;

/** Shortest interval between two observations of the local redis. */
export const MIN_OBSERVE_INTERVAL_MS = 10;

/**
 * Observations of the local redis happen every half heartbeat, at most every
 * {@link MAX_OBSERVE_INTERVAL_MS}, at least every {@link MIN_OBSERVE_INTERVAL_MS}.
 *
 * @example
 * ```ts
 * observeIntervalMs(200); // 100
 * ```
 */
export function observeIntervalMs(heartbeatMs: number): number {
  return Math.max(
    MIN_OBSERVE_INTERVAL_MS,
    Math.min(MAX_OBSERVE_INTERVAL_MS, Math.floor(heartbeatMs / 2)),
  );
}

// ---- reconcile ------------------------------------------------------------------------------

/**
 * True when the runtime must enforce `target` again: the redis does not have that role, or it
 * follows with its link down and no sync in progress. In that second case enforce runs the
 * run_id guard, which parks the redis if the leader's redis is gone or is another process, so
 * redis's own reconnection can never resync it from a master that restarted empty.
 *
 * @example
 * ```ts
 * import { REDIS_DOWN } from "../redis/redis_state.ts";
 * needsEnforce({ ...REDIS_DOWN, up: true, role: "master" }, { kind: "leader" }); // false
 * ```
 */
export function needsEnforce(obs: RedisObservation, target: RedisTarget): boolean {
  if (!inTargetState(obs, target)) return true;
  return target.kind === "follow" && !obs.linkUp && !obs.loading;
}

/**
 * The reconcile step after an observation: enforce again when the redis is up, no enforce is
 * already queued, and {@link needsEnforce} says so. `reconcile` is false for the observation
 * that follows an enforce, so a failing enforce (a guard that keeps refusing) is retried once
 * per observation interval, not in a tight loop.
 *
 * @example
 * ```ts
 * import { REDIS_DOWN } from "../redis/redis_state.ts";
 * shouldReconcile(REDIS_DOWN, { kind: "leader" }, { reconcile: true, enforcing: false }); // false
 * ```
 */
export function shouldReconcile(
  obs: RedisObservation,
  target: RedisTarget,
  state: { reconcile: boolean; enforcing: boolean },
): boolean {
  return state.reconcile && obs.up && !state.enforcing && needsEnforce(obs, target);
}

// ---- catching up with the leader (/readyz) -------------------------------------------------

/**
 * A follower catching up with its leader after its replication link came up: it is caught up
 * once its offset reached the leader's offset as reported in a heartbeat heard after the link
 * came up (so the leader's figure is not older than the link).
 */
export interface CatchUp {
  /** The leader this record is about. */
  leader: string | null;
  /** When the link to that leader was first seen up (monotonic ms), or null: not linked. */
  linkUpMono: number | null;
  /** The leader's offset to reach, once heard after the link came up. */
  targetOffset: number | null;
  caughtUp: boolean;
}

/** The record before anything is known. */
export const NOT_LINKED: CatchUp = Object.freeze({
  leader: null,
  linkUpMono: null,
  targetOffset: null,
  caughtUp: false,
});

/** What {@link trackCatchUp} looks at after one observation of the local redis. */
export interface CatchUpInput {
  nowMono: number;
  role: Role;
  leader: string | null;
  target: RedisTarget;
  obs: RedisObservation;
  /** The leader's last heartbeat: when it was heard (monotonic ms) and its redis offset. */
  leaderLast: { heardMono: number; offset: number } | null;
}

/**
 * The next catch-up record after an observation. Pure: returns a new record (or `prev` when
 * nothing changed).
 *
 * @example
 * ```ts
 * import { REDIS_DOWN } from "../redis/redis_state.ts";
 * const c = trackCatchUp(NOT_LINKED, {
 *   nowMono: 10, role: "leader", leader: "10.0.0.1", target: { kind: "leader" },
 *   obs: REDIS_DOWN, leaderLast: null,
 * });
 * caughtUpWithLeader(c); // null: not a linked follower
 * ```
 */
export function trackCatchUp(prev: CatchUp, input: CatchUpInput): CatchUp {
  const { obs, target } = input;
  const linked = input.role === "follower" && target.kind === "follow" && obs.up &&
    obs.role === "replica" && obs.masterHost === target.host && obs.linkUp && !obs.loading;
  if (!linked || input.leader !== prev.leader) {
    return {
      leader: input.leader,
      linkUpMono: linked ? input.nowMono : null,
      targetOffset: null,
      caughtUp: false,
    };
  }
  const next = { ...prev };
  if (next.linkUpMono === null) next.linkUpMono = input.nowMono;
  if (next.caughtUp) return next;
  const heard = input.leaderLast;
  if (next.targetOffset === null && heard !== null && heard.heardMono > next.linkUpMono) {
    next.targetOffset = heard.offset;
  }
  if (next.targetOffset !== null && obs.offset >= next.targetOffset) next.caughtUp = true;
  return next;
}

/** What `/status` reports as `redis.caughtUpWithLeader`: null when not a linked follower. */
export function caughtUpWithLeader(c: CatchUp): boolean | null {
  return c.linkUpMono === null ? null : c.caughtUp;
}

// ---- the proxy's upstream ------------------------------------------------------------------

/** Where the local redis is, for {@link proxyUpstream}. */
export interface LocalRedis {
  redisHost: string;
  redisPort: number;
  /** `--redis-socket`, or null. */
  redisSocket: string | null;
}

/**
 * Where the proxy sends new connections for the election's `target`: the own redis's Unix
 * socket when the target is the own redis (`redisHost:redisPort`, i.e. this hive leads) and
 * `--redis-socket` is set, else the target itself. A follower's target is the leader's redis,
 * reached over TCP.
 *
 * @example
 * ```ts
 * const local = { redisHost: "127.0.0.1", redisPort: 6379, redisSocket: "/run/redis/redis.sock" };
 * proxyUpstream({ host: "127.0.0.1", port: 6379 }, local); // { path: "/run/redis/redis.sock" }
 * proxyUpstream({ host: "10.0.0.7", port: 6379 }, local); // { host: "10.0.0.7", port: 6379 }
 * ```
 */
export function proxyUpstream(target: ProxyTarget, local: LocalRedis): ProxyUpstream {
  if (target === null || local.redisSocket === null) return target;
  const own = target.host === local.redisHost && target.port === local.redisPort;
  return own ? { path: local.redisSocket } : target;
}

// ---- the handoff successor -----------------------------------------------------------------

/**
 * The follower a leader hands over to on a graceful shutdown: the one the sync found caught up
 * (it processed every write), else the one with the highest offset read, else the election's
 * first candidate (`candidates` is the election's order, best first; must not be empty).
 *
 * @example
 * ```ts
 * chooseSuccessor([{ address: "10.0.0.2" }, { address: "10.0.0.3" }], {
 *   ok: false, reason: "timeout", masterOffset: 90,
 *   offsets: [{ host: "10.0.0.2", port: 6379, offset: 70 }, { host: "10.0.0.3", port: 6379, offset: 80 }],
 * }); // "10.0.0.3"
 * ```
 */
export function chooseSuccessor(
  candidates: readonly { address: string }[],
  sync: HandoffSync | null,
): string {
  const first = candidates[0];
  if (first === undefined) throw new RangeError("chooseSuccessor: no candidate");
  if (sync !== null && sync.ok) return sync.chosen.host;
  // Nobody caught up in time: the most caught-up one still loses the least.
  const best = sync?.offsets.filter((o) => o.offset !== null).sort((a, b) =>
    b.offset! - a.offset!
  )[0];
  return best?.host ?? first.address;
}
