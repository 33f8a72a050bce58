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

import { Redis } from "ioredis";
import { observationFromInfo, parseInfo } from "./redis_info.ts";
import { REDIS_DOWN, type RedisObservation, type RedisTarget } from "./redis_state.ts";
import {
  DEFAULT_REDIS_HANG_MS,
  RedisFailureDetector,
  type RedisHealth,
  sameHealth,
} from "./failure_detector.ts";
import {
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

function positiveInt(name: string, value: number): number {
  if (!Number.isInteger(value) || value <= 0) {
    throw new TypeError(`createRedisController: ${name} must be a positive integer, got ${value}`);
  }
  return value;
}

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
 * @throws {TypeError} on a bad option (empty host, port out of range, non-positive timeouts).
 * @example
 * ```ts
 * const redis = createRedisController({
 *   host: "127.0.0.1", port: 6379, password: null, announceIp: "127.0.0.11",
 *   commandTimeoutMs: 500, connectTimeoutMs: 1000,
 * });
 * ```
 */
export function createRedisController(opts: RedisControllerOptions): RedisController {
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
  const commandTimeoutMs = positiveInt(
    "commandTimeoutMs",
    opts.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS,
  );
  const connectTimeoutMs = positiveInt(
    "connectTimeoutMs",
    opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
  );
  const initialDelayMs = positiveInt(
    "reconnectInitialDelayMs",
    opts.reconnectInitialDelayMs ?? RECONNECT_INITIAL_DELAY_MS,
  );
  const maxDelayMs = positiveInt(
    "reconnectMaxDelayMs",
    opts.reconnectMaxDelayMs ?? RECONNECT_MAX_DELAY_MS,
  );
  if (maxDelayMs < initialDelayMs) {
    throw new TypeError("createRedisController: reconnectMaxDelayMs < reconnectInitialDelayMs");
  }

  if (opts.socket != null && (typeof opts.socket !== "string" || !opts.socket.startsWith("/"))) {
    throw new TypeError(
      `createRedisController: socket must be an absolute path, got ${opts.socket}`,
    );
  }

  const hangMs = opts.hangMs ?? DEFAULT_REDIS_HANG_MS;
  const detector = new RedisFailureDetector({ hangMs }); // validates hangMs
  const probeWaitMs = positiveInt("probeWaitMs", opts.probeWaitMs ?? DEFAULT_PROBE_WAIT_MS);
  const onEvent = opts.onEvent ?? (() => {});
  const nowMs = () => performance.now();

  // `own`: the connection to the local redis. It never times commands out itself (a slow
  // answer is the failure detector's business; steering commands are bounded by
  // withTimeout), carries a name, and reconnects at once after a loss, then with backoff.
  const connect = (host: string, port: number, own: boolean, socket?: string): Redis => {
    const client = new Redis({
      ...(socket === undefined ? { host, port } : { path: socket }),
      password: opts.password ?? undefined,
      lazyConnect: false,
      protocol: 2,
      commandTimeout: own ? undefined : commandTimeoutMs,
      connectTimeout: connectTimeoutMs,
      ...(own ? { connectionName: HIVE_CLIENT_NAME } : {}),
      retryStrategy: own
        ? (attempt: number) =>
          attempt === 1 ? 0 : reconnectDelayMs(attempt - 1, initialDelayMs, maxDelayMs)
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
  };

  const client = connect(opts.host, opts.port, true, opts.socket ?? undefined);
  let closed = false;
  let connectionGeneration = 0;
  let setupGeneration = -1;
  let ready = false;
  const lostCallbacks: (() => void)[] = [];
  client.on("ready", () => {
    ready = true;
    connectionGeneration++;
    detector.connected(nowMs());
    // Never evicted under maxmemory-clients (redis 7); an older redis refuses: harmless.
    client.call("CLIENT", "NO-EVICT", "on").catch(() => {});
  });
  client.on("error", (e: unknown) => {
    const code = (e as { code?: unknown }).code;
    detector.connectFailed(typeof code === "string" ? code : undefined, nowMs());
  });
  client.on("close", () => {
    if (!ready) return;
    ready = false;
    if (closed) return;
    detector.connectionLost(nowMs());
    for (const cb of lostCallbacks) cb();
  });

  // The guard's connection to the followed redis: kept while it lives (one round trip per
  // check), never reconnected in the background: a new one is opened when it has ended.
  let guard: { key: string; client: Redis } | null = null;
  const dropGuard = () => {
    guard?.client.disconnect();
    guard = null;
  };
  const guardClient = (host: string, port: number): Redis => {
    const key = `${host}:${port}`;
    if (guard?.key !== key || guard.client.status === "end" || guard.client.status === "close") {
      dropGuard();
      guard = { key, client: connect(host, port, false) };
    }
    return guard.client;
  };

  // The last fresh answer, and the probe in flight (one at a time: a busy redis gets no pile).
  let lastAnswer: RedisObservation | null = null;
  let probe: Promise<ProbeResult> | null = null;
  let health: RedisHealth = detector.health(nowMs());

  const startProbe = (): Promise<ProbeResult> => {
    if (probe !== null) return probe;
    detector.probeSent(nowMs());
    probe = (async (): Promise<ProbeResult> => {
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
        if (
          obs.role === "master" && obs.loading && lastAnswer !== null &&
          lastAnswer.runId === obs.runId
        ) {
          detector.loading(nowMs());
          return { kind: "unanswered" };
        }
        detector.answered(nowMs());
        lastAnswer = obs;
        return { kind: "answer", obs };
      } catch (e) {
        if (isReplyError(e) && /^BUSY\b/.test(message(e))) {
          detector.busyReply(nowMs());
          return { kind: "unanswered" };
        }
        // Another error reply (NOAUTH, a renamed INFO): it answers, but cannot be observed.
        if (isReplyError(e)) return { kind: "rejected" };
        return { kind: "unanswered" }; // the connection dropped: the detector knows
      } finally {
        probe = null;
      }
    })();
    return probe;
  };

  const killScript = () => {
    detector.scriptKillSent(nowMs());
    const commands = [["SCRIPT", "KILL"], ["FUNCTION", "KILL"]];
    void Promise.all(commands.map(async ([name, ...rest]) => {
      const command = [name, ...rest].join(" ");
      try {
        const answer = await withTimeout(client.call(name!, ...rest), commandTimeoutMs);
        return { command, answer: String(answer) };
      } catch (e) {
        return { command, answer: `-${message(e)}` };
      }
    })).then((results) => onEvent({ kind: "script-kill", results }));
  };

  const observe = async (): Promise<RedisObservation> => {
    if (closed) return REDIS_DOWN;
    if (client.status !== "ready") await settled(client, probeWaitMs);
    if (client.status === "ready") {
      const result = await Promise.race([startProbe(), sleep(probeWaitMs)]);
      if (result !== undefined && result.kind === "rejected") return REDIS_DOWN;
    }
    const now = nowMs();
    if (detector.shouldKillScript(now)) killScript();
    const h = detector.health(now);
    if (!sameHealth(h, health)) {
      const previous = health;
      health = h;
      onEvent({ kind: "health", health: h, previous });
    } else health = h;
    if (h.state === "answering" && lastAnswer !== null) return lastAnswer;
    if (h.state === "busy" && lastAnswer !== null) return { ...lastAnswer, busy: true };
    return REDIS_DOWN;
  };

  const session: EnforceSession = {
    observe,
    async run(args: readonly string[]): Promise<CommandOutcome> {
      const [name, ...rest] = args;
      if (name === undefined) throw new Error("run: empty command");
      try {
        await withTimeout(client.call(name, ...rest), commandTimeoutMs);
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
      const peer = guardClient(host, port);
      if (!(await becameReady(peer, connectTimeoutMs))) {
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
    needsConnectionSetup: () => setupGeneration !== connectionGeneration,
    markConnectionSetup: () => {
      setupGeneration = connectionGeneration;
    },
  };

  let enforceChain: Promise<unknown> = Promise.resolve();
  const settings = { announceIp: opts.announceIp, password: opts.password, ownPort: opts.port };

  return {
    observe,
    enforce(target: RedisTarget): Promise<EnforceResult> {
      const run = async (): Promise<EnforceResult> => {
        if (closed) {
          return {
            ok: false,
            reason: "redis-down",
            detail: "the controller is closed",
            commands: [],
            warnings: [],
          };
        }
        if (target.kind !== "follow") dropGuard();
        return await enforceRedisTarget(session, target, settings);
      };
      // One enforce at a time, in call order: each sees the state the previous one left.
      const result = enforceChain.then(run, run);
      enforceChain = result;
      return result;
    },
    onConnectionLost(cb: () => void): void {
      if (typeof cb !== "function") throw new TypeError("onConnectionLost: cb must be a function");
      lostCallbacks.push(cb);
    },
    async pauseAndSync(
      candidates: readonly { host: string; port: number }[],
      pauseMs: number,
      timeoutMs: number,
    ): Promise<HandoffSync> {
      let masterOffset: number | null = null;
      const offsets = candidates.map((c) => ({ ...c, offset: null as number | null }));
      if (closed || client.status !== "ready") {
        return { ok: false, reason: "the local redis is down", masterOffset, offsets };
      }
      if (candidates.length === 0) {
        return { ok: false, reason: "no candidate", masterOffset, offsets };
      }
      const started = Date.now();
      const peers = candidates.map((c) => connect(c.host, c.port, false));
      try {
        await withTimeout(
          client.call("CLIENT", "PAUSE", String(pauseMs), "WRITE"),
          commandTimeoutMs,
        );
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
              waitedMs: Date.now() - started,
            };
          }
          if (Date.now() - started >= timeoutMs) {
            return { ok: false, reason: "no candidate caught up", masterOffset, offsets };
          }
          await new Promise((r) => setTimeout(r, HANDOFF_POLL_MS));
        }
      } catch (e) {
        return { ok: false, reason: message(e), masterOffset, offsets };
      } finally {
        for (const p of peers) p.disconnect();
      }
    },
    async readOffsets(
      candidates: readonly { host: string; port: number }[],
      timeoutMs: number,
    ): Promise<OffsetReading[]> {
      const readings: OffsetReading[] = candidates.map((c) => ({ ...c, offset: null }));
      if (closed || candidates.length === 0) return readings;
      const peers = candidates.map((c) => connect(c.host, c.port, false));
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
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      await enforceChain.catch(() => {});
      const clients = [client, ...(guard === null ? [] : [guard.client])];
      guard = null;
      await Promise.all(clients.map((c) => disconnect(c)));
    },
  };
}

/** What one probe of the local redis gave. */
type ProbeResult =
  | { kind: "answer"; obs: RedisObservation }
  /** No usable answer (yet): `-BUSY`, a master loading, the connection dropped. */
  | { kind: "unanswered" }
  /** An error reply other than `-BUSY` (e.g. `-NOAUTH`). */
  | { kind: "rejected" };

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
