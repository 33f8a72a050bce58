/**
 * The local redis, as the hive sees and steers it: observe its role and replication state,
 * enforce the role the election wants, and hear at once when the connection to it drops.
 *
 * {@link createRedisController} talks to a real redis with ioredis (needs Deno's `--allow-net`
 * for the redis addresses and `--allow-env`, which ioredis's `debug` dependency reads at load).
 * `memory_redis_controller.ts` implements the same {@link RedisController} in memory for unit
 * tests. Both enforce through {@link enforceRedisTarget}.
 *
 * Busy is not dead: observations go through a {@link RedisFailureDetector}. A redis that
 * answers slowly, answers `-BUSY`, or whose connection was dropped (`CLIENT KILL`) while a
 * reconnect (made at once) is not refused, is observed with its last answer and `busy: true`;
 * it is observed down only once the reconnect is refused or it has not answered for the hang
 * timeout (`hangMs`). A script still busy at the hang timeout gets `SCRIPT KILL` and
 * `FUNCTION KILL` once.
 *
 * @example
 * ```ts
 * import { createRedisController } from "./redis_controller.ts";
 * const redis = createRedisController({
 *   host: "127.0.0.1", port: 6379, password: null, announceIp: "10.1.2.3",
 * });
 * redis.onConnectionLost(() => console.log("redis gone"));
 * const obs = await redis.observe(); // REDIS_DOWN when unreachable
 * const result = await redis.enforce({ kind: "parked" });
 * await redis.close();
 * ```
 */

import { formatHostPort } from "../net/address.ts";
import { monotonicMs } from "../common/clock.ts";
import { Redis } from "ioredis";
import { checkPositiveInteger } from "../common/assert.ts";
import { observationFromInfo, parseInfo } from "./redis_info.ts";
import { REDIS_DOWN, type RedisObservation, type RedisTarget } from "./redis_state.ts";
import {
  DEFAULT_REDIS_HANG_MS,
  RedisFailureDetector,
  type RedisHealth,
  sameHealth,
} from "./failure_detector.ts";
import {
  closedControllerResult,
  type CommandOutcome,
  enforceRedisTarget,
  type EnforceResult,
  type EnforceSession,
  type RunIdReading,
} from "./redis_enforce.ts";

export type { EnforceFailure, EnforceResult } from "./redis_enforce.ts";

/** The local redis, observed and steered. */
export interface RedisController {
  /**
   * Observes the local redis. Never throws. A dead redis (see `failure_detector.ts`) gives
   * `REDIS_DOWN`; a busy one its last answer with `busy: true`.
   */
  observe(): Promise<RedisObservation>;
  /** Puts the local redis in the role `target` asks for. Idempotent; never throws. */
  enforce(target: RedisTarget): Promise<EnforceResult>;
  /** Registers `cb`, called at once each time an established connection to redis drops. */
  onConnectionLost(cb: () => void): void;
  /**
   * Graceful handoff: pauses writes on the local master (`CLIENT PAUSE pauseMs WRITE`), then
   * waits (at most `timeoutMs`) until one of the `candidates` (replicas' redis addresses) has
   * processed the master's whole replication offset, and names it. Offsets are read from each
   * candidate directly (`slave_repl_offset`): `WAIT` is itself blocked by a write pause, and a
   * replica's reported offset can lag (redis 7.0 may hold a freshly synced replica's stream
   * until its next `REPLCONF ACK`, up to a second). Never throws.
   */
  pauseAndSync(
    candidates: readonly { host: string; port: number }[],
    pauseMs: number,
    timeoutMs: number,
  ): Promise<HandoffSync>;
  /**
   * Crash handoff: reads each candidate's processed replication offset from its redis directly
   * (`slave_repl_offset`, else `master_repl_offset`), over new connections, waiting at most
   * `timeoutMs` in all; a candidate that did not answer in time reads null. Never throws.
   */
  readOffsets(
    candidates: readonly { host: string; port: number }[],
    timeoutMs: number,
  ): Promise<OffsetReading[]>;
  /** Closes every connection; later calls observe down and enforce nothing. */
  close(): Promise<void>;
}

/** One candidate's replication offset as {@link RedisController.readOffsets} read it. */
export interface OffsetReading {
  host: string;
  port: number;
  /** The offset, or null when it could not be read in time. */
  offset: number | null;
}

/** The outcome of {@link RedisController.pauseAndSync}. */
export type HandoffSync =
  | {
    ok: true;
    /** The first candidate that processed every write. */
    chosen: { host: string; port: number };
    masterOffset: number;
    replicaOffset: number;
    waitedMs: number;
  }
  | {
    ok: false;
    reason: string;
    masterOffset: number | null;
    /** Each candidate's last read offset (null: unreadable). */
    offsets: { host: string; port: number; offset: number | null }[];
  };

/** Interval between two reads of the successor's offset during a handoff. */
export const HANDOFF_POLL_MS = 2;

/** A non-negative integer INFO field, or null. */
function offsetField(info: Map<string, string>, key: string): number | null {
  const n = Number(info.get(key));
  return info.has(key) && Number.isSafeInteger(n) && n >= 0 ? n : null;
}

/**
 * How long one steering command (REPLICAOF, CONFIG SET, a guard's INFO) may take before it
 * counts as failed, unless told otherwise. It does not make the local redis count as down:
 * that is the failure detector's hang timeout (see `failure_detector.ts`).
 */
export const DEFAULT_COMMAND_TIMEOUT_MS = 500;
/**
 * How long one observation waits for the answer to its probe before it reports the redis busy
 * (with its last answer), so the hive's loop keeps turning while redis is slow.
 */
export const DEFAULT_PROBE_WAIT_MS = 100;
/** The name the hive's connection to its own redis carries (`CLIENT SETNAME`, `CLIENT LIST`). */
export const HIVE_CLIENT_NAME = "redis-hive";
/** How long a TCP connect plus handshake may take, unless told otherwise. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 1_000;
/** The first reconnect delay after a connection loss; doubles at every failed attempt... */
export const RECONNECT_INITIAL_DELAY_MS = 20;
/** ...up to this delay. */
export const RECONNECT_MAX_DELAY_MS = 1_000;
/** How long {@link RedisController.close} waits for each connection to end. */
export const CLOSE_TIMEOUT_MS = 1_000;

/** What {@link createRedisController} connects to and how. */
export interface RedisControllerOptions {
  /** How the hive reaches its own redis. */
  host: string;
  /** Its own redis's port (also the port peers replicate from). */
  port: number;
  /**
   * Its own redis's Unix socket: when set, the connection to its own redis goes there instead
   * of `host:port` (peers are still read over TCP). Default null.
   */
  socket?: string | null;
  /** AUTH for the local redis and the guard reads of peers, and `masterauth`; null for none. */
  password: string | null;
  /** This node's address as peers see it: set as the redis's `replica-announce-ip`. */
  announceIp: string;
  /** Per-command timeout; default {@link DEFAULT_COMMAND_TIMEOUT_MS}. */
  commandTimeoutMs?: number;
  /** Connect timeout; default {@link DEFAULT_CONNECT_TIMEOUT_MS}. */
  connectTimeoutMs?: number;
  /** First reconnect delay; default {@link RECONNECT_INITIAL_DELAY_MS}. */
  reconnectInitialDelayMs?: number;
  /** Largest reconnect delay; default {@link RECONNECT_MAX_DELAY_MS}. */
  reconnectMaxDelayMs?: number;
  /**
   * How long the local redis may leave a probe unanswered before it counts as dead (hung);
   * default {@link DEFAULT_REDIS_HANG_MS} (`--redis-hang-ms`).
   */
  hangMs?: number;
  /** How long one observation waits for its probe; default {@link DEFAULT_PROBE_WAIT_MS}. */
  probeWaitMs?: number;
  /** Told of every change of the failure detector's verdict and of every script kill. */
  onEvent?: (event: RedisControllerEvent) => void;
}

/** What the controller tells {@link RedisControllerOptions.onEvent}. */
export type RedisControllerEvent =
  | { kind: "health"; health: RedisHealth; previous: RedisHealth }
  | {
    kind: "script-kill";
    /** Each kill command and redis's answer (`OK`, or the error, e.g. `-UNKILLABLE`). */
    results: { command: string; answer: string }[];
  };

/**
 * The delay before reconnect attempt `attempt` (1 for the first): `initialMs` doubling at
 * every attempt, capped at `maxMs`.
 *
 * @example
 * ```ts
 * reconnectDelayMs(1, 20, 1000); // 20
 * reconnectDelayMs(4, 20, 1000); // 160
 * reconnectDelayMs(99, 20, 1000); // 1000
 * ```
 */
export function reconnectDelayMs(attempt: number, initialMs: number, maxMs: number): number {
  if (!Number.isInteger(attempt) || attempt < 1) {
    throw new RangeError(`reconnect attempt must be a positive integer, got ${attempt}`);
  }
  // 2 ** 30 is far past any cap; bounding the exponent keeps the number finite.
  return Math.min(maxMs, initialMs * 2 ** Math.min(attempt - 1, 30));
}

const positiveInt = (name: string, value: number) =>
  checkPositiveInteger("createRedisController", name, value);

function isReplyError(e: unknown): boolean {
  return e instanceof Error && e.name === "ReplyError";
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Connects to the local redis (in the background, reconnecting with bounded exponential
 * backoff) and returns its controller.
 *
 * Commands never queue while redis is down (no offline queue, no retries): they fail at once,
 * and a steering command unanswered after `commandTimeoutMs` fails too. The redis itself counts
 * as down only by the failure detector's verdict (see the module documentation).
 *
 * @throws {TypeError} on a bad option (empty host, port out of range...), {RangeError} on a
 *   non-positive timeout.
 * @example
 * ```ts
 * const redis = createRedisController({
 *   host: "127.0.0.1", port: 6379, password: null, announceIp: "127.0.0.11",
 *   commandTimeoutMs: 500, connectTimeoutMs: 1000,
 * });
 * ```
 */
export function createRedisController(opts: RedisControllerOptions): RedisController {
  const timing = checkControllerOptions(opts);
  const detector = new RedisFailureDetector({ hangMs: opts.hangMs ?? DEFAULT_REDIS_HANG_MS }); // validates hangMs
  const connect = (host: string, port: number, own: boolean, socket?: string): Redis =>
    connectRedis(opts.password, timing, { host, port, socket }, own);
  const client = connect(opts.host, opts.port, true, opts.socket ?? undefined);
  const connection = trackConnection(client, detector);
  const guard = new GuardConnection((host, port) => connect(host, port, false));
  const observer = new LocalObserver(client, detector, connection, timing, opts.onEvent);
  const observe = (): Promise<RedisObservation> => observer.observe();
  const session = enforceSession(client, observe, guard, connection, timing);

  let enforceChain: Promise<unknown> = Promise.resolve();
  const settings = { announceIp: opts.announceIp, password: opts.password, ownPort: opts.port };

  return {
    observe,
    enforce(target: RedisTarget): Promise<EnforceResult> {
      const run = async (): Promise<EnforceResult> => {
        if (connection.closed) return closedControllerResult();
        if (target.kind !== "follow") guard.drop();
        return await enforceRedisTarget(session, target, settings);
      };
      // One enforce at a time, in call order: each sees the state the previous one left.
      const result = enforceChain.then(run, run);
      enforceChain = result;
      return result;
    },
    onConnectionLost(cb: () => void): void {
      if (typeof cb !== "function") throw new TypeError("onConnectionLost: cb must be a function");
      connection.lostCallbacks.push(cb);
    },
    pauseAndSync(candidates, pauseMs, timeoutMs): Promise<HandoffSync> {
      if (connection.closed || client.status !== "ready") {
        return Promise.resolve(localRedisDown(candidates));
      }
      const peers = (cs: readonly { host: string; port: number }[]) =>
        cs.map((c) => connect(c.host, c.port, false));
      return pauseAndSync(client, peers, candidates, pauseMs, timeoutMs, timing.commandTimeoutMs);
    },
    readOffsets(candidates, timeoutMs): Promise<OffsetReading[]> {
      if (connection.closed || candidates.length === 0) {
        return Promise.resolve(candidates.map((c) => ({ ...c, offset: null })));
      }
      return readOffsets(
        candidates.map((c) => connect(c.host, c.port, false)),
        candidates,
        timeoutMs,
      );
    },
    async close(): Promise<void> {
      if (connection.closed) return;
      connection.closed = true;
      await enforceChain.catch(() => {});
      const guardClient = guard.take();
      const clients = [client, ...(guardClient === null ? [] : [guardClient])];
      await Promise.all(clients.map((c) => disconnect(c)));
    },
  };
}

/** What `pauseAndSync` answers when the local redis is down: no offset known. */
function localRedisDown(candidates: readonly { host: string; port: number }[]): HandoffSync {
  const offsets = candidates.map((c) => ({ ...c, offset: null }));
  return { ok: false, reason: "the local redis is down", masterOffset: null, offsets };
}

/** The controller's timeouts and reconnect delays, every default applied and checked. */
interface ControllerTiming {
  commandTimeoutMs: number;
  probeWaitMs: number;
  connectTimeoutMs: number;
  initialDelayMs: number;
  maxDelayMs: number;
}

/** Checks the options (a clear error for each bad one) and resolves the timing defaults. */
function checkControllerOptions(opts: RedisControllerOptions): ControllerTiming {
  if (typeof opts.host !== "string" || opts.host === "") {
    throw new TypeError("createRedisController: host must be a non-empty string");
  }
  if (!Number.isInteger(opts.port) || opts.port < 1 || opts.port > 65535) {
    throw new TypeError(`createRedisController: port must be 1..65535, got ${opts.port}`);
  }
  if (typeof opts.announceIp !== "string" || opts.announceIp === "") {
    throw new TypeError("createRedisController: announceIp must be a non-empty string");
  }
  if (opts.password !== null && (typeof opts.password !== "string" || opts.password === "")) {
    throw new TypeError("createRedisController: password must be a non-empty string or null");
  }
  if (opts.socket != null && (typeof opts.socket !== "string" || !opts.socket.startsWith("/"))) {
    throw new TypeError(
      `createRedisController: socket must be an absolute path, got ${opts.socket}`,
    );
  }
  const timing = {
    commandTimeoutMs: positiveInt(
      "commandTimeoutMs",
      opts.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS,
    ),
    probeWaitMs: positiveInt("probeWaitMs", opts.probeWaitMs ?? DEFAULT_PROBE_WAIT_MS),
    connectTimeoutMs: positiveInt(
      "connectTimeoutMs",
      opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    ),
    initialDelayMs: positiveInt(
      "reconnectInitialDelayMs",
      opts.reconnectInitialDelayMs ?? RECONNECT_INITIAL_DELAY_MS,
    ),
    maxDelayMs: positiveInt(
      "reconnectMaxDelayMs",
      opts.reconnectMaxDelayMs ?? RECONNECT_MAX_DELAY_MS,
    ),
  };
  if (timing.maxDelayMs < timing.initialDelayMs) {
    throw new TypeError("createRedisController: reconnectMaxDelayMs < reconnectInitialDelayMs");
  }
  return timing;
}

/**
 * An ioredis client with the controller's settings: no offline queue, no retried command.
 * `own`: the connection to the local redis. It never times commands out itself (a slow answer
 * is the failure detector's business; steering commands are bounded by {@link withTimeout}),
 * carries a name ({@link HIVE_CLIENT_NAME}), and reconnects in the background at once after a
 * loss, then with bounded backoff. Other connections (peers) time each command out and never
 * reconnect.
 */
function connectRedis(
  password: string | null,
  timing: ControllerTiming,
  at: { host: string; port: number; socket?: string | undefined },
  own: boolean,
): Redis {
  const client = new Redis({
    ...(at.socket === undefined ? { host: at.host, port: at.port } : { path: at.socket }),
    password: password ?? undefined,
    lazyConnect: false,
    protocol: 2,
    commandTimeout: own ? undefined : timing.commandTimeoutMs,
    connectTimeout: timing.connectTimeoutMs,
    ...(own ? { connectionName: HIVE_CLIENT_NAME } : {}),
    retryStrategy: own
      ? (attempt: number) =>
        attempt === 1 ? 0 : reconnectDelayMs(attempt - 1, timing.initialDelayMs, timing.maxDelayMs)
      : null,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    enableReadyCheck: false,
    autoResubscribe: false,
    autoResendUnfulfilledCommands: false,
    disableClientInfo: true,
  });
  // Errors surface through command results; without a listener ioredis prints them.
  client.on("error", () => {});
  return client;
}

/** The local connection's life: which connection is current, and who to tell when it drops. */
interface ConnectionState {
  closed: boolean;
  /** Bumped at every (re)connection: per-connection settings are applied once per value. */
  generation: number;
  /** The generation the per-connection settings were applied on (-1: none yet). */
  setupGeneration: number;
  lostCallbacks: (() => void)[];
}

/**
 * Follows `client`'s connections: a new generation when ready, the callbacks when it drops; tells
 * `detector` of each connection, failed connect and loss.
 */
function trackConnection(client: Redis, detector: RedisFailureDetector): ConnectionState {
  const state: ConnectionState = {
    closed: false,
    generation: 0,
    setupGeneration: -1,
    lostCallbacks: [],
  };
  let ready = false;
  client.on("ready", () => {
    ready = true;
    state.generation++;
    detector.connected(monotonicMs());
    // Never evicted under maxmemory-clients (redis 7); an older redis refuses: harmless.
    client.call("CLIENT", "NO-EVICT", "on").catch(() => {});
  });
  client.on("error", (e: unknown) => {
    const code = (e as { code?: unknown }).code;
    detector.connectFailed(typeof code === "string" ? code : undefined, monotonicMs());
  });
  client.on("close", () => {
    if (!ready) return;
    ready = false;
    if (state.closed) return;
    detector.connectionLost(monotonicMs());
    for (const cb of state.lostCallbacks) cb();
  });
  return state;
}

/**
 * The run_id guard's connection to the followed redis: kept while it lives (one round trip per
 * check), never reconnected in the background: a new one is opened when it has ended.
 */
class GuardConnection {
  #current: { key: string; client: Redis } | null = null;

  constructor(private readonly open: (host: string, port: number) => Redis) {}

  /** The connection to host:port (the kept one, or a new one). */
  client(host: string, port: number): Redis {
    const key = formatHostPort(host, port);
    const g = this.#current;
    if (g?.key !== key || g.client.status === "end" || g.client.status === "close") {
      this.drop();
      this.#current = { key, client: this.open(host, port) };
    }
    return this.#current!.client;
  }

  /** Closes the kept connection, if any. */
  drop(): void {
    this.#current?.client.disconnect();
    this.#current = null;
  }

  /** Forgets the kept connection and hands it over (to be closed by the caller). */
  take(): Redis | null {
    const c = this.#current?.client ?? null;
    this.#current = null;
    return c;
  }
}

/** What one probe of the local redis gave. */
type ProbeResult =
  | { kind: "answer"; obs: RedisObservation }
  /** No usable answer (yet): `-BUSY`, a master loading, the connection dropped. */
  | { kind: "unanswered" }
  /** An error reply other than `-BUSY` (e.g. `-NOAUTH`). */
  | { kind: "rejected" };

/**
 * Observes the local redis through the failure detector: one probe (INFO server, replication,
 * persistence) in flight at a time (a busy redis gets no pile), each observation waiting at most
 * `probeWaitMs` for it; the last fresh answer stands in while redis is busy. Never throws.
 */
class LocalObserver {
  #lastAnswer: RedisObservation | null = null;
  #probe: Promise<ProbeResult> | null = null;
  #health: RedisHealth;

  constructor(
    private readonly client: Redis,
    private readonly detector: RedisFailureDetector,
    private readonly connection: ConnectionState,
    private readonly timing: ControllerTiming,
    private readonly onEvent: (event: RedisControllerEvent) => void = () => {},
  ) {
    this.#health = detector.health(monotonicMs());
  }

  /** See {@link RedisController.observe}. */
  async observe(): Promise<RedisObservation> {
    const { client, detector, timing } = this;
    if (this.connection.closed) return REDIS_DOWN;
    if (client.status !== "ready") await settled(client, timing.probeWaitMs);
    if (client.status === "ready") {
      const result = await Promise.race([this.#startProbe(), sleep(timing.probeWaitMs)]);
      if (result !== undefined && result.kind === "rejected") return REDIS_DOWN;
    }
    const now = monotonicMs();
    if (detector.shouldKillScript(now)) this.#killScript();
    const h = detector.health(now);
    if (!sameHealth(h, this.#health)) {
      const previous = this.#health;
      this.#health = h;
      this.onEvent({ kind: "health", health: h, previous });
    } else this.#health = h;
    const last = this.#lastAnswer;
    if (h.state === "answering" && last !== null) return last;
    if (h.state === "busy" && last !== null) return { ...last, busy: true };
    return REDIS_DOWN;
  }

  #startProbe(): Promise<ProbeResult> {
    if (this.#probe !== null) return this.#probe;
    this.detector.probeSent(monotonicMs());
    this.#probe = this.#runProbe().finally(() => {
      this.#probe = null;
    });
    return this.#probe;
  }

  async #runProbe(): Promise<ProbeResult> {
    const { client, detector } = this;
    try {
      const [server, replication, persistence] = await Promise.all([
        client.info("server"),
        client.info("replication"),
        client.info("persistence"),
      ]);
      const obs = observationFromInfo(
        parseInfo(server),
        parseInfo(replication),
        parseInfo(persistence),
      );
      // A master loading (DEBUG RELOAD, a restart with a dump) is alive but cannot serve:
      // busy, while it is the same process.
      const last = this.#lastAnswer;
      if (obs.role === "master" && obs.loading && last !== null && last.runId === obs.runId) {
        detector.loading(monotonicMs());
        return { kind: "unanswered" };
      }
      detector.answered(monotonicMs());
      this.#lastAnswer = obs;
      return { kind: "answer", obs };
    } catch (e) {
      if (isReplyError(e) && /^BUSY\b/.test(message(e))) {
        detector.busyReply(monotonicMs());
        return { kind: "unanswered" };
      }
      // Another error reply (NOAUTH, a renamed INFO): it answers, but cannot be observed.
      if (isReplyError(e)) return { kind: "rejected" };
      return { kind: "unanswered" }; // the connection dropped: the detector knows
    }
  }

  #killScript(): void {
    this.detector.scriptKillSent(monotonicMs());
    const commands = [["SCRIPT", "KILL"], ["FUNCTION", "KILL"]];
    void Promise.all(commands.map(async ([name, ...rest]) => {
      const command = [name, ...rest].join(" ");
      try {
        const answer = await withTimeout(
          this.client.call(name!, ...rest),
          this.timing.commandTimeoutMs,
        );
        return { command, answer: String(answer) };
      } catch (e) {
        return { command, answer: `-${message(e)}` };
      }
    })).then((results) => this.onEvent({ kind: "script-kill", results }));
  }
}

/** The {@link EnforceSession} over the local `client` and the guard's connections. */
function enforceSession(
  client: Redis,
  observe: () => Promise<RedisObservation>,
  guard: GuardConnection,
  connection: ConnectionState,
  timing: ControllerTiming,
): EnforceSession {
  return {
    observe,
    async run(args: readonly string[]): Promise<CommandOutcome> {
      const [name, ...rest] = args;
      if (name === undefined) throw new Error("run: empty command");
      try {
        await withTimeout(client.call(name, ...rest), timing.commandTimeoutMs);
        return { ok: true };
      } catch (e) {
        return {
          ok: false,
          kind: isReplyError(e) ? "rejected" : "unavailable",
          message: message(e),
        };
      }
    },
    async readRunId(host: string, port: number): Promise<RunIdReading> {
      const peer = guard.client(host, port);
      if (!(await becameReady(peer, timing.connectTimeoutMs))) {
        return { ok: false, message: `not connected (${peer.status})` };
      }
      try {
        const runId = parseInfo(await peer.info("server")).get("run_id");
        return runId === undefined
          ? { ok: false, message: "INFO server has no run_id" }
          : { ok: true, runId };
      } catch (e) {
        return { ok: false, message: message(e) };
      }
    },
    needsConnectionSetup: () => connection.setupGeneration !== connection.generation,
    markConnectionSetup: () => {
      connection.setupGeneration = connection.generation;
    },
  };
}

/**
 * {@link RedisController.pauseAndSync} on the ready local `client`; `connect` opens one
 * connection per candidate (closed before returning); each command to the local redis is
 * bounded by `commandTimeoutMs` (its connection has no command timeout of its own).
 */
async function pauseAndSync(
  client: Redis,
  connect: (candidates: readonly { host: string; port: number }[]) => Redis[],
  candidates: readonly { host: string; port: number }[],
  pauseMs: number,
  timeoutMs: number,
  commandTimeoutMs: number,
): Promise<HandoffSync> {
  let masterOffset: number | null = null;
  const offsets = candidates.map((c) => ({ ...c, offset: null as number | null }));
  if (candidates.length === 0) {
    return { ok: false, reason: "no candidate", masterOffset, offsets };
  }
  const started = monotonicMs();
  const peers = connect(candidates);
  try {
    await withTimeout(client.call("CLIENT", "PAUSE", String(pauseMs), "WRITE"), commandTimeoutMs);
    masterOffset = offsetField(
      parseInfo(await withTimeout(client.info("replication"), commandTimeoutMs)),
      "master_repl_offset",
    );
    if (masterOffset === null) {
      return { ok: false, reason: "no master_repl_offset", masterOffset, offsets };
    }
    // Connections come up in the background: a candidate that does not answer (a pod that
    // just left) must not hold the others back.
    for (;;) {
      // Each candidate's processed offset, read from it directly (WAIT is blocked by the
      // pause); the first to reach the master's offset is the successor.
      await Promise.all(peers.map(async (p, i) => {
        if (p.status !== "ready") return;
        try {
          offsets[i]!.offset = offsetField(
            parseInfo(await p.info("replication")),
            "slave_repl_offset",
          );
        } catch {
          offsets[i]!.offset = null;
        }
      }));
      const done = offsets.find((o) => o.offset !== null && o.offset >= masterOffset!);
      if (done !== undefined) {
        return {
          ok: true,
          chosen: { host: done.host, port: done.port },
          masterOffset,
          replicaOffset: done.offset!,
          waitedMs: monotonicMs() - started,
        };
      }
      if (monotonicMs() - started >= timeoutMs) {
        return { ok: false, reason: "no candidate caught up", masterOffset, offsets };
      }
      await new Promise((r) => setTimeout(r, HANDOFF_POLL_MS));
    }
  } catch (e) {
    return { ok: false, reason: message(e), masterOffset, offsets };
  } finally {
    for (const p of peers) p.disconnect();
  }
}

/**
 * {@link RedisController.readOffsets} over `peers` (one new connection per candidate, in
 * order; closed before returning).
 */
async function readOffsets(
  peers: Redis[],
  candidates: readonly { host: string; port: number }[],
  timeoutMs: number,
): Promise<OffsetReading[]> {
  const readings: OffsetReading[] = candidates.map((c) => ({ ...c, offset: null }));
  try {
    await withTimeout(
      Promise.all(peers.map(async (p, i) => {
        try {
          if (!(await becameReady(p, timeoutMs))) return;
          const info = parseInfo(await p.info("replication"));
          readings[i]!.offset = offsetField(info, "slave_repl_offset") ??
            offsetField(info, "master_repl_offset");
        } catch {
          // unreadable: stays null
        }
      })),
      timeoutMs,
    ).catch(() => {});
    return readings.map((r) => ({ ...r }));
  } finally {
    for (const p of peers) p.disconnect();
  }
}

function sleep(ms: number): Promise<undefined> {
  return new Promise((r) => setTimeout(() => r(undefined), ms));
}

/** `promise`, or a rejection with "timed out after N ms" if it has not settled by then. */
function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Waits (at most `timeoutMs`) until a connection that is not ready settles: ready, or a
 * connect attempt failed. Returns at once when the client has ended.
 */
function settled(client: Redis, timeoutMs: number): Promise<void> {
  if (client.status === "ready" || client.status === "end") return Promise.resolve();
  return new Promise((resolve) => {
    const finish = () => {
      clearTimeout(timer);
      client.off("ready", finish);
      client.off("error", finish);
      client.off("end", finish);
      resolve();
    };
    const timer = setTimeout(finish, timeoutMs);
    client.on("ready", finish);
    client.on("error", finish);
    client.on("end", finish);
  });
}

/**
 * Resolves true once `client` is ready: at once when it is, after waiting (at most
 * `timeoutMs`) when a connect is in progress, and false at once when it is waiting to
 * reconnect or ended.
 */
function becameReady(client: Redis, timeoutMs: number): Promise<boolean> {
  if (client.status === "ready") return Promise.resolve(true);
  if (client.status !== "connecting" && client.status !== "connect") {
    return Promise.resolve(false);
  }
  return new Promise((resolve) => {
    const finish = (value: boolean) => {
      clearTimeout(timer);
      client.off("ready", onReady);
      client.off("close", onClose);
      resolve(value);
    };
    const onReady = () => finish(true);
    const onClose = () => finish(false);
    const timer = setTimeout(() => finish(false), timeoutMs);
    client.on("ready", onReady);
    client.on("close", onClose);
  });
}

/** Disconnects `client` for good and waits (bounded) until its socket has ended. */
function disconnect(client: Redis): Promise<void> {
  const live = client.status === "connecting" || client.status === "connect" ||
    client.status === "ready";
  if (!live) {
    client.disconnect();
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    const timer = setTimeout(done, CLOSE_TIMEOUT_MS);
    function done() {
      clearTimeout(timer);
      client.off("end", done);
      resolve();
    }
    client.on("end", done);
    client.disconnect();
  });
}
