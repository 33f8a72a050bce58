/**
 * How many worker threads the epoll proxy engine runs, and why: `--proxy-workers` when given,
 * else one per CPU the container may use: its cgroup CPU limit rounded up
 * (lib/common/cgroup.ts; `1500m` gives 2), else the machine's CPUs
 * (`navigator.hardwareConcurrency`); always at least 1, at most {@link MAX_EPOLL_WORKERS} and
 * never more than the machine's CPUs. HAProxy likewise runs one thread per CPU it may use.
 * Each worker is a V8 isolate of about 6 MiB resident (docs/benchmarks.md).
 *
 * @example
 * ```ts
 * import { proxyWorkerCount } from "./proxy_workers.ts";
 * proxyWorkerCount({
 *   flag: null,
 *   cgroup: () => ({ cpus: 1.5, source: "cgroup cpu.max 150000/100000" }),
 *   hardwareConcurrency: 8,
 * }); // { workers: 2, source: "cgroup cpu.max 150000/100000" }
 * ```
 */

import { type CgroupCpuLimit, readCgroupCpuLimit } from "../common/cgroup.ts";

/** Most worker threads of one epoll proxy (and `--proxy-workers`). */
export const MAX_EPOLL_WORKERS = 16;

/** The worker count and where it came from (`/status` `proxy.workersSource`). */
export interface ProxyWorkerCount {
  workers: number;
  /**
   * `flag` (`--proxy-workers` or `HIVE_PROXY_WORKERS`), the cgroup file and its values (e.g.
   * `cgroup cpu.max 150000/100000`), or `cpus` (no CPU limit: the machine's CPUs); a note in
   * parentheses when the count was capped or the cgroup could not be read.
   */
  source: string;
}

/** What {@link proxyWorkerCount} decides from. */
export interface ProxyWorkerInputs {
  /** `--proxy-workers` (already validated), or null when not given. */
  flag: number | null;
  /** The cgroup's CPU limit (lib/common/cgroup.ts `readCgroupCpuLimit`); may throw. */
  cgroup: () => CgroupCpuLimit | null;
  /** `navigator.hardwareConcurrency`: the machine's CPUs. */
  hardwareConcurrency: number;
}

/**
 * The epoll engine's worker count and its source. Pure apart from `cgroup()`; an unreadable
 * cgroup file falls back to the machine's CPUs, and says so.
 *
 * @example
 * ```ts
 * proxyWorkerCount({ flag: 3, cgroup: () => null, hardwareConcurrency: 2 });
 * // { workers: 3, source: "flag" }
 * proxyWorkerCount({ flag: null, cgroup: () => null, hardwareConcurrency: 2 });
 * // { workers: 2, source: "cpus" }
 * ```
 */
export function proxyWorkerCount(inputs: ProxyWorkerInputs): ProxyWorkerCount {
  if (inputs.flag !== null) return { workers: inputs.flag, source: "flag" };
  const hc = inputs.hardwareConcurrency;
  const cpus = Number.isInteger(hc) && hc >= 1 ? hc : 1;
  let limit: CgroupCpuLimit | null = null;
  let unreadable = "";
  try {
    limit = inputs.cgroup();
  } catch (e) {
    unreadable = ` (cgroup unreadable: ${e instanceof Error ? e.message : String(e)})`;
  }
  const wanted = limit === null ? cpus : Math.ceil(limit.cpus - 1e-9);
  const ceiling = Math.min(cpus, MAX_EPOLL_WORKERS);
  const workers = Math.max(1, Math.min(wanted, ceiling));
  const capped = workers < wanted
    ? ` (capped at ${workers}: ${ceiling === cpus ? `${cpus} CPUs` : "the most workers"})`
    : "";
  return { workers, source: `${limit?.source ?? "cpus"}${capped}${unreadable}` };
}

/**
 * {@link proxyWorkerCount} on this process: `flag` (null: not given), this container's cgroup
 * CPU limit and this machine's CPUs. The one default of the epoll engine's worker count: the
 * hive's `--proxy-workers` and `EpollMasterProxy.listen` without `workers` both use it.
 *
 * @example
 * ```ts
 * hostProxyWorkerCount(null); // e.g. { workers: 2, source: "cpus" } on a 2-CPU machine
 * ```
 */
export function hostProxyWorkerCount(flag: number | null): ProxyWorkerCount {
  return proxyWorkerCount({
    flag,
    cgroup: () => readCgroupCpuLimit(),
    hardwareConcurrency: navigator.hardwareConcurrency,
  });
}
