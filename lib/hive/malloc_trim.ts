/**
 * Gives the memory the C allocator keeps after `free` back to the kernel: glibc's
 * `malloc_trim(0)`, through FFI, {@link MALLOC_TRIM_FIRST_MS} after start and then every
 * {@link MALLOC_TRIM_INTERVAL_MS}.
 *
 * Why: a hive's resident memory was about 150 MB in a 3-node cluster, 50 to 60 MB of it memory
 * glibc had already been given back by `free` but kept in its heap (a few live blocks above
 * the freed ones pin the top of the heap, so glibc never shrinks it by itself). It comes from
 * start-up and from the ArrayBuffers of socket reads, which V8 frees in bursts when it
 * collects its young generation. One `malloc_trim(0)` returns those pages (`MADV_DONTNEED`); it
 * takes well under a millisecond on a heap of this size (docs/benchmarks.md, "Where the memory
 * goes").
 *
 * Needs `--allow-ffi` (which the default epoll proxy engine needs anyway) and glibc on Linux;
 * elsewhere it does nothing and says why ({@link mallocTrimSupport}).
 *
 * @example
 * ```ts
 * import { startMallocTrim } from "./malloc_trim.ts";
 * const trim = startMallocTrim();
 * console.log(trim.running ? "trimming" : `not trimming: ${trim.reason}`);
 * trim.stop();
 * ```
 */

import { checkInteger, MAX_DURATION_MS } from "../common/assert.ts";

/** The first trim, this long after start: after the start-up burst of allocations. */
export const MALLOC_TRIM_FIRST_MS = 5_000;
/** Then one trim every this long. */
export const MALLOC_TRIM_INTERVAL_MS = 2_000;
/** The OS where glibc's `malloc_trim` is looked up. */
export const MALLOC_TRIM_OS = "linux";

/** The facts of the process that decide whether trimming can run. */
export interface MallocTrimPlatform {
  /** `Deno.build.os`. */
  os: string;
  /** Whether `--allow-ffi` is granted (unrestricted). */
  ffiGranted: boolean;
}

/**
 * Null when `malloc_trim` may be looked up on `platform`, else why not. Pure.
 *
 * @example
 * ```ts
 * mallocTrimSupport({ os: "linux", ffiGranted: true }); // null
 * mallocTrimSupport({ os: "darwin", ffiGranted: true }); // "malloc_trim is glibc's, ..."
 * ```
 */
export function mallocTrimSupport(platform: MallocTrimPlatform): string | null {
  if (platform.os !== MALLOC_TRIM_OS) {
    return `malloc_trim is glibc's, on ${MALLOC_TRIM_OS} only; this is ${platform.os}`;
  }
  if (!platform.ffiGranted) return "malloc_trim is called through FFI: --allow-ffi not granted";
  return null;
}

/** A running trim schedule (or one that could not start, with the reason). */
export interface MallocTrim {
  /** True while trims are scheduled. */
  readonly running: boolean;
  /** Why trimming does not run, or null. */
  readonly reason: string | null;
  /** Trims done so far. */
  readonly trims: number;
  /** Trims once, now; false when trimming does not run. */
  trimNow(): boolean;
  /** Stops the schedule (idempotent). */
  stop(): void;
}

/** Options of {@link startMallocTrim} (every one has the real default). */
export interface MallocTrimOptions {
  firstMs?: number;
  intervalMs?: number;
  platform?: MallocTrimPlatform;
  /** Opens libc's `malloc_trim` (default: `Deno.dlopen("libc.so.6")`). */
  open?: () => (pad: bigint) => number;
}

/**
 * Schedules `malloc_trim(0)` ({@link MALLOC_TRIM_FIRST_MS} after start, then every
 * {@link MALLOC_TRIM_INTERVAL_MS}). Where it cannot run (not Linux, no `--allow-ffi`, a libc
 * without `malloc_trim` such as musl), it returns a stopped schedule with the reason: the hive
 * works the same, only with more resident memory. The timers do not keep the process alive.
 *
 * @example
 * ```ts
 * const trim = startMallocTrim({ firstMs: 1000, intervalMs: 10_000 });
 * trim.stop();
 * ```
 */
export function startMallocTrim(opts: MallocTrimOptions = {}): MallocTrim {
  const firstMs = checkMs("firstMs", opts.firstMs ?? MALLOC_TRIM_FIRST_MS);
  const intervalMs = checkMs("intervalMs", opts.intervalMs ?? MALLOC_TRIM_INTERVAL_MS);
  const platform = opts.platform ?? currentPlatform();
  let reason = mallocTrimSupport(platform);
  let trim: ((pad: bigint) => number) | null = null;
  if (reason === null) {
    try {
      trim = (opts.open ?? openLibcMallocTrim)();
    } catch (e) {
      reason = `cannot open malloc_trim: ${e instanceof Error ? e.message : String(e)}`;
    }
  }
  let trims = 0;
  let timers: ReturnType<typeof setTimeout>[] = [];
  const trimNow = (): boolean => {
    if (trim === null || timers.length === 0) return false;
    trim(0n);
    trims++;
    return true;
  };
  if (trim !== null) {
    const first = setTimeout(() => {
      trimNow();
      const every = setInterval(trimNow, intervalMs);
      Deno.unrefTimer(every);
      timers.push(every);
    }, firstMs);
    Deno.unrefTimer(first);
    timers.push(first);
  }
  return {
    get running() {
      return timers.length > 0;
    },
    reason,
    get trims() {
      return trims;
    },
    trimNow,
    stop() {
      for (const t of timers) clearTimeout(t);
      timers = [];
    },
  };
}

function checkMs(name: string, value: number): number {
  return checkInteger("startMallocTrim", name, value, 0, MAX_DURATION_MS);
}

function currentPlatform(): MallocTrimPlatform {
  return {
    os: Deno.build.os,
    ffiGranted: Deno.permissions.querySync({ name: "ffi" }).state === "granted",
  };
}

function openLibcMallocTrim(): (pad: bigint) => number {
  const lib = Deno.dlopen("libc.so.6", {
    malloc_trim: { parameters: ["usize"], result: "i32" },
  });
  return (pad) => lib.symbols.malloc_trim(pad);
}
