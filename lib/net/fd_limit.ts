/**
 * The process's open-file limit (`RLIMIT_NOFILE`): raise the soft limit to the hard one at start,
 * and size `--max-connections` to what the limit can hold.
 *
 * Deno has no setrlimit API, so raising uses libc through `Deno.dlopen` (`--allow-ffi`, which the
 * production flags grant; the epoll proxy engine uses libc the same way). Without FFI (another
 * platform, or a `deno run` without `--allow-ffi`) the limit is only read, from
 * `/proc/self/limits`, and not raised. Either way the runtime then compares the limit with what
 * the hive may need: two descriptors per proxied connection (client and upstream) plus
 * {@link RESERVED_DESCRIPTORS} for everything else, and lowers `--max-connections` with a
 * warning when the limit cannot hold it. Running out of descriptors then refuses new
 * connections (the proxy's cap is reached first) instead of starving the election.
 *
 * @example
 * ```ts
 * import { fitMaxConnections, raiseNofileLimit } from "./fd_limit.ts";
 * const limit = raiseNofileLimit(); // { soft: 1048576, hard: 1048576, raisedFrom: 1024, ... }
 * const fit = fitMaxConnections(10_000, limit?.soft ?? null);
 * if (fit.lowered) console.warn(fit.reason);
 * ```
 */

import { HTTP_MAX_CONNECTIONS } from "../http/http_server.ts";

/** `RLIMIT_NOFILE` on Linux (x86_64 and aarch64). */
const RLIMIT_NOFILE = 7;

/**
 * Descriptors kept for everything but proxied connections: the HTTP server's connection cap
 * ({@link HTTP_MAX_CONNECTIONS}) and 64 more for the listeners, the UDP socket, the connections
 * to redis and the run_id guard, DNS lookups, the state file, epoll and worker plumbing, stdio.
 */
export const RESERVED_DESCRIPTORS = HTTP_MAX_CONNECTIONS + 64;

/** Descriptors each proxied connection holds: the client's and the one to redis. */
export const DESCRIPTORS_PER_CONNECTION = 2;

/** The open-file limit, and what was done to it. */
export interface NofileLimit {
  /** The soft limit in force now (Infinity for unlimited). */
  soft: number;
  /** The hard limit (Infinity for unlimited). */
  hard: number;
  /** The soft limit before it was raised, or null when it was not raised. */
  raisedFrom: number | null;
  /** How it was learnt: `setrlimit` (libc via FFI) or `/proc/self/limits` (read only). */
  via: "setrlimit" | "proc";
}

/**
 * Raises the soft `RLIMIT_NOFILE` to the hard limit (through libc, when FFI is allowed) and
 * returns the limits; reads them from `/proc/self/limits` when FFI is not available. Null when
 * neither works (not Linux). Never throws.
 *
 * @example
 * ```ts
 * const limit = raiseNofileLimit();
 * console.log(limit?.soft);
 * ```
 */
export function raiseNofileLimit(): NofileLimit | null {
  try {
    return raiseWithLibc();
  } catch {
    // No FFI (permission, platform): read only.
  }
  try {
    return readProcLimits(Deno.readTextFileSync("/proc/self/limits"));
  } catch {
    return null;
  }
}

function raiseWithLibc(): NofileLimit {
  const lib = Deno.dlopen("libc.so.6", {
    getrlimit: { parameters: ["i32", "buffer"], result: "i32" },
    setrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  });
  try {
    const buf = new BigUint64Array(2);
    if (lib.symbols.getrlimit(RLIMIT_NOFILE, buf) !== 0) throw new Error("getrlimit failed");
    const before = buf[0]!;
    const hard = buf[1]!;
    let raisedFrom: number | null = null;
    if (before < hard) {
      const want = new BigUint64Array([hard, hard]);
      if (lib.symbols.setrlimit(RLIMIT_NOFILE, want) === 0) raisedFrom = toNumber(before);
      if (lib.symbols.getrlimit(RLIMIT_NOFILE, buf) !== 0) throw new Error("getrlimit failed");
    }
    return { soft: toNumber(buf[0]!), hard: toNumber(buf[1]!), raisedFrom, via: "setrlimit" };
  } finally {
    lib.close();
  }
}

/** `RLIM_INFINITY` (all ones) is unlimited. */
function toNumber(v: bigint): number {
  return v === 0xffff_ffff_ffff_ffffn ? Infinity : Number(v);
}

/**
 * Parses the "Max open files" line of `/proc/self/limits`; null when it is not there.
 *
 * @example
 * ```ts
 * readProcLimits("Max open files            1024                 4096                 files");
 * // { soft: 1024, hard: 4096, raisedFrom: null, via: "proc" }
 * ```
 */
export function readProcLimits(text: string): NofileLimit | null {
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(text);
  if (m === null) return null;
  const value = (s: string) => s === "unlimited" ? Infinity : Number(s);
  const soft = value(m[1]!);
  const hard = value(m[2]!);
  if (Number.isNaN(soft) || Number.isNaN(hard)) return null;
  return { soft, hard, raisedFrom: null, via: "proc" };
}

/** What {@link fitMaxConnections} decided. */
export interface ConnectionFit {
  /** The `--max-connections` to use. */
  maxConnections: number;
  /** True when it is lower than asked. */
  lowered: boolean;
  /** Why, for the warning (empty when not lowered). */
  reason: string;
}

/**
 * The largest `--max-connections` up to `wanted` that a soft open-file limit of `softLimit` can
 * hold ({@link DESCRIPTORS_PER_CONNECTION} each, after {@link RESERVED_DESCRIPTORS}); at least 1.
 * An unknown limit (null) keeps `wanted`.
 *
 * @example
 * ```ts
 * fitMaxConnections(10_000, 1024).maxConnections; // 416
 * fitMaxConnections(10_000, 1_048_576).lowered; // false
 * ```
 */
export function fitMaxConnections(wanted: number, softLimit: number | null): ConnectionFit {
  if (softLimit === null || !Number.isFinite(softLimit)) {
    return { maxConnections: wanted, lowered: false, reason: "" };
  }
  const room = Math.floor((softLimit - RESERVED_DESCRIPTORS) / DESCRIPTORS_PER_CONNECTION);
  if (room >= wanted) return { maxConnections: wanted, lowered: false, reason: "" };
  const maxConnections = Math.max(1, room);
  return {
    maxConnections,
    lowered: true,
    reason: `--max-connections lowered from ${wanted} to ${maxConnections}: the open-file limit ` +
      `(nofile ${softLimit}) holds ${DESCRIPTORS_PER_CONNECTION} descriptors per proxied ` +
      `connection after ${RESERVED_DESCRIPTORS} reserved; raise the limit to serve more`,
  };
}
