/**
 * An in-memory stand-in for redis servers and the {@link RedisController} that steers one, for
 * unit tests of the daemon: no processes, no sockets, fully deterministic.
 *
 * A {@link MemoryRedisNetwork} holds simulated redis servers ({@link MemoryRedis}) by
 * `host:port`. Replication is modelled as instant: after every change (unless `manualSync`),
 * each replica whose master is reachable (running, not hung, same password) and is a master
 * or a replica with its link up gets `linkUp` and a copy of its master's data, replication id
 * and offset; a replica of anything else (a dead address, a parked redis) keeps its data with
 * the link down, as a real redis does (`-NOMASTERLINK`).
 *
 * @example
 * ```ts
 * import { MemoryRedisNetwork } from "./memory_redis_controller.ts";
 * const net = new MemoryRedisNetwork();
 * const a = net.addRedis("10.0.0.1", 6379);
 * const b = net.addRedis("10.0.0.2", 6379, { parked: true });
 * a.write("k", "v");
 * const ctl = net.controller({ host: "10.0.0.2", port: 6379, password: null, announceIp: "10.0.0.2" });
 * await ctl.enforce({ kind: "follow", host: "10.0.0.1", port: 6379, expectRunId: a.runId });
 * console.log(b.data.get("k")); // "v"
 * ```
 */

import {
  PARKED_MASTER,
  REDIS_DOWN,
  type RedisObservation,
  type RedisTarget,
} from "./redis_state.ts";
import {
  closedControllerResult,
  type CommandOutcome,
  enforceRedisTarget,
  type EnforceResult,
  type EnforceSession,
  type RunIdReading,
} from "./redis_enforce.ts";
import type { HandoffSync, OffsetReading, RedisController } from "./redis_controller.ts";

/** The most redis servers one {@link MemoryRedisNetwork} holds. */
export const MEMORY_NETWORK_MAX_REDIS = 1_000;

function randomHex40(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(20));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Options of one simulated redis server. */
export interface MemoryRedisOptions {
  /** Start as a replica of {@link PARKED_MASTER}. */
  parked?: boolean;
  /** `requirepass`: clients and replicas must present it. */
  password?: string | null;
  /** Answer every `CONFIG` command with an error, like a redis with CONFIG renamed. */
  rejectConfig?: boolean;
}

/** One simulated redis-server process (restartable). */
export class MemoryRedis {
  readonly host: string;
  readonly port: number;
  readonly network: MemoryRedisNetwork;
  /** `requirepass`, or null. */
  readonly password: string | null;
  /** Reject every CONFIG command (renamed-command simulation). */
  rejectConfig: boolean;
  /** The process's run_id; null while not running. */
  runId: string | null = null;
  /** A process is running (not crashed). */
  running = false;
  /** The process is stopped (SIGSTOP): running, but answers nothing. */
  hung = false;
  role: "master" | "replica" = "master";
  masterHost: string | null = null;
  masterPort: number | null = null;
  linkUp = false;
  /** Shown as `loading` in observations; tests set it to simulate a sync in progress. */
  loading = false;
  replId: string = randomHex40();
  offset = 0;
  /** The dataset. */
  readonly data: Map<string, string> = new Map();
  /** `CONFIG SET` values of the current process. */
  readonly config: Map<string, string> = new Map();
  /** Every command run through a controller, as `REPLICAOF NO ONE` etc. (all processes). */
  readonly commandLog: string[] = [];
  /** Increases at every process start: controllers reconnect, per-connection setup reruns. */
  generation = 0;

  /** Use {@link MemoryRedisNetwork.addRedis}. */
  constructor(network: MemoryRedisNetwork, host: string, port: number, opts: MemoryRedisOptions) {
    this.network = network;
    this.host = host;
    this.port = port;
    this.password = opts.password ?? null;
    this.rejectConfig = opts.rejectConfig ?? false;
  }

  /** `host:port`. */
  get address(): string {
    return `${this.host}:${this.port}`;
  }

  /** Answers commands: running and not hung. */
  get reachable(): boolean {
    return this.running && !this.hung;
  }

  /** Starts a new, empty process (new run_id); parked when asked. Throws if already running. */
  start(opts: { parked?: boolean } = {}): void {
    if (this.running) throw new Error(`memory redis ${this.address} is already running`);
    this.running = true;
    this.hung = false;
    this.runId = randomHex40();
    this.generation++;
    this.data.clear();
    this.config.clear();
    this.replId = randomHex40();
    this.offset = 0;
    this.loading = false;
    this.linkUp = false;
    if (opts.parked) {
      this.role = "replica";
      this.masterHost = PARKED_MASTER.host;
      this.masterPort = PARKED_MASTER.port;
    } else {
      this.role = "master";
      this.masterHost = null;
      this.masterPort = null;
    }
    this.network.changed();
  }

  /** The process dies (SIGKILL): data lost, controllers' connection-lost callbacks fire. */
  crash(): void {
    if (!this.running) return;
    this.running = false;
    this.hung = false;
    this.runId = null;
    this.linkUp = false;
    this.data.clear();
    this.network.connectionLost(this);
    this.network.changed();
  }

  /** {@link crash} then {@link start}. */
  restart(opts: { parked?: boolean } = {}): void {
    this.crash();
    this.start(opts);
  }

  /** SIGSTOP: observations and commands fail until {@link resume}. */
  hang(): void {
    this.hung = true;
    this.network.changed();
  }

  /** SIGCONT. */
  resume(): void {
    this.hung = false;
    this.network.changed();
  }

  /** Writes are paused (`CLIENT PAUSE ... WRITE`) until this `Date.now()` value. */
  pausedUntilMs = 0;

  /** A client write (SET); throws like redis on a replica (`READONLY`) or when unreachable. */
  write(key: string, value: string): void {
    if (!this.reachable) throw new Error(`memory redis ${this.address} is not reachable`);
    if (Date.now() < this.pausedUntilMs) throw new Error("memory redis: writes are paused");
    if (this.role !== "master") {
      throw new Error("READONLY You can't write against a read only replica.");
    }
    this.data.set(key, value);
    this.offset++;
    this.network.changed();
  }

  /** What a controller's observe() of this redis returns. */
  observation(): RedisObservation {
    if (!this.reachable) return REDIS_DOWN;
    const isReplica = this.role === "replica";
    return {
      up: true,
      runId: this.runId,
      role: this.role,
      masterHost: isReplica ? this.masterHost : null,
      masterPort: isReplica ? this.masterPort : null,
      linkUp: isReplica && this.linkUp,
      loading: this.loading,
      replId: this.replId,
      offset: this.offset,
    };
  }

  /** Runs a command as redis would (REPLICAOF, CONFIG SET, INFO-less subset). */
  execute(args: readonly string[]): CommandOutcome {
    if (!this.reachable) return { ok: false, kind: "unavailable", message: "Command timed out" };
    const name = (args[0] ?? "").toUpperCase();
    this.commandLog.push(args.join(" "));
    if (name === "REPLICAOF" || name === "SLAVEOF") {
      const [, host, portText] = args;
      if (host === undefined || portText === undefined || args.length !== 3) {
        return { ok: false, kind: "rejected", message: "ERR wrong number of arguments" };
      }
      if (host.toUpperCase() === "NO" && portText.toUpperCase() === "ONE") {
        if (this.role === "replica") {
          this.role = "master";
          this.masterHost = null;
          this.masterPort = null;
          this.linkUp = false;
          this.replId = randomHex40();
        }
      } else {
        const port = Number(portText);
        if (!Number.isInteger(port) || port < 0 || port > 65535) {
          return { ok: false, kind: "rejected", message: "ERR Invalid master port" };
        }
        if (this.role !== "replica" || this.masterHost !== host || this.masterPort !== port) {
          this.role = "replica";
          this.masterHost = host;
          this.masterPort = port;
          this.linkUp = false;
        }
      }
      this.network.changed();
      return { ok: true };
    }
    if (name === "CONFIG") {
      if (this.rejectConfig) {
        return { ok: false, kind: "rejected", message: "ERR unknown command 'CONFIG'" };
      }
      const [, sub, key, value] = args;
      if (sub?.toUpperCase() !== "SET" || key === undefined || value === undefined) {
        return {
          ok: false,
          kind: "rejected",
          message: "ERR only CONFIG SET key value is simulated",
        };
      }
      this.config.set(key.toLowerCase(), value);
      this.network.changed();
      return { ok: true };
    }
    return { ok: false, kind: "rejected", message: `ERR unknown command '${args[0]}'` };
  }
}

/** The simulated network of redis servers, and the factory of their controllers. */
export class MemoryRedisNetwork {
  /** When true, replication only progresses on {@link sync} calls. */
  readonly manualSync: boolean;
  #redis = new Map<string, MemoryRedis>();
  #controllers = new Set<MemoryRedisController>();

  /** A new, empty network. */
  constructor(opts: { manualSync?: boolean } = {}) {
    this.manualSync = opts.manualSync ?? false;
  }

  /** Adds a redis server at host:port and starts it. Throws if the address is taken. */
  addRedis(host: string, port: number, opts: MemoryRedisOptions = {}): MemoryRedis {
    const key = `${host}:${port}`;
    if (this.#redis.has(key)) throw new Error(`memory redis ${key} already exists`);
    if (this.#redis.size >= MEMORY_NETWORK_MAX_REDIS) {
      throw new Error(`memory network holds at most ${MEMORY_NETWORK_MAX_REDIS} redis servers`);
    }
    const redis = new MemoryRedis(this, host, port, opts);
    this.#redis.set(key, redis);
    redis.start({ parked: opts.parked ?? false });
    return redis;
  }

  /** The redis server at host:port, if any. */
  redisAt(host: string, port: number): MemoryRedis | undefined {
    return this.#redis.get(`${host}:${port}`);
  }

  /** A controller for the redis at `opts.host:opts.port` (which may be added later). */
  controller(
    opts: { host: string; port: number; password: string | null; announceIp: string },
  ): MemoryRedisController {
    const controller = new MemoryRedisController(this, opts);
    this.#controllers.add(controller);
    return controller;
  }

  /** Called by a redis after any change; syncs unless {@link manualSync}. */
  changed(): void {
    if (!this.manualSync) this.sync();
  }

  /** Called by a crashing redis: fires its controllers' connection-lost callbacks. */
  connectionLost(redis: MemoryRedis): void {
    for (const c of this.#controllers) c.redisCrashed(redis);
  }

  /** Forgets a closed controller. */
  forget(controller: MemoryRedisController): void {
    this.#controllers.delete(controller);
  }

  /**
   * Brings every replication link up to date: a replica whose master chain reaches a master
   * gets the link up and a copy of its master's data, replication id and offset; any other
   * replica has its link down and keeps its data.
   */
  sync(): void {
    const state = new Map<MemoryRedis, "visiting" | "up" | "down">();
    const resolve = (r: MemoryRedis): boolean => {
      const known = state.get(r);
      if (known === "visiting") return false; // a replication cycle never links up
      if (known !== undefined) return known === "up";
      if (!r.reachable) {
        state.set(r, "down");
        return false;
      }
      if (r.role === "master") {
        state.set(r, "up");
        return true;
      }
      state.set(r, "visiting");
      const master = r.masterHost === null || r.masterPort === null
        ? undefined
        : this.redisAt(r.masterHost, r.masterPort);
      const masterAuth = r.config.get("masterauth") ?? null;
      const linked = master !== undefined && master !== r &&
        (master.password === null || master.password === masterAuth) && resolve(master);
      if (linked) {
        if (
          r.data.size !== master.data.size || r.replId !== master.replId ||
          r.offset !== master.offset || ![...master.data].every(([k, v]) => r.data.get(k) === v)
        ) {
          r.data.clear();
          for (const [k, v] of master.data) r.data.set(k, v);
          r.replId = master.replId;
          r.offset = master.offset;
        }
      }
      r.linkUp = linked;
      state.set(r, linked ? "up" : "down");
      return linked;
    };
    for (const r of this.#redis.values()) resolve(r);
  }
}

/** A {@link RedisController} of one simulated redis in a {@link MemoryRedisNetwork}. */
export class MemoryRedisController implements RedisController {
  readonly network: MemoryRedisNetwork;
  readonly host: string;
  readonly port: number;
  readonly password: string | null;
  readonly announceIp: string;
  /** Every enforce result, in order (for assertions). */
  readonly results: EnforceResult[] = [];
  #closed = false;
  #lostCallbacks: (() => void)[] = [];
  #setupGeneration = -1;

  /** Use {@link MemoryRedisNetwork.controller}. */
  constructor(
    network: MemoryRedisNetwork,
    opts: { host: string; port: number; password: string | null; announceIp: string },
  ) {
    this.network = network;
    this.host = opts.host;
    this.port = opts.port;
    this.password = opts.password;
    this.announceIp = opts.announceIp;
  }

  /** The redis this controller steers, when it answers with this controller's password. */
  #redis(): MemoryRedis | undefined {
    if (this.#closed) return undefined;
    const redis = this.network.redisAt(this.host, this.port);
    if (redis === undefined || !redis.reachable) return undefined;
    if (redis.password !== null && redis.password !== this.password) return undefined;
    return redis;
  }

  /** Observes the simulated redis; `REDIS_DOWN` when absent, crashed, hung or closed. */
  observe(): Promise<RedisObservation> {
    return Promise.resolve(this.#redis()?.observation() ?? REDIS_DOWN);
  }

  /** Enforces `target` exactly as the real controller does (same algorithm). */
  async enforce(target: RedisTarget): Promise<EnforceResult> {
    if (this.#closed) return closedControllerResult();
    const session: EnforceSession = {
      observe: () => this.observe(),
      run: (args) => {
        const redis = this.#redis();
        return Promise.resolve(
          redis === undefined
            ? { ok: false, kind: "unavailable", message: "Connection is closed." }
            : redis.execute(args),
        );
      },
      readRunId: (host, port): Promise<RunIdReading> => {
        const peer = this.network.redisAt(host, port);
        if (peer === undefined || !peer.reachable || peer.runId === null) {
          return Promise.resolve({ ok: false, message: `${host}:${port} unreachable` });
        }
        if (peer.password !== null && peer.password !== this.password) {
          return Promise.resolve({ ok: false, message: "WRONGPASS invalid password" });
        }
        return Promise.resolve({ ok: true, runId: peer.runId });
      },
      needsConnectionSetup: () => this.#setupGeneration !== this.#redis()?.generation,
      markConnectionSetup: () => {
        this.#setupGeneration = this.#redis()?.generation ?? -1;
      },
    };
    const result = await enforceRedisTarget(session, target, {
      announceIp: this.announceIp,
      password: this.password,
      ownPort: this.port,
    });
    this.results.push(result);
    return result;
  }

  /**
   * Graceful handoff, simulated: writes are refused for `pauseMs`, and the first candidate that
   * is a linked replica of this redis with its whole offset is chosen.
   */
  pauseAndSync(
    candidates: readonly { host: string; port: number }[],
    pauseMs: number,
    _timeoutMs: number,
  ): Promise<HandoffSync> {
    const redis = this.#redis();
    const offsets = candidates.map((c) => ({ ...c, offset: null as number | null }));
    if (redis === undefined) {
      return Promise.resolve({
        ok: false,
        reason: "the local redis is down",
        masterOffset: null,
        offsets,
      });
    }
    redis.pausedUntilMs = Date.now() + pauseMs;
    this.network.sync();
    for (const o of offsets) {
      const r = this.network.redisAt(o.host, o.port);
      const linked = r !== undefined && r.reachable && r.linkUp && r.masterHost === redis.host &&
        r.masterPort === redis.port;
      o.offset = linked ? r.offset : null;
    }
    const done = offsets.find((o) => o.offset !== null && o.offset >= redis.offset);
    return Promise.resolve(
      done === undefined
        ? { ok: false, reason: "no candidate caught up", masterOffset: redis.offset, offsets }
        : {
          ok: true,
          chosen: { host: done.host, port: done.port },
          masterOffset: redis.offset,
          replicaOffset: done.offset!,
          waitedMs: 0,
        },
    );
  }

  /** Reads each candidate's offset at once (null: absent, crashed or hung). */
  readOffsets(
    candidates: readonly { host: string; port: number }[],
    _timeoutMs: number,
  ): Promise<OffsetReading[]> {
    return Promise.resolve(candidates.map((c) => {
      const r = this.network.redisAt(c.host, c.port);
      return { ...c, offset: r !== undefined && r.reachable ? r.offset : null };
    }));
  }

  /** Registers `cb`, called when the simulated redis crashes. */
  onConnectionLost(cb: () => void): void {
    if (typeof cb !== "function") throw new TypeError("onConnectionLost: cb must be a function");
    this.#lostCallbacks.push(cb);
  }

  /** Called by the network when a redis crashes. */
  redisCrashed(redis: MemoryRedis): void {
    if (this.#closed || redis.host !== this.host || redis.port !== this.port) return;
    for (const cb of this.#lostCallbacks) cb();
  }

  /** Detaches from the network; later observations are down. */
  close(): Promise<void> {
    this.#closed = true;
    this.network.forget(this);
    return Promise.resolve();
  }
}
