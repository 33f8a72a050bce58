/**
 * One harness session: it owns everything the harness creates and removes it all at the end,
 * also after a failure, Ctrl-C (SIGINT), SIGTERM or SIGHUP, or an exit:
 *
 * - a lock file ({@link LOCK_PATH}), so two runs never tear down each other's namespaces;
 * - on start, the leftovers of a crashed earlier run (`rh-*` namespaces and the processes in
 *   them, `rh-chaos-*` temp dirs whose run is dead);
 * - a temp dir for logs, hosts file and pods' scratch space;
 * - every process started ({@link liveProcesses}) and every namespace.
 *
 * @example
 * ```ts
 * import { ChaosSession } from "./session.ts";
 * const session = await ChaosSession.open();
 * try {
 *   // ... build the network, run scenarios ...
 * } finally {
 *   await session.close();
 * }
 * ```
 */

import { processAlive } from "./command.ts";
import {
  listNamespaces,
  namePrefix,
  removeLeftovers,
  removeNamespace,
  removeNamespacesSync,
} from "./network.ts";
import { killAllNow, liveProcesses } from "./process.ts";

/** The hive plan's lock file: holds the pid of the run that owns the `rh-*` names. */
export const LOCK_PATH = "/tmp/rh-chaos.lock";
/** Temp dirs are named `<prefix>chaos-<pid>-...` (`rh-chaos-...`) under this directory. */
export const TEMP_PARENT = "/tmp";
/** Bound of the wait for another live run to release the lock. */
export const LOCK_WAIT_TIMEOUT_MS = 15 * 60_000;
/**
 * The lock file of the network plan in use (`/tmp/<prefix>chaos.lock`: {@link LOCK_PATH} for the
 * hive's, `/tmp/rs-chaos.lock` for Sentinel's): runs of one plan exclude each other.
 *
 * @example
 * ```ts
 * import { lockPath } from "./session.ts";
 * lockPath(); // "/tmp/rh-chaos.lock"
 * ```
 */
export function lockPath(): string {
  return `${TEMP_PARENT}/${namePrefix()}chaos.lock`;
}

/** Exit status after an interruption by a signal. */
export const INTERRUPTED_EXIT_CODE = 130;

const SIGNALS: Deno.Signal[] = ["SIGINT", "SIGTERM", "SIGHUP"];

/** The live session of this process, if any. */
let current: ChaosSession | null = null;
/** The signal that interrupted this process's session, if any. */
let interruptedBy: Deno.Signal | null = null;

/**
 * The signal that interrupted a session of this process, or null. Once set, the signal's
 * handler is removing everything and will exit with {@link INTERRUPTED_EXIT_CODE}: callers
 * should stop their work and not exit on their own.
 *
 * @example
 * ```ts
 * import { interruption } from "./session.ts";
 * if (interruption() !== null) await new Promise(() => {}); // the handler exits
 * ```
 */
export function interruption(): Deno.Signal | null {
  return interruptedBy;
}

/**
 * One session.
 *
 * @example
 * ```ts
 * const session = await ChaosSession.open();
 * await session.close();
 * ```
 */
export class ChaosSession {
  #closed = false;
  #closing: Promise<void> | null = null;
  readonly #onSignal: (() => void)[] = [];
  readonly #onUnload = () => this.#closeSync();
  /** Extra cleanup steps (agent, DNS...), run first by {@link close}, newest first. */
  readonly #cleanups: (() => Promise<void>)[] = [];

  private constructor(readonly dir: string, readonly removedLeftovers: string[]) {}

  /**
   * Takes the lock (waiting for a live holder, at most {@link LOCK_WAIT_TIMEOUT_MS}), removes
   * leftovers, makes the temp dir and traps signals.
   */
  static async open(opts: { log?: (line: string) => void } = {}): Promise<ChaosSession> {
    if (current !== null) throw new Error("a chaos session is already open in this process");
    const log = opts.log ?? ((line: string) => console.error(line));
    await takeLock(log);
    let removed: string[];
    try {
      removed = await removeLeftovers();
      removed.push(...await removeDeadTempDirs());
    } catch (e) {
      await Deno.remove(lockPath()).catch(() => {});
      throw e;
    }
    if (removed.length > 0) {
      log(`chaos: removed leftovers of an earlier run: ${removed.join(", ")}`);
    }
    const dir = await Deno.makeTempDir({
      dir: TEMP_PARENT,
      prefix: `${namePrefix()}chaos-${Deno.pid}-`,
    });
    const session = new ChaosSession(dir, removed);
    current = session;
    for (const signal of SIGNALS) {
      const handler = () => {
        if (interruptedBy !== null) return; // already on the way out
        interruptedBy = signal;
        console.error(`\nchaos: ${signal}: removing every namespace and process, then exiting`);
        session.close().finally(() => Deno.exit(INTERRUPTED_EXIT_CODE));
      };
      Deno.addSignalListener(signal, handler);
      session.#onSignal.push(handler);
    }
    globalThis.addEventListener("unload", session.#onUnload);
    return session;
  }

  /** Registers a cleanup step run by {@link close} before the processes are killed. */
  onClose(step: () => Promise<void>): void {
    this.#cleanups.push(step);
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Removes everything: cleanup steps, processes, namespaces, temp dir, lock. A second call
   * returns the same promise.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#closed = true;
    for (const step of this.#cleanups.reverse()) {
      await step().catch((e) => console.error(`chaos: cleanup step failed: ${e}`));
    }
    await Promise.all([...liveProcesses].map((p) => p.kill()));
    for (const ns of await listNamespaces()) {
      await removeNamespace(ns).catch((e) => console.error(`chaos: ${e}`));
    }
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
    await releaseLock();
    this.#untrap();
  }

  #closeSync(): void {
    if (this.#closed) return;
    this.#closed = true;
    killAllNow();
    const out = new Deno.Command("ip", { args: ["netns", "list"], stdout: "piped", stderr: "null" })
      .outputSync();
    removeNamespacesSync(
      new TextDecoder().decode(out.stdout).split("\n").map((l) => l.trim().split(/\s+/)[0] ?? ""),
    );
    try {
      Deno.removeSync(this.dir, { recursive: true });
    } catch { /* gone */ }
    try {
      if (Deno.readTextFileSync(lockPath()).trim() === String(Deno.pid)) {
        Deno.removeSync(lockPath());
      }
    } catch { /* gone */ }
    this.#untrap();
  }

  #untrap(): void {
    SIGNALS.forEach((signal, i) => {
      const handler = this.#onSignal[i];
      if (handler !== undefined) Deno.removeSignalListener(signal, handler);
    });
    this.#onSignal.length = 0;
    globalThis.removeEventListener("unload", this.#onUnload);
    if (current === this) current = null;
  }
}

async function takeLock(log: (line: string) => void): Promise<void> {
  const deadline = Date.now() + LOCK_WAIT_TIMEOUT_MS;
  let warned = false;
  while (true) {
    try {
      await Deno.writeTextFile(lockPath(), `${Deno.pid}\n`, { createNew: true });
      return;
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    }
    const holder = Number((await Deno.readTextFile(lockPath()).catch(() => "")).trim());
    if (!Number.isInteger(holder) || holder <= 0 || !processAlive(holder) || holder === Deno.pid) {
      await Deno.remove(lockPath()).catch(() => {}); // a crashed run's lock
      continue;
    }
    if (Date.now() > deadline) {
      throw new Error(`another chaos run (pid ${holder}) holds ${lockPath()}; gave up waiting`);
    }
    if (!warned) {
      log(`chaos: another chaos run (pid ${holder}) holds ${lockPath()}: waiting for it`);
      warned = true;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function releaseLock(): Promise<void> {
  const holder = (await Deno.readTextFile(lockPath()).catch(() => "")).trim();
  if (holder === String(Deno.pid)) await Deno.remove(lockPath()).catch(() => {});
}

async function removeDeadTempDirs(): Promise<string[]> {
  const removed: string[] = [];
  for await (const entry of Deno.readDir(TEMP_PARENT)) {
    const pid = new RegExp(`^${namePrefix()}chaos-(\\d+)-`).exec(entry.name)?.[1];
    if (!entry.isDirectory || pid === undefined || processAlive(Number(pid))) continue;
    await Deno.remove(`${TEMP_PARENT}/${entry.name}`, { recursive: true });
    removed.push(`dir ${TEMP_PARENT}/${entry.name}`);
  }
  return removed;
}
