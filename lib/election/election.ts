/**
 * The leader election: a pure state machine, in the manner of etcd's raft.
 *
 * No sockets, no timers, no clock reads: the runtime feeds it events ({@link Election.tick},
 * {@link Election.receive}, {@link Election.setPeers}, {@link Election.observeRedis}), each with
 * the current {@link Instant}, and carries out the {@link ElectionAction}s it returns (datagrams
 * to send, the role to enforce on the local redis, where the master proxy forwards). The same
 * code runs in the daemon and, by the thousand, in the deterministic simulator (`sim/`).
 *
 * The protocol, its timing defaults and why they are safe are explained in `docs/election.md`.
 * In short:
 * - a newcomer that hears a leader follows it at once, with no election;
 * - with no leader, eligible nodes become candidates and exchange the wall-clock time at which
 *   they started; after {@link ElectionTiming.electionWindowMs} the best candidate (oldest
 *   dataset lineage, then earliest start, then the alphabetically first address) leads;
 * - a node whose redis is down, restarted or never synced is not eligible while a peer holding
 *   the dataset has been heard within {@link ElectionTiming.emptyPromotionDelayMs};
 * - two leaders that meet keep the one with the oldest lineage, then the larger group, then the
 *   earlier leadership start, then the first address; the other follows it.
 *
 * @example
 * ```ts
 * import { Election } from "./election.ts";
 * const e = new Election({
 *   self: "127.0.0.11", electionPort: 7379, redisPort: 6379,
 *   localRedis: { host: "127.0.0.1", port: 6379 }, bootId: "00aa11bb22cc33dd",
 *   heartbeatMs: 200, failureMs: 1000, maxPeers: 64,
 * });
 * const now = { monoMs: 0, wallMs: Date.now() };
 * e.setPeers(["127.0.0.11", "127.0.0.12"], now);
 * for (const action of e.tick(now)) console.log(action.type);
 * ```
 */

import type { Instant } from "../common/clock.ts";
import {
  defaultFenceTiming,
  fenceChanged,
  type FenceMode,
  type FenceState,
  type FenceTiming,
  fenceTimingProblem,
  LeaseGrant,
  LeaseTable,
  NOT_LEADING,
  PeerSetMemory,
  quorumNeeded,
} from "./fence.ts";
import type { LeaseMessage } from "./lease.ts";
import { HEARTBEAT_VERSION } from "./heartbeat.ts";
import { evictionVictim } from "./peer_admission.ts";
import { DEFAULT_MAX_CLOCK_SKEW_MS, replayVerdict } from "./replay_guard.ts";
import type { Heartbeat, Lineage, RedisReport, Role } from "./heartbeat.ts";
import {
  type ProxyTarget,
  type RedisObservation,
  type RedisTarget,
  sameProxyTarget,
  sameRedisTarget,
} from "../redis/redis_state.ts";

/** A UDP destination. */
export interface PeerEndpoint {
  host: string;
  port: number;
}

/** The timing of the protocol; every value in milliseconds (the fence's: see `fence.ts`). */
export interface ElectionTiming extends FenceTiming {
  /** Interval between heartbeats to every peer. */
  heartbeatMs: number;
  /** A peer not heard for this long is considered gone (leader lost, candidate withdrawn). */
  failureMs: number;
  /** How long a candidate waits, hearing other candidates, before it may declare itself leader. */
  electionWindowMs: number;
  /** How long a starting node listens for a leader before it starts an election. */
  startupListenMs: number;
  /**
   * How long a node without the dataset must have heard no peer holding it before it may be
   * elected (so an empty redis is never promoted just because a few heartbeats were lost).
   */
  emptyPromotionDelayMs: number;
  /** A peer that is neither in the peer set (DNS) nor heard for this long is forgotten. */
  peerForgetMs: number;
  /**
   * A leader whose redis died hands over to its best follower (a crash handoff); if no follower
   * leads this long after the death, it gives up and the others elect (see `docs/election.md`).
   */
  crashHandoffMs: number;
  /**
   * Heartbeats sent further than this from the receiver's wall clock are dropped (`expired`):
   * the replay window and the clock skew tolerated between nodes (see replay_guard.ts).
   */
  maxClockSkewMs: number;
}

/** Everything the election needs to know about its own node. */
export interface ElectionOptions extends Partial<ElectionTiming> {
  /** This node's announced address: its id, and what peers replicate from. */
  self: string;
  /** This node's UDP election port (peers from DNS are assumed to use the same). */
  electionPort: number;
  /** This node's redis port, as told to peers. */
  redisPort: number;
  /** How the local proxy reaches the local redis when this node leads. */
  localRedis: { host: string; port: number };
  /** Random id of this process start. */
  bootId: string;
  /** Interval between heartbeats. */
  heartbeatMs: number;
  /** Failure detection timeout. */
  failureMs: number;
  /** Most peers tracked at once; more are refused and counted. */
  maxPeers: number;
  /**
   * What a previous process of this hive knew (`--state-file`): if the local redis still runs
   * the same process (same `run_id`), it still holds that lineage.
   */
  restored?: PersistedState | null;
  /** The fence (`fence.ts`): `auto` (default) arms it for a peer set of 3 or more. */
  fence?: FenceMode;
}

/** What the hive keeps across its own restarts (the redis process and the lineage it holds). */
export interface PersistedState {
  runId: string;
  lineage: Lineage | null;
}

/**
 * `failureMs` must span at least this many heartbeat intervals (the election refuses less, and so
 * does `--failure-ms`). With 3, one lost heartbeat leaves a gap of 2 intervals, still a full
 * interval short of a failure, so one lost datagram plus ordinary jitter is never taken for a
 * dead peer; with 2, one lost datagram and any delay would be.
 */
export const FAILURE_TO_HEARTBEAT_MIN_RATIO = 3;

/** Derives the full timing from the two configured values; see `docs/election.md`. */
export function defaultTiming(heartbeatMs: number, failureMs: number): ElectionTiming {
  return {
    heartbeatMs,
    failureMs,
    electionWindowMs: 2 * heartbeatMs,
    startupListenMs: failureMs,
    emptyPromotionDelayMs: 5 * failureMs,
    peerForgetMs: 30 * failureMs,
    ...defaultFenceTiming(heartbeatMs),
    crashHandoffMs: 2 * heartbeatMs,
    maxClockSkewMs: DEFAULT_MAX_CLOCK_SKEW_MS,
  };
}

/** Most retired boot ids remembered per peer, to drop datagrams of a previous process. */
export const MAX_RETIRED_BOOTS = 4;

/** Something worth a log line, as it happened inside the election. */
export type ElectionEvent =
  | { kind: "role-changed"; from: Role; to: Role; leader: string | null; reason: string }
  | { kind: "election-started"; electionStartMs: number; reason: string }
  | { kind: "elected"; candidates: string[]; lineage: Lineage }
  | { kind: "redis-restarted"; oldRunId: string; newRunId: string }
  | { kind: "lineage-changed"; lineage: Lineage | null; reason: string }
  | { kind: "parked-on-link-loss"; leader: string }
  | { kind: "handoff"; to: string }
  | { kind: "crash-handoff"; reason: string; candidates: string[] }
  | { kind: "crash-handoff-abandoned"; reason: string }
  | { kind: "peer-refused"; address: string; reason: "max-peers" }
  | { kind: "peer-evicted"; address: string; forListed: string }
  | { kind: "fenced"; reason: string }
  | { kind: "unfenced"; reason: string };

/** What the runtime must do after an event. */
export type ElectionAction =
  | { type: "send"; to: PeerEndpoint[]; heartbeat: Heartbeat }
  | { type: "redis"; target: RedisTarget }
  | { type: "proxy"; target: ProxyTarget }
  | { type: "persist"; state: PersistedState }
  /** Send a lease probe or echo (`lease.ts`). */
  | { type: "lease"; to: PeerEndpoint[]; message: LeaseMessage }
  /** The fence changed (`fence.ts`): the runtime fences or lifts the fence on its redis. */
  | { type: "fence"; state: FenceState }
  | { type: "event"; event: ElectionEvent }
  /**
   * This node led and its redis died: read each candidate's replication offset from its redis
   * (bounded), then call {@link Election.handOff} with the most caught up, or
   * {@link Election.abandonCrashHandoff} when none answered.
   */
  | { type: "crash-handoff"; candidates: { address: string; redisPort: number }[] };

/** Counters the runtime exposes as metrics. */
export interface ElectionStats {
  heartbeatsReceived: number;
  /** Dropped: a duplicate or reordered heartbeat of the boot known (replay_guard.ts `stale`). */
  heartbeatsStale: number;
  /** Dropped: a heartbeat of a boot that was replaced (`old-boot`). */
  heartbeatsOldBoot: number;
  /** Dropped: sent further than `maxClockSkewMs` from this node's clock (`expired`). */
  heartbeatsExpired: number;
  /** Dropped: a heartbeat claiming to come from this node. */
  heartbeatsFromSelf: number;
  heartbeatsSent: number;
  /** Immediate replies not sent: the peer was sent one within the heartbeat interval. */
  repliesSuppressed: number;
  peersRefused: number;
  /** Heard-only peers that gave their place to a listed one (see peer_admission.ts). */
  peersEvicted: number;
  elections: number;
  leaderChanges: number;
  /** Times this node, leading, became fenced (its first moment as leader included). */
  fences: number;
  leaseProbesSent: number;
  leaseEchoesSent: number;
  leaseEchoesReceived: number;
  /** Dropped: a probe or echo from an unknown peer or boot, stale, or not for this leadership. */
  leaseStale: number;
}

/** One peer as the election sees it. */
export interface PeerView {
  address: string;
  electionPort: number;
  /** In the configured peer set (DNS answer or `--peers`). */
  inPeerSet: boolean;
  /** Milliseconds since its last heartbeat, or null if never heard. */
  lastHeardAgoMs: number | null;
  live: boolean;
  last: Heartbeat | null;
}

/** A read-only picture of the election for `/status`. */
export interface ElectionSnapshot {
  id: string;
  role: Role;
  leader: string | null;
  electionStartMs: number | null;
  leaderSinceMs: number | null;
  lineage: Lineage | null;
  eligible: boolean;
  redisTarget: RedisTarget;
  proxyTarget: ProxyTarget;
  redis: RedisReport;
  peers: PeerView[];
  stats: ElectionStats;
  /** The fence, as this node sees it (not leading: {@link NOT_LEADING}). */
  fence: FenceState;
}

interface PeerState {
  address: string;
  electionPort: number;
  inPeerSet: boolean;
  last: Heartbeat | null;
  lastHeardMono: number | null;
  retiredBoots: string[];
  /** The last lease probe accepted from it: its boot and sequence number. */
  probe: { bootId: string; seq: number } | null;
  /** Since when its probes say it is a fenced leader (this node's clock), or null. */
  fencedSinceMono: number | null;
  /**
   * This node left it as a leader that does not hear its group (it echoed, the leader stayed
   * fenced), at this time: not followed again while its probes say fenced, for at most
   * {@link DEAF_LEADER_MEMORY_FAILURES} failure timeouts. Null otherwise.
   */
  leftDeafMono: number | null;
  /** When this node last sent it a heartbeat (broadcast or reply), or null. */
  lastSentMono: number | null;
}

/** How long (in failure timeouts) a node keeps away from a leader it left as deaf. */
export const DEAF_LEADER_MEMORY_FAILURES = 5;

/** Orders lineages: negative when `a` is the better (older) one; null is worst. */
export function compareLineage(a: Lineage | null, b: Lineage | null): number {
  if (a === null || b === null) return a === b ? 0 : a === null ? 1 : -1;
  return a.bornMs - b.bornMs || compareAddress(a.bornBy, b.bornBy);
}

/** True when two lineages are the same birth. */
export function sameLineage(a: Lineage | null, b: Lineage | null): boolean {
  return compareLineage(a, b) === 0;
}

/**
 * The last tie-breaker of every ranking, when lineage, group size, offset and start time are all
 * equal: the address that comes first in plain string (code-unit) order wins, e.g. "10.0.0.1"
 * before "10.0.0.2" (and "10.0.0.10" before "10.0.0.2"). Every node sorts the same way, so all
 * agree on the winner without talking.
 */
export function compareAddress(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** What a candidate is ranked by. */
export interface CandidateRank {
  address: string;
  lineage: Lineage | null;
  /** Its redis's replication offset (frozen: a candidate's redis is parked). */
  offset: number;
  electionStartMs: number;
}

/**
 * Orders candidates: negative when `a` should win. The oldest lineage first; within one lineage
 * the redis with the most data (highest replication offset: the replicas of one master share
 * its offset space), so a replica that missed writes never wins over one that has them; then
 * the seed's rule: the first to start, then the alphabetically first address.
 */
export function compareCandidates(a: CandidateRank, b: CandidateRank): number {
  const lineage = compareLineage(a.lineage, b.lineage);
  if (lineage !== 0) return lineage;
  if (a.lineage !== null && a.offset !== b.offset) return b.offset - a.offset;
  return a.electionStartMs - b.electionStartMs || compareAddress(a.address, b.address);
}

/** What two leaders that meet are ranked by. */
export interface LeaderRank {
  address: string;
  lineage: Lineage | null;
  groupSize: number;
  leaderSinceMs: number;
}

/** Orders leaders that meet: negative when `a` should stay leader and `b` follow it. */
export function compareLeaders(a: LeaderRank, b: LeaderRank): number {
  return compareLineage(a.lineage, b.lineage) || b.groupSize - a.groupSize ||
    a.leaderSinceMs - b.leaderSinceMs || compareAddress(a.address, b.address);
}

/** True when a heartbeat's sender claims to lead. */
function claimsLeadership(hb: Heartbeat): boolean {
  return hb.role === "leader" && hb.leader === hb.from;
}

/**
 * The election state machine of one hive node. See the module documentation.
 */
export class Election {
  readonly timing: ElectionTiming;
  readonly stats: ElectionStats = {
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
  };

  #role: Role = "starting";
  #leader: string | null = null;
  #electionStartMs: number | null = null;
  #candidateSinceMono = 0;
  #leaderSinceMs: number | null = null;
  #startedMono: number | null = null;
  #seq = 0;
  #lastSentMono: number | null = null;
  #lastSent: Heartbeat | null = null;
  #peers = new Map<string, PeerState>();
  /** The configured peer set (DNS answer or `--peers`), without this node. */
  #peerSet = new Set<string>();

  #observation: RedisObservation | null = null;
  #knownRunId: string | null = null;
  #lineage: Lineage | null = null;
  #lastDataHolderMono: number | null = null;
  /** The follow target's link has been seen up since it was pointed. */
  #followLinkSeenUp = false;
  /**
   * The last leader this node pointed its redis at: its address, its replication id and lineage
   * then, and the local redis's replication id then. Kept after the target changes, so a sync
   * that completed just before (and was not yet observed) still counts.
   */
  #lastFollow: {
    host: string;
    port: number;
    replId: string | null;
    lineage: Lineage | null;
    replIdWhenPointed: string | null;
  } | null = null;
  /** Parked after the replication link to the leader broke: the leader's seq at that time. */
  #parkedAfterLinkLossSeq: number | null = null;

  /** Worse-ranked leaders heard while leading, and since when (bounded by the peer table). */
  #worseLeaderSince = new Map<string, number>();
  /**
   * This node, leading, asked this follower to take over (graceful shutdown, or its redis died);
   * itself while a crash handoff chooses the successor (its followers wait for the choice).
   */
  #handoffTo: string | null = null;
  /** A crash handoff under way: since when, the candidates, the one chosen (null: choosing). */
  #crashHandoff: { sinceMono: number; candidates: string[]; chosen: string | null } | null = null;
  /** The lineage a restart (new run_id) took away during this event (for a crash handoff). */
  #lineageLostAtRestart: Lineage | null = null;
  #redisTarget: RedisTarget = { kind: "parked" };
  #proxyTarget: ProxyTarget = null;
  /** Peers owed an immediate unicast reply (new, rebooted, or starting). */
  #replyTo = new Set<string>();

  // ---- the fence (fence.ts) ----
  readonly #fenceMode: FenceMode;
  #leases = new LeaseTable();
  #peerSetMemory: PeerSetMemory;
  #grant = new LeaseGrant();
  #fence: FenceState = NOT_LEADING;
  #leaderSinceMono: number | null = null;
  #probeSeq = 0;
  /** Send a probe at the end of this step (new leadership, fence changed). */
  #probeNow = false;
  /** The monotonic time of the event being handled. */
  #nowMono = 0;
  /** When the leader this node follows (or its role) last changed. */
  #leaderChangedMono = 0;

  /** Creates the state machine; nothing happens until the first event. */
  constructor(readonly options: ElectionOptions) {
    const t = { ...defaultTiming(options.heartbeatMs, options.failureMs) };
    for (const key of Object.keys(t) as (keyof ElectionTiming)[]) {
      const v = options[key];
      if (v !== undefined) t[key] = v;
    }
    for (const [key, value] of Object.entries(t)) {
      if (!Number.isFinite(value) || value <= 0) {
        throw new Error(`Election: timing ${key} must be a positive number, got ${value}`);
      }
    }
    if (t.failureMs < FAILURE_TO_HEARTBEAT_MIN_RATIO * t.heartbeatMs) {
      throw new Error(
        `Election: failureMs (${t.failureMs}) must be at least ${FAILURE_TO_HEARTBEAT_MIN_RATIO} ` +
          `x heartbeatMs (${t.heartbeatMs})`,
      );
    }
    if (!(options.maxPeers >= 1)) throw new Error(`Election: maxPeers must be >= 1`);
    const fenceProblem = fenceTimingProblem(t, t.failureMs);
    if (fenceProblem !== null) throw new Error(`Election: ${fenceProblem}`);
    const mode = options.fence ?? "auto";
    if (!["on", "off", "auto"].includes(mode)) {
      throw new Error(`Election: fence must be on, off or auto, got ${mode}`);
    }
    this.#fenceMode = mode;
    this.#peerSetMemory = new PeerSetMemory(t.peerForgetMs);
    this.timing = t;
  }

  /** The current role. */
  get role(): Role {
    return this.#role;
  }

  /** The leader this node follows (itself when it leads), or null. */
  get leader(): string | null {
    return this.#leader;
  }

  /** The dataset lineage the local redis holds, or null. */
  get lineage(): Lineage | null {
    return this.#lineage;
  }

  /** The role the local redis should have now. */
  get redisTarget(): RedisTarget {
    return this.#redisTarget;
  }

  /** Where the master proxy should forward now. */
  get proxyTarget(): ProxyTarget {
    return this.#proxyTarget;
  }

  /** The fence as of the last event (not leading: {@link NOT_LEADING}). */
  get fence(): FenceState {
    return this.#fence;
  }

  /**
   * A lease probe falls due (every {@link ElectionTiming.leaseProbeMs}): a leader sends one to
   * every peer. Also a tick.
   */
  probe(now: Instant): ElectionAction[] {
    return this.#run(now, () => {
      if (this.#role === "leader") this.#probeNow = true;
    });
  }

  /** A decoded, authenticated lease probe or echo arrived. */
  receiveLease(message: LeaseMessage, now: Instant): ElectionAction[] {
    return this.#run(now, (out) => {
      if (message.kind === "probe") this.#acceptProbe(message, now, out);
      else this.#acceptEcho(message, now);
    });
  }

  /** Time passes: timeouts fire, heartbeats fall due. Call it often (every ~50 ms). */
  tick(now: Instant): ElectionAction[] {
    return this.#run(now, () => {});
  }

  /** A decoded, authenticated heartbeat arrived. */
  receive(hb: Heartbeat, now: Instant): ElectionAction[] {
    return this.#run(now, (out) => this.#accept(hb, now, out));
  }

  /** The configured peer set changed (a DNS answer or `--peers`); this node may be in it. */
  setPeers(addresses: readonly string[], now: Instant): ElectionAction[] {
    return this.#run(now, (out) => {
      const wanted = new Set(addresses.filter((a) => a !== this.options.self));
      this.#peerSet = wanted;
      for (const p of this.#peers.values()) p.inPeerSet = wanted.has(p.address);
      this.#admitListed(out, true);
      this.#peerSetMemory.record(this.#peerSetSize(), now.monoMs);
    });
  }

  /** A fresh observation of the local redis. */
  observeRedis(obs: RedisObservation, now: Instant): ElectionAction[] {
    return this.#run(now, (out) => {
      this.#observation = obs;
      if (obs.up && obs.runId !== null) {
        if (this.#knownRunId !== null && obs.runId !== this.#knownRunId) {
          out.push(
            event({ kind: "redis-restarted", oldRunId: this.#knownRunId, newRunId: obs.runId }),
          );
          this.#lineageLostAtRestart = this.#lineage;
          this.#setLineage(null, "local redis restarted (new run_id)", out);
          this.#followLinkSeenUp = false;
          this.#lastFollow = null;
          // Restart safety: park it before anything else; the steps below decide the rest.
          this.#redisTarget = { kind: "parked" };
          out.push({ type: "redis", target: this.#redisTarget });
        }
        if (this.#knownRunId === null) {
          const restored = this.options.restored;
          if (restored && restored.runId === obs.runId && restored.lineage !== null) {
            this.#setLineage(restored.lineage, "restored: same redis process as before", out);
          }
        }
        this.#knownRunId = obs.runId;
      }
      this.#trackReplication(obs, out);
    });
  }

  /**
   * The follower a leader should hand over to on a graceful shutdown: a live follower of this
   * node whose redis is up, linked and holds this node's lineage, the most caught-up first (by
   * reported offset), then the first address. Null when not leading or nobody qualifies.
   */
  successor(now: Instant): string | null {
    return this.successors(now)[0]?.address ?? null;
  }

  /**
   * Every follower that may take over (see {@link successor}), best first, with its redis port:
   * the runtime reads their real offsets once writes are paused and picks the first caught up
   * (reported offsets can be stale).
   */
  successors(now: Instant): { address: string; redisPort: number }[] {
    if (this.#role !== "leader") return [];
    return this.#liveHeartbeats(now)
      .filter((hb) =>
        hb.role === "follower" && hb.leader === this.options.self && hb.redis.up &&
        hb.redis.linkUp && sameLineage(hb.redis.lineage, this.#lineage)
      )
      .sort((a, b) => b.redis.offset - a.redis.offset || compareAddress(a.from, b.from))
      .map((hb) => ({ address: hb.from, redisPort: hb.redisPort }));
  }

  /**
   * The followers a leader whose redis died may hand over to: live followers of this node whose
   * redis is up and holds `lineage` (their link to the dead master is bound to break, so it is
   * not required), by reported offset, then address. The runtime reads their real offsets.
   */
  #crashSuccessors(
    now: Instant,
    lineage: Lineage | null,
  ): { address: string; redisPort: number }[] {
    if (lineage === null) return [];
    return this.#liveHeartbeats(now)
      .filter((hb) =>
        hb.role === "follower" && hb.leader === this.options.self && hb.redis.up &&
        sameLineage(hb.redis.lineage, lineage)
      )
      .sort((a, b) => b.redis.offset - a.redis.offset || compareAddress(a.from, b.from))
      .map((hb) => ({ address: hb.from, redisPort: hb.redisPort }));
  }

  /**
   * The leader's redis died (or restarted empty) and it has eligible followers: instead of
   * stepping down into an election, it stops leading at once and asks the runtime to choose the
   * successor (the `crash-handoff` action). Its heartbeat names itself as `handoffTo` meanwhile,
   * so its followers wait for the choice instead of standing.
   */
  #beginCrashHandoff(
    now: Instant,
    candidates: { address: string; redisPort: number }[],
    reason: string,
    out: ElectionAction[],
  ): void {
    this.#crashHandoff = {
      sinceMono: now.monoMs,
      candidates: candidates.map((c) => c.address),
      chosen: null,
    };
    this.#handoffTo = this.options.self;
    this.#setRole("follower", null, `${reason}: handing over to the best follower`, out);
    out.push({ type: "crash-handoff", candidates });
    out.push(
      event({ kind: "crash-handoff", reason, candidates: candidates.map((c) => c.address) }),
    );
  }

  /** A crash handoff ends when the successor leads, or gives up after `crashHandoffMs`. */
  #stepCrashHandoff(now: Instant, out: ElectionAction[]): void {
    const c = this.#crashHandoff;
    if (c === null) return;
    const chosenHb = c.chosen === null ? null : this.#peers.get(c.chosen)?.last ?? null;
    if (chosenHb !== null && this.#leader === c.chosen && claimsLeadership(chosenHb)) {
      this.#crashHandoff = null;
      this.#handoffTo = null;
      return;
    }
    if (now.monoMs - c.sinceMono >= this.timing.crashHandoffMs) {
      this.#endCrashHandoff(
        c.chosen === null ? "no successor chosen in time" : `${c.chosen} did not take over in time`,
        out,
      );
    }
  }

  #endCrashHandoff(reason: string, out: ElectionAction[]): void {
    this.#crashHandoff = null;
    this.#handoffTo = null;
    out.push(event({ kind: "crash-handoff-abandoned", reason }));
    this.#setRole("follower", null, `crash handoff abandoned: ${reason}`, out);
  }

  /**
   * Crash handoff: no candidate's redis answered (the runtime read none of their offsets in
   * time): give up at once, so the followers elect. Does nothing when no crash handoff is
   * choosing its successor.
   */
  abandonCrashHandoff(reason: string, now: Instant): ElectionAction[] {
    return this.#run(now, (out) => {
      if (this.#crashHandoff === null || this.#crashHandoff.chosen !== null) return;
      this.#endCrashHandoff(reason, out);
    });
  }

  /**
   * Graceful shutdown of a leader: asks `to` (see {@link successor}) to take over at once, with
   * no election, and becomes its follower; the local redis is parked (read-only) until `to`
   * leads, and the proxy holds. The caller paused writes and let `to` catch up first. Does
   * nothing when this node no longer leads.
   *
   * During a crash handoff (the `crash-handoff` action: this node led and its redis died), the
   * runtime calls it with the candidate it chose; `to` must be one of the action's candidates.
   */
  handOff(to: string, now: Instant): ElectionAction[] {
    return this.#run(now, (out) => {
      if (to === this.options.self || !this.#peers.has(to)) return;
      const crash = this.#crashHandoff;
      if (crash !== null) {
        // The runtime chose among the crash handoff's candidates.
        if (crash.chosen !== null || !crash.candidates.includes(to)) return;
        crash.chosen = to;
        this.#handoffTo = to;
        this.#grant.released(this.options.self); // its redis died: it acknowledges nothing
        this.#followLinkSeenUp = false;
        this.#parkedAfterLinkLossSeq = null; // a park from an earlier leader does not apply to `to`
        this.#setRole("follower", to, `handing over to ${to} (local redis died)`, out);
        out.push(event({ kind: "handoff", to }));
        return;
      }
      if (this.#role !== "leader") return;
      this.#handoffTo = to;
      this.#grant.released(this.options.self); // writes are paused: the successor may lead at once
      this.#setRole("follower", to, `handing over to ${to}`, out);
      out.push(event({ kind: "handoff", to }));
    });
  }

  /** A read-only picture for `/status`. */
  snapshot(now: Instant): ElectionSnapshot {
    return {
      id: this.options.self,
      role: this.#role,
      leader: this.#leader,
      electionStartMs: this.#electionStartMs,
      leaderSinceMs: this.#leaderSinceMs,
      lineage: this.#lineage,
      eligible: this.#eligible(now),
      redisTarget: this.#redisTarget,
      proxyTarget: this.#proxyTarget,
      redis: this.#redisReport(),
      peers: [...this.#peers.values()].sort((a, b) => compareAddress(a.address, b.address)).map(
        (p) => this.#view(p, now),
      ),
      stats: { ...this.stats },
      fence: this.#fence,
    };
  }

  /** One peer as in {@link snapshot}, or null when it is not tracked. */
  peer(address: string, now: Instant): PeerView | null {
    const p = this.#peers.get(address);
    return p === undefined ? null : this.#view(p, now);
  }

  #view(p: PeerState, now: Instant): PeerView {
    return {
      address: p.address,
      electionPort: p.electionPort,
      inPeerSet: p.inPeerSet,
      lastHeardAgoMs: p.lastHeardMono === null ? null : now.monoMs - p.lastHeardMono,
      live: this.#live(p, now),
      last: p.last,
    };
  }

  // ---- the loop -------------------------------------------------------------------------

  #run(now: Instant, apply: (out: ElectionAction[]) => void): ElectionAction[] {
    if (!Number.isFinite(now.monoMs) || !Number.isFinite(now.wallMs)) {
      throw new Error(`Election: invalid instant ${JSON.stringify(now)}`);
    }
    this.#startedMono ??= now.monoMs;
    this.#nowMono = now.monoMs;
    const out: ElectionAction[] = [];
    apply(out);
    this.#forget(now);
    this.#admitListed(out, false);
    this.#decideRole(now, out);
    this.#lineageLostAtRestart = null;
    this.#updateFence(now, out);
    this.#updateTargets(out);
    this.#persist(out);
    this.#sendHeartbeats(now, out);
    this.#sendProbe(now, out);
    this.#assertInvariants();
    return out;
  }

  #accept(hb: Heartbeat, now: Instant, out: ElectionAction[]): void {
    if (hb.from === this.options.self) {
      this.stats.heartbeatsFromSelf++;
      return;
    }
    const known = this.#peers.get(hb.from);
    const verdict = replayVerdict(
      known?.last ?? null,
      known?.retiredBoots ?? [],
      hb,
      now.wallMs,
      this.timing.maxClockSkewMs,
    );
    if (verdict !== "accept") {
      if (verdict === "stale") this.stats.heartbeatsStale++;
      else if (verdict === "old-boot") this.stats.heartbeatsOldBoot++;
      else this.stats.heartbeatsExpired++;
      return;
    }
    let peer = known;
    if (peer === undefined) {
      if (!this.#admit(hb.from, hb.electionPort, out)) return;
      peer = this.#peers.get(hb.from)!;
    }
    const last = peer.last;
    if (last !== null && last.bootId !== hb.bootId) {
      peer.retiredBoots = [last.bootId, ...peer.retiredBoots].slice(0, MAX_RETIRED_BOOTS);
    }
    if (last === null || last.bootId !== hb.bootId || hb.role === "starting") {
      this.#replyTo.add(hb.from);
    }
    this.stats.heartbeatsReceived++;
    if (!claimsLeadership(hb)) {
      peer.fencedSinceMono = null;
      peer.leftDeafMono = null;
      this.#grant.released(hb.from); // it no longer leads: echoes to it hold nobody off
    }
    peer.last = hb;
    peer.electionPort = hb.electionPort;
    peer.lastHeardMono = now.monoMs;
    if (hb.redis.up && hb.redis.lineage !== null) this.#lastDataHolderMono = now.monoMs;
    if (
      this.#parkedAfterLinkLossSeq !== null && hb.from === this.#leader &&
      hb.seq > this.#parkedAfterLinkLossSeq
    ) {
      this.#parkedAfterLinkLossSeq = null; // fresh word from the leader: point at it again (guarded)
    }
  }

  /**
   * Gives `address` a place in the peer table. A listed peer (in {@link #peerSet}) takes the
   * place of a heard-only one when the table is full; a heard-only peer is then refused.
   */
  #admit(address: string, electionPort: number, out: ElectionAction[]): boolean {
    const listed = this.#peerSet.has(address);
    if (this.#peers.size >= this.options.maxPeers && listed) {
      const victim = evictionVictim(this.#peers.values(), this.#leader);
      if (victim !== null) {
        this.#peers.delete(victim);
        this.#replyTo.delete(victim);
        this.#worseLeaderSince.delete(victim);
        this.stats.peersEvicted++;
        out.push(event({ kind: "peer-evicted", address: victim, forListed: address }));
      }
    }
    if (this.#peers.size >= this.options.maxPeers) {
      this.stats.peersRefused++;
      out.push(event({ kind: "peer-refused", address, reason: "max-peers" }));
      return false;
    }
    this.#peers.set(address, {
      address,
      electionPort,
      inPeerSet: listed,
      last: null,
      lastHeardMono: null,
      retiredBoots: [],
      probe: null,
      fencedSinceMono: null,
      leftDeafMono: null,
      lastSentMono: null,
    });
    return true;
  }

  /**
   * Every listed peer without a place gets one, retried on every event so that none stays out
   * once a place frees up. A refusal is counted when the peer set is applied (`report`), not
   * again at every retry.
   */
  #admitListed(out: ElectionAction[], report: boolean): void {
    if (this.#listedTracked() === this.#peerSet.size) return;
    for (const address of [...this.#peerSet].sort(compareAddress)) {
      if (this.#peers.has(address)) continue;
      const full = this.#peers.size >= this.options.maxPeers;
      if (full && !report && evictionVictim(this.#peers.values(), this.#leader) === null) return;
      if (!this.#admit(address, this.options.electionPort, out)) return;
    }
  }

  #listedTracked(): number {
    let n = 0;
    for (const p of this.#peers.values()) if (p.inPeerSet) n++;
    return n;
  }

  #forget(now: Instant): void {
    for (const [address, p] of this.#peers) {
      if (p.inPeerSet || address === this.#leader) continue;
      const silentMs = p.lastHeardMono === null ? Infinity : now.monoMs - p.lastHeardMono;
      if (silentMs >= this.timing.peerForgetMs) this.#peers.delete(address);
    }
  }

  #trackReplication(obs: RedisObservation, out: ElectionAction[]): void {
    const f = this.#lastFollow;
    if (f === null || !obs.up) return;
    // The redis holds the leader's data when its link to it is up, or when it carries the
    // leader's replication id (it completed a sync, even if the link broke or the target changed
    // since).
    const pointed = obs.role === "replica" && obs.masterHost === f.host &&
      obs.masterPort === f.port;
    const linkUp = pointed && obs.linkUp && !obs.loading;
    const carriesLeaderReplId = obs.replId !== null && obs.replId === f.replId;
    if (
      (linkUp || carriesLeaderReplId) && f.lineage !== null &&
      !sameLineage(f.lineage, this.#lineage)
    ) {
      this.#setLineage(f.lineage, `synced from leader ${f.host}`, out);
    }
    const target = this.#redisTarget;
    if (this.#role !== "follower" || target.kind !== "follow" || !pointed) return;
    const syncedSincePointed = linkUp ||
      (carriesLeaderReplId && obs.replId !== f.replIdWhenPointed);
    if (linkUp) {
      this.#followLinkSeenUp = true;
    } else if (this.#followLinkSeenUp || syncedSincePointed) {
      // The link to the leader's redis broke. Redis would reconnect on its own within a second,
      // possibly to a master that restarted empty: park until the leader speaks again, then
      // re-point through the run_id guard.
      this.#followLinkSeenUp = false;
      f.replIdWhenPointed = obs.replId;
      this.#parkedAfterLinkLossSeq = this.#peers.get(target.host)?.last?.seq ?? 0;
      out.push(event({ kind: "parked-on-link-loss", leader: target.host }));
    }
  }

  // ---- role decisions -------------------------------------------------------------------

  #live(p: PeerState, now: { monoMs: number }): boolean {
    return p.lastHeardMono !== null && now.monoMs - p.lastHeardMono < this.timing.failureMs;
  }

  #liveHeartbeats(now: Instant): Heartbeat[] {
    const out: Heartbeat[] = [];
    for (const p of this.#peers.values()) {
      if (p.last !== null && this.#live(p, now)) out.push(p.last);
    }
    return out;
  }

  #redisUsable(): boolean {
    const o = this.#observation;
    return o !== null && o.up && !o.loading && o.runId !== null && o.runId === this.#knownRunId;
  }

  /**
   * May this node be elected? Its redis must be up. Without the dataset it must also have heard
   * no peer holding one for {@link ElectionTiming.emptyPromotionDelayMs}; and if it never heard
   * one, it must have heard every peer of its peer set (a cold start) or have waited that long.
   */
  #eligible(now: Instant): boolean {
    if (!this.#redisUsable()) return false;
    if (this.#lineage !== null) return true;
    const delay = this.timing.emptyPromotionDelayMs;
    const heard = this.#lastDataHolderMono;
    if (heard !== null) return now.monoMs - heard >= delay;
    if (now.monoMs - this.#startedMono! >= delay) return true;
    let inSet = 0;
    for (const p of this.#peers.values()) {
      if (!p.inPeerSet) continue;
      if (p.lastHeardMono === null) return false;
      inSet++;
    }
    return inSet > 0;
  }

  /** A leader this node may follow: its redis is up and holds a lineage no younger than ours. */
  #acceptable(hb: Heartbeat): boolean {
    // A leader must name its redis process: the run_id guard checks it before every REPLICAOF.
    const peer = this.#peers.get(hb.from);
    return claimsLeadership(hb) && hb.redis.up && hb.redis.runId !== null &&
      hb.redis.lineage !== null && compareLineage(hb.redis.lineage, this.#lineage) <= 0 &&
      (peer === undefined || !this.#leftDeaf(peer));
  }

  /** This node left that leader as deaf (see {@link PeerState.leftDeafMono}) recently. */
  #leftDeaf(peer: PeerState): boolean {
    return peer.leftDeafMono !== null &&
      this.#nowMono - peer.leftDeafMono < DEAF_LEADER_MEMORY_FAILURES * this.timing.failureMs;
  }

  /**
   * A leader whose probes said it was fenced for `failureMs` while this node followed it, and
   * whose heartbeats say it hears fewer followers than a majority, does not hear its group (a
   * one-way cut); when this node hears a majority of the peer set (itself included) without
   * it, that majority leaves it and elects a leader that hears it. A minority keeps following
   * it (leaving would gain nothing and flap). A new leader's first moments (fenced until a
   * majority echoes) are much shorter than `failureMs`.
   */
  #fencedTooLong(peer: PeerState): boolean {
    if (peer.fencedSinceMono === null) return false;
    // Counted from when this node followed it (and so echoed): the echoes did not help.
    const since = Math.max(peer.fencedSinceMono, this.#leaderChangedMono);
    if (this.#nowMono - since < this.timing.failureMs) return false;
    let inSet = 0;
    let heard = 1;
    for (const p of this.#peers.values()) {
      if (!p.inPeerSet) continue;
      inSet++;
      if (p !== peer && p.lastHeardMono !== null && this.#live(p, { monoMs: this.#nowMono })) {
        heard++;
      }
    }
    const size = this.#peerSetMemory.size(inSet + 1, this.#nowMono);
    const needed = quorumNeeded(this.#fenceMode, size);
    // Deaf, not slow: its own heartbeats say it hears too few followers (on a slow network it
    // hears them all, its leases just arrive late).
    const deaf = (peer.last?.groupSize ?? 0) < needed;
    return deaf && heard >= needed;
  }

  #bestLeader(candidates: Heartbeat[]): Heartbeat | null {
    let best: Heartbeat | null = null;
    for (const hb of candidates) {
      if (!this.#acceptable(hb)) continue;
      if (best === null || compareLeaders(leaderRankOf(hb), leaderRankOf(best)) < 0) best = hb;
    }
    return best;
  }

  #myLeaderRank(now: Instant): LeaderRank {
    return {
      address: this.options.self,
      lineage: this.#lineage,
      groupSize: this.#lastSent?.role === "leader"
        ? this.#lastSent.groupSize
        : this.#groupSize(now),
      leaderSinceMs: this.#leaderSinceMs ?? Infinity,
    };
  }

  #groupSize(now: Instant): number {
    let n = 1;
    for (const hb of this.#liveHeartbeats(now)) {
      if (hb.role === "follower" && hb.leader === this.options.self) n++;
    }
    return n;
  }

  /** One step of the role's state machine: each role decides its next role on its own. */
  #decideRole(now: Instant, out: ElectionAction[]): void {
    const live = this.#liveHeartbeats(now);
    switch (this.#role) {
      case "starting":
        return this.#stepStarting(now, live, out);
      case "follower":
        return this.#stepFollower(now, live, out);
      case "candidate":
        return this.#stepCandidate(now, live, out);
      case "leader":
        return this.#stepLeader(now, live, out);
    }
  }

  /** Starting: follow a leader heard while listening, or go leaderless once the window ends. */
  #stepStarting(now: Instant, live: Heartbeat[], out: ElectionAction[]): void {
    const best = this.#bestLeader(live);
    if (best !== null) this.#follow(best, "heard a leader at startup", out);
    else if (now.monoMs - this.#startedMono! >= this.timing.startupListenMs) {
      this.#leaderless(now, "no leader heard at startup", out);
    }
  }

  /**
   * Follower: with no leader, follow one heard or stand when eligible; with a leader, keep it
   * while it lives and leads (or hands over to this node, or to a successor), else leave it.
   */
  #stepFollower(now: Instant, live: Heartbeat[], out: ElectionAction[]): void {
    this.#stepCrashHandoff(now, out);
    if (this.#crashHandoff !== null && this.#crashHandoff.chosen === null) return; // choosing
    if (this.#leader === null) {
      const best = this.#bestLeader(live);
      if (best !== null) this.#follow(best, "heard a leader", out);
      else if (this.#eligible(now)) this.#startElection(now, "eligible with no leader", out);
      return;
    }
    const lost = this.#whyLeaderLost(now, out);
    if (lost === null) return;
    if (this.#crashHandoff !== null) {
      // The chosen successor is lost before it led: the crash handoff is over (no leadership
      // may start while one runs).
      this.#crashHandoff = null;
      this.#handoffTo = null;
    }
    const best = this.#bestLeader(live.filter((h) => h.from !== this.#leader));
    if (best !== null) this.#follow(best, lost, out);
    else this.#leaderless(now, lost, out);
  }

  /**
   * Why the followed leader is lost, or null when this node keeps following (or already acted:
   * took over on a handoff, or followed the leader's own new leader).
   */
  #whyLeaderLost(now: Instant, out: ElectionAction[]): string | null {
    const peer = this.#peers.get(this.#leader!);
    const hb = peer?.last ?? null;
    if (peer === undefined || hb === null || !this.#live(peer, now)) return "leader silent";
    if (hb.handoffTo === this.options.self && this.#eligible(now)) {
      this.#becomeLeader(now, [], out, `${hb.from} handed over`);
      return null;
    }
    if (!claimsLeadership(hb) && this.#handoffTo === hb.from) {
      return null; // this node handed over to it: wait (while it lives) for it to lead
    }
    if (!claimsLeadership(hb)) {
      const next = hb.leader === null ? undefined : this.#peers.get(hb.leader);
      const nextHb = next?.last ?? null;
      if (next && nextHb && this.#live(next, now) && this.#acceptable(nextHb)) {
        this.#follow(nextHb, `leader ${hb.from} now follows ${nextHb.from}`, out);
        return null;
      }
      if (hb.handoffTo !== null) return null; // a handoff is under way: wait for the successor
      return "leader stepped down";
    }
    if (!hb.redis.up) return "leader's redis is down";
    if (this.#fencedTooLong(peer)) {
      peer.leftDeafMono = this.#nowMono;
      return `leader fenced for ${this.timing.failureMs} ms: it does not hear a majority`;
    }
    if (!this.#acceptable(hb)) return "leader holds no dataset or a younger one";
    return null;
  }

  /**
   * Candidate: follow a leader heard, give up when no longer eligible, and once the election
   * window closed, lead unless a rival candidate ranks first.
   */
  #stepCandidate(now: Instant, live: Heartbeat[], out: ElectionAction[]): void {
    const best = this.#bestLeader(live);
    if (best !== null) {
      this.#follow(best, "heard a leader during the election", out);
      return;
    }
    if (!this.#eligible(now)) {
      this.#setRole("follower", null, "no longer eligible", out);
      return;
    }
    const me: CandidateRank = {
      address: this.options.self,
      lineage: this.#lineage,
      offset: this.#observation?.offset ?? 0,
      electionStartMs: this.#electionStartMs!,
    };
    const rivals = live.filter((hb) =>
      hb.role === "candidate" && hb.electionStartMs !== null && hb.redis.up
    );
    if (now.monoMs - this.#candidateSinceMono < this.timing.electionWindowMs) {
      // Early win: every live peer already stands and ranks below this node (they all lost the
      // leader too), so the window has nothing left to tell. A peer still following, starting
      // or leading, or a better rival, means waiting the window out as before.
      const early = live.length > 0 && rivals.length === live.length &&
        rivals.every((hb) => compareCandidates(candidateRankOf(hb), me) > 0);
      if (!early) return;
      this.#becomeLeader(
        now,
        rivals.map((hb) => hb.from),
        out,
        "won the election (every peer stood)",
      );
      return;
    }
    if (rivals.some((hb) => compareCandidates(candidateRankOf(hb), me) < 0)) return;
    this.#becomeLeader(now, rivals.map((hb) => hb.from), out, "won the election");
  }

  /**
   * Leader: step down when the local redis is unusable or lost the dataset; follow a leader
   * that ranks first; yield to a worse-ranked leader that keeps leading (a one-way cut).
   */
  #stepLeader(now: Instant, live: Heartbeat[], out: ElectionAction[]): void {
    if (!this.#redisUsable() || this.#lineage === null) {
      const reason = !this.#redisUsable() ? "local redis is down" : "local redis lost the dataset";
      const candidates = this.#crashSuccessors(now, this.#lineage ?? this.#lineageLostAtRestart);
      if (candidates.length > 0) this.#beginCrashHandoff(now, candidates, reason, out);
      else this.#stepDown(now, reason, out);
      return;
    }
    const me = this.#myLeaderRank(now);
    // Leaders that meet merge by rank, fenced or not (a fenced leader is often one nobody
    // follows yet), except one this node left because it did not hear its group.
    const better = live.filter((hb) =>
      claimsLeadership(hb) && this.#acceptable(hb) &&
      compareLeaders(leaderRankOf(hb), me) < 0
    );
    const best = this.#bestLeader(better);
    if (best !== null) {
      this.#follow(best, `met leader ${best.from}, which ranks first`, out);
      return;
    }
    this.#yieldOnOneWayCut(now, live, out);
  }

  /**
   * A worse-ranked leader that keeps leading for failureMs cannot be hearing this node (it
   * would have yielded): a one-way cut. Yield to it, so one side does not stay split.
   */
  #yieldOnOneWayCut(now: Instant, live: Heartbeat[], out: ElectionAction[]): void {
    // A fenced leader acknowledges no write: never yield to it (it is the one cut off).
    const worse = live.filter((hb) =>
      claimsLeadership(hb) && this.#acceptable(hb) &&
      this.#peers.get(hb.from)?.fencedSinceMono === null
    );
    for (const address of this.#worseLeaderSince.keys()) {
      if (!worse.some((hb) => hb.from === address)) this.#worseLeaderSince.delete(address);
    }
    for (const hb of worse) {
      const since = this.#worseLeaderSince.get(hb.from);
      if (since === undefined) this.#worseLeaderSince.set(hb.from, now.monoMs);
      else if (now.monoMs - since >= this.timing.failureMs) {
        this.#follow(hb, `leader ${hb.from} does not hear this node (one-way cut)`, out);
        return;
      }
    }
  }

  #leaderless(now: Instant, reason: string, out: ElectionAction[]): void {
    if (this.#eligible(now)) this.#startElection(now, reason, out);
    else this.#setRole("follower", null, `${reason}; not eligible, waiting for a leader`, out);
  }

  #startElection(now: Instant, reason: string, out: ElectionAction[]): void {
    this.#electionStartMs = now.wallMs;
    this.#candidateSinceMono = now.monoMs;
    this.stats.elections++;
    this.#setRole("candidate", null, reason, out);
    out.push(event({ kind: "election-started", electionStartMs: now.wallMs, reason }));
  }

  #becomeLeader(now: Instant, rivals: string[], out: ElectionAction[], reason: string): void {
    if (this.#lineage === null) {
      this.#setLineage(
        { bornMs: now.wallMs, bornBy: this.options.self },
        "elected with no dataset anywhere",
        out,
      );
    }
    this.#leaderSinceMs = now.wallMs;
    this.#leaderSinceMono = now.monoMs;
    this.#leases.clear(); // fenced from its first moment, until a majority echoes
    this.#probeNow = true;
    this.#setRole("leader", this.options.self, reason, out);
    out.push(
      event({ kind: "elected", candidates: rivals.sort(compareAddress), lineage: this.#lineage! }),
    );
  }

  #stepDown(now: Instant, reason: string, out: ElectionAction[]): void {
    this.#setRole("follower", null, reason, out);
    const best = this.#bestLeader(this.#liveHeartbeats(now));
    if (best !== null) this.#follow(best, reason, out);
  }

  #follow(hb: Heartbeat, reason: string, out: ElectionAction[]): void {
    if (this.#role === "follower" && this.#leader === hb.from) return;
    this.#followLinkSeenUp = false;
    this.#parkedAfterLinkLossSeq = null;
    this.#setRole("follower", hb.from, reason, out);
  }

  #setRole(role: Role, leader: string | null, reason: string, out: ElectionAction[]): void {
    if (role === this.#role && leader === this.#leader) return;
    this.#worseLeaderSince.clear();
    const from = this.#role;
    if (leader !== this.#leader) this.stats.leaderChanges++;
    this.#leaderChangedMono = this.#nowMono;
    this.#role = role;
    this.#leader = leader;
    if (role !== "candidate") this.#electionStartMs = null;
    if (role !== "leader") {
      this.#leaderSinceMs = null;
      this.#leaderSinceMono = null;
    }
    out.push(event({ kind: "role-changed", from, to: role, leader, reason }));
  }

  #setLineage(lineage: Lineage | null, reason: string, out: ElectionAction[]): void {
    if (sameLineage(lineage, this.#lineage)) return;
    this.#lineage = lineage;
    out.push(event({ kind: "lineage-changed", lineage, reason }));
  }

  // ---- the fence ------------------------------------------------------------------------

  #acceptProbe(p: LeaseMessage & { kind: "probe" }, now: Instant, out: ElectionAction[]): void {
    const peer = this.#peers.get(p.from);
    const last = peer?.last ?? null;
    if (peer === undefined || last === null || last.bootId !== p.bootId) {
      this.stats.leaseStale++; // heartbeats admit peers and boots; probes only follow them
      return;
    }
    if (peer.probe !== null && peer.probe.bootId === p.bootId && p.seq <= peer.probe.seq) {
      this.stats.leaseStale++;
      return;
    }
    peer.probe = { bootId: p.bootId, seq: p.seq };
    if (!claimsLeadership(last)) return;
    if (p.fenced) peer.fencedSinceMono ??= now.monoMs;
    else {
      peer.fencedSinceMono = null;
      peer.leftDeafMono = null;
    }
    if (this.#role !== "follower" || this.#leader !== p.from) return;
    // A probe from the leader proves it alive as much as a heartbeat does: the echo below
    // promises the leader that this node will not leave it before failureMs from now.
    peer.lastHeardMono = now.monoMs;
    if (!this.#grant.mayEcho(p.from, now.monoMs, this.timing.leaseHoldoffMs)) return;
    this.#grant.echoed(p.from, now.monoMs);
    this.stats.leaseEchoesSent++;
    out.push({
      type: "lease",
      to: [{ host: p.from, port: peer.electionPort }],
      message: {
        kind: "echo",
        from: this.options.self,
        bootId: this.options.bootId,
        to: p.from,
        leaderBoot: p.bootId,
        sentMono: p.sentMono,
      },
    });
  }

  #acceptEcho(e: LeaseMessage & { kind: "echo" }, now: Instant): void {
    const fresh = this.#role === "leader" && e.to === this.options.self &&
      e.leaderBoot === this.options.bootId && this.#peers.has(e.from) &&
      e.sentMono <= now.monoMs && e.sentMono >= (this.#leaderSinceMono ?? Infinity);
    if (!fresh) {
      this.stats.leaseStale++;
      return;
    }
    this.stats.leaseEchoesReceived++;
    this.#leases.record(e.from, e.sentMono);
  }

  /** The configured peer set's size now, itself included. */
  #peerSetSize(): number {
    let n = 1;
    for (const p of this.#peers.values()) if (p.inPeerSet) n++;
    return n;
  }

  #updateFence(now: Instant, out: ElectionAction[]): void {
    let state = NOT_LEADING;
    if (this.#role === "leader") {
      // Leading counts as echoing itself: after it stops, it echoes no other leader within
      // the holdoff (its redis may still take a write until it is parked), unless it handed over.
      this.#grant.echoed(this.options.self, now.monoMs);
      // Any tracked peer may echo; the majority is of the largest recent peer set (DNS).
      const voters = [...this.#peers.keys()];
      const size = this.#peerSetMemory.size(this.#peerSetSize(), now.monoMs);
      state = this.#leases.evaluate(
        now.monoMs,
        voters,
        this.timing.leaseMs,
        this.#fenceMode,
        size,
      );
    }
    const before = this.#fence;
    this.#fence = state;
    if (!fenceChanged(before, state)) return;
    if (state.fenced && !before.fenced) {
      this.stats.fences++;
      out.push(event({ kind: "fenced", reason: state.reason }));
    } else if (!state.fenced && before.fenced) {
      out.push(event({
        kind: "unfenced",
        reason: this.#role === "leader" ? state.reason : "no longer leading",
      }));
    }
    if (this.#role === "leader") this.#probeNow = true;
    out.push({ type: "fence", state });
  }

  #sendProbe(now: Instant, out: ElectionAction[]): void {
    if (!this.#probeNow) return;
    this.#probeNow = false;
    if (this.#role !== "leader") return;
    const to = this.#endpoints();
    if (to.length === 0) return;
    this.stats.leaseProbesSent += to.length;
    out.push({
      type: "lease",
      to,
      message: {
        kind: "probe",
        from: this.options.self,
        bootId: this.options.bootId,
        seq: ++this.#probeSeq,
        sentMono: now.monoMs,
        fenced: this.#fence.fenced,
      },
    });
  }

  // ---- outputs --------------------------------------------------------------------------

  #updateTargets(out: ElectionAction[]): void {
    let redis: RedisTarget = { kind: "parked" };
    let proxy: ProxyTarget = null;
    if (this.#role === "leader") {
      redis = { kind: "leader" };
      const o = this.#observation;
      if (o !== null && o.up && o.role === "master") proxy = { ...this.options.localRedis };
    } else if (this.#role === "follower" && this.#leader !== null) {
      const hb = this.#peers.get(this.#leader)?.last ?? null;
      if (hb !== null && hb.redis.up && hb.redis.role === "master") {
        proxy = { host: hb.from, port: hb.redisPort };
        if (this.#parkedAfterLinkLossSeq === null) {
          redis = {
            kind: "follow",
            host: hb.from,
            port: hb.redisPort,
            expectRunId: hb.redis.runId,
          };
        }
      }
    }
    if (!sameRedisTarget(redis, this.#redisTarget)) {
      this.#redisTarget = redis;
      if (redis.kind === "follow") {
        const leaderRedis = this.#peers.get(redis.host)?.last?.redis;
        this.#lastFollow = {
          host: redis.host,
          port: redis.port,
          replId: leaderRedis?.replId ?? null,
          lineage: leaderRedis?.lineage ?? null,
          replIdWhenPointed: this.#observation?.replId ?? null,
        };
      }
      if (redis.kind !== "follow") this.#followLinkSeenUp = false;
      out.push({ type: "redis", target: redis });
    }
    if (!sameProxyTarget(proxy, this.#proxyTarget)) {
      this.#proxyTarget = proxy;
      out.push({ type: "proxy", target: proxy });
    }
  }

  #persisted: PersistedState | null = null;

  #persist(out: ElectionAction[]): void {
    const runId = this.#knownRunId;
    if (runId === null) return;
    const p = this.#persisted;
    if (p !== null && p.runId === runId && sameLineage(p.lineage, this.#lineage)) return;
    this.#persisted = { runId, lineage: this.#lineage };
    out.push({ type: "persist", state: this.#persisted });
  }

  #redisReport(): RedisReport {
    const o = this.#observation;
    const usable = this.#redisUsable();
    return {
      up: usable,
      role: o === null || !o.up ? "unknown" : o.role,
      runId: this.#knownRunId,
      replId: o?.replId ?? null,
      offset: o?.offset ?? 0,
      linkUp: o?.linkUp ?? false,
      loading: o?.loading ?? false,
      lineage: this.#lineage,
    };
  }

  #heartbeat(now: Instant): Heartbeat {
    this.#seq++;
    return {
      version: HEARTBEAT_VERSION,
      from: this.options.self,
      electionPort: this.options.electionPort,
      redisPort: this.options.redisPort,
      bootId: this.options.bootId,
      seq: this.#seq,
      sentMs: now.wallMs,
      role: this.#role,
      leader: this.#leader,
      electionStartMs: this.#electionStartMs,
      leaderSinceMs: this.#leaderSinceMs,
      groupSize: this.#role === "leader" ? this.#groupSize(now) : 0,
      handoffTo: this.#handoffTo,
      redis: this.#redisReport(),
    };
  }

  #sendHeartbeats(now: Instant, out: ElectionAction[]): void {
    const due = this.#lastSentMono === null ||
      now.monoMs - this.#lastSentMono >= this.timing.heartbeatMs;
    const hb = this.#heartbeat(now);
    const changed = this.#lastSent === null || reportChanged(this.#lastSent, hb);
    if (due || changed) {
      const to = this.#endpoints();
      this.#lastSentMono = now.monoMs;
      this.#lastSent = hb;
      this.#replyTo.clear();
      for (const p of this.#peers.values()) p.lastSentMono = now.monoMs;
      if (to.length > 0) {
        this.stats.heartbeatsSent += to.length;
        out.push({ type: "send", to, heartbeat: hb });
      }
      return;
    }
    this.#seq--; // nothing sent: the sequence number was not used
    if (this.#replyTo.size > 0) {
      // At most one reply per peer per heartbeat interval: two starting nodes would otherwise
      // answer each other's answers, back and forth, for their whole start-up.
      const to = [...this.#replyTo].sort(compareAddress).flatMap((a) => {
        const p = this.#peers.get(a);
        if (p === undefined) return [];
        if (p.lastSentMono !== null && now.monoMs - p.lastSentMono < this.timing.heartbeatMs) {
          this.stats.repliesSuppressed++;
          return [];
        }
        p.lastSentMono = now.monoMs;
        return [{ host: a, port: p.electionPort }];
      });
      this.#replyTo.clear();
      if (to.length === 0) return;
      const reply = this.#heartbeat(now);
      this.stats.heartbeatsSent += to.length;
      out.push({ type: "send", to, heartbeat: reply });
    }
  }

  #endpoints(): PeerEndpoint[] {
    return [...this.#peers.values()].sort((a, b) => compareAddress(a.address, b.address)).map(
      (p) => ({ host: p.address, port: p.electionPort }),
    );
  }

  #assertInvariants(): void {
    const fail = (msg: string) => {
      throw new Error(`Election invariant broken on ${this.options.self}: ${msg}`);
    };
    if (this.#peers.size > this.options.maxPeers) fail("more peers than maxPeers");
    if (this.#peers.has(this.options.self)) fail("tracks itself as a peer");
    switch (this.#role) {
      case "leader":
        if (this.#leader !== this.options.self) fail("leader does not lead itself");
        if (this.#lineage === null) fail("leader without a lineage");
        if (this.#leaderSinceMs === null) fail("leader without leaderSinceMs");
        if (this.#redisTarget.kind !== "leader") fail("leader's redis not targeted as master");
        break;
      case "candidate":
        if (this.#electionStartMs === null) fail("candidate without electionStartMs");
        if (this.#leader !== null) fail("candidate with a leader");
        break;
      case "follower":
        if (this.#leader === this.options.self) fail("follower of itself");
        break;
      case "starting":
        if (this.#leader !== null) fail("starting with a leader");
        break;
    }
    if (this.#crashHandoff !== null && this.#role === "leader") {
      fail("leads during a crash handoff");
    }
    if (this.#redisTarget.kind === "leader" && this.#role !== "leader") {
      fail("redis targeted as master while not leading");
    }
  }
}

function event(e: ElectionEvent): ElectionAction {
  return { type: "event", event: e };
}

function candidateRankOf(hb: Heartbeat): CandidateRank {
  return {
    address: hb.from,
    lineage: hb.redis.lineage,
    offset: hb.redis.offset,
    electionStartMs: hb.electionStartMs!,
  };
}

function leaderRankOf(hb: Heartbeat): LeaderRank {
  return {
    address: hb.from,
    lineage: hb.redis.lineage,
    groupSize: hb.groupSize,
    leaderSinceMs: hb.leaderSinceMs ?? Infinity,
  };
}

/** True when peers must hear of a change at once rather than at the next interval. */
function reportChanged(a: Heartbeat, b: Heartbeat): boolean {
  return a.role !== b.role || a.leader !== b.leader || a.groupSize !== b.groupSize ||
    a.handoffTo !== b.handoffTo ||
    a.electionStartMs !== b.electionStartMs || a.redis.up !== b.redis.up ||
    a.redis.role !== b.redis.role || a.redis.runId !== b.redis.runId ||
    !sameLineage(a.redis.lineage, b.redis.lineage);
}
