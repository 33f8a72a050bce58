/**
 * A process's memory as the kernel counts it, read from `/proc/<pid>/status` and
 * `/proc/<pid>/smaps_rollup` (Linux), for the benchmarks' memory reports: resident memory
 * (VmRSS), its peak since start (VmHWM), the anonymous and file-backed parts, the proportional
 * share (Pss: file pages shared with other processes counted in part) and the threads.
 *
 * @example
 * ```ts
 * import { readProcMemory } from "./proc_memory.ts";
 * const m = await readProcMemory(Deno.pid);
 * console.log(`${(m.rssKiB / 1024).toFixed(1)} MiB resident, ${m.threads} threads`);
 * ```
 */

/** Memory of one process, in KiB (threads: a count). */
export interface ProcMemory {
  /** Resident set size (VmRSS). */
  rssKiB: number;
  /** Peak resident set size since start (VmHWM). */
  hwmKiB: number;
  /** Anonymous resident memory (RssAnon): heaps, stacks. */
  anonKiB: number;
  /** File-backed resident memory (RssFile): the executable and libraries, mostly shared. */
  fileKiB: number;
  /** Proportional set size (smaps_rollup Pss), or null when not readable. */
  pssKiB: number | null;
  /** Threads of the process. */
  threads: number;
}

/**
 * The value of `name:` in a `/proc/<pid>/status` or `smaps_rollup` text (the number before
 * `kB`, or a bare number), or undefined when absent.
 *
 * @example
 * ```ts
 * procField("VmRSS:\t  94052 kB\nThreads:\t6\n", "VmRSS"); // 94052
 * procField("Threads:\t6\n", "Threads"); // 6
 * ```
 */
export function procField(text: string, name: string): number | undefined {
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const m = new RegExp(`^${escaped}:\\s+(\\d+)(?:\\s+kB)?\\s*$`, "m").exec(text);
  return m === null ? undefined : Number(m[1]);
}

/**
 * Parses the texts of `/proc/<pid>/status` and (optionally) `smaps_rollup`; throws naming the
 * field that is missing.
 *
 * @example
 * ```ts
 * const status = "VmHWM:\t 1 kB\nVmRSS:\t 2 kB\nRssAnon:\t 1 kB\nRssFile:\t 1 kB\nThreads:\t1\n";
 * parseProcMemory(status, null).rssKiB; // 2
 * ```
 */
export function parseProcMemory(status: string, smapsRollup: string | null): ProcMemory {
  const need = (name: string): number => {
    const v = procField(status, name);
    if (v === undefined) throw new Error(`/proc status: no ${name}`);
    return v;
  };
  return {
    rssKiB: need("VmRSS"),
    hwmKiB: need("VmHWM"),
    anonKiB: need("RssAnon"),
    fileKiB: need("RssFile"),
    pssKiB: smapsRollup === null ? null : procField(smapsRollup, "Pss") ?? null,
    threads: need("Threads"),
  };
}

/**
 * The memory of process `pid` now (Linux).
 *
 * @example
 * ```ts
 * const m = await readProcMemory(Deno.pid);
 * ```
 */
export async function readProcMemory(pid: number): Promise<ProcMemory> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const rollup = await Deno.readTextFile(`/proc/${pid}/smaps_rollup`).catch(() => null);
  return parseProcMemory(status, rollup);
}

/**
 * KiB as MiB with one decimal, e.g. `92.6`.
 *
 * @example
 * ```ts
 * mib(94822); // "92.6"
 * ```
 */
export function mib(kib: number): string {
  return (kib / 1024).toFixed(1);
}

/**
 * User plus system CPU time of process `pid` so far (all threads), in clock ticks
 * (`/proc/<pid>/stat` fields 14 and 15; usually 100 ticks a second).
 *
 * @example
 * ```ts
 * const ticks = await readCpuTicks(Deno.pid);
 * ```
 */
export async function readCpuTicks(pid: number): Promise<number> {
  return cpuTicksOfStat(await Deno.readTextFile(`/proc/${pid}/stat`));
}

/**
 * utime + stime of a `/proc/<pid>/stat` line (the command name may hold spaces and parentheses).
 *
 * @example
 * ```ts
 * cpuTicksOfStat("42 (deno) S 1 2 3 4 5 6 7 8 9 10 150 25 0 0"); // 175
 * ```
 */
export function cpuTicksOfStat(stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const user = Number(fields[11]);
  const sys = Number(fields[12]);
  if (!Number.isInteger(user) || !Number.isInteger(sys)) {
    throw new Error(`/proc stat: no utime/stime in ${JSON.stringify(stat.slice(0, 80))}`);
  }
  return user + sys;
}
