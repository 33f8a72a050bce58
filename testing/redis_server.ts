/**
 * Real `redis-server` processes for tests, on loopback addresses, with no persistence, each in
 * its own temporary directory, always cleaned up.
 *
 * Every process runs with `--bind host --port port --protected-mode no --save "" --appendonly no
 * --bind-source-addr host --replica-announce-ip host --repl-diskless-sync-delay 0`, plus
 * `--replicaof 127.0.0.1 1` ({@link PARKED_MASTER}) when started parked.
 *
 * @example
 * ```ts
 * import { withRedis } from "./redis_server.ts";
 * await withRedis([{ host: "127.0.2.31", port: 16379 }], async ([redis]) => {
 *   await redis!.command("SET", "k", "v");
 *   await redis!.restart(); // a new, empty process on the same address
 * });
 * ```
 */

import { sleep } from "./wait.ts";
import { PARKED_MASTER } from "../lib/redis/redis_state.ts";
import { parseInfo } from "../lib/redis/redis_info.ts";
import { respCommand, type RespValue } from "./resp_client.ts";

/** How long {@link startRedis} waits for a new process to answer. */
export const REDIS_START_TIMEOUT_MS = 10_000;
/** How often {@link startRedis} polls a starting process (INFO server). */
export const REDIS_START_POLL_MS = 20;
/** How long {@link RedisProcess.kill} waits for a killed process to exit. */
export const REDIS_EXIT_TIMEOUT_MS = 5_000;

/** What {@link startRedis} starts. */
export interface StartRedisOptions {
  /** The loopback address to bind (also the replication source and announce address). */
  host: string;
  /** The TCP port. */
  port: number;
  /** Start as a replica of {@link PARKED_MASTER}: keeps data, refuses to be synced from. */
  parked?: boolean;
  /** Sets `requirepass` (and `masterauth`, unless `masterauth` is false). */
  password?: string;
  /** With a password: also set it as `masterauth` (default true). */
  masterauth?: boolean;
  /** More `redis-server` arguments, appended last. */
  extraArgs?: string[];
}

/** One real redis-server process (restartable on the same address). */
export class RedisProcess implements AsyncDisposable {
  readonly host: string;
  readonly port: number;
  readonly password: string | null;
  readonly dir: string;
  #opts: StartRedisOptions;
  #child: Deno.ChildProcess | null = null;
  #status: Promise<Deno.CommandStatus> | null = null;
  #exited = true;

  /** Use {@link startRedis}. */
  constructor(opts: StartRedisOptions, dir: string) {
    this.host = opts.host;
    this.port = opts.port;
    this.password = opts.password ?? null;
    this.dir = dir;
    this.#opts = opts;
  }

  /** The current process id. */
  get pid(): number {
    if (this.#child === null) throw new Error(`redis ${this.address} has no process`);
    return this.#child.pid;
  }

  /** `host:port`. */
  get address(): string {
    return `${this.host}:${this.port}`;
  }

  /** True while the current process has not exited. */
  get running(): boolean {
    return !this.#exited;
  }

  /** The arguments the process is started with. */
  args(parked: boolean): string[] {
    const args = [
      "--bind",
      this.host,
      "--port",
      String(this.port),
      "--protected-mode",
      "no",
      "--save",
      "",
      "--appendonly",
      "no",
      "--bind-source-addr",
      this.host,
      "--replica-announce-ip",
      this.host,
      "--repl-diskless-sync-delay",
      "0",
      "--dir",
      this.dir,
      "--logfile",
      `${this.dir}/redis.log`,
    ]; // deno-fmt-ignore
    if (parked) args.push("--replicaof", PARKED_MASTER.host, String(PARKED_MASTER.port));
    if (this.password !== null) {
      args.push("--requirepass", this.password, "--masterauth", this.password);
    }
    args.push(...(this.#opts.extraArgs ?? []));
    return args;
  }

  /** Spawns the process and waits until it answers (INFO shows its own process id). */
  async spawn(parked: boolean): Promise<void> {
    if (this.running) throw new Error(`redis ${this.address} is already running`);
    const child = new Deno.Command("redis-server", {
      args: this.args(parked),
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    this.#child = child;
    this.#exited = false;
    this.#status = child.status.then((s) => {
      if (this.#child === child) this.#exited = true;
      return s;
    });
    const deadline = Date.now() + REDIS_START_TIMEOUT_MS;
    for (;;) {
      if (this.#exited) {
        throw new Error(`redis ${this.address} exited at start:\n${await this.readLog()}`);
      }
      try {
        // Answered by this process, not by another one holding the address.
        if ((await this.info("server")).get("process_id") === String(child.pid)) return;
      } catch { /* not up yet */ }
      if (Date.now() > deadline) {
        await this.kill("SIGKILL");
        throw new Error(
          `redis ${this.address} did not answer in ${REDIS_START_TIMEOUT_MS} ms`,
        );
      }
      await sleep(REDIS_START_POLL_MS);
    }
  }

  /** Runs one command (fresh connection, AUTH when a password is set); throws on an error reply. */
  command(...args: string[]): Promise<RespValue> {
    return respCommand(this.host, this.port, args, { password: this.password, timeoutMs: 5_000 });
  }

  /** `INFO section`, parsed. */
  async info(section: string): Promise<Map<string, string>> {
    return parseInfo(String(await this.command("INFO", section)));
  }

  /**
   * Sends a signal to the current process. For SIGKILL, SIGTERM and SIGINT, waits until the
   * process has exited (SIGSTOP and SIGCONT return at once).
   */
  async kill(signal: Deno.Signal): Promise<void> {
    if (this.#child === null || this.#exited) return;
    this.#child.kill(signal);
    if (signal === "SIGKILL" || signal === "SIGTERM" || signal === "SIGINT") {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`redis ${this.address} did not exit after ${signal}`)),
          REDIS_EXIT_TIMEOUT_MS,
        );
      });
      try {
        await Promise.race([this.#status, timeout]);
      } finally {
        clearTimeout(timer);
      }
    }
  }

  /**
   * Kills the current process (SIGKILL) if running, and starts a new one on the same address:
   * empty, with a new run_id. Started parked when `parked` says so, else as first started.
   */
  async restart(opts: { parked?: boolean } = {}): Promise<void> {
    await this.kill("SIGKILL");
    await this.spawn(opts.parked ?? this.#opts.parked ?? false);
  }

  /** Kills the process (SIGKILL: nothing to persist) and removes its directory. Idempotent. */
  async stop(): Promise<void> {
    try {
      await this.kill("SIGKILL");
    } finally {
      await Deno.remove(this.dir, { recursive: true }).catch(() => {});
    }
  }

  /** The redis log file's content (empty when absent). */
  async readLog(): Promise<string> {
    return await Deno.readTextFile(`${this.dir}/redis.log`).catch(() => "");
  }

  /** Same as {@link stop}, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/**
 * Starts a redis-server and waits until it answers. Stop it with `stop()` in a `finally`,
 * or use {@link withRedis}, or `await using`.
 *
 * @example
 * ```ts
 * await using redis = await startRedis({ host: "127.0.2.31", port: 16379, parked: true });
 * ```
 */
export async function startRedis(opts: StartRedisOptions): Promise<RedisProcess> {
  if (!/^127\.\d+\.\d+\.\d+$/.test(opts.host) && opts.host !== "::1") {
    throw new TypeError(`startRedis: host must be a loopback address, got ${opts.host}`);
  }
  if (!Number.isInteger(opts.port) || opts.port < 1 || opts.port > 65535) {
    throw new TypeError(`startRedis: bad port ${opts.port}`);
  }
  const dir = await Deno.makeTempDir({ prefix: "redis-hive-redis-" });
  const redis = new RedisProcess(opts, dir);
  try {
    await redis.spawn(opts.parked ?? false);
  } catch (e) {
    await redis.stop();
    throw e;
  }
  return redis;
}

/**
 * Starts every redis in `optsList`, runs `fn` with them, and stops them all afterwards, whether
 * `fn` succeeded or not (also when a later start failed).
 *
 * @example
 * ```ts
 * await withRedis([{ host: "127.0.2.31", port: 16379 }, { host: "127.0.2.32", port: 16379 }],
 *   async ([a, b]) => { await b!.command("REPLICAOF", a!.host, String(a!.port)); });
 * ```
 */
export async function withRedis<T>(
  optsList: StartRedisOptions[],
  fn: (redises: RedisProcess[]) => Promise<T>,
): Promise<T> {
  const started: RedisProcess[] = [];
  let outcome: { ok: true; value: T } | { ok: false; error: unknown };
  try {
    for (const opts of optsList) started.push(await startRedis(opts));
    outcome = { ok: true, value: await fn(started) };
  } catch (error) {
    outcome = { ok: false, error };
  }
  const stops = await Promise.allSettled(started.map((r) => r.stop()));
  if (!outcome.ok) throw outcome.error;
  const failedStop = stops.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failedStop !== undefined) throw failedStop.reason;
  return outcome.value;
}
