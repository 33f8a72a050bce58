/**
 * The master proxy: every client TCP connection on the proxy port is forwarded, byte for byte
 * (no RESP parsing), to the current master redis, the {@link ProxyUpstream} the daemon sets.
 *
 * - Every change of target closes both sides of every proxied connection, so clients reconnect
 *   to the new master and nothing more reaches a demoted redis.
 * - With no target (`null`: no master known), new connections wait up to `holdMs` for one, then
 *   close (counted in `holdTimeouts`); nothing is read from a waiting client.
 * - Past `maxConnections` open client connections, new ones are closed at once (`refused`).
 * - An upstream connect failure (or timeout) closes the client at once (`upstreamFailures`,
 *   and an `upstream-failure` event for the log).
 * - No-delay and TCP keepalive on both sides; half-close forwarded; at most `bufferBytes` in
 *   flight per direction per connection (see {@link pump}).
 *
 * Built on `Deno.listen`/`Deno.connect` with a read/write loop: measured against `node:net`
 * `pipe()` and `pipeTo`, it spends the least CPU per request (docs/benchmarks.md).
 *
 * @example
 * ```ts
 * import { MasterProxy } from "./proxy.ts";
 * const proxy = await MasterProxy.listen({
 *   bind: { host: "127.0.0.1", port: 6380 },
 *   onEvent: (e) => console.log(e),
 * });
 * proxy.setTarget({ host: "127.0.0.11", port: 6379 }); // the leader's redis
 * proxy.setTarget(null); // election in progress: hold new connections
 * await proxy.close();
 * ```
 */

import { BufferPool } from "./proxy_buffer_pool.ts";
import { closeQuietly, ProxiedConnection } from "./proxy_connection.ts";
import {
  MAX_PROXY_BUFFER_BYTES,
  MIN_PROXY_BUFFER_BYTES,
  PROXY_BUFFER_BYTES,
  PROXY_IDLE_BUFFER_BYTES,
  type PumpMeter,
} from "./proxy_pump.ts";

export { PROXY_BUFFER_BYTES, PROXY_IDLE_BUFFER_BYTES } from "./proxy_pump.ts";

/** How long a connection waits for a target when none is known (`--proxy-hold-ms`). */
export const DEFAULT_PROXY_HOLD_MS = 3000;

/** Most open client connections, waiting ones included (`--max-connections`). */
export const DEFAULT_PROXY_MAX_CONNECTIONS = 10_000;

/** How long connecting to the upstream redis may take before the client is closed. */
export const DEFAULT_PROXY_CONNECT_TIMEOUT_MS = 2000;

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
   * The epoll engine's worker threads (default 2, see lib/proxy_epoll.ts); the Deno engine runs
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

/** Listens on a TCP port and forwards every connection to the current {@link ProxyUpstream}. */
export class MasterProxy {
  /** Threads serving the port: this engine runs on the main thread's event loop. */
  readonly workers = 1;
  /** Most bytes in flight per direction per connection (the pooled buffers' size). */
  readonly bufferBytes: number;
  /** Size of each connection's own buffer per direction. */
  readonly idleBufferBytes: number;
  /** The options' `holdMs`. */
  readonly holdMs: number;
  /** The options' `maxConnections`. */
  readonly maxConnections: number;
  /** The options' `connectTimeoutMs`. */
  readonly connectTimeoutMs: number;

  #listener: Deno.TcpListener;
  #onEvent: (event: ProxyEvent) => void;
  #target: ProxyUpstream = null;
  /** Aborts upstream connects to the current target when the target changes or on close. */
  #targetAbort = new AbortController();
  /** Resolves when a target is set or the proxy closes; replaced whenever the target goes null. */
  #targetReady = Promise.withResolvers<void>();
  #closed = false;
  #closing: Promise<void> | null = null;
  #acceptLoop: Promise<void>;
  #tasks = new Set<Promise<void>>();
  #proxied = new Set<ProxiedConnection>();
  #stats: ProxyStats = {
    active: 0,
    proxied: 0,
    waiting: 0,
    total: 0,
    refused: 0,
    held: 0,
    holdTimeouts: 0,
    upstreamFailures: 0,
    closedByTargetChange: 0,
    targetChanges: 0,
    bytesToUpstream: 0,
    bytesToClient: 0,
    bufferedBytes: 0,
  };
  #toUpstream: PumpMeter;
  #toClient: PumpMeter;
  #pool: BufferPool;

  /**
   * Starts listening on `opts.bind`. Throws a clear error for bad options, and the listen
   * error (address in use...) as is.
   *
   * @example
   * ```ts
   * const proxy = await MasterProxy.listen({ bind: { host: "0.0.0.0", port: 6380 }, holdMs: 3000 });
   * ```
   */
  static listen(opts: ProxyOptions): Promise<MasterProxy> {
    try {
      return Promise.resolve(new MasterProxy(opts));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  private constructor(opts: ProxyOptions) {
    checkAddress("bind", opts.bind, 0);
    this.holdMs = checkInteger(
      "holdMs",
      opts.holdMs ?? DEFAULT_PROXY_HOLD_MS,
      0,
      MAX_PROXY_WAIT_MS,
    );
    this.maxConnections = checkInteger(
      "maxConnections",
      opts.maxConnections ?? DEFAULT_PROXY_MAX_CONNECTIONS,
      1,
      MAX_PROXY_CONNECTIONS,
    );
    this.connectTimeoutMs = checkInteger(
      "connectTimeoutMs",
      opts.connectTimeoutMs ?? DEFAULT_PROXY_CONNECT_TIMEOUT_MS,
      1,
      MAX_PROXY_WAIT_MS,
    );
    this.bufferBytes = checkInteger(
      "bufferBytes",
      opts.bufferBytes ?? PROXY_BUFFER_BYTES,
      MIN_PROXY_BUFFER_BYTES,
      MAX_PROXY_BUFFER_BYTES,
    );
    this.idleBufferBytes = checkInteger(
      "idleBufferBytes",
      opts.idleBufferBytes ?? Math.min(PROXY_IDLE_BUFFER_BYTES, this.bufferBytes),
      1,
      this.bufferBytes,
    );
    this.#pool = new BufferPool(this.bufferBytes);
    if (opts.target) checkUpstream("target", opts.target);
    this.#onEvent = opts.onEvent ?? (() => {});
    const stats = this.#stats;
    this.#toUpstream = {
      onRead(bytes) {
        stats.bufferedBytes += bytes;
      },
      onWritten(bytes) {
        stats.bufferedBytes -= bytes;
        stats.bytesToUpstream += bytes;
      },
      onDropped(bytes) {
        stats.bufferedBytes -= bytes;
      },
    };
    this.#toClient = {
      onRead(bytes) {
        stats.bufferedBytes += bytes;
      },
      onWritten(bytes) {
        stats.bufferedBytes -= bytes;
        stats.bytesToClient += bytes;
      },
      onDropped(bytes) {
        stats.bufferedBytes -= bytes;
      },
    };
    this.#listener = Deno.listen({ hostname: opts.bind.host, port: opts.bind.port });
    if (opts.target) this.#target = copyUpstream(opts.target);
    if (this.#target !== null) this.#targetReady.resolve();
    this.#acceptLoop = this.#accept();
  }

  /** The address actually listened on (the real port when `bind.port` was 0). */
  get address(): { host: string; port: number } {
    const addr = this.#listener.addr;
    return { host: addr.hostname, port: addr.port };
  }

  /** True until {@link close} is called. */
  get listening(): boolean {
    return !this.#closed;
  }

  /** The current target (null: holding new connections). */
  get target(): ProxyUpstream {
    return copyUpstream(this.#target);
  }

  /** A snapshot of the counters and gauges. */
  get stats(): Readonly<ProxyStats> {
    return { ...this.#stats };
  }

  /**
   * Points new connections at `target` (null: hold them). When the target differs from the
   * current one, closes both sides of every proxied connection first, and connections being
   * connected to the old target are retried against the new one (or held).
   * Setting the same target again does nothing.
   *
   * @example
   * ```ts
   * declare const proxy: MasterProxy;
   * proxy.setTarget({ host: "127.0.0.12", port: 6379 }); // a failover: old connections close
   * ```
   */
  setTarget(target: ProxyUpstream): void {
    if (this.#closed) throw new Error("MasterProxy.setTarget: the proxy is closed");
    if (target !== null) checkUpstream("target", target);
    if (sameUpstream(target, this.#target)) return;
    const from = this.#target;
    this.#target = copyUpstream(target);
    this.#stats.targetChanges++;
    this.#targetAbort.abort();
    this.#targetAbort = new AbortController();
    const closed = this.#closeProxied();
    this.#stats.closedByTargetChange += closed;
    if (target !== null) {
      this.#targetReady.resolve();
    } else if (from !== null) {
      this.#targetReady = Promise.withResolvers<void>();
    }
    this.#emit({ kind: "target-change", from, to: this.target, closedConnections: closed });
  }

  /**
   * Stops listening, closes every connection (waiting ones too), and resolves once all of
   * them are closed. Idempotent.
   */
  close(): Promise<void> {
    if (this.#closing !== null) return this.#closing;
    this.#closed = true;
    try {
      this.#listener.close();
    } catch { /* already closed */ }
    this.#targetAbort.abort();
    this.#targetReady.resolve();
    this.#closeProxied();
    this.#closing = (async () => {
      await this.#acceptLoop;
      while (this.#tasks.size > 0) await Promise.all([...this.#tasks]);
    })();
    return this.#closing;
  }

  #closeProxied(): number {
    let closed = 0;
    for (const joined of this.#proxied) {
      if (!joined.closed) closed++;
      joined.close();
    }
    return closed;
  }

  #emit(event: ProxyEvent): void {
    try {
      this.#onEvent(event);
    } catch (e) {
      // A throwing log callback must not break the proxy; surface it loudly all the same.
      console.error("MasterProxy onEvent threw:", e);
    }
  }

  async #accept(): Promise<void> {
    while (!this.#closed) {
      let client: Deno.TcpConn;
      try {
        client = await this.#listener.accept();
      } catch (e) {
        if (this.#closed) return;
        this.#emit({ kind: "accept-error", error: String(e) });
        await new Promise((resolve) => setTimeout(resolve, PROXY_ACCEPT_RETRY_MS));
        continue;
      }
      this.#stats.total++;
      if (this.#closed) {
        closeQuietly(client);
        return;
      }
      if (this.#stats.active >= this.maxConnections) {
        this.#stats.refused++;
        closeQuietly(client);
        this.#emit({
          kind: "refused",
          openConnections: this.#stats.active,
          maxConnections: this.maxConnections,
        });
        continue;
      }
      this.#stats.active++;
      const task = this.#serve(client).finally(() => {
        this.#stats.active--;
        this.#tasks.delete(task);
      });
      this.#tasks.add(task);
    }
  }

  /** Waits for a target (bounded), connects upstream, then copies until either side ends. */
  async #serve(client: Deno.TcpConn): Promise<void> {
    const acceptedAt = Date.now();
    const holdDeadline = acceptedAt + this.holdMs;
    let counted = false;
    try {
      client.setNoDelay(true);
      client.setKeepAlive(true);
    } catch {
      closeQuietly(client); // the client is already gone
      return;
    }
    for (;;) {
      if (this.#closed) return closeQuietly(client);
      const target = this.#target;
      if (target === null) {
        if (!counted) {
          counted = true;
          this.#stats.held++;
        }
        if (!(await this.#waitForTarget(holdDeadline))) {
          if (this.#closed) return closeQuietly(client);
          this.#stats.holdTimeouts++;
          closeQuietly(client);
          this.#emit({ kind: "hold-timeout", heldMs: Date.now() - acceptedAt });
          return;
        }
        continue;
      }
      const abort = this.#targetAbort;
      let upstream: Deno.Conn;
      try {
        upstream = await this.#connect(target, abort.signal);
      } catch (e) {
        if (this.#closed) return closeQuietly(client);
        if (abort.signal.aborted) continue; // the target changed meanwhile: start over
        this.#stats.upstreamFailures++;
        closeQuietly(client);
        this.#emit({ kind: "upstream-failure", target, error: errorText(e) });
        return;
      }
      if (abort.signal.aborted || this.#closed) {
        closeQuietly(upstream); // connected to a target that is no longer current
        continue;
      }
      const joined = new ProxiedConnection(
        client,
        upstream,
        { idleBufferBytes: this.idleBufferBytes, pool: this.#pool },
        this.#toUpstream,
        this.#toClient,
      );
      this.#proxied.add(joined);
      this.#stats.proxied++;
      try {
        await joined.done;
      } finally {
        this.#proxied.delete(joined);
        this.#stats.proxied--;
      }
      return;
    }
  }

  /** True when a target is there (or the proxy closed), false when `deadline` passed first. */
  async #waitForTarget(deadline: number): Promise<boolean> {
    const remainingMs = deadline - Date.now();
    if (remainingMs <= 0) return false;
    this.#stats.waiting++;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      return await Promise.race([
        this.#targetReady.promise.then(() => true),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(false), remainingMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
      this.#stats.waiting--;
    }
  }

  /** Connects to `target`: TCP with no-delay and keepalive, or its Unix socket. */
  async #connect(
    target: TcpUpstream | UnixUpstream,
    targetChanged: AbortSignal,
  ): Promise<Deno.Conn> {
    const signal = AbortSignal.any([targetChanged, AbortSignal.timeout(this.connectTimeoutMs)]);
    if ("path" in target) return await connectUnix(target.path, signal);
    const upstream = await Deno.connect({ hostname: target.host, port: target.port, signal });
    try {
      upstream.setNoDelay(true);
      upstream.setKeepAlive(true);
    } catch (e) {
      closeQuietly(upstream);
      throw e;
    }
    return upstream;
  }
}

/**
 * `Deno.connect` to a Unix socket, which takes no abort signal: an abort rejects at once and
 * closes the connection should it complete later.
 */
async function connectUnix(path: string, signal: AbortSignal): Promise<Deno.Conn> {
  signal.throwIfAborted();
  const connecting = Deno.connect({ transport: "unix", path });
  const aborted = Promise.withResolvers<never>();
  const onAbort = () => aborted.reject(signal.reason);
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    return await Promise.race([connecting, aborted.promise]);
  } catch (e) {
    connecting.then(closeQuietly, () => {});
    throw e;
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

function errorText(e: unknown): string {
  if (e instanceof DOMException && e.name === "TimeoutError") return "connect timed out";
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
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
