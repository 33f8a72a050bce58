/**
 * Carries the fence (`lib/election/fence.ts`) out on the local redis, on a connection of its own
 * (so an observation stuck on a slow redis never delays it).
 *
 * - **Fenced** (a leader that does not hear a majority): `CLIENT PAUSE <FENCE_PAUSE_MS> WRITE`
 *   at once: writes wait, reads go on. If the fence still holds after {@link FENCE_HOLD_MS}, it
 *   **refuses**: `CONFIG SET min-replicas-to-write` to an impossible count, then
 *   `CLIENT UNPAUSE`: the held writes and every later one get `-NOREPLICAS` at once (redis
 *   re-runs a paused command through every check when it resumes). So a client waits at most
 *   {@link FENCE_HOLD_MS}, then gets a clear error, never an acknowledgement the merge discards;
 *   and a short false fence (a few lost datagrams) only delays writes by a few ms.
 * - **Open** (an unfenced leader): `CONFIG SET min-replicas-to-write <majority - 1>
 *   min-replicas-max-lag <FENCE_BACKSTOP_MAX_LAG_S>`, then `CLIENT UNPAUSE`. That count is the
 *   **backstop**: redis itself refuses writes once fewer replicas than that have acknowledged
 *   within the lag, even if this hive process is stalled or dead. `0` when the fence is not
 *   armed (2 nodes, `--fence off`).
 * - **Idle** (not leading): nothing; a replica refuses writes anyway. A leader is always fenced
 *   before its redis is made a master (the runtime awaits {@link FenceActuator.settled}).
 *
 * Why these and not a proxy-only fence: the proxy is one path to redis among several (clients
 * connected before, the hive stalled), and redis checks every write itself. Why not only
 * `min-replicas-to-write`: replicas acknowledge once a second, so it cannot fence within the
 * 150 ms lease, and its lag is counted in whole seconds. Verified on redis 7.0: a write held
 * by the pause gets `-READONLY` if the redis is made a replica meanwhile, `-NOREPLICAS` when
 * the refusal starts, and is acknowledged if the fence lifts in time (tests/hive/fence_actuator_test.ts).
 *
 * @example
 * ```ts
 * import { createFenceCommands, FenceActuator } from "./fence_actuator.ts";
 * const fence = new FenceActuator(createFenceCommands({ host: "127.0.0.1", port: 6379, password: null }));
 * fence.want({ kind: "fenced" });
 * await fence.settled();
 * fence.want({ kind: "open", backstopReplicas: 1 });
 * await fence.close();
 * ```
 */

import { Redis } from "ioredis";

/** How long a fenced leader's writes wait (paused) before they are refused with `-NOREPLICAS`. */
export const FENCE_HOLD_MS = 500;
/**
 * The pause the fence sets: long enough that a hive stalled right after fencing does not let
 * writes through before the backstop; the hive lifts it or turns it into a refusal far sooner.
 */
export const FENCE_PAUSE_MS = 5000;
/** `min-replicas-to-write` while refusing: more replicas than any hive has. */
export const FENCE_REFUSE_MIN_REPLICAS = 1_000_000;
/**
 * The backstop's `min-replicas-max-lag`, in seconds. Replicas acknowledge once a second and
 * redis counts the lag in whole seconds, so 1 would refuse writes now and then on a healthy
 * but busy machine; 2 refuses within 2 to 3 s of the last acknowledgement.
 */
export const FENCE_BACKSTOP_MAX_LAG_S = 2;
/** Command timeout of the fence's own connection. */
export const FENCE_COMMAND_TIMEOUT_MS = 1000;

/** What the runtime wants of the local redis. */
export type FenceWanted =
  | { kind: "idle" }
  | { kind: "fenced" }
  /**
   * Refuse writes without pausing: for a redis that stops leading and becomes a replica (a
   * write pause would also pause its replication stream: redis 7.0 pauses a replica's master
   * link under `CLIENT PAUSE WRITE`).
   */
  | { kind: "refuse" }
  | { kind: "open"; backstopReplicas: number };

/** The commands the actuator needs; {@link createFenceCommands} sends them to a real redis. */
export interface FenceCommands {
  /** `CLIENT PAUSE <ms> WRITE`. */
  pause(ms: number): Promise<void>;
  /** `CONFIG SET min-replicas-to-write <n> min-replicas-max-lag <lag>`, then `CLIENT UNPAUSE`. */
  minReplicasThenUnpause(replicas: number, maxLagS: number): Promise<void>;
  close(): Promise<void>;
}

/** What the actuator has done to redis last. */
export type FenceApplied = "unknown" | "idle" | "held" | "refusing" | "open";

/** Counters for `/metrics`. */
export interface FenceActuatorStats {
  /** Fences carried out (writes held). */
  holds: number;
  /** Fences that lasted past the hold and turned into refusals. */
  refusals: number;
  /** Lifts (writes open again). */
  lifts: number;
  /** Commands that failed (retried at the next {@link FenceActuator.retry}). */
  failures: number;
}

/** Applies the wanted fence state to redis, one step at a time, in order. */
export class FenceActuator {
  readonly stats: FenceActuatorStats = { holds: 0, refusals: 0, lifts: 0, failures: 0 };
  #wanted: FenceWanted = { kind: "idle" };
  #applied: FenceApplied = "unknown";
  #appliedBackstop: number | null = null;
  #queue: Promise<void> = Promise.resolve();
  #holdTimer: ReturnType<typeof setTimeout> | null = null;
  #suspended = false;
  #failed = false;
  #lastError: string | null = null;

  constructor(
    private readonly commands: FenceCommands,
    private readonly holdMs: number = FENCE_HOLD_MS,
    private readonly onError: (message: string) => void = () => {},
  ) {
    if (!(holdMs > 0 && holdMs < FENCE_PAUSE_MS)) {
      throw new RangeError(
        `FenceActuator: holdMs must be in (0, ${FENCE_PAUSE_MS}), got ${holdMs}`,
      );
    }
  }

  /** What was applied last. */
  get applied(): FenceApplied {
    return this.#applied;
  }

  /** The last command error, or null once a command succeeded. */
  get lastError(): string | null {
    return this.#lastError;
  }

  /** Sets what redis should be; applied at once, in order with earlier wants. */
  want(w: FenceWanted): void {
    const same = w.kind === this.#wanted.kind &&
      (w.kind !== "open" || this.#wanted.kind !== "open" ||
        w.backstopReplicas === this.#wanted.backstopReplicas);
    this.#wanted = w;
    if (!same || this.#failed) this.#enqueue();
  }

  /** Re-applies after a failed command (call it every tick). */
  retry(): void {
    if (this.#failed) this.#enqueue();
  }

  /** Resolves once every wanted state so far has been applied (or failed). */
  settled(): Promise<void> {
    return this.#queue;
  }

  /** Stops sending anything (a graceful handoff pauses writes by itself). */
  suspend(): void {
    this.#suspended = true;
    this.#clearHold();
  }

  /** Stops and closes the connection. */
  async close(): Promise<void> {
    this.suspend();
    await this.#queue;
    await this.commands.close();
  }

  #enqueue(): void {
    this.#queue = this.#queue.then(() => this.#step()).catch(() => {});
  }

  #clearHold(): void {
    if (this.#holdTimer !== null) clearTimeout(this.#holdTimer);
    this.#holdTimer = null;
  }

  async #step(): Promise<void> {
    if (this.#suspended) return;
    const w = this.#wanted;
    try {
      if (w.kind === "idle") {
        this.#clearHold();
        this.#applied = this.#applied === "unknown" ? "unknown" : "idle";
      } else if (w.kind === "refuse") {
        this.#clearHold();
        if (this.#applied !== "refusing") {
          await this.commands.minReplicasThenUnpause(
            FENCE_REFUSE_MIN_REPLICAS,
            FENCE_BACKSTOP_MAX_LAG_S,
          );
          this.#applied = "refusing";
          this.#appliedBackstop = null;
        }
      } else if (w.kind === "fenced") {
        if (this.#applied !== "held" && this.#applied !== "refusing") {
          await this.commands.pause(FENCE_PAUSE_MS);
          this.#applied = "held";
          this.stats.holds++;
          this.#clearHold();
          this.#holdTimer = setTimeout(() => {
            this.#holdTimer = null;
            this.#queue = this.#queue.then(() => this.#refuse()).catch(() => {});
          }, this.holdMs);
        }
      } else if (this.#applied !== "open" || this.#appliedBackstop !== w.backstopReplicas) {
        this.#clearHold();
        const wasFenced = this.#applied === "held" || this.#applied === "refusing";
        await this.commands.minReplicasThenUnpause(w.backstopReplicas, FENCE_BACKSTOP_MAX_LAG_S);
        this.#applied = "open";
        this.#appliedBackstop = w.backstopReplicas;
        if (wasFenced) this.stats.lifts++;
      }
      this.#failed = false;
      this.#lastError = null;
    } catch (e) {
      this.#fail(e);
    }
  }

  async #refuse(): Promise<void> {
    if (this.#suspended || this.#wanted.kind !== "fenced" || this.#applied !== "held") return;
    try {
      await this.commands.minReplicasThenUnpause(
        FENCE_REFUSE_MIN_REPLICAS,
        FENCE_BACKSTOP_MAX_LAG_S,
      );
      this.#applied = "refusing";
      this.#appliedBackstop = null;
      this.stats.refusals++;
    } catch (e) {
      this.#fail(e); // still paused (for FENCE_PAUSE_MS): retried at the next tick
      this.#applied = "unknown";
    }
  }

  #fail(e: unknown): void {
    this.stats.failures++;
    this.#failed = true;
    const message = e instanceof Error ? e.message : String(e);
    if (message !== this.#lastError) this.onError(message); // once per kind, not every retry
    this.#lastError = message;
  }
}

/** How the fence reaches the local redis. */
export interface FenceRedisOptions {
  host: string;
  port: number;
  /** A Unix socket path instead of host and port. */
  socket?: string | null;
  password: string | null;
}

/**
 * The fence's commands on a real redis, over a connection of their own (named
 * `redis-hive-fence`, exempt from eviction), reconnecting by itself.
 */
export function createFenceCommands(opts: FenceRedisOptions): FenceCommands {
  const client = new Redis({
    ...(opts.socket ? { path: opts.socket } : { host: opts.host, port: opts.port }),
    ...(opts.password === null ? {} : { password: opts.password }),
    connectionName: "redis-hive-fence",
    lazyConnect: false,
    enableOfflineQueue: false,
    commandTimeout: FENCE_COMMAND_TIMEOUT_MS,
    connectTimeout: FENCE_COMMAND_TIMEOUT_MS,
    maxRetriesPerRequest: 0,
    retryStrategy: () => 100,
  });
  client.on("error", () => {}); // reported through the failing commands
  client.on("ready", () => void client.call("CLIENT", "NO-EVICT", "on").catch(() => {}));
  /** Waits (bounded) for the connection; commands are never queued while it is down. */
  const ready = async (): Promise<void> => {
    if (client.status === "ready") return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let onReady = () => {};
    try {
      await new Promise<void>((resolve, reject) => {
        onReady = resolve;
        client.once("ready", onReady);
        timer = setTimeout(
          () => reject(new Error(`fence: redis not connected (${client.status})`)),
          FENCE_COMMAND_TIMEOUT_MS,
        );
      });
    } finally {
      clearTimeout(timer);
      client.off("ready", onReady);
    }
  };
  return {
    async pause(ms) {
      await ready();
      await client.call("CLIENT", "PAUSE", String(ms), "WRITE");
    },
    async minReplicasThenUnpause(replicas, maxLagS) {
      await ready();
      await client.call(
        "CONFIG",
        "SET",
        "min-replicas-to-write",
        String(replicas),
        "min-replicas-max-lag",
        String(maxLagS),
      );
      await client.call("CLIENT", "UNPAUSE");
    },
    async close() {
      client.disconnect();
      await Promise.resolve();
    },
  };
}
