/**
 * What both master proxy engines share: their options and limits, the upstream (a redis over TCP
 * or a Unix socket), their events and stats, and the checks of their options. The Deno engine
 * (deno/) and the epoll engine (epoll/) import this module and never each other.
 *
 * @example
 * ```ts
 * import { checkUpstream, describeUpstream, type ProxyUpstream } from "./proxy_options.ts";
 * const upstream: ProxyUpstream = { host: "127.0.0.11", port: 6379 };
 * checkUpstream("target", upstream);
 * describeUpstream(upstream); // "127.0.0.11:6379"
 * ```
 */

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

/** Largest accepted `holdMs` and `connectTimeoutMs` (one hour): a bigger value is a mistake. */
export const MAX_PROXY_WAIT_MS = 3_600_000;

/** Largest accepted `maxConnections`. */
export const MAX_PROXY_CONNECTIONS = 1_000_000;

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
  const host = upstream.host.includes(":") ? `[${upstream.host}]` : upstream.host;
  return `${host}:${upstream.port}`;
}

/**
 * Throws a clear error unless `upstream` is a valid target: `{ host, port }` as
 * {@link checkAddress} with a port of at least 1, or `{ path }` with an absolute path of at most
 * {@link MAX_UNIX_SOCKET_PATH_BYTES} bytes and no NUL (shared by the proxy engines).
 *
 * @example
 * ```ts
 * checkUpstream("target", { path: "/run/redis/redis.sock" });
 * ```
 */
export function checkUpstream(name: string, upstream: TcpUpstream | UnixUpstream): void {
  if (typeof upstream === "object" && upstream !== null && "path" in upstream) {
    const path = upstream.path;
    if (typeof path === "string" && isUnixSocketPath(path)) return;
    if (typeof path !== "string" || !path.startsWith("/") || path.includes("\0")) {
      throw new TypeError(
        `MasterProxy: ${name}.path must be an absolute socket path, got ${JSON.stringify(path)}`,
      );
    }
    const bytes = new TextEncoder().encode(path).length;
    throw new RangeError(
      `MasterProxy: ${name}.path must be at most ${MAX_UNIX_SOCKET_PATH_BYTES} bytes, got ${bytes}`,
    );
  }
  checkAddress(name, upstream as TcpUpstream, 1);
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
   * The epoll engine's worker threads (default 2, see lib/proxy/epoll/epoll_proxy.ts); the Deno engine runs
   * on the main thread and ignores it.
   */
  workers?: number;
  /** Called synchronously for every notable event (for the log); must not throw. */
  onEvent?: (event: ProxyEvent) => void;
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

/**
 * `value` when it is an integer in `min..max`, else a RangeError naming the option (shared by
 * the proxy engines).
 *
 * @example
 * ```ts
 * checkInteger("holdMs", 3000, 0, MAX_PROXY_WAIT_MS); // 3000
 * ```
 */
export function checkInteger(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`MasterProxy: ${name} must be an integer in ${min}..${max}, got ${value}`);
  }
  return value;
}

/**
 * Throws a clear error unless `addr` is `{ host, port }` with a non-empty host and a port in
 * `minPort..65535` (shared by the proxy engines).
 *
 * @example
 * ```ts
 * checkAddress("target", { host: "127.0.0.1", port: 6379 }, 1);
 * ```
 */
export function checkAddress(
  name: string,
  addr: { host: string; port: number },
  minPort: number,
): void {
  if (typeof addr !== "object" || addr === null) {
    throw new TypeError(`MasterProxy: ${name} must be { host, port }, got ${String(addr)}`);
  }
  if (typeof addr.host !== "string" || addr.host.length === 0) {
    throw new TypeError(`MasterProxy: ${name}.host must be a non-empty string`);
  }
  if (!Number.isInteger(addr.port) || addr.port < minPort || addr.port > 65535) {
    throw new RangeError(
      `MasterProxy: ${name}.port must be an integer in ${minPort}..65535, got ${addr.port}`,
    );
  }
}
