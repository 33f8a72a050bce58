/**
 * The hive runtime: a thin loop around the {@link Election} state machine.
 *
 * It feeds the election its events (a tick every {@link TICK_MS}, every decoded heartbeat, every
 * peer set from discovery, an observation of the local redis every {@link observeIntervalMs} and
 * at once when the connection to redis drops) and carries out what it returns: heartbeats are
 * encoded once and sent to every peer over UDP, the redis target is enforced (and re-enforced
 * whenever an observation disagrees with it), the proxy is re-pointed, the state file is
 * written, events are logged. Everything that touches the world comes in through
 * {@link HiveDeps}, so tests can run the same loop on in-memory parts.
 *
 * @example
 * ```ts
 * import { Hive } from "./hive.ts";
 * import { parseConfig } from "./config.ts";
 * const config = parseConfig(["--peers", "127.0.0.11,127.0.0.12"], {}, Deno.readTextFileSync);
 * const hive = await Hive.start(config);
 * console.log(hive.status().role);
 * await hive.stop();
 * ```
 */

import { type Clock, systemClock } from "../common/clock.ts";
import { createCodec, type HeartbeatCodec } from "../election/codec.ts";
import { SOURCE_MISMATCH, sourceMatches } from "../net/source_address.ts";
import { RateLimitedLog } from "../common/rate_limited_log.ts";
import { fitMaxConnections, type NofileLimit, raiseNofileLimit } from "../net/fd_limit.ts";
import type { Config } from "./config.ts";
import {
  Election,
  type ElectionAction,
  type ElectionEvent,
  type PersistedState,
} from "../election/election.ts";
import { getLogger } from "./log.ts";
import { describeEvent, logElectionEvent } from "./events.ts";
import type { FenceState } from "../election/fence.ts";
import { createLeaseCodec, isLeaseDatagram, type LeaseCodec } from "../election/lease.ts";
import type { LeaseMessage } from "../election/lease.ts";
import {
  createFenceCommands,
  FenceActuator,
  type FenceCommands,
  type FenceWanted,
} from "./fence_actuator.ts";
import { type DiscoveryEvent, PeerDiscovery } from "../net/peer_discovery.ts";
import {
  chooseProxyEngine,
  currentProxyPlatform,
  listenProxy,
  type ProxyEngineChoice,
} from "../proxy/proxy_engine.ts";
import {
  createRedisController,
  type HandoffSync,
  type RedisController,
  type RedisControllerEvent,
} from "../redis/redis_controller.ts";
import type { RedisObservation } from "../redis/redis_state.ts";
import { describeUpstream, type ProxyHandle } from "../proxy/proxy_options.ts";
import {
  type CatchUp,
  caughtUpWithLeader,
  chooseCrashSuccessor,
  chooseSuccessor,
  CRASH_HANDOFF_READ_TIMEOUT_MS,
  NOT_LINKED,
  observeIntervalMs,
  proxyUpstream,
  shouldReconcile,
  TICK_MS,
  trackCatchUp,
} from "./policy.ts";
import { DnsResolver } from "../net/resolver.ts";
import { detectSelfAddress } from "../net/self_address.ts";
import { type DatagramTransport, listenUdp } from "../net/udp_transport.ts";
import { ffiUdpAvailable, type FilteredUdpTransport, listenUdpFfi } from "../net/udp_ffi.ts";
import { readStateFile, writeStateFile } from "./state_file.ts";
import { startStatusServer, type StatusServer } from "../http/status_server.ts";
import { SentinelServer, type SentinelServerEvent } from "../sentinel/sentinel_server.ts";
import { type SentinelView, sentinelViewOf } from "../sentinel/sentinel_view.ts";
import { readProcessMemory } from "../http/process_metrics.ts";
import { startMallocTrim } from "./malloc_trim.ts";
import { hostProxyWorkerCount, type ProxyWorkerCount } from "../proxy/proxy_workers.ts";
import {
  DATAGRAM_DROP_REASONS,
  type DatagramDropReason,
  FAILOVER_BUCKETS_MS,
  type FailoverHistogram,
  type HistoryEntry,
  type HiveStatus,
  MAX_HISTORY,
  type RuntimeStats,
} from "../http/hive_status.ts";

/** A loop that has not ticked for this many ticks is reported unhealthy by `/healthz`. */
export const HEALTHY_TICK_LAG = 20;
/** Graceful handoff: writes stay paused at most this long if the hive dies mid-handoff. */
export const HANDOFF_PAUSE_MS = 2000;
/**
 * Graceful handoff: the longest wait (writes paused) for a follower to process every write.
 * It must outlast redis 7.0 holding a freshly resynced replica's stream until that replica's next
 * acknowledgement (sent once a second): losing no write is worth the longer pause in that rare
 * case. The pauses measured are in docs/benchmarks.md (rolling update).
 */
export const HANDOFF_SYNC_TIMEOUT_MS = 1200;
/** Graceful handoff: the longest wait (from the pause) for the successor to lead. */
export const HANDOFF_TAKEOVER_TIMEOUT_MS = 3000;
/** How long {@link Hive.start} waits for the first DNS answer to find its own address. */
export const SELF_DISCOVERY_TIMEOUT_MS = 60_000;

/** Logged at every start without a secret, and shown on `/status` and the status page. */
export const INSECURE_WARNING = "running WITHOUT a heartbeat secret (--insecure-no-secret): " +
  "anyone who can send UDP to the election port can take over the election and the dataset; " +
  "set --secret-file or HIVE_SECRET (see docs/security.md)";

/** How often rate-limited warnings write their counts (lib/common/rate_limited_log.ts). */
export const LOG_FLUSH_MS = 1_000;

/** Logged and shown on `/status` when the UDP socket cannot run through libc (no FFI). */
export const NO_FFI_UDP_WARNING = "UDP through node:dgram (no --allow-ffi or not x86_64 Linux): " +
  "a flood of junk datagrams costs memory (docs/security.md)";

/** What the hive uses to touch the world; each has a real default. */
export interface HiveDeps {
  clock?: Clock;
  /** Opens the UDP socket (default: {@link listenUdp} on `--bind`:`--election-port`). */
  udp?: (bind: { host: string; port: number }) => Promise<DatagramTransport>;
  /** The local redis (default: ioredis on `--redis-host`:`--redis-port`). */
  redis?: (announceIp: string) => RedisController;
  /** Random boot id (default: 8 random bytes as hex). */
  bootId?: () => string;
  /** Whether to start the master proxy (default true). */
  proxy?: boolean;
  /**
   * The proxy engine, already chosen (main.ts chooses it with the other flags, so a bad
   * `--proxy-engine` exits like a bad flag); default: {@link chooseProxyEngine} for
   * `--proxy-engine` on this process ({@link currentProxyPlatform}).
   */
  proxyEngine?: ProxyEngineChoice;
  /** Whether to start the HTTP server (default true). */
  http?: boolean;
  /** Whether to start the Sentinel endpoint when `--sentinel-port` is not 0 (default true). */
  sentinel?: boolean;
  /**
   * The fence's commands on the local redis (default: their own connection to
   * `--redis-host`/`--redis-socket`; with an injected `redis`, none: a no-op).
   */
  fence?: () => FenceCommands;
  /** Raises and reads the open-file limit (default {@link raiseNofileLimit}). */
  nofileLimit?: () => NofileLimit | null;
}

/** Fence commands that do nothing (tests on in-memory parts). */
const NO_FENCE_COMMANDS: FenceCommands = {
  pause: () => Promise.resolve(),
  minReplicasThenUnpause: () => Promise.resolve(),
  close: () => Promise.resolve(),
};

const log = getLogger("hive");

/** One running hive node. */
export class Hive {
  readonly election: Election;
  readonly stats: RuntimeStats = {
    datagramsReceived: 0,
    datagramsDropped: Object.fromEntries(DATAGRAM_DROP_REASONS.map((r) => [r, 0])) as Record<
      DatagramDropReason,
      number
    >,
    redisCommands: 0,
    enforceFailures: 0,
    observations: 0,
    stateFileErrors: 0,
    proxyAcceptErrors: 0,
    logLinesSuppressed: 0,
  };
  #timers: ReturnType<typeof setInterval>[] = [];
  /** Repeated warnings (refusals, drops, failed accepts) go through it (one line per kind per 10 s). */
  #limited: RateLimitedLog;
  #stopped = false;
  #lastTickMono: number;
  #startedMono: number;
  #redisQueue: Promise<void> = Promise.resolve();
  #enforcing = false;
  #stateWrite: Promise<void> = Promise.resolve();
  #observation: RedisObservation | null = null;
  /** Catching up with the leader after the link came up (see HiveStatus.redis). */
  #catchUp: CatchUp = NOT_LINKED;
  #server: StatusServer | null = null;
  /** The Sentinel endpoint (lib/sentinel/), or null when off. */
  #sentinel: SentinelServer | null = null;
  /** Shown on `/status` and the status page (see {@link SecurityStatus}). */
  readonly securityWarnings: string[] = [];
  #counted = { proxyAcceptErrors: 0 };
  #limits: HiveStatus["limits"] = { nofileSoft: null, nofileHard: null, maxConnections: 0 };
  #history: HistoryEntry[] = [];
  #leaderLostMono: number | null = null;
  readonly fenceActuator: FenceActuator;
  #leaseCodec: LeaseCodec;
  /** Since when this node, leading, is fenced (monotonic), or null. */
  #fencedSinceMono: number | null = null;
  /** Fenced time of fences already lifted, in ms. */
  #fencedTotalMs = 0;
  #fenceWake: ReturnType<typeof setTimeout> | null = null;
  #fenceWakeAt: number | null = null;
  #failovers: FailoverHistogram = {
    bucketsMs: FAILOVER_BUCKETS_MS,
    bucketCounts: FAILOVER_BUCKETS_MS.map(() => 0),
    count: 0,
    sumMs: 0,
    lastMs: null,
  };

  private constructor(
    readonly config: Config,
    readonly self: string,
    private readonly clock: Clock,
    private readonly codec: HeartbeatCodec,
    private readonly udp: DatagramTransport,
    private readonly redis: RedisController,
    private readonly discovery: PeerDiscovery,
    readonly proxy: ProxyHandle | null,
    /** The proxy's engine and why, or null when there is no proxy. */
    readonly proxyEngine: ProxyEngineChoice | null,
    /** The epoll engine's worker count and where it came from, or null (no epoll proxy). */
    readonly proxyWorkers: ProxyWorkerCount | null,
    restored: PersistedState | null,
    bootId: string,
    leaseCodec: LeaseCodec,
    fenceCommands: FenceCommands,
    limited: RateLimitedLog,
  ) {
    this.#leaseCodec = leaseCodec;
    this.fenceActuator = new FenceActuator(fenceCommands, undefined, (error) => {
      log.warn("fence command failed: {error}", { error });
    });
    this.election = new Election({
      self,
      electionPort: config.electionPort,
      redisPort: config.redisPort,
      localRedis: { host: config.redisHost, port: config.redisPort },
      bootId,
      heartbeatMs: config.heartbeatMs,
      failureMs: config.failureMs,
      maxClockSkewMs: config.maxClockSkewMs,
      maxPeers: config.maxPeers,
      restored,
      fence: config.fence,
    });
    this.#startedMono = this.#lastTickMono = clock.now().monoMs;
    this.#limited = limited;
  }

  /** Starts every part of the hive; resolves once it runs. */
  static async start(config: Config, deps: HiveDeps = {}): Promise<Hive> {
    const clock = deps.clock ?? systemClock;
    const limited = new RateLimitedLog(
      (line, properties) => log.warn(line, properties ?? {}),
      () => clock.now().monoMs,
    );
    const counted = { proxyAcceptErrors: 0 };
    // First, before anything opens: `--proxy-engine epoll` where it cannot run throws here.
    const proxyEngine = deps.proxy === false
      ? null
      : deps.proxyEngine ?? chooseProxyEngine(config.proxyEngine, currentProxyPlatform());
    const codec = await createCodec(config.secret);
    const leaseCodec = await createLeaseCodec(config.secret);
    let latestPeers: readonly string[] = [];
    let hive: Hive | null = null;
    const discovery = startDiscovery(config, (peers) => {
      latestPeers = peers;
      if (hive !== null) hive.#apply(hive.election.setPeers(peers, clock.now()));
    });
    const self = config.announceIp ?? await findSelf(() => latestPeers, discovery, clock);
    const restored = await readRestoredState(config.stateFile);
    const startWarnings: string[] = [];
    const udp = await openElectionSocket(config, deps, limited, startWarnings);
    const redis = (deps.redis ?? ((announceIp) => redisControllerFor(config, announceIp)))(self);
    const workerCount = epollWorkers(config, proxyEngine);
    const fit = fitProxyToNofile(config, deps, startWarnings);
    const proxy = proxyEngine === null ? null : await openProxy(
      config,
      proxyEngine,
      workerCount,
      fit.maxConnections,
      proxyEventLog(limited, counted),
    );
    const bootId = (deps.bootId ?? randomBootId)();
    hive = new Hive(
      config,
      self,
      clock,
      codec,
      udp,
      redis,
      discovery,
      proxy,
      proxyEngine,
      workerCount,
      restored,
      bootId,
      leaseCodec,
      fenceCommandsFor(config, deps),
      limited,
    );
    hive.#counted = counted;
    log.info("hive {id} starting (boot {bootId})", {
      id: self,
      bootId,
      restoredLineage: restored?.lineage ?? null,
    });
    hive.#noteProtection(startWarnings, fit);
    hive.#wire(latestPeers);
    await hive.#openSurfaces(deps);
    return hive;
  }

  /** Opens what outsiders query: the HTTP status server and the Sentinel endpoint. */
  async #openSurfaces(deps: HiveDeps): Promise<void> {
    if (deps.http !== false) {
      this.#server = await startStatusServer({
        host: this.config.bind,
        port: this.config.httpPort,
        hive: this,
        onAcceptError: (e) =>
          log.warn("HTTP accept failed: {error}; retrying", { error: e.message }),
      });
    }
    if (deps.sentinel !== false && this.config.sentinelPort !== 0) {
      this.#sentinel = await openSentinel(this.config, this.self, this);
    }
  }

  /** The warnings of the start (no secret, no FFI, a lowered cap) and the descriptor limits. */
  #noteProtection(
    startWarnings: string[],
    fit: { maxConnections: number; nofile: NofileLimit | null },
  ): void {
    if (this.config.secret === null) {
      this.securityWarnings.push(INSECURE_WARNING);
      log.warn(INSECURE_WARNING);
    }
    this.securityWarnings.push(...startWarnings);
    this.#limits = {
      nofileSoft: finiteOrNull(fit.nofile?.soft),
      nofileHard: finiteOrNull(fit.nofile?.hard),
      maxConnections: fit.maxConnections,
    };
  }

  #wire(initialPeers: readonly string[]): void {
    const now = () => this.clock.now();
    this.udp.setHandler((bytes, from) => void this.#onDatagram(bytes, from.host));
    this.redis.onConnectionLost(() => {
      log.warn("connection to the local redis lost");
      this.#observeSoon();
    });
    if (initialPeers.length > 0) this.#apply(this.election.setPeers(initialPeers, now()));
    this.#observeSoon();
    this.#every(TICK_MS, () => {
      this.#lastTickMono = now().monoMs;
      this.#apply(this.election.tick(now()));
      this.fenceActuator.retry();
    });
    this.#every(this.election.timing.leaseProbeMs, () => this.#apply(this.election.probe(now())));
    this.#every(observeIntervalMs(this.config.heartbeatMs), () => this.#observeSoon());
    this.#every(LOG_FLUSH_MS, () => this.#limited.flush());
  }

  #every(ms: number, fn: () => void): void {
    this.#timers.push(setInterval(() => {
      if (!this.#stopped) fn();
    }, ms));
  }

  async #onDatagram(bytes: Uint8Array, source: string): Promise<void> {
    if (isLeaseDatagram(bytes)) return await this.#onLease(bytes, source);
    const result = await this.codec.decode(bytes);
    if (this.#stopped) return;
    if (!result.ok) {
      this.stats.datagramsDropped[result.reason]++;
      log.debug("dropped a datagram: {reason}", { reason: result.reason });
      return;
    }
    if (!this.#sentFrom("heartbeat", result.heartbeat.from, source)) return;
    this.stats.datagramsReceived++;
    const expiredBefore = this.election.stats.heartbeatsExpired;
    const now = this.clock.now();
    this.#apply(this.election.receive(result.heartbeat, now));
    if (this.election.stats.heartbeatsExpired > expiredBefore) {
      this.#limited.log(
        `expired:${result.heartbeat.from}`,
        "dropped a heartbeat of {from} sent {offMs} ms from this node's clock (more than " +
          "--max-clock-skew-ms): its clock is off, or it is a replay",
        { from: result.heartbeat.from, offMs: result.heartbeat.sentMs - now.wallMs },
      );
    }
  }

  /**
   * A lease datagram of the write fence: signed as heartbeats are, and, as they, dropped when
   * it was not sent from the address it names (the election only echoes to the leader it
   * follows, at that leader's address: no reflection).
   */
  async #onLease(bytes: Uint8Array, source: string): Promise<void> {
    const lease = await this.#leaseCodec.decode(bytes);
    if (this.#stopped) return;
    if (!lease.ok) {
      this.stats.datagramsDropped[lease.reason]++;
      return;
    }
    if (!this.#sentFrom("lease datagram", lease.message.from, source)) return;
    this.stats.datagramsReceived++;
    this.#apply(this.election.receiveLease(lease.message, this.clock.now()));
  }

  /**
   * True when a datagram that names `from` was sent from that address. Else (signed, or unsigned
   * without a secret, but sent from elsewhere: a reflection or a replay) it is counted
   * (`source-mismatch`), logged (rate-limited) and never heard: the hive must not reply, follow
   * or forward there.
   */
  #sentFrom(what: "heartbeat" | "lease datagram", from: string, source: string): boolean {
    if (sourceMatches(from, source)) return true;
    this.stats.datagramsDropped[SOURCE_MISMATCH]++;
    this.#limited.log(
      SOURCE_MISMATCH,
      `dropped a ${what} claiming to come from {from} but sent from {source}`,
      { from, source },
    );
    return false;
  }

  /** Runs `job` after every redis job queued before it: one command at a time. */
  #redisJob(job: () => Promise<void>): Promise<void> {
    const next = this.#redisQueue.then(job).catch((e) => {
      log.error("redis job failed: {error}", { error: String(e) });
    });
    this.#redisQueue = next;
    return next;
  }

  #observeSoon(): void {
    void this.#redisJob(() => this.#observeNow());
  }

  /**
   * Observes the local redis and feeds the election. `reconcile` (every periodic observation)
   * re-enforces the target when the redis disagrees with it; the observation that follows an
   * enforce does not, so a failing enforce (a guard that keeps refusing) is retried once per
   * observation interval, not in a tight loop.
   */
  async #observeNow(reconcile = true): Promise<void> {
    if (this.#stopped) return;
    const obs = await this.redis.observe();
    if (this.#stopped) return;
    this.stats.observations++;
    this.#observation = obs;
    this.#apply(this.election.observeRedis(obs, this.clock.now()));
    this.#trackCatchUp(obs);
    // Reconcile: whatever happened to redis behind our back, enforce the target again.
    const enforcing = this.#enforcing;
    if (shouldReconcile(obs, this.election.redisTarget, { reconcile, enforcing })) {
      this.#enforceSoon();
    }
  }

  #trackCatchUp(obs: RedisObservation): void {
    const now = this.clock.now();
    const leader = this.election.leader;
    const peer = leader === null ? null : this.election.peer(leader, now);
    const leaderLast = peer?.last && peer.lastHeardAgoMs !== null
      ? { heardMono: now.monoMs - peer.lastHeardAgoMs, offset: peer.last.redis.offset }
      : null;
    this.#catchUp = trackCatchUp(this.#catchUp, {
      nowMono: now.monoMs,
      role: this.election.role,
      leader,
      target: this.election.redisTarget,
      obs,
      leaderLast,
    });
  }

  #enforceSoon(): void {
    this.#enforcing = true;
    void this.#redisJob(async () => {
      this.#enforcing = false;
      if (this.#stopped) return;
      const target = this.election.redisTarget;
      // A leader's redis is fenced before it is made a master (fenced from its first moment).
      if (target.kind === "leader") await this.fenceActuator.settled();
      const result = await this.redis.enforce(target);
      this.stats.redisCommands += result.commands.length;
      for (const command of result.commands) {
        log.info("redis: {command}", { command, target });
      }
      for (const warning of result.warnings) log.warn("redis: {warning}", { warning });
      if (!result.ok) {
        this.stats.enforceFailures++;
        this.#limited.log(
          `enforce:${target.kind}:${result.reason}`,
          "redis target {kind} not reached: {reason}: {detail}",
          { kind: target.kind, reason: result.reason, detail: result.detail },
        );
      }
      await this.#observeNow(false); // learn the result at once
    });
  }

  #apply(actions: ElectionAction[]): void {
    this.#applyEach(actions);
    this.#scheduleFenceWake();
  }

  #applyEach(actions: ElectionAction[]): void {
    for (const a of actions) {
      switch (a.type) {
        case "send":
          void this.#send(a.to, a.heartbeat);
          break;
        case "redis":
          log.info("redis target: {kind}", { ...a.target });
          this.#enforceSoon();
          break;
        case "proxy":
          this.proxy?.setTarget(proxyUpstream(a.target, this.config));
          this.#sentinel?.refresh(); // every leader change: +switch-master and the like
          break;
        case "persist":
          this.#persist(a.state);
          break;
        case "lease":
          void this.#sendLease(a.to, a.message);
          break;
        case "fence":
          this.#onFence(a.state);
          break;
        case "event":
          if (a.event.kind === "peer-refused" || a.event.kind === "peer-evicted") {
            this.#limited.log(a.event.kind, describeEvent(a.event), { ...a.event });
          } else logElectionEvent(log, a.event);
          this.#remember(a.event);
          break;
        case "crash-handoff":
          void this.#crashHandoff(a.candidates);
          break;
      }
    }
  }

  /** Carries a fence change out (see fence_actuator.ts) and keeps the fenced time. */
  #onFence(state: FenceState): void {
    const nowMono = this.clock.now().monoMs;
    if (state.fenced && this.#fencedSinceMono === null) this.#fencedSinceMono = nowMono;
    if (!state.fenced && this.#fencedSinceMono !== null) {
      this.#fencedTotalMs += nowMono - this.#fencedSinceMono;
      this.#fencedSinceMono = null;
    }
    let wanted: FenceWanted = { kind: "idle" };
    if (this.election.role === "leader") {
      wanted = state.fenced
        ? { kind: "fenced" }
        : { kind: "open", backstopReplicas: state.armed ? state.needed - 1 : 0 };
    } else if (this.fenceActuator.applied === "open" || this.fenceActuator.applied === "held") {
      // It stopped leading: no write until its redis is a replica (a few ms later), while a
      // successor may already count the echoes this node's group sent it. Refused, not paused:
      // a pause would also hold the replication stream of the replica it becomes.
      wanted = { kind: "refuse" };
    }
    this.fenceActuator.want(wanted);
  }

  /** Wakes the election when an unfenced leader's leases run out (fence.ts: fenceAtMono). */
  #scheduleFenceWake(): void {
    const at = this.election.fence.fenceAtMono;
    if (at === this.#fenceWakeAt) return;
    if (this.#fenceWake !== null) clearTimeout(this.#fenceWake);
    this.#fenceWake = null;
    this.#fenceWakeAt = at;
    if (at === null || this.#stopped) return;
    const delay = Math.max(0, at - this.clock.now().monoMs);
    this.#fenceWake = setTimeout(() => {
      this.#fenceWake = null;
      this.#fenceWakeAt = null;
      if (!this.#stopped) this.#apply(this.election.tick(this.clock.now()));
    }, delay);
  }

  async #sendLease(to: { host: string; port: number }[], message: LeaseMessage): Promise<void> {
    const bytes = await this.#leaseCodec.encode(message);
    if (this.#stopped) return;
    for (const endpoint of to) this.udp.send(endpoint, bytes);
  }

  /**
   * This node led and its redis died: read the candidates' offsets from their redis (bounded by
   * {@link CRASH_HANDOFF_READ_TIMEOUT_MS}), hand over to the most caught up, or give up (the
   * followers elect) when none answered.
   */
  async #crashHandoff(candidates: { address: string; redisPort: number }[]): Promise<void> {
    const started = this.clock.now().monoMs;
    const readings = await this.redis.readOffsets(
      candidates.map((c) => ({ host: c.address, port: c.redisPort })),
      CRASH_HANDOFF_READ_TIMEOUT_MS,
    );
    if (this.#stopped) return;
    const chosen = chooseCrashSuccessor(candidates, readings);
    const readMs = this.clock.now().monoMs - started;
    if (chosen === null) {
      log.warn("crash handoff: no candidate's redis answered in {readMs} ms: the followers elect", {
        readMs,
        readings,
      });
      this.#apply(this.election.abandonCrashHandoff("no candidate answered", this.clock.now()));
      return;
    }
    log.info("crash handoff: handing over to {chosen} (offsets read in {readMs} ms)", {
      chosen,
      readMs,
      readings,
    });
    this.#apply(this.election.handOff(chosen, this.clock.now()));
  }

  #remember(e: ElectionEvent): void {
    const now = this.clock.now();
    if (e.kind === "role-changed") {
      if (e.leader === null && this.#leaderLostMono === null) this.#leaderLostMono = now.monoMs;
      if (e.leader !== null && this.#leaderLostMono !== null) {
        const ms = now.monoMs - this.#leaderLostMono;
        this.#leaderLostMono = null;
        const h = this.#failovers;
        h.count++;
        h.sumMs += ms;
        h.lastMs = ms;
        h.bucketsMs.forEach((b, i) => {
          if (ms <= b) h.bucketCounts[i]!++;
        });
      }
    }
    if (e.kind === "peer-refused" || e.kind === "peer-evicted") return;
    this.#history.push({ atWallMs: now.wallMs, kind: e.kind, message: describeEvent(e) });
    if (this.#history.length > MAX_HISTORY) this.#history.shift();
  }

  async #send(
    to: { host: string; port: number }[],
    heartbeat: Parameters<HeartbeatCodec["encode"]>[0],
  ): Promise<void> {
    const bytes = await this.codec.encode(heartbeat);
    if (this.#stopped) return;
    for (const endpoint of to) this.udp.send(endpoint, bytes);
  }

  #persist(state: PersistedState): void {
    const path = this.config.stateFile;
    if (path === null) return;
    this.#stateWrite = this.#stateWrite.then(() => writeStateFile(path, state)).catch((e) => {
      this.stats.stateFileErrors++;
      log.error("cannot write the state file {path}: {error}", { path, error: String(e) });
    });
  }

  /** What the Sentinel endpoint reports now: the confirmed master, replicas, other hives. */
  sentinelView(): SentinelView {
    return sentinelViewOf(this.election.snapshot(this.clock.now()), {
      redisPort: this.config.redisPort,
      sentinelPort: this.config.sentinelPort,
    });
  }

  /** The runtime's counters, with the datagrams the receive loop dropped added in. */
  #runtimeStats(): RuntimeStats {
    const stats = structuredClone(this.stats);
    stats.proxyAcceptErrors = this.#counted.proxyAcceptErrors;
    stats.logLinesSuppressed = this.#limited.suppressedTotal;
    const transport = this.udp as Partial<FilteredUdpTransport>;
    const early: Record<string, number> = transport.prefilterDrops?.() ?? {};
    for (const [reason, n] of Object.entries(early)) {
      stats.datagramsDropped[reason as DatagramDropReason] += n;
    }
    return stats;
  }

  /** True while the loop turns (for `/healthz`). */
  healthy(): boolean {
    const lag = this.clock.now().monoMs - this.#lastTickMono;
    return !this.#stopped && lag < HEALTHY_TICK_LAG * TICK_MS;
  }

  /** Everything this node knows, for `/status`. */
  status(): HiveStatus {
    const now = this.clock.now();
    const snap = this.election.snapshot(now);
    return {
      id: snap.id,
      role: snap.role,
      leader: snap.leader,
      peers: snap.peers.map((p) => ({
        address: p.address,
        role: p.last?.role ?? null,
        leader: p.last?.leader ?? null,
        live: p.live,
        lastHeardAgoMs: p.lastHeardAgoMs,
        inPeerSet: p.inPeerSet,
        redis: p.last?.redis ?? null,
      })),
      redis: {
        ...snap.redis,
        target: snap.redisTarget,
        observation: this.#observation,
        caughtUpWithLeader: caughtUpWithLeader(this.#catchUp),
      },
      eligible: snap.eligible,
      lineage: snap.lineage,
      electionStartMs: snap.electionStartMs,
      leaderSinceMs: snap.leaderSinceMs,
      proxy: {
        engine: this.proxyEngine?.engine ?? null,
        engineReason: this.proxyEngine?.reason ?? null,
        workers: this.proxy?.workers ?? null,
        workersSource: this.proxy === null
          ? null
          : this.proxyWorkers?.source ?? "deno engine: the main thread",
        target: snap.proxyTarget,
        upstream: this.proxy === null ? null : describeUpstream(this.proxy.target),
        listening: this.proxy?.listening ?? false,
        stats: this.proxy === null ? null : { ...this.proxy.stats },
      },
      discovery: { ...this.discovery.stats },
      election: snap.stats,
      runtime: this.#runtimeStats(),
      history: [...this.#history],
      failovers: structuredClone(this.#failovers),
      fence: {
        mode: this.config.fence,
        armed: snap.fence.armed,
        fenced: snap.fence.fenced,
        reason: snap.fence.reason,
        heard: [...snap.fence.heard],
        needed: snap.fence.needed,
        peerSetSize: snap.fence.peerSetSize,
        applied: this.fenceActuator.applied,
        fencedForMs: this.#fencedSinceMono === null ? 0 : now.monoMs - this.#fencedSinceMono,
        fencedTotalMs: this.#fencedTotalMs +
          (this.#fencedSinceMono === null ? 0 : now.monoMs - this.#fencedSinceMono),
        actuator: { ...this.fenceActuator.stats },
        lastError: this.fenceActuator.lastError,
      },
      uptimeMs: now.monoMs - this.#startedMono,
      lastTickAgoMs: now.monoMs - this.#lastTickMono,
      process: readProcessMemory(),
      security: {
        authenticated: this.codec.signed,
        warnings: [...this.securityWarnings],
      },
      http: this.#server === null ? null : { ...this.#server.stats },
      limits: { ...this.#limits },
    };
  }

  /**
   * Graceful shutdown (SIGTERM): a leader hands over first. It pauses writes on its redis
   * (`CLIENT PAUSE ... WRITE`), reads every eligible follower's processed offset until one has
   * processed every write (bounded by {@link HANDOFF_SYNC_TIMEOUT_MS}), tells that one to take
   * over, parks its own redis and holds its proxy, and waits (bounded) until the successor leads.
   * A follower just leaves. Then stops.
   */
  async shutdown(): Promise<void> {
    if (this.#stopped) return;
    const candidates = this.election.successors(this.clock.now());
    if (candidates.length > 0) {
      // The handoff pauses writes itself: the fence must not lift that pause meanwhile.
      this.fenceActuator.suspend();
      const started = this.clock.now().monoMs;
      log.info("graceful shutdown: handing leadership over, candidates {candidates}", {
        candidates: candidates.map((c) => c.address),
      });
      let sync: HandoffSync | null = null;
      await this.#redisJob(async () => {
        sync = await this.redis.pauseAndSync(
          candidates.map((c) => ({ host: c.address, port: c.redisPort })),
          HANDOFF_PAUSE_MS,
          HANDOFF_SYNC_TIMEOUT_MS,
        );
      });
      const s = sync as HandoffSync | null;
      const successor = chooseSuccessor(candidates, s);
      if (s !== null && s.ok) {
        log.info("handoff: {successor} processed every write", { successor, ...s });
      } else {
        log.warn(
          "handoff: no follower processed every write: {reason}; handing over to {successor}",
          {
            successor,
            reason: s?.reason ?? "no answer",
            masterOffset: s?.masterOffset ?? null,
            offsets: s?.offsets ?? [],
          },
        );
      }
      this.#apply(this.election.handOff(successor, this.clock.now()));
      const deadline = started + HANDOFF_TAKEOVER_TIMEOUT_MS;
      while (this.clock.now().monoMs < deadline) {
        if (this.election.proxyTarget?.host === successor) break;
        await new Promise((r) => setTimeout(r, 5));
      }
      const tookMs = this.clock.now().monoMs - started;
      if (this.election.proxyTarget?.host === successor) {
        log.info("handoff done: {successor} leads after {tookMs} ms", { successor, tookMs });
      } else {
        log.warn("handoff: {successor} did not take over in {tookMs} ms", { successor, tookMs });
      }
    }
    await this.stop();
  }

  /** Stops every part; safe to call twice. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const t of this.#timers) clearInterval(t);
    if (this.#fenceWake !== null) clearTimeout(this.#fenceWake);
    this.discovery.stop();
    await this.#server?.close();
    await this.#sentinel?.close();
    await this.proxy?.close();
    await this.udp.close();
    await this.#redisQueue;
    await this.redis.close();
    await this.fenceActuator.close();
    await this.#stateWrite;
    log.info("hive {id} stopped", { id: this.self });
  }
}

/** Starts peer discovery from `--service` (DNS) or `--peers`; `onPeers` gets every new set. */
function startDiscovery(
  config: Config,
  onPeers: (peers: readonly string[]) => void,
): PeerDiscovery {
  const discovery = new PeerDiscovery({
    source: config.service !== null
      ? {
        kind: "dns",
        name: config.service,
        resolver: config.dnsServer === null ? new DnsResolver({}) : new DnsResolver({
          nameServer: { ipAddr: config.dnsServer.host, port: config.dnsServer.port },
        }),
      }
      : { kind: "static", peers: config.peers ?? [] },
    refreshMs: config.dnsRefreshMs,
    maxPeers: config.maxPeers,
    onPeers,
    onEvent: (e) => logDiscovery(e),
  });
  discovery.start();
  return discovery;
}

/** The state file's content, or null (none configured, none yet, or unreadable: logged). */
async function readRestoredState(path: string | null): Promise<PersistedState | null> {
  if (path === null) return null;
  try {
    return await readStateFile(path);
  } catch (e) {
    log.error("cannot read the state file {path}: {error}; starting without it", {
      path,
      error: String(e),
    });
    return null;
  }
}

/**
 * Opens the master proxy with the chosen engine, its epoll workers and `maxConnections`
 * (`--max-connections`, lowered to fit the open-file limit), and logs how it runs.
 */
async function openProxy(
  config: Config,
  choice: ProxyEngineChoice,
  workerCount: ProxyWorkerCount | null,
  maxConnections: number,
  onEvent: Parameters<typeof listenProxy>[0]["onEvent"],
): Promise<ProxyHandle> {
  const proxy = await listenProxy({
    engine: choice.engine,
    bind: { host: config.bind, port: config.proxyPort },
    holdMs: config.proxyHoldMs,
    maxConnections,
    workers: workerCount?.workers,
    onEvent,
  });
  log.info("master proxy on {bind}:{port}: {engine} engine ({reason}){threads}", {
    bind: config.bind,
    port: config.proxyPort,
    ...choice,
    threads: workerCount === null
      ? ""
      : `, ${workerCount.workers} worker thread${workerCount.workers === 1 ? "" : "s"} ` +
        `(${workerCount.source})`,
  });
  return proxy;
}

/** Opens the Sentinel endpoint on `--sentinel-port`, reporting `hive`'s view. */
async function openSentinel(config: Config, self: string, hive: Hive): Promise<SentinelServer> {
  const sentinel = await SentinelServer.listen({
    host: config.bind,
    port: config.sentinelPort,
    self,
    masterName: config.masterName,
    password: config.sentinelPassword,
    downAfterMs: config.failureMs,
    source: hive,
    onEvent: logSentinelEvent,
  });
  log.info("sentinel endpoint on {bind}:{port}, master name {name}", {
    bind: config.bind,
    port: config.sentinelPort,
    name: config.masterName,
  });
  return sentinel;
}

/** Waits (at most {@link SELF_DISCOVERY_TIMEOUT_MS} on `clock`) for peers, then finds self. */
async function findSelf(
  peers: () => readonly string[],
  discovery: PeerDiscovery,
  clock: Clock,
): Promise<string> {
  const deadline = clock.now().monoMs + SELF_DISCOVERY_TIMEOUT_MS;
  while (peers().length === 0) {
    if (clock.now().monoMs > deadline) {
      discovery.stop();
      throw new Error(
        `no peer addresses within ${SELF_DISCOVERY_TIMEOUT_MS} ms to find this node's own ` +
          "address among; set --announce-ip (POD_IP)",
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return detectSelfAddress([...peers()]);
}

function finiteOrNull(n: number | undefined): number | null {
  return n === undefined || !Number.isFinite(n) ? null : n;
}

function randomBootId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function logRedisEvent(e: RedisControllerEvent): void {
  if (e.kind === "script-kill") {
    log.warn("the local redis ran a script past --redis-hang-ms: sent {results}", {
      results: e.results.map((r) => `${r.command}: ${r.answer}`),
    });
    return;
  }
  const h = e.health;
  if (h.state === "answering") {
    log.info("the local redis answers again (was {previous})", {
      previous: e.previous.state === "answering" ? "answering" : e.previous.reason,
    });
  } else if (h.state === "busy") {
    log.warn("the local redis is busy ({reason}), not dead: unanswered for {unansweredMs} ms", {
      ...h,
    });
  } else {
    log.warn("the local redis is dead ({reason})", { ...h });
  }
}

function logSentinelEvent(e: SentinelServerEvent): void {
  if (e.kind === "published") {
    log.info("sentinel: published {channel} {message} to {receivers} subscribers", { ...e });
  } else log.warn(`sentinel: ${e.kind}`, { ...e });
}

function logDiscovery(e: DiscoveryEvent): void {
  switch (e.kind) {
    case "peers":
      log.info("peers: {peers}", { peers: [...e.peers], previous: [...e.previous] });
      break;
    case "empty":
      log.warn("DNS answered no address; keeping {kept}, retry in {retryInMs} ms", { ...e });
      break;
    case "failed":
      log.warn("DNS lookup failed: {error}; keeping {kept}, retry in {retryInMs} ms", {
        error: e.error.message,
        kept: [...e.kept],
        consecutive: e.consecutive,
        retryInMs: e.retryInMs,
      });
      break;
    case "truncated":
      log.warn("DNS answered more than {maxPeers} addresses; ignored {dropped}", { ...e });
      break;
  }
}

/**
 * Opens the election's UDP socket: injected, else the FFI receive loop that drops junk and
 * badly signed datagrams off the main thread, else node:dgram (warned: a flood then costs memory).
 */
function openElectionSocket(
  config: Config,
  deps: HiveDeps,
  limited: RateLimitedLog,
  warnings: string[],
): Promise<DatagramTransport> {
  const bind = { host: config.bind, port: config.electionPort };
  if (deps.udp !== undefined) return deps.udp(bind);
  const onError = (error: Error, to: { host: string; port: number } | null) =>
    limited.log(`udp:${to?.host ?? "socket"}`, "UDP {op} failed: {error}", {
      op: to === null ? "socket" : `send to ${to.host}:${to.port}`,
      error: error.message,
    });
  if (ffiUdpAvailable()) return listenUdpFfi(bind, { secret: config.secret, onError });
  warnings.push(NO_FFI_UDP_WARNING);
  log.warn(NO_FFI_UDP_WARNING);
  return listenUdp(bind, { onError });
}

/** The controller of the local redis, over its own connection. */
function redisControllerFor(config: Config, announceIp: string): RedisController {
  return createRedisController({
    host: config.redisHost,
    port: config.redisPort,
    socket: config.redisSocket,
    password: config.redisPassword,
    announceIp,
    hangMs: config.redisHangMs,
    onEvent: logRedisEvent,
  });
}

/** Logs the proxy's events: re-points at info, the rest rate-limited; counts accept errors. */
function proxyEventLog(
  limited: RateLimitedLog,
  counted: { proxyAcceptErrors: number },
): Parameters<typeof listenProxy>[0]["onEvent"] {
  return (e) => {
    if (e.kind === "target-change") {
      log.info("proxy re-pointed, {closedConnections} connections closed", { ...e });
      return;
    }
    if (e.kind === "accept-error") counted.proxyAcceptErrors++;
    limited.log(`proxy:${e.kind}`, `proxy: ${e.kind}`, { ...e });
  };
}

/** The epoll engine's threads: `--proxy-workers`, else the CPUs the cgroup allows. */
function epollWorkers(
  config: Config,
  engine: ProxyEngineChoice | null,
): ProxyWorkerCount | null {
  return engine?.engine !== "epoll" ? null : hostProxyWorkerCount(config.proxyWorkers);
}

/**
 * Descriptors: raises the soft limit to the hard one, and fits the proxy's cap within it, so
 * running out refuses connections instead of starving the election (lib/net/fd_limit.ts). A
 * lowered cap is logged and added to `warnings`.
 */
function fitProxyToNofile(
  config: Config,
  deps: HiveDeps,
  warnings: string[],
): { maxConnections: number; nofile: NofileLimit | null } {
  const nofile = (deps.nofileLimit ?? raiseNofileLimit)();
  const fit = fitMaxConnections(config.maxConnections, nofile?.soft ?? null);
  if (nofile?.raisedFrom != null) {
    log.info("open-file limit raised from {from} to {to}", {
      from: nofile.raisedFrom,
      to: nofile.soft,
    });
  }
  if (fit.lowered) {
    warnings.push(fit.reason);
    log.warn(fit.reason);
  }
  return { maxConnections: fit.maxConnections, nofile };
}

/**
 * The fence's commands on the local redis: injected, none with an injected redis (tests on
 * in-memory parts), else their own connection to `--redis-host`/`--redis-socket`.
 */
function fenceCommandsFor(config: Config, deps: HiveDeps): FenceCommands {
  if (deps.fence !== undefined) return deps.fence();
  if (deps.redis !== undefined) return NO_FENCE_COMMANDS;
  return createFenceCommands({
    host: config.redisHost,
    port: config.redisPort,
    socket: config.redisSocket,
    password: config.redisPassword,
  });
}

/**
 * The CLI's entry: starts the hive (with `deps`, e.g. the proxy engine main.ts chose), stops it
 * on SIGINT/SIGTERM, exits 0 (1 if it cannot start).
 */
export async function runHive(config: Config, deps: HiveDeps = {}): Promise<void> {
  let hive: Hive;
  try {
    hive = await Hive.start(config, deps);
  } catch (e) {
    log.fatal("cannot start: {error}", { error: e instanceof Error ? e.message : String(e) });
    Deno.exit(1);
  }
  // Give freed C heap back to the kernel now and then (about 50 MB; lib/hive/malloc_trim.ts).
  const trim = startMallocTrim();
  if (!trim.running) log.info("not trimming the C heap: {reason}", { reason: trim.reason });
  await new Promise<void>((resolve) => {
    const stop = (signal: Deno.Signal) => {
      log.info("{signal}: stopping", { signal });
      resolve();
    };
    Deno.addSignalListener("SIGINT", () => stop("SIGINT"));
    Deno.addSignalListener("SIGTERM", () => stop("SIGTERM"));
  });
  await hive.shutdown();
  Deno.exit(0);
}
