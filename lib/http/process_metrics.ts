/**
 * The hive process's own memory, for `/status` (`process`) and `/metrics`
 * (`redis_hive_process_*`): resident memory of the whole process (every thread, the epoll
 * workers' isolates included) and the main isolate's V8 heap, in total and by space.
 *
 * The workers' heaps are not visible from the main thread (each isolate has its own); their
 * share shows in the resident memory only. docs/benchmarks.md says where the memory goes.
 *
 * @example
 * ```ts
 * import { readProcessMemory } from "./process_metrics.ts";
 * const m = readProcessMemory();
 * console.log(`${(m.rssBytes / 2 ** 20).toFixed(1)} MiB resident`);
 * ```
 */

import { getHeapSpaceStatistics } from "node:v8";

/** One V8 heap space of the main isolate (`new_space`, `old_space`, `code_space`...). */
export interface HeapSpace {
  /** V8's name of the space, e.g. `new_space`. */
  name: string;
  /** Memory the space holds in RAM (V8's `physical_space_size`). */
  physicalBytes: number;
  /** Bytes of live and not yet collected objects in it (`space_used_size`). */
  usedBytes: number;
}

/** The process's memory at one moment. */
export interface ProcessMemory {
  /** Resident set size of the whole process (all threads), as the kernel counts it. */
  rssBytes: number;
  /** The main isolate's V8 heap: memory reserved for it. */
  heapTotalBytes: number;
  /** The main isolate's V8 heap: bytes in use. */
  heapUsedBytes: number;
  /** Memory of objects outside the heap that V8 knows of (ArrayBuffers, ...). */
  externalBytes: number;
  /** The main isolate's heap spaces that hold any memory. */
  heapSpaces: HeapSpace[];
}

/** Where {@link readProcessMemory} reads from (replaced in tests). */
export interface ProcessMemorySource {
  memoryUsage(): { rss: number; heapTotal: number; heapUsed: number; external: number };
  heapSpaces(): readonly {
    space_name: string;
    physical_space_size: number;
    space_used_size: number;
  }[];
}

/** The real source: `Deno.memoryUsage()` and `node:v8`'s `getHeapSpaceStatistics()`. */
export const SYSTEM_PROCESS_MEMORY: ProcessMemorySource = {
  memoryUsage: () => Deno.memoryUsage(),
  heapSpaces: () => getHeapSpaceStatistics(),
};

/**
 * This process's memory now. Heap spaces that hold nothing (the shared spaces of a process
 * without shared isolates...) are left out.
 *
 * @example
 * ```ts
 * import { readProcessMemory } from "./process_metrics.ts";
 * readProcessMemory().heapSpaces.map((s) => s.name); // ["new_space", "old_space", ...]
 * ```
 */
export function readProcessMemory(
  source: ProcessMemorySource = SYSTEM_PROCESS_MEMORY,
): ProcessMemory {
  const usage = source.memoryUsage();
  return {
    rssBytes: usage.rss,
    heapTotalBytes: usage.heapTotal,
    heapUsedBytes: usage.heapUsed,
    externalBytes: usage.external,
    heapSpaces: source.heapSpaces()
      .filter((s) => s.physical_space_size > 0 || s.space_used_size > 0)
      .map((s) => ({
        name: s.space_name,
        physicalBytes: s.physical_space_size,
        usedBytes: s.space_used_size,
      })),
  };
}
