/**
 * The simulated world: nodes running the real {@link Election} state machine, a lossy UDP
 * network, TCP reachability for replication, a DNS view per node, and a model of redis
 * replication precise enough to tell whether a dataset was wiped.
 *
 * Everything is driven by one {@link EventQueue} and one {@link Rng}, so a seed replays exactly.
 * The runtime loop modelled here is the one of lib/hive/hive.ts, at its pace (lib/hive/policy.ts):
 * tick every `TICK_MS`, observe the local redis every `observeIntervalMs(heartbeatMs)` and
 * at once when its connection drops. What the runtime decides, it decides through the same
 * functions (policy.ts): when to re-enforce the redis target, whether a follower caught up with
 * its leader, where the proxy sends connections, which follower a leaving leader hands over to.
 *
 * @example
 * ```ts
 * import { World } from "./world.ts";
 * const w = new World({ seed: 1, nodes: 3 });
 * w.startAll();
 * w.run(5_000);
 * console.log(w.nodes.map((n) => n.hive?.role));
 * ```
 */

import { Election, type ElectionAction, type PersistedState } from "../lib/election/election.ts";
import type { LeaseMessage } from "../lib/election/lease.ts";
import {
  PARKED_MASTER,
  REDIS_DOWN,
  type RedisObservation,
  type RedisTarget,
} from "../lib/redis/redis_state.ts";
import type { Instant } from "../lib/common/clock.ts";
import { inTargetState } from "../lib/redis/redis_enforce.ts";
import type { ProxyUpstream } from "../lib/proxy/proxy_options.ts";
import type { HandoffSync } from "../lib/redis/redis_controller.ts";
// The runtime's own policy, not a copy of it.
import * as policy from "../lib/hive/policy.ts";
import { EventQueue } from "./event_queue.ts";
import { Rng } from "./rng.ts";
import { DEFAULT_REDIS_HANG_MS, RedisFailureDetector } from "../lib/redis/failure_detector.ts";

/** How often a redis replica retries a broken master link (redis's replicationCron). */
export const REDIS_REPLICATION_CRON_MS = 1000;
/** How long after a redis restart its hive's reconnect sees it (bounded backoff). */
export const SIM_RECONNECT_MS = 30;
/** Time for a redis command issued by the hive to take effect. */
export const SIM_COMMAND_MS = 2;
/** Time the runtime takes to read the crash handoff candidates' offsets. */
export const SIM_CRASH_HANDOFF_READ_MS = 3;
/** Seconds of `min-replicas-max-lag` the backstop allows, plus redis's once-a-second ack. */
export const SIM_BACKSTOP_LAG_MS = 3000;
/** Time for a full sync to complete. */
export const SIM_SYNC_MS = { min: 5, max: 60 };
/** The redis port every simulated node uses. */
export const SIM_REDIS_PORT = 6379;
/** The election port every simulated node uses. */
export const SIM_ELECTION_PORT = 7379;
/** Where every simulated hive finds its own redis (with a Unix socket, as `--redis-socket`). */
export const SIM_LOCAL_REDIS: policy.LocalRedis = {
  redisHost: "127.0.0.1",
  redisPort: SIM_REDIS_PORT,
  redisSocket: "/run/redis/redis.sock",
};

/** A dataset's identity: where a redis's content came from. */
export interface Origin {
  id: number;
  /** True time at which a hive first promoted a redis holding it (null: never, i.e. empty). */
  bornAt: number | null;
}

/** One redis process. */
export interface SimRedis {
  runId: string;
  /** `master_replid`: new for a new process and at every promotion, the master's after a sync. */
  replId: string;
  origin: Origin;
  role: "master" | "replica";
  master: { host: string; port: number } | null;
  link: "down" | "syncing" | "up";
  /** Incremented to cancel an in-flight sync. */
  syncToken: number;
  cronPhaseMs: number;
  /**
   * Busy (a long script, `CLIENT PAUSE`, a fork, a SIGSTOP) from `busySince` until `busyUntil`:
   * it answers nothing, runs no command and serves no sync meanwhile, then goes on. 0: never.
   */
  busySince: number;
  busyUntil: number;
  /** Commands sent while busy, run in order when it is done (as redis runs its input). */
  pending: (() => void)[];
  /**
   * The write fence as its hive applied it (lib/hive/fence_actuator.ts): writes refused. A
   * leader's redis is fenced before it is promoted, lifted when a majority echoes.
   */
  fenced: boolean;
  /** The `min-replicas-to-write` backstop its hive set (0: none). */
  minReplicas: number;
  /** When this replica's link was last up (the backstop counts recent acknowledgements). */
  linkUpAt: number;
}

/** One simulated pod: a hive (maybe crashed) and a redis (maybe crashed). */
export interface SimNode {
  index: number;
  address: string;
  wallSkewMs: number;
  hive: Election | null;
  hiveBoots: number;
  redis: SimRedis | null;
  redisStarts: number;
  /** Whether a restarted redis starts parked (as in the manifests) or as a plain master. */
  redisStartsParked: boolean;
  /** Where the proxy sends new connections ({@link policy.proxyUpstream} of the election's target). */
  proxyUpstream: ProxyUpstream;
  /** The hive's catch-up record (what its `/readyz` reports; {@link policy.trackCatchUp}). */
  catchUp: policy.CatchUp;
  /** What this node's DNS lookups currently answer. */
  dns: { mode: "full" | "partial" | "empty" | "stale"; addresses: string[] };
  /**
   * True once this hive's last DNS answer listed every pod (an empty answer keeps the last good
   * set; a new hive has none until its first full answer): the fence counts the peer set the
   * hive has seen, which lags the DNS by up to one refresh.
   */
  dnsViewFull: boolean;
  /** Bumped when the hive process is replaced, to cancel its timers. */
  generation: number;
  /** The hive's state file (an emptyDir: survives a hive restart, not a pod restart). */
  persisted: PersistedState | null;
  /**
   * The hive process is stalled (CPU starvation, a long pause) until this time: its timers,
   * datagrams and observations wait until then, in order; its redis goes on.
   */
  stalledUntilMs: number;
  /**
   * The hive's failure detector of its redis (the runtime's own, lib/redis/failure_detector.ts),
   * new with every hive process, and the redis's last answer (reported while it is busy).
   */
  detector: RedisFailureDetector | null;
  lastAnswer: RedisObservation | null;
  /**
   * When this hive last had an answer from its redis (or started): a gap the hive itself caused
   * (stalled while its redis crashed, restarted and answered) still counts toward its hang
   * timeout, as in the runtime, whose detector waits since the first unanswered probe.
   */
  lastAnsweredMs: number;
  /** The lease expiry the runtime's fence wake-up is set for, or null. */
  fenceWakeAt: number | null;
}

/** What the world reports to its observer (the checker). */
export interface WorldHooks {
  /** A full sync completed: `replica` now holds `to` instead of `from`. */
  onSync?(replica: SimNode, master: SimNode, from: Origin, to: Origin): void;
  /** A redis was promoted (`REPLICAOF NO ONE`) while holding `origin`. */
  onPromote?(node: SimNode, origin: Origin): void;
  /** An action an election returned. */
  onAction?(node: SimNode, action: ElectionAction): void;
  /** A fault or repair was injected (process, network or DNS change). */
  onDisturb?(): void;
}

/** Options of a world. */
export interface WorldOptions {
  seed: number;
  nodes: number;
  heartbeatMs?: number;
  failureMs?: number;
  maxPeers?: number;
  /**
   * Checker validation only: the modelled redis controller points a replica at its leader
   * without the run_id guard, to show the simulator catches the wipes the guard prevents.
   */
  withoutRunIdGuard?: boolean;
  /** Checker validation only: the redis ignores the hive's fence (and its backstop). */
  withoutFence?: boolean;
  /** `--redis-hang-ms` of every hive (default {@link DEFAULT_REDIS_HANG_MS}). */
  redisHangMs?: number;
}

/** The simulated world; see the module documentation. */
export class World {
  readonly rng: Rng;
  readonly queue = new EventQueue();
  readonly nodes: SimNode[] = [];
  readonly heartbeatMs: number;
  readonly failureMs: number;
  /** How often the modelled runtime observes its redis (the runtime's rule). */
  readonly observeMs: number;
  readonly maxPeers: number;
  readonly redisHangMs: number;
  hooks: WorldHooks = {};

  /** UDP loss probability in [0, 1). */
  loss = 0;
  /** UDP one-way delay range. */
  delayMs = { min: 0, max: 2 };
  /** Probability that a datagram is delivered twice. */
  duplicate = 0;
  /** Blocked directed pairs "i>j": nothing (UDP or TCP) goes from i to j. */
  readonly blocked = new Set<string>();
  /** Bumped on every change of connectivity. */
  topologyVersion = 0;
  #origins = 0;
  #dnsRefreshMs = 2000;

  /** Creates the world; no node runs until {@link startAll} or {@link startNode}. */
  constructor(readonly options: WorldOptions) {
    this.rng = new Rng(options.seed);
    this.heartbeatMs = options.heartbeatMs ?? 200;
    this.observeMs = policy.observeIntervalMs(this.heartbeatMs);
    this.failureMs = options.failureMs ?? 1000;
    this.maxPeers = options.maxPeers ?? 64;
    this.redisHangMs = options.redisHangMs ?? DEFAULT_REDIS_HANG_MS;
    for (let i = 0; i < options.nodes; i++) {
      this.nodes.push({
        index: i,
        address: `10.0.0.${i + 1}`,
        wallSkewMs: 0,
        hive: null,
        hiveBoots: 0,
        redis: null,
        redisStarts: 0,
        redisStartsParked: true,
        proxyUpstream: null,
        catchUp: policy.NOT_LINKED,
        dns: { mode: "full", addresses: [] },
        dnsViewFull: false,
        generation: 0,
        persisted: null,
        stalledUntilMs: 0,
        detector: null,
        lastAnswer: null,
        lastAnsweredMs: 0,
        fenceWakeAt: null,
      });
    }
  }

  /** The current true time. */
  get now(): number {
    return this.queue.now;
  }

  /** Every node's address. */
  get addresses(): string[] {
    return this.nodes.map((n) => n.address);
  }

  /** This node's view of time. */
  instant(node: SimNode): Instant {
    return { monoMs: this.now, wallMs: 1_700_000_000_000 + this.now + node.wallSkewMs };
  }

  /** Node by address. */
  byAddress(address: string): SimNode | undefined {
    return this.nodes.find((n) => n.address === address);
  }

  /** Starts every node (redis first, then hive), as a cold start. */
  startAll(): void {
    for (const n of this.nodes) this.startNode(n);
  }

  /** Runs the world until `ms` more milliseconds passed (or `stop` says so). */
  run(ms: number, stop?: () => boolean): void {
    this.queue.runUntil(this.now + ms, stop);
  }

  // ---- connectivity ---------------------------------------------------------------------

  /** Nothing gets from `a` to `b` (one way). */
  block(a: SimNode, b: SimNode): void {
    this.hooks.onDisturb?.();
    this.blocked.add(`${a.index}>${b.index}`);
    this.#topologyChanged();
  }

  /** Removes every partition. */
  healPartitions(): void {
    this.hooks.onDisturb?.();
    this.blocked.clear();
    this.#topologyChanged();
  }

  /** True when packets get from `a` to `b`. */
  reaches(a: SimNode, b: SimNode): boolean {
    return a === b || !this.blocked.has(`${a.index}>${b.index}`);
  }

  /** True when a TCP connection between `a` and `b` works (both directions). */
  tcp(a: SimNode, b: SimNode): boolean {
    return this.reaches(a, b) && this.reaches(b, a);
  }

  #topologyChanged(): void {
    this.topologyVersion++;
    // A replication link across a cut breaks (modelled at once; real TCP may take longer).
    for (const n of this.nodes) {
      const r = n.redis;
      if (r === null || r.master === null || r.link === "down") continue;
      const m = this.byAddress(r.master.host);
      if (m === undefined || !this.tcp(n, m)) this.#dropLink(n);
    }
  }

  // ---- processes ------------------------------------------------------------------------

  /** Starts a node's redis (if down) and its hive (if down). */
  startNode(n: SimNode): void {
    if (n.redis === null) this.startRedis(n, n.redisStarts === 0 ? true : n.redisStartsParked);
    if (n.hive === null) this.startHive(n);
  }

  /** Kills the whole pod: hive and redis. */
  crashNode(n: SimNode): void {
    this.crashHive(n);
    this.crashRedis(n);
    n.persisted = null; // a new pod gets a new emptyDir
  }

  /** Starts a new hive process on the node. */
  startHive(n: SimNode): void {
    this.hooks.onDisturb?.();
    if (n.hive !== null) throw new Error(`startHive: ${n.address} already runs a hive`);
    n.hiveBoots++;
    n.generation++;
    const gen = n.generation;
    n.hive = new Election({
      self: n.address,
      electionPort: SIM_ELECTION_PORT,
      redisPort: SIM_REDIS_PORT,
      localRedis: { host: SIM_LOCAL_REDIS.redisHost, port: SIM_LOCAL_REDIS.redisPort },
      bootId: this.rng.hex(8),
      heartbeatMs: this.heartbeatMs,
      failureMs: this.failureMs,
      maxPeers: this.maxPeers,
      restored: n.persisted,
    });
    n.proxyUpstream = null;
    n.catchUp = policy.NOT_LINKED;
    n.detector = new RedisFailureDetector({ hangMs: this.redisHangMs });
    n.lastAnswer = null;
    n.lastAnsweredMs = this.now;
    n.dnsViewFull = false;
    n.fenceWakeAt = null;
    const alive = () => n.generation === gen && n.hive !== null;
    // The runtime's loop: resolve, observe, tick, on their own timers with a random phase.
    const tick = () => {
      if (!alive()) return;
      if (this.#deferWhileStalled(n, tick)) return;
      this.#apply(n, n.hive!.tick(this.instant(n)));
      this.queue.after(policy.TICK_MS, tick);
    };
    const observe = () => {
      if (!alive()) return;
      this.#observe(n);
      this.queue.after(this.observeMs, observe);
    };
    const probe = () => {
      if (!alive()) return;
      if (this.#deferWhileStalled(n, probe)) return;
      this.#apply(n, n.hive!.probe(this.instant(n)));
      this.queue.after(n.hive!.timing.leaseProbeMs, probe);
    };
    this.queue.after(this.rng.int(1, 25), probe);
    const resolve = () => {
      if (!alive()) return;
      if (this.#deferWhileStalled(n, resolve)) return;
      const answer = this.#dnsAnswer(n);
      if (answer !== null) {
        n.dnsViewFull = n.dns.mode === "full";
        this.#apply(n, n.hive!.setPeers(answer, this.instant(n)));
      }
      this.queue.after(this.#dnsRefreshMs, resolve);
    };
    resolve();
    this.#observe(n);
    tick();
    this.queue.after(this.rng.int(1, this.observeMs), observe);
  }

  /**
   * A graceful stop of a pod (SIGTERM, as in a rolling update): a leader hands over to its
   * most caught-up follower first ({@link policy.chooseSuccessor} over the election's candidates and a
   * model of the runtime's write pause and sync); `afterMs` later the pod is gone. Returns the
   * successor.
   */
  gracefulStop(n: SimNode, afterMs: number): string | null {
    const hive = n.hive;
    let successor: string | null = null;
    if (hive !== null) {
      const candidates = hive.successors(this.instant(n));
      if (candidates.length > 0) {
        successor = policy.chooseSuccessor(candidates, this.#pauseAndSync(n, candidates));
        this.#apply(n, hive.handOff(successor, this.instant(n)));
      }
    }
    const gen = n.generation;
    this.queue.after(afterMs, () => {
      if (n.generation === gen) this.crashNode(n);
    });
    return successor;
  }

  /**
   * The runtime's `pauseAndSync` as the simulator sees it: with writes paused, a candidate whose
   * redis replicates this node's with its link up (and the same dataset) processed every write
   * (the simulator models no write stream, so every offset is 0); the first such one is chosen.
   */
  #pauseAndSync(n: SimNode, candidates: { address: string; redisPort: number }[]): HandoffSync {
    const master = n.redis;
    const offsets = candidates.map((c) => {
      const r = this.byAddress(c.address)?.redis ?? null;
      const synced = master !== null && r !== null && r.master?.host === n.address &&
        r.link === "up" && r.origin.id === master.origin.id;
      return { host: c.address, port: c.redisPort, offset: synced ? 0 : null };
    });
    if (master === null) {
      return { ok: false, reason: "the local redis is down", masterOffset: null, offsets };
    }
    const chosen = offsets.find((o) => o.offset !== null);
    if (chosen === undefined) return { ok: false, reason: "timeout", masterOffset: 0, offsets };
    const at = { host: chosen.host, port: chosen.port };
    return { ok: true, chosen: at, masterOffset: 0, replicaOffset: 0, waitedMs: 0 };
  }

  /** Kills the hive process (its redis lives on, in whatever role it had). */
  crashHive(n: SimNode): void {
    this.hooks.onDisturb?.();
    n.hive = null;
    n.generation++;
    n.proxyUpstream = null;
    n.catchUp = policy.NOT_LINKED;
  }

  /** Starts a new, empty redis process: parked (as the manifests do) or as a plain master. */
  startRedis(n: SimNode, parked: boolean): void {
    this.hooks.onDisturb?.();
    if (n.redis !== null) throw new Error(`startRedis: ${n.address} already runs redis`);
    n.redisStarts++;
    const r: SimRedis = {
      runId: `${n.address}#${n.redisStarts}`,
      replId: this.rng.hex(8),
      origin: { id: ++this.#origins, bornAt: null },
      role: parked ? "replica" : "master",
      master: parked ? { ...PARKED_MASTER } : null,
      link: "down",
      syncToken: 0,
      cronPhaseMs: this.rng.int(0, REDIS_REPLICATION_CRON_MS - 1),
      busySince: 0,
      busyUntil: 0,
      pending: [],
      fenced: false,
      minReplicas: 0,
      linkUpAt: 0,
    };
    n.redis = r;
    const cron = () => {
      if (n.redis !== r) return;
      if (r.role === "replica" && r.link === "down") this.#connect(n);
      this.queue.after(REDIS_REPLICATION_CRON_MS, cron);
    };
    this.queue.after(r.cronPhaseMs, cron);
    // The hive's client reconnects (bounded backoff) and observes the new process.
    const gen = n.generation;
    this.queue.after(SIM_RECONNECT_MS, () => {
      if (n.generation === gen && n.hive !== null) this.#observe(n);
    });
  }

  /** Kills the redis process; its replicas' links break at once. */
  crashRedis(n: SimNode): void {
    this.hooks.onDisturb?.();
    if (n.redis === null) return;
    n.redis.syncToken++;
    n.redis = null;
    for (const m of this.nodes) {
      const r = m.redis;
      if (r !== null && r.master?.host === n.address && r.link !== "down") this.#dropLink(m);
    }
    // The hive's connection to it drops: it notices at once.
    const gen = n.generation;
    this.queue.after(1, () => {
      if (n.generation === gen && n.hive !== null) this.#observe(n);
    });
  }

  // ---- the runtime loop -----------------------------------------------------------------

  #apply(n: SimNode, actions: ElectionAction[]): void {
    this.#applyEach(n, actions);
    this.#scheduleFenceWake(n);
  }

  /** The runtime wakes the election when an unfenced leader's leases run out. */
  #scheduleFenceWake(n: SimNode): void {
    const at = n.hive?.fence.fenceAtMono ?? null;
    if (at === null || n.fenceWakeAt === at) return;
    n.fenceWakeAt = at;
    const gen = n.generation;
    const wake = () => {
      if (n.generation !== gen || n.hive === null || n.fenceWakeAt !== at) return;
      if (this.#deferWhileStalled(n, wake)) return;
      n.fenceWakeAt = null;
      this.#apply(n, n.hive.tick(this.instant(n)));
    };
    this.queue.at(Math.max(this.now, at), wake);
  }

  #applyEach(n: SimNode, actions: ElectionAction[]): void {
    for (const a of actions) {
      this.hooks.onAction?.(n, a);
      switch (a.type) {
        case "send":
          for (const to of a.to) {
            const hb = a.heartbeat;
            this.#sendDatagram(n, to.host, (m) => m.hive!.receive(hb, this.instant(m)));
          }
          break;
        case "lease":
          for (const to of a.to) {
            const msg: LeaseMessage = a.message;
            this.#sendDatagram(n, to.host, (m) => m.hive!.receiveLease(msg, this.instant(m)));
          }
          break;
        case "fence":
          this.queue.after(SIM_COMMAND_MS, this.#fenceCommand(n));
          break;
        case "redis": {
          const gen = n.generation;
          const target = a.target;
          const run = () => {
            if (n.generation !== gen || n.hive === null) return;
            if (!this.#deferWhileStalled(n, run)) this.enforce(n, target);
          };
          this.queue.after(SIM_COMMAND_MS, run);
          break;
        }
        case "proxy":
          n.proxyUpstream = policy.proxyUpstream(a.target, SIM_LOCAL_REDIS);
          break;
        case "persist":
          n.persisted = a.state;
          break;
        case "event":
          break;
        case "crash-handoff": {
          // The runtime reads the candidates' offsets from their redis over TCP (a few ms), then
          // hands over to the most caught up ({@link chooseCrashSuccessor}) or gives up.
          const gen = n.generation;
          const candidates = a.candidates;
          const run = () => {
            if (n.generation !== gen || n.hive === null) return;
            if (this.#deferWhileStalled(n, run)) return;
            const readings = candidates.map((c) => {
              const m = this.byAddress(c.address);
              const readable = m !== undefined && m.redis !== null && this.tcp(n, m) &&
                this.now >= m.redis.busyUntil;
              // The simulator models no write stream: every readable offset is 0.
              return { host: c.address, offset: readable ? 0 : null };
            });
            const chosen = policy.chooseCrashSuccessor(candidates, readings);
            const now = this.instant(n);
            this.#apply(
              n,
              chosen === null
                ? n.hive.abandonCrashHandoff("no candidate answered", now)
                : n.hive.handOff(chosen, now),
            );
          };
          this.queue.after(SIM_CRASH_HANDOFF_READ_MS, run);
          break;
        }
      }
    }
  }

  /**
   * The fence actuator's command (lib/hive/fence_actuator.ts): its own connection, applying the
   * latest wanted state when it runs; a leader's redis is fenced before it is promoted (same
   * delay, queued first), a redis that stops leading is fenced until it is a replica. A busy
   * redis runs it when it is done, in order with the other commands sent to it.
   */
  #fenceCommand(n: SimNode): () => void {
    const gen = n.generation;
    const run = () => {
      if (n.generation !== gen || n.hive === null || n.redis === null) return;
      if (this.#deferWhileStalled(n, run)) return;
      const r = n.redis;
      if (this.now < r.busyUntil) {
        r.pending.push(() => {
          if (n.redis === r) run();
        });
        return;
      }
      if (this.options.withoutFence === true) return;
      const state = n.hive.fence;
      const leading = n.hive.role === "leader";
      r.fenced = leading ? state.fenced : true;
      if (leading && !state.fenced) r.minReplicas = state.armed ? state.needed - 1 : 0;
    };
    return run;
  }

  /** Stalls the node's hive process for `ms` (its redis goes on). */
  stallHive(n: SimNode, ms: number): void {
    this.hooks.onDisturb?.();
    n.stalledUntilMs = Math.max(n.stalledUntilMs, this.now + ms);
  }

  /** If the node's hive is stalled, runs `fn` when the stall ends (and returns true). */
  #deferWhileStalled(n: SimNode, fn: () => void): boolean {
    if (this.now >= n.stalledUntilMs) return false;
    this.queue.at(n.stalledUntilMs, fn);
    return true;
  }

  /** Observes like the runtime: `reconcile` is false for the observation right after a command. */
  #observe(n: SimNode, reconcile = true): void {
    if (n.hive === null) return;
    const gen = n.generation;
    if (
      this.#deferWhileStalled(n, () => {
        if (n.generation === gen) this.#observe(n, reconcile);
      })
    ) return;
    const obs = this.#detect(n);
    this.#apply(n, n.hive.observeRedis(obs, this.instant(n)));
    if (n.hive === null) return;
    this.#trackCatchUp(n, obs);
    // Reconcile, as the runtime: re-enforce the target whenever the redis disagrees with it.
    const target = n.hive.redisTarget;
    if (policy.shouldReconcile(obs, target, { reconcile, enforcing: false })) {
      const gen = n.generation;
      this.queue.after(SIM_COMMAND_MS, () => {
        if (n.generation === gen && n.hive !== null && n.hive.redisTarget === target) {
          this.enforce(n, target);
        }
      });
    }
  }

  #trackCatchUp(n: SimNode, obs: RedisObservation): void {
    const hive = n.hive!;
    const now = this.instant(n);
    const leader = hive.leader;
    const peer = leader === null ? null : hive.peer(leader, now);
    const leaderLast = peer?.last && peer.lastHeardAgoMs !== null
      ? { heardMono: now.monoMs - peer.lastHeardAgoMs, offset: peer.last.redis.offset }
      : null;
    n.catchUp = policy.trackCatchUp(n.catchUp, {
      nowMono: now.monoMs,
      role: hive.role,
      leader,
      target: hive.redisTarget,
      obs,
      leaderLast,
    });
  }

  /**
   * What the node's hive reports of its redis now, as the runtime's redis controller does: the
   * probe goes through the failure detector, so a busy redis is reported with its last answer
   * (`busy: true`) until the hang timeout, a crashed one (connection lost, reconnect refused)
   * down at once.
   */
  #detect(n: SimNode): RedisObservation {
    const d = n.detector!;
    const now = this.now;
    const r = n.redis;
    if (r === null) {
      d.connectionLost(now);
      d.connectFailed("ECONNREFUSED", now);
    } else {
      d.connected(now);
      d.probeSent(now);
      if (now >= r.busyUntil) {
        d.answered(now);
        n.lastAnswer = this.observation(n);
        n.lastAnsweredMs = now;
      }
    }
    const h = d.health(now);
    if (h.state === "answering" && n.lastAnswer !== null) return n.lastAnswer;
    if (h.state === "busy" && n.lastAnswer !== null) return { ...n.lastAnswer, busy: true };
    return REDIS_DOWN;
  }

  /**
   * The node's redis is busy for `ms` (a long script, `CLIENT PAUSE`, SIGSTOP): it answers
   * nothing, runs no command and serves no sync until then.
   */
  busyRedis(n: SimNode, ms: number): void {
    const r = n.redis;
    if (r === null) return;
    this.hooks.onDisturb?.();
    if (this.now >= r.busyUntil) r.busySince = this.now; // else one longer episode
    r.busyUntil = Math.max(r.busyUntil, this.now + ms);
    const end = r.busyUntil;
    // At its end the commands sent meanwhile run, unless a later episode or a SIGCONT moved it.
    this.queue.at(end, () => {
      if (n.redis === r && r.busyUntil === end) this.#resume(r);
    });
  }

  /** SIGCONT: the node's redis is no longer busy; the commands it was sent run now, in order. */
  resumeRedis(n: SimNode): void {
    const r = n.redis;
    if (r === null || this.now >= r.busyUntil) return;
    r.busyUntil = this.now;
    this.#resume(r);
  }

  #resume(r: SimRedis): void {
    this.hooks.onDisturb?.();
    const pending = r.pending;
    r.pending = [];
    for (const run of pending) run();
  }

  /** What the node's hive would observe of its redis now. */
  observation(n: SimNode): RedisObservation {
    const r = n.redis;
    if (r === null) return REDIS_DOWN;
    return {
      up: true,
      runId: r.runId,
      role: r.role,
      masterHost: r.master?.host ?? null,
      masterPort: r.master?.port ?? null,
      linkUp: r.link === "up",
      // INFO's master_sync_in_progress:1 during a full sync, as redis_info.ts reads it.
      loading: r.link === "syncing",
      replId: r.replId,
      offset: 0,
    };
  }

  /** True when the node's redis already has the role `target` asks for ({@link inTargetState}). */
  matches(n: SimNode, target: RedisTarget): boolean {
    return inTargetState(this.observation(n), target);
  }

  /** Carries out a redis target on a node, as the runtime's redis controller does. */
  enforce(n: SimNode, target: RedisTarget): void {
    const r = n.redis;
    if (r === null) return;
    if (this.now < r.busyUntil) {
      // A busy redis runs the command when it is done, in the order it was sent (the runtime's
      // own times out, and re-enforces on a later observation).
      r.pending.push(() => {
        if (n.redis === r) this.enforce(n, target);
      });
      return;
    }
    // A follow target is checked through the run_id guard even when already pointed.
    if (target.kind !== "follow" && this.matches(n, target)) return;
    // The runtime observes right after a command, so the election learns the result at once.
    const gen = n.generation;
    this.queue.after(1, () => {
      if (n.generation === gen && n.hive !== null) this.#observe(n, false);
    });
    switch (target.kind) {
      case "leader":
        r.syncToken++;
        r.role = "master";
        r.master = null;
        r.link = "down";
        r.replId = this.rng.hex(8);
        if (r.origin.bornAt === null) r.origin.bornAt = this.now;
        this.hooks.onPromote?.(n, r.origin);
        break;
      case "parked":
        this.#replicaOf(n, { ...PARKED_MASTER });
        break;
      case "follow": {
        // The run_id guard: look at the target first, point only if it is the expected process.
        const m = this.byAddress(target.host);
        const ok = m !== undefined && m.redis !== null && this.tcp(n, m) &&
          (target.expectRunId === null || m.redis.runId === target.expectRunId ||
            this.options.withoutRunIdGuard === true);
        if (ok) {
          if (!this.matches(n, target)) {
            this.#replicaOf(n, { host: target.host, port: target.port });
          }
        } else if (!this.matches(n, { kind: "parked" })) this.#replicaOf(n, { ...PARKED_MASTER });
        break;
      }
    }
  }

  #replicaOf(n: SimNode, master: { host: string; port: number }): void {
    const r = n.redis!;
    r.linkUpAt = 0; // a replica of another master: no longer counted by the old one
    r.syncToken++;
    r.role = "replica";
    r.master = master;
    r.link = "down";
    this.#connect(n); // redis connects at once after REPLICAOF
  }

  #dropLink(n: SimNode): void {
    const r = n.redis!;
    if (r.link === "up") r.linkUpAt = this.now;
    r.syncToken++;
    r.link = "down";
  }

  /** A replica tries to reach its master and, if it may, starts a full sync. */
  #connect(n: SimNode): void {
    const r = n.redis;
    if (r === null || r.role !== "replica" || r.master === null || r.link !== "down") return;
    const m = this.byAddress(r.master.host);
    if (m === undefined || m === n || m.redis === null || !this.tcp(n, m)) return;
    const mr = m.redis;
    // A replica without a live link answers -NOMASTERLINK to sync requests.
    if (mr.role === "replica" && mr.link !== "up") return;
    r.link = "syncing";
    const token = ++r.syncToken;
    const busyMs = Math.max(0, mr.busyUntil - this.now, r.busyUntil - this.now);
    const complete = () => {
      if (n.redis !== r || r.syncToken !== token || m.redis !== mr || !this.tcp(n, m)) return;
      // A busy episode that began (or grew) during the transfer holds the sync until it ends:
      // neither side can load or send the snapshot meanwhile.
      const stillBusyMs = Math.max(0, mr.busyUntil - this.now, r.busyUntil - this.now);
      if (stillBusyMs > 0) {
        this.queue.after(stillBusyMs, complete);
        return;
      }
      if (mr.role === "replica" && mr.link !== "up") {
        r.link = "down";
        return;
      }
      const from = r.origin;
      r.origin = mr.origin;
      r.replId = mr.replId;
      r.link = "up";
      r.linkUpAt = this.now;
      this.hooks.onSync?.(n, m, from, mr.origin);
    };
    this.queue.after(busyMs + this.rng.int(SIM_SYNC_MS.min, SIM_SYNC_MS.max), complete);
  }

  // ---- network and DNS --------------------------------------------------------------------

  /** Whether the node's redis acknowledges a write now (its role, the fence, the backstop). */
  acceptsWrites(n: SimNode): boolean {
    const r = n.redis;
    if (r === null || r.role !== "master" || r.fenced || this.now < r.busyUntil) return false;
    if (r.minReplicas === 0) return true;
    let good = 0;
    for (const m of this.nodes) {
      const mr = m.redis;
      if (mr === null || mr.master?.host !== n.address) continue;
      if (mr.link === "up" || this.now - mr.linkUpAt <= SIM_BACKSTOP_LAG_MS) good++;
    }
    return good >= r.minReplicas;
  }

  #sendDatagram(
    from: SimNode,
    toAddress: string,
    receive: (to: SimNode) => ElectionAction[],
  ): void {
    const to = this.byAddress(toAddress);
    if (to === undefined || !this.reaches(from, to)) return;
    const copies = this.rng.chance(this.duplicate) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      if (this.rng.chance(this.loss)) continue;
      const delay = this.rng.int(this.delayMs.min, this.delayMs.max);
      const deliver = () => {
        // Connectivity is judged at delivery too: a partition cuts what is in flight.
        if (to.hive === null || !this.reaches(from, to)) return;
        if (this.#deferWhileStalled(to, deliver)) return;
        this.#apply(to, receive(to));
      };
      this.queue.after(delay, deliver);
    }
  }

  /** Sets what a node's DNS answers: everyone, a random part, nothing, or a frozen old answer. */
  setDns(n: SimNode, mode: SimNode["dns"]["mode"]): void {
    this.hooks.onDisturb?.();
    const all = this.addresses;
    switch (mode) {
      case "full":
        n.dns = { mode, addresses: all };
        break;
      case "partial":
        n.dns = { mode, addresses: this.rng.subset(all, 0.5) };
        break;
      case "empty":
        n.dns = { mode, addresses: [] };
        break;
      case "stale":
        n.dns = { mode, addresses: n.dns.addresses.length > 0 ? n.dns.addresses : all };
        break;
    }
  }

  /** The DNS answer a node gets now, or null when the lookup fails (kept as is by the runtime). */
  #dnsAnswer(n: SimNode): string[] | null {
    if (n.dns.mode === "full") return this.addresses;
    if (n.dns.mode === "empty") return null; // an empty answer keeps the last good set
    return n.dns.addresses;
  }
}
