/**
 * The simulator's referee: checks the product's safety rules (docs/election.md) at every step of a
 * {@link World} and records every violation with the time it happened.
 *
 * - A replica holding a dataset never syncs from a master holding a younger one (or an empty
 *   one): that would wipe the dataset. Datasets born within {@link LINEAGE_SKEW_MARGIN_MS} of
 *   each other may compare in either order (their birth times are skewed wall clocks).
 * - An empty redis is never promoted while a peer holding the dataset has been reachable, with
 *   its hive up and a full DNS view on both sides, for the whole grace period.
 * - Once the world has been calm for `settleMs`: at most one leader per connected group (nodes
 *   linked, directly or through others, by working two-way paths), every leader's redis is a
 *   master whose proxy forwards to the local redis's socket, every follower that can reach its
 *   leader both ways replicates it and forwards its proxy to it, and a follower that reports
 *   itself caught up with its leader (`/readyz`) holds the leader's dataset.
 * - Convergence includes every follower reporting itself caught up.
 * - Busy is not dead: a leader never stops leading because its redis was down while that redis
 *   was in fact busy (a script, a pause) for less than the hang timeout.
 * - The fence (docs/election.md): no two redis processes acknowledge writes at the same time
 *   (a master, not fenced, its `min-replicas-to-write` backstop met, and some live proxy
 *   forwarding to it), at every check. The documented bound: a redis whose hive is stalled or
 *   dead cannot be fenced by it (only the backstop holds, within `SIM_BACKSTOP_LAG_MS` (world.ts) of
 *   its replicas leaving), so it is excused until {@link FENCE_ACTUATION_MS} after its hive
 *   runs again; the time such excused overlaps last is counted in {@link excusedOverlapMs}.
 *   Convergence includes a leader whose redis acknowledges writes.
 *
 * @example
 * ```ts
 * import { World } from "./world.ts";
 * import { Checker } from "./checker.ts";
 * const w = new World({ seed: 7, nodes: 3 });
 * const c = new Checker(w, { settleMs: 3000, graceMs: 6000 });
 * w.startAll();
 * w.run(10_000);
 * console.log(c.violations); // []
 * ```
 */

import * as policy from "../lib/hive/policy.ts";
import type { ElectionAction } from "../lib/election/election.ts";
import type { ProxyUpstream } from "../lib/proxy/proxy_options.ts";
import { type Origin, SIM_COMMAND_MS, SIM_LOCAL_REDIS, type SimNode, type World } from "./world.ts";

/** Where a proxy forwards, for the checks: the leader's host, "local socket", or "hold". */
function forwardsTo(u: ProxyUpstream): string {
  if (u === null) return "hold";
  return "path" in u ? "local socket" : u.host;
}

/** Twice the largest clock skew the simulator injects. */
export const LINEAGE_SKEW_MARGIN_MS = 10_000;
/**
 * A node's redis and proxy are judged only once its role and leader have been stable this long
 * (a leader elected during a calm period promotes its redis a few milliseconds later).
 */
export const ROLE_SETTLE_MS = 300;
/**
 * After a stall, a hive runs its deferred tick and fence command within this long (a tick and
 * two commands).
 */
export const FENCE_ACTUATION_MS = policy.TICK_MS + 2 * SIM_COMMAND_MS;
/** How often the periodic checks run, in simulated milliseconds. */
export const CHECK_INTERVAL_MS = 25;

/** One broken rule. */
export interface Violation {
  atMs: number;
  rule: string;
  detail: string;
}

/** Checker options. */
export interface CheckerOptions {
  /** Calm time after which the settled rules apply. */
  settleMs: number;
  /** Reachability time after which an empty promotion is a violation. */
  graceMs: number;
}

/** See the module documentation. */
export class Checker {
  readonly violations: Violation[] = [];
  /**
   * Wipes that the documented limitation explains: a master started as a plain master (not
   * parked) restarted empty while the replica's own hive was down or stalled, so nothing could
   * park the replica before redis reconnected it by itself.
   */
  knownLimitationWipes = 0;
  /** Time of the last fault, topology, DNS or process change. */
  lastDisturbanceMs = 0;
  /** Upper bound of UDP loss under which the world still counts as calm. */
  calmLossMax = 0.05;
  /** Round trips at or above this (the fence's lease, 150 ms) are not calm. */
  calmRoundTripMaxMs = 150;
  /**
   * Milliseconds (in check steps) during which two redis acknowledged writes while at least one
   * of them was excused (its hive stalled or dead: only the backstop fences it).
   */
  excusedOverlapMs = 0;
  /** Milliseconds (in check steps) an empty plain-master redis acknowledged writes. */
  emptyPlainMasterMs = 0;
  /** Milliseconds during which no redis acknowledged writes (the fence's price, and failovers). */
  noWriterMs = 0;
  #holderSince = new Map<number, number>();
  #hiveSince = new Map<number, number>();
  #hiveBoots = new Map<number, number>();
  /** Per node: its last (role, leader) and since when. */
  #roleSince = new Map<number, { key: string; since: number }>();

  /** Attaches to the world's hooks and starts the periodic checks. */
  constructor(readonly world: World, readonly options: CheckerOptions) {
    world.hooks = {
      onSync: (replica, master, from, to) => this.#onSync(replica, master, from, to),
      onPromote: (node, origin) => this.#onPromote(node, origin),
      onDisturb: () => this.disturb(),
      onAction: (node, action) => this.#onAction(node, action),
    };
    const periodic = () => {
      this.#periodic();
      world.queue.after(CHECK_INTERVAL_MS, periodic);
    };
    world.queue.after(0, periodic);
  }

  /** Marks a disturbance now (the scheduler calls it for every fault it injects). */
  disturb(): void {
    this.lastDisturbanceMs = this.world.now;
  }

  /** True when the world has been calm long enough for the settled rules. */
  get settled(): boolean {
    // A busy redis (a pause past the hang timeout) cannot be re-pointed until it answers.
    const busy = this.world.nodes.some((n) =>
      n.redis !== null && this.world.now < n.redis.busyUntil
    );
    // With the fence, a network whose round trip exceeds the lease (150 ms) keeps every leader
    // fenced and its group may churn (docs/election.md, limits): not calm.
    const slow = 2 * this.world.delayMs.max >= this.calmRoundTripMaxMs;
    return !busy && !slow && this.world.now - this.lastDisturbanceMs >= this.options.settleMs &&
      this.world.loss <= this.calmLossMax;
  }

  #fail(rule: string, detail: string): void {
    if (this.violations.length < 20) {
      this.violations.push({ atMs: this.world.now, rule, detail });
    }
  }

  #onAction(node: SimNode, action: ElectionAction): void {
    if (action.type !== "event" || action.event.kind !== "role-changed") return;
    const e = action.event;
    const r = node.redis;
    if (e.from !== "leader" || !e.reason.startsWith("local redis is down") || r === null) return;
    const now = this.world.now;
    const episodeMs = r.busyUntil - r.busySince;
    // The hive's own wait counts too: stalled while its redis was paused, crashed and came back
    // busy, it has had no answer for the hang timeout, and "hung" is the right verdict.
    const hiveWaitedMs = now - node.lastAnsweredMs;
    if (
      r.busySince <= now && now < r.busyUntil && episodeMs < this.world.redisHangMs &&
      hiveWaitedMs < this.world.redisHangMs
    ) {
      this.#fail(
        "a busy redis was taken for dead",
        `${node.address}: busy for ${episodeMs} ms (hang timeout ${this.world.redisHangMs} ms)`,
      );
    }
  }

  #onSync(replica: SimNode, master: SimNode, from: Origin, to: Origin): void {
    if (from.id === to.id || from.bornAt === null) return;
    const younger = to.bornAt === null || to.bornAt > from.bornAt + LINEAGE_SKEW_MARGIN_MS;
    if (!younger) return;
    const replicaHiveAway = replica.hive === null || this.world.now < replica.stalledUntilMs;
    if (replicaHiveAway && !master.redisStartsParked) {
      this.knownLimitationWipes++;
      return;
    }
    this.#fail(
      "dataset wiped",
      `${replica.address} held dataset #${from.id} (born ${from.bornAt}) and synced from ` +
        `${master.address} holding #${to.id} (born ${to.bornAt ?? "never: empty"})`,
    );
  }

  #onPromote(node: SimNode, origin: Origin): void {
    if (origin.bornAt !== this.world.now) return; // it already held a dataset
    const now = this.world.now;
    const since = Math.max(this.lastDisturbanceMs, this.#hiveSince.get(node.index) ?? now);
    if (node.dns.mode !== "full") return;
    for (const m of this.world.nodes) {
      if (m === node || m.hive === null || m.redis === null || m.dns.mode !== "full") continue;
      if (!this.world.tcp(node, m)) continue;
      const holder = this.#holderSince.get(m.index);
      if (holder === undefined) continue;
      const from = Math.max(since, holder, this.#hiveSince.get(m.index) ?? now);
      if (now - from >= this.options.graceMs) {
        this.#fail(
          "empty redis promoted",
          `${node.address} promoted an empty redis while ${m.address} held dataset ` +
            `#${m.redis.origin.id} and was reachable for ${now - from} ms`,
        );
        return;
      }
    }
  }

  #periodic(): void {
    const w = this.world;
    const now = w.now;
    for (const n of w.nodes) {
      if (n.hive === null) {
        this.#hiveSince.delete(n.index);
      } else if (this.#hiveBoots.get(n.index) !== n.hiveBoots) {
        this.#hiveBoots.set(n.index, n.hiveBoots);
        this.#hiveSince.set(n.index, now);
      }
      const key = n.hive === null ? "down" : `${n.hive.role}/${n.hive.leader}/${n.hiveBoots}`;
      if (this.#roleSince.get(n.index)?.key !== key) {
        this.#roleSince.set(n.index, { key, since: now });
      }
      const holds = n.hive !== null && n.hive.lineage !== null && n.redis !== null;
      if (!holds) this.#holderSince.delete(n.index);
      else if (!this.#holderSince.has(n.index)) this.#holderSince.set(n.index, now);
    }
    this.#checkWriters();
    if (this.settled) this.#checkSettled();
  }

  /** The redis processes that acknowledge a client's write now: see the module documentation. */
  writers(): SimNode[] {
    const w = this.world;
    return w.nodes.filter((n) =>
      w.acceptsWrites(n) && !this.#emptyPlainMaster(n) &&
      w.nodes.some((m) => {
        if (m.hive === null) return false;
        const to = forwardsTo(m.proxyUpstream);
        return m === n ? to === "local socket" : to === n.address && w.tcp(m, n);
      })
    );
  }

  /**
   * A redis restarted as a plain master (not parked) that no hive ever promoted: it
   * acknowledges writes until its hive parks it, the documented plain-master limitation (start
   * redis parked), not the fence's. Counted in {@link emptyPlainMasterMs}.
   */
  #emptyPlainMaster(n: SimNode): boolean {
    const r = n.redis;
    const empty = r !== null && r.role === "master" && r.origin.bornAt === null;
    if (empty && this.world.acceptsWrites(n)) this.emptyPlainMasterMs += CHECK_INTERVAL_MS;
    return empty;
  }

  #checkWriters(): void {
    const writers = this.writers();
    if (writers.length === 0) this.noWriterMs += CHECK_INTERVAL_MS;
    if (writers.length < 2) return;
    const now = this.world.now;
    // Excused: a hive stalled or dead (only the backstop fences its redis), or one whose DNS
    // view is partial, empty or stale, now or at its last resolve (the fence counts the peer set
    // the DNS gave it).
    const excused = (n: SimNode) =>
      n.hive === null || now < n.stalledUntilMs + FENCE_ACTUATION_MS || n.dns.mode !== "full" ||
      !n.dnsViewFull;
    const fenceable = writers.filter((n) => !excused(n));
    if (fenceable.length < writers.length) this.excusedOverlapMs += CHECK_INTERVAL_MS;
    if (fenceable.length >= 2) {
      this.#fail(
        "two redis acknowledge writes",
        fenceable.map((n) => `${n.address} (${n.hive!.role}, fence ${n.hive!.fence.reason})`).join(
          " and ",
        ),
      );
    }
  }

  /** Connected groups of nodes whose hive runs (TCP both ways). */
  groups(): SimNode[][] {
    const w = this.world;
    const seen = new Set<number>();
    const out: SimNode[][] = [];
    for (const start of w.nodes) {
      if (start.hive === null || seen.has(start.index)) continue;
      const group: SimNode[] = [];
      const stack = [start];
      seen.add(start.index);
      while (stack.length > 0) {
        const n = stack.pop()!;
        group.push(n);
        for (const m of w.nodes) {
          if (m.hive === null || seen.has(m.index) || !w.tcp(n, m)) continue;
          seen.add(m.index);
          stack.push(m);
        }
      }
      out.push(group);
    }
    return out;
  }

  #checkSettled(): void {
    for (const group of this.groups()) {
      const leaders = group.filter((n) => n.hive!.role === "leader");
      if (leaders.length > 1) {
        this.#fail(
          "two leaders in one connected group",
          `leaders ${leaders.map((n) => n.address).join(", ")}`,
        );
        continue;
      }
      const leader = leaders[0];
      if (leader === undefined) continue;
      const stable = (n: SimNode) =>
        this.world.now - (this.#roleSince.get(n.index)?.since ?? this.world.now) >= ROLE_SETTLE_MS;
      if (!stable(leader)) continue;
      if (leader.redis !== null && leader.redis.role !== "master") {
        this.#fail("leader's redis is not a master", leader.address);
      }
      const ownSocket = leader.proxyUpstream !== null && "path" in leader.proxyUpstream &&
        leader.proxyUpstream.path === SIM_LOCAL_REDIS.redisSocket;
      if (!ownSocket && leader.redis?.role === "master") {
        this.#fail("leader's proxy does not forward to its redis", leader.address);
      }
      for (const n of group) {
        if (n === leader || n.hive!.role !== "follower" || n.hive!.leader !== leader.address) {
          continue;
        }
        if (!stable(n)) continue;
        // Across a one-way cut inside the group, no TCP connection (replication, proxy) works.
        if (!this.world.tcp(n, leader)) continue;
        if (n.redis !== null && n.redis.master?.host !== leader.address) {
          this.#fail(
            "follower's redis does not replicate its leader",
            `${n.address} -> ${n.redis.master?.host ?? "none"}, leader ${leader.address}`,
          );
        }
        if (leader.redis !== null && forwardsTo(n.proxyUpstream) !== leader.address) {
          this.#fail(
            "follower's proxy does not forward to the leader",
            `${n.address} -> ${forwardsTo(n.proxyUpstream)}, leader ${leader.address}`,
          );
        }
        if (
          policy.caughtUpWithLeader(n.catchUp) === true && leader.redis !== null &&
          n.redis?.origin.id !== leader.redis.origin.id
        ) {
          this.#fail(
            "follower reports caught up without the leader's dataset",
            `${n.address} holds #${n.redis?.origin.id ?? "none"}, leader ${leader.address} ` +
              `holds #${leader.redis.origin.id}`,
          );
        }
      }
    }
  }

  /**
   * True when the whole world agrees: every hive and redis up, one leader whose redis is a
   * master, every other node following it with a live replication link, one dataset.
   */
  converged(): boolean {
    const w = this.world;
    if (w.nodes.some((n) => n.hive === null || n.redis === null)) return false;
    const leaders = w.nodes.filter((n) => n.hive!.role === "leader");
    if (leaders.length !== 1) return false;
    const leader = leaders[0]!;
    if (leader.redis!.role !== "master" || !w.acceptsWrites(leader)) return false;
    return w.nodes.every((n) =>
      n === leader || (n.hive!.role === "follower" && n.hive!.leader === leader.address &&
        n.redis!.master?.host === leader.address && n.redis!.link === "up" &&
        n.redis!.origin.id === leader.redis!.origin.id &&
        forwardsTo(n.proxyUpstream) === leader.address &&
        policy.caughtUpWithLeader(n.catchUp) === true)
    );
  }
}
