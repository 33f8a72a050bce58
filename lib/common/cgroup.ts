/**
 * The CPU limit of the container the process runs in, from its cgroup: cgroup v2's
 * `/sys/fs/cgroup/cpu.max` (`<quota> <period>` or `max <period>`), else cgroup v1's
 * `cpu.cfs_quota_us` and `cpu.cfs_period_us` (quota -1: no limit). Kubernetes writes a
 * container's `resources.limits.cpu` there (e.g. `1500m` as `150000 100000`), while
 * `navigator.hardwareConcurrency` reports the node's CPUs.
 *
 * The parsing is pure ({@link parseCpuMax}, {@link parseCfsQuota}); {@link readCgroupCpuLimit}
 * reads the files through an injected reader.
 *
 * @example
 * ```ts
 * import { readCgroupCpuLimit } from "./cgroup.ts";
 * const limit = readCgroupCpuLimit();
 * console.log(limit === null ? "no CPU limit" : `${limit.cpus} CPUs (${limit.source})`);
 * ```
 */

/** cgroup v2's CPU limit file (inside the container's cgroup namespace). */
export const CGROUP_V2_CPU_MAX = "/sys/fs/cgroup/cpu.max";
/** cgroup v1's CPU controller directories, in the order they are tried. */
export const CGROUP_V1_CPU_DIRS = ["/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"] as const;

/** A CPU limit: `quotaUs` of CPU time per `periodUs`, i.e. `quotaUs / periodUs` CPUs. */
export interface CpuQuota {
  quotaUs: number;
  periodUs: number;
}

/** The limit the cgroup sets, in CPUs (may be fractional), and where it was read. */
export interface CgroupCpuLimit {
  /** `quotaUs / periodUs`, e.g. 1.5. */
  cpus: number;
  /** Where it came from, e.g. `cgroup cpu.max 150000/100000`. */
  source: string;
}

/** Reads a file's text, or null when it does not exist or cannot be read. */
export type ReadText = (path: string) => string | null;

const POSITIVE_INTEGER = /^[1-9]\d{0,17}$/;

/**
 * Parses cgroup v2's `cpu.max`: `<quota> <period>` is a limit, `max <period>` none (null).
 * Throws a clear error on anything else.
 *
 * @example
 * ```ts
 * parseCpuMax("150000 100000\n"); // { quotaUs: 150000, periodUs: 100000 }
 * parseCpuMax("max 100000\n"); // null
 * ```
 */
export function parseCpuMax(text: string): CpuQuota | null {
  const words = text.trim().split(/\s+/);
  const [quota, period] = words;
  if (words.length !== 2 || period === undefined || !POSITIVE_INTEGER.test(period)) {
    throw new Error(`cpu.max: expected "<quota|max> <period>", got ${JSON.stringify(text)}`);
  }
  if (quota === "max") return null;
  if (quota === undefined || !POSITIVE_INTEGER.test(quota)) {
    throw new Error(`cpu.max: quota must be "max" or a positive integer, got ${quota}`);
  }
  return { quotaUs: Number(quota), periodUs: Number(period) };
}

/**
 * Parses cgroup v1's `cpu.cfs_quota_us` and `cpu.cfs_period_us`: a quota of -1 is no limit
 * (null). Throws a clear error on anything else.
 *
 * @example
 * ```ts
 * parseCfsQuota("50000\n", "100000\n"); // { quotaUs: 50000, periodUs: 100000 }
 * parseCfsQuota("-1\n", "100000\n"); // null
 * ```
 */
export function parseCfsQuota(quotaText: string, periodText: string): CpuQuota | null {
  const quota = quotaText.trim();
  const period = periodText.trim();
  if (!POSITIVE_INTEGER.test(period)) {
    throw new Error(
      `cpu.cfs_period_us: expected a positive integer, got ${JSON.stringify(period)}`,
    );
  }
  if (quota === "-1") return null;
  if (!POSITIVE_INTEGER.test(quota)) {
    throw new Error(`cpu.cfs_quota_us: expected -1 or a positive integer, got ${quota}`);
  }
  return { quotaUs: Number(quota), periodUs: Number(period) };
}

/**
 * The cgroup's CPU limit: cgroup v2 first, then v1; null when neither sets one (or neither
 * exists: not Linux, no `/sys/fs/cgroup`). A file that exists but cannot be parsed throws.
 *
 * @example
 * ```ts
 * const files: Record<string, string> = { "/sys/fs/cgroup/cpu.max": "150000 100000\n" };
 * readCgroupCpuLimit((path) => files[path] ?? null);
 * // { cpus: 1.5, source: "cgroup cpu.max 150000/100000" }
 * ```
 */
export function readCgroupCpuLimit(read: ReadText = readTextOrNull): CgroupCpuLimit | null {
  const v2 = read(CGROUP_V2_CPU_MAX);
  if (v2 !== null) {
    const q = parseCpuMax(v2);
    return q === null ? null : {
      cpus: q.quotaUs / q.periodUs,
      source: `cgroup cpu.max ${q.quotaUs}/${q.periodUs}`,
    };
  }
  for (const dir of CGROUP_V1_CPU_DIRS) {
    const quota = read(`${dir}/cpu.cfs_quota_us`);
    const period = read(`${dir}/cpu.cfs_period_us`);
    if (quota === null || period === null) continue;
    const q = parseCfsQuota(quota, period);
    return q === null ? null : {
      cpus: q.quotaUs / q.periodUs,
      source: `cgroup cpu.cfs_quota_us/cpu.cfs_period_us ${q.quotaUs}/${q.periodUs}`,
    };
  }
  return null;
}

/** The file's text, or null when it is missing or unreadable (no permission, not Linux). */
function readTextOrNull(path: string): string | null {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return null;
  }
}
