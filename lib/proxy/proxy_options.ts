/**
 * What both master proxy engines share: their options, defaults and limits
 * ({@link resolveProxyOptions}), the upstream (a redis over TCP or a Unix socket), their events
 * and stats, and the checks of their options. The Deno engine (deno/) and the epoll engine
 * (epoll/) import this module and never each other; the configuration (lib/hive/config.ts)
 * takes its defaults and limits from here.
 *
 * @example
 * ```ts
 * import { checkUpstream, describeUpstream, type ProxyUpstream } from "./proxy_options.ts";
 * const upstream: ProxyUpstream = { host: "127.0.0.11", port: 6379 };
 * checkUpstream("MasterProxy", "target", upstream);
 * describeUpstream(upstream); // "127.0.0.11:6379"
 * ```
 */

import { checkInteger, MAX_DURATION_MS } from "../common/assert.ts";
import { formatHostPort } from "../net/address.ts";
import { hostProxyWorkerCount, MAX_EPOLL_WORKERS } from "./proxy_workers.ts";

/**
 * Bytes in flight at most per direction of a proxied connection: the size of the pooled
 * buffers used while data streams (HAProxy's default `bufsize`).
 */
export const PROXY_BUFFER_BYTES = 16 * 1024;

/**
 * Bytes of each connection's own buffer per direction, used while little data flows (a whole
 * pipeline of 16 small commands fits). Idle connections pin only these (see BufferPool).
 */
export const PROXY_IDLE_BUFFER_BYTES = 1024;

/** Smallest accepted pump buffer. */
export const MIN_PROXY_BUFFER_BYTES = 512;

/** Largest accepted pump buffer. */
export const MAX_PROXY_BUFFER_BYTES = 4 * 1024 * 1024;

/** How long a connection waits for a target when none is known (`--proxy-hold-ms`). */
export const DEFAULT_PROXY_HOLD_MS = 3000;

/** Most open client connections, waiting ones included (`--max-connections`). */
export const DEFAULT_PROXY_MAX_CONNECTIONS = 10_000;

/** How long connecting to the upstream redis may take before the client is closed. */
export const DEFAULT_PROXY_CONNECT_TIMEOUT_MS = 2000;

/**
 * Pause before a new connection whose upstream connect failed (the master just died: refused)
 * tries the same target again, while it may still wait (`holdMs`); a new target is tried at once.
 */
export const UPSTREAM_RETRY_MS = 20;

/** Pause after a failed `accept` (out of file descriptors...) before accepting again. */
export const PROXY_ACCEPT_RETRY_MS = 100;

/** Largest accepted `maxConnections` (and `--max-connections`). */
export const MAX_PROXY_CONNECTIONS = 1_000_000;

/** The values of `--proxy-engine`: `auto` (epoll where it can run, else deno) or an engine. */
export const PROXY_ENGINE_REQUESTS = ["auto", "epoll", "deno"] as const;

/** A value of `--proxy-engine`. */
export type ProxyEngineRequest = typeof PROXY_ENGINE_REQUESTS[number];

/** A redis reached over TCP. */
export type TcpUpstream = { host: string; port: number };

/**
 * A redis reached over its Unix socket: only ever the hive's own redis, through a socket file
 * the two containers of a pod share (`--redis-socket`). Cheaper than TCP on loopback: no TCP
 * stack on either side (docs/benchmarks.md).
 */
export type UnixUpstream = { path: string };

/** Where a proxy forwards new connections, or null to hold them (no master known). */
export type ProxyUpstream = TcpUpstream | UnixUpstream | null;

/**
 * Longest Unix socket path, in bytes of UTF-8: `sun_path` is 108 bytes on Linux, one of them
 * the terminating NUL.
 */
export const MAX_UNIX_SOCKET_PATH_BYTES = 107;

/**
 * True when two upstreams are the same address (or both null).
 *
 * @example
 * ```ts
 * sameUpstream({ path: "/run/redis/redis.sock" }, { path: "/run/redis/redis.sock" }); // true
 * sameUpstream({ host: "127.0.0.1", port: 6379 }, null); // false
 * ```
 */
export function sameUpstream(a: ProxyUpstream, b: ProxyUpstream): boolean {
  if (a === null || b === null) return a === b;
  if ("path" in a || "path" in b) return "path" in a && "path" in b && a.path === b.path;
  return a.host === b.host && a.port === b.port;
}

/**
 * A copy of `upstream` holding only its address fields (so later changes to the caller's
 * object cannot reach the proxy).
 *
 * @example
 * ```ts
 * copyUpstream({ host: "127.0.0.1", port: 6379 }); // { host: "127.0.0.1", port: 6379 }
 * ```
 */
export function copyUpstream(upstream: ProxyUpstream): ProxyUpstream {
  if (upstream === null) return null;
  return "path" in upstream
    ? { path: upstream.path }
    : { host: upstream.host, port: upstream.port };
}

/**
 * `host:port` (IPv6 in brackets) or `unix:<path>`, for logs.
 *
 * @example
 * ```ts
 * describeUpstream({ path: "/run/redis/redis.sock" }); // "unix:/run/redis/redis.sock"
 * ```
 */
export function describeUpstream(upstream: ProxyUpstream): string {
  if (upstream === null) return "none";
  if ("path" in upstream) return `unix:${upstream.path}`;
  return formatHostPort(upstream.host, upstream.port);
}

/**
 * Throws a clear error unless `upstream` is a valid target: `{ host, port }` as
 * {@link checkAddress} with a port of at least 1, or `{ path }` with an absolute path of at most
 * {@link MAX_UNIX_SOCKET_PATH_BYTES} bytes and no NUL (shared by the proxy engines).
 *
 * @example
 * ```ts
 * checkUpstream("MasterProxy", "target", { path: "/run/redis/redis.sock" });
 * ```
 */
export function checkUpstream(
  who: string,
  name: string,
  upstream: TcpUpstream | UnixUpstream,
): void {
  if (typeof upstream === "object" && upstream !== null && "path" in upstream) {
    const path = upstream.path;
    if (typeof path === "string" && isUnixSocketPath(path)) return;
    if (typeof path !== "string" || !path.startsWith("/") || path.includes("\0")) {
      throw new TypeError(
        `${who}: ${name}.path must be an absolute socket path, got ${JSON.stringify(path)}`,
      );
    }
    const bytes = new TextEncoder().encode(path).length;
    throw new RangeError(
      `${who}: ${name}.path must be at most ${MAX_UNIX_SOCKET_PATH_BYTES} bytes, got ${bytes}`,
    );
  }
  checkAddress(who, name, upstream as TcpUpstream, 1);
}

/**
 * True when `path` can name a Unix socket target: absolute, no NUL, at most
 * {@link MAX_UNIX_SOCKET_PATH_BYTES} bytes of UTF-8 (shared by the proxy and `--redis-socket`).
 *
 * @example
 * ```ts
 * isUnixSocketPath("/run/redis/redis.sock"); // true
 * isUnixSocketPath("redis.sock"); // false
 * ```
 */
export function isUnixSocketPath(path: string): boolean {
  return path.startsWith("/") && !path.includes("\0") &&
    new TextEncoder().encode(path).length <= MAX_UNIX_SOCKET_PATH_BYTES;
}

/** What {@link MasterProxy.listen} needs. */
export interface ProxyOptions {
  /** Address to listen on; port 0 picks a free port (see {@link MasterProxy.address}). */
  bind: { host: string; port: number };
  /** Wait for a target at most this long per connection. Default {@link DEFAULT_PROXY_HOLD_MS}. */
  holdMs?: number;
  /** Most open client connections. Default {@link DEFAULT_PROXY_MAX_CONNECTIONS}. */
  maxConnections?: number;
  /** Upstream connect timeout. Default {@link DEFAULT_PROXY_CONNECT_TIMEOUT_MS}. */
  connectTimeoutMs?: number;
  /** Most bytes in flight per direction per connection. Default {@link PROXY_BUFFER_BYTES}. */
  bufferBytes?: number;
  /**
   * Each connection's own buffer per direction, used while little data flows; at most
   * `bufferBytes`. Default {@link PROXY_IDLE_BUFFER_BYTES}.
   */
  idleBufferBytes?: number;
  /** The first target. Default null (hold until {@link MasterProxy.setTarget}). */
  target?: ProxyUpstream;
  /**
   * The epoll engine's worker threads; default: one per CPU the process may use
   * ({@link hostProxyWorkerCount}, the same rule as the hive's `--proxy-workers` default). The
   * Deno engine runs on the main thread and ignores it.
   */
  workers?: number;
  /** Called synchronously for every notable event (for the log); must not throw. */
  onEvent?: (event: ProxyEvent) => void;
}

/** What both engines offer: `MasterProxy` (deno/) and `EpollMasterProxy` (epoll/) implement it. */
export interface ProxyHandle {
  /** Threads serving the port (the epoll engine's workers; 1 for the Deno engine). */
  readonly workers: number;
  readonly bufferBytes: number;
  readonly idleBufferBytes: number;
  readonly holdMs: number;
  readonly maxConnections: number;
  readonly connectTimeoutMs: number;
  readonly address: { host: string; port: number };
  readonly listening: boolean;
  readonly target: ProxyUpstream;
  readonly stats: Readonly<ProxyStats>;
  setTarget(target: ProxyUpstream): void;
  close(): Promise<void>;
}

/** Something the operator may want to see in the log. */
export type ProxyEvent =
  | { kind: "target-change"; from: ProxyUpstream; to: ProxyUpstream; closedConnections: number }
  | { kind: "upstream-failure"; target: TcpUpstream | UnixUpstream; error: string }
  | { kind: "hold-timeout"; heldMs: number }
  | { kind: "refused"; openConnections: number; maxConnections: number }
  | { kind: "accept-error"; error: string };

/** Counters (monotonic) and gauges (current values) of a {@link MasterProxy}. */
export interface ProxyStats {
  /** Gauge: open client connections (waiting, connecting and proxied). */
  active: number;
  /** Gauge: client connections joined to an upstream right now. */
  proxied: number;
  /** Gauge: client connections waiting for a target right now. */
  waiting: number;
  /** Counter: client connections accepted, refused ones included. */
  total: number;
  /** Counter: connections closed at once because `maxConnections` were open. */
  refused: number;
  /** Counter: connections that had to wait for a target. */
  held: number;
  /** Counter: connections closed because no target came within `holdMs`. */
  holdTimeouts: number;
  /** Counter: upstream connects that failed or timed out (the client was closed). */
  upstreamFailures: number;
  /** Counter: proxied connections closed because the target changed. */
  closedByTargetChange: number;
  /** Counter: target changes. */
  targetChanges: number;
  /** Counter: bytes written to upstreams. */
  bytesToUpstream: number;
  /** Counter: bytes written to clients. */
  bytesToClient: number;
  /** Gauge: bytes read but not yet written, over all connections (at most 2 buffers each). */
  bufferedBytes: number;
}

/** {@link ProxyOptions} with every default applied and every value checked. */
export interface ResolvedProxyOptions {
  bind: { host: string; port: number };
  holdMs: number;
  maxConnections: number;
  connectTimeoutMs: number;
  bufferBytes: number;
  idleBufferBytes: number;
  /** A copy of the first target (null: hold). */
  target: ProxyUpstream;
  /** The epoll engine's worker threads (the Deno engine ignores it, and does not check it). */
  workers: number;
}

/**
 * Applies the defaults to `opts` and checks every value against its limit, once for both
 * engines; errors name `who` (the engine's class) and the option.
 *
 * @example
 * ```ts
 * const o = resolveProxyOptions("MasterProxy", { bind: { host: "127.0.0.1", port: 0 } });
 * o.holdMs; // 3000 (DEFAULT_PROXY_HOLD_MS)
 * ```
 */
export function resolveProxyOptions(
  who: string,
  opts: ProxyOptions,
  engine: "deno" | "epoll" = "deno",
): ResolvedProxyOptions {
  checkAddress(who, "bind", opts.bind, 0);
  const int = (name: string, value: number, min: number, max: number) =>
    checkInteger(who, name, value, min, max);
  const holdMs = int("holdMs", opts.holdMs ?? DEFAULT_PROXY_HOLD_MS, 0, MAX_DURATION_MS);
  const maxConnections = int(
    "maxConnections",
    opts.maxConnections ?? DEFAULT_PROXY_MAX_CONNECTIONS,
    1,
    MAX_PROXY_CONNECTIONS,
  );
  const connectTimeoutMs = int(
    "connectTimeoutMs",
    opts.connectTimeoutMs ?? DEFAULT_PROXY_CONNECT_TIMEOUT_MS,
    1,
    MAX_DURATION_MS,
  );
  const bufferBytes = int(
    "bufferBytes",
    opts.bufferBytes ?? PROXY_BUFFER_BYTES,
    MIN_PROXY_BUFFER_BYTES,
    MAX_PROXY_BUFFER_BYTES,
  );
  const idleBufferBytes = int(
    "idleBufferBytes",
    opts.idleBufferBytes ?? Math.min(PROXY_IDLE_BUFFER_BYTES, bufferBytes),
    1,
    bufferBytes,
  );
  if (opts.target) checkUpstream(who, "target", opts.target);
  const workers = engine === "epoll"
    ? int("workers", opts.workers ?? hostProxyWorkerCount(null).workers, 1, MAX_EPOLL_WORKERS)
    : 1;
  return {
    bind: { host: opts.bind.host, port: opts.bind.port },
    holdMs,
    maxConnections,
    connectTimeoutMs,
    bufferBytes,
    idleBufferBytes,
    target: copyUpstream(opts.target ?? null),
    workers,
  };
}

/**
 * Throws a clear error unless `addr` is `{ host, port }` with a non-empty host and a port in
 * `minPort..65535` (shared by the proxy engines).
 *
 * @example
 * ```ts
 * checkAddress("MasterProxy", "target", { host: "127.0.0.1", port: 6379 }, 1);
 * ```
 */
export function checkAddress(
  who: string,
  name: string,
  addr: { host: string; port: number },
  minPort: number,
): void {
  if (typeof addr !== "object" || addr === null) {
    throw new TypeError(`${who}: ${name} must be { host, port }, got ${String(addr)}`);
  }
  if (typeof addr.host !== "string" || addr.host.length === 0) {
    throw new TypeError(`${who}: ${name}.host must be a non-empty string`);
  }
  if (!Number.isInteger(addr.port) || addr.port < minPort || addr.port > 65535) {
    throw new RangeError(
      `${who}: ${name}.port must be an integer in ${minPort}..65535, got ${addr.port}`,
    );
  }
}
