/**
 * A process the harness runs inside a network namespace (`ip netns exec NS program ...`), its
 * standard output and error appended to a log file. `sh -c 'exec ...'` and `ip netns exec`
 * both exec, so the process id is the program's own: signals reach it directly.
 *
 * Every live process is listed in {@link liveProcesses}, so an emergency cleanup (Ctrl-C, an
 * exception, process exit) can SIGKILL whatever is left.
 *
 * @example
 * ```ts
 * import { NamespacedProcess } from "./process.ts";
 * const p = NamespacedProcess.spawn({
 *   namespace: "rh-p1",
 *   program: "redis-server",
 *   args: ["--port", "6379"],
 *   logPath: "/tmp/rh-chaos-x/redis.log",
 * });
 * await p.stop("SIGTERM", 5_000);
 * ```
 */

import { processAlive } from "./command.ts";

/** Default bound of the wait for a signalled process to exit before SIGKILL. */
export const DEFAULT_STOP_TIMEOUT_MS = 10_000;
/** Most processes alive at once (a guard against a runaway scenario). */
export const MAX_LIVE_PROCESSES = 64;

/** Every process started and not yet reaped. */
export const liveProcesses: Set<NamespacedProcess> = new Set();

/** Options of {@link NamespacedProcess.spawn}. */
export interface SpawnOptions {
  /** The network namespace to run in (null: the harness's own namespace). */
  namespace: string | null;
  program: string;
  args: readonly string[];
  /** File the output is appended to. */
  logPath: string;
  env?: Record<string, string>;
  /** Working directory (default: the harness's). */
  cwd?: string;
}

/**
 * One running (or exited) process.
 *
 * @example
 * ```ts
 * const p = NamespacedProcess.spawn({ namespace: "rh-p1", program: "sleep", args: ["9"], logPath: "/tmp/x.log" });
 * await p.kill();
 * ```
 */
export class NamespacedProcess {
  #status: Deno.CommandStatus | null = null;
  readonly exited: Promise<Deno.CommandStatus>;

  private constructor(readonly child: Deno.ChildProcess, readonly options: SpawnOptions) {
    this.exited = child.status.then((s) => {
      this.#status = s;
      liveProcesses.delete(this);
      return s;
    });
  }

  /** Starts the process. */
  static spawn(options: SpawnOptions): NamespacedProcess {
    if (liveProcesses.size >= MAX_LIVE_PROCESSES) {
      throw new Error(`more than ${MAX_LIVE_PROCESSES} live processes: refusing to start more`);
    }
    const inner = options.namespace === null
      ? [options.program, ...options.args]
      : ["ip", "netns", "exec", options.namespace, options.program, ...options.args];
    const child = new Deno.Command("sh", {
      args: ["-c", 'log="$1"; shift; exec "$@" >>"$log" 2>&1', "sh", options.logPath, ...inner],
      stdin: "null",
      stdout: "null",
      stderr: "null",
      env: options.env,
      cwd: options.cwd,
    }).spawn();
    const p = new NamespacedProcess(child, options);
    liveProcesses.add(p);
    return p;
  }

  /** The process id. */
  get pid(): number {
    return this.child.pid;
  }

  /** Its exit status, or null while it runs. */
  get status(): Deno.CommandStatus | null {
    return this.#status;
  }

  /** True until it exited. */
  get running(): boolean {
    return this.#status === null;
  }

  /** Sends `signal` if it still runs. */
  signal(signal: Deno.Signal): void {
    if (this.#status !== null) return;
    try {
      this.child.kill(signal);
    } catch { /* exited meanwhile */ }
  }

  /**
   * Sends `signal` and waits (at most `timeoutMs`) for the exit, then SIGKILLs. Resolves with
   * true when it exited by itself within the bound.
   */
  async stop(signal: Deno.Signal, timeoutMs = DEFAULT_STOP_TIMEOUT_MS): Promise<boolean> {
    this.signal(signal);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const inTime = await Promise.race([
      this.exited.then(() => true),
      new Promise<false>((r) => timer = setTimeout(() => r(false), timeoutMs)),
    ]);
    clearTimeout(timer);
    if (!inTime) {
      this.signal("SIGKILL");
      await this.exited;
    }
    return inTime;
  }

  /** SIGKILL and wait for the exit. */
  async kill(): Promise<void> {
    this.signal("SIGKILL");
    await this.exited;
  }
}

/**
 * SIGKILLs every live process without waiting (exit-time cleanup).
 *
 * @example
 * ```ts
 * import { killAllNow } from "./process.ts";
 * globalThis.addEventListener("unload", () => killAllNow());
 * ```
 */
export function killAllNow(): void {
  for (const p of liveProcesses) {
    try {
      if (processAlive(p.pid)) Deno.kill(p.pid, "SIGKILL");
    } catch { /* gone */ }
  }
}
