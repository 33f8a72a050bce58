/**
 * The master proxy: every client TCP connection on the proxy port is forwarded, byte for byte
 * (no RESP parsing), to the current master redis, the {@link ProxyUpstream} the daemon sets.
 *
 * - Every change of target closes both sides of every proxied connection, so clients reconnect
 *   to the new master and nothing more reaches a demoted redis.
 * - With no target (`null`: no master known), new connections wait up to `holdMs` for one, then
 *   close (counted in `holdTimeouts`); nothing is read from a waiting client.
 * - Past `maxConnections` open client connections, new ones are closed at once (`refused`).
 * - A new connection whose upstream connect fails (the master just died) is held, not reset:
 *   it tries again at the next target, or the same one every {@link UPSTREAM_RETRY_MS}, until
 *   `holdMs` after it was accepted; only then is the client closed (`upstreamFailures`, and an
 *   `upstream-failure` event for the log).
 * - No-delay and TCP keepalive on both sides; half-close forwarded; at most `bufferBytes` in
 *   flight per direction per connection (see {@link pump}).
 *
 * Built on `Deno.listen`/`Deno.connect` with a read/write loop: measured against `node:net`
 * `pipe()` and `pipeTo`, it spends the least CPU per request (docs/benchmarks.md).
 *
 * @example
 * ```ts
 * import { MasterProxy } from "./deno_proxy.ts";
 * const proxy = await MasterProxy.listen({
 *   bind: { host: "127.0.0.1", port: 6380 },
 *   onEvent: (e) => console.log(e),
 * });
 * proxy.setTarget({ host: "127.0.0.11", port: 6379 }); // the leader's redis
 * proxy.setTarget(null); // election in progress: hold new connections
 * await proxy.close();
 * ```
 */

import { monotonicMs } from "../../common/clock.ts";
import {
  checkUpstream,
  copyUpstream,
  PROXY_ACCEPT_RETRY_MS,
  type ProxyEvent,
  type ProxyHandle,
  type ProxyOptions,
  type ProxyStats,
  type ProxyUpstream,
  resolveProxyOptions,
  sameUpstream,
  type TcpUpstream,
  type UnixUpstream,
  UPSTREAM_RETRY_MS,
} from "../proxy_options.ts";

/** The component named in this engine's errors. */
const WHO = "MasterProxy";
import { BufferPool } from "../buffer_pool.ts";
import { closeQuietly, ProxiedConnection } from "./proxied_connection.ts";
import type { PumpMeter } from "./pump.ts";

/** Listens on a TCP port and forwards every connection to the current {@link ProxyUpstream}. */
export class MasterProxy implements ProxyHandle {
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
    const o = resolveProxyOptions(WHO, opts);
    this.holdMs = o.holdMs;
    this.maxConnections = o.maxConnections;
    this.connectTimeoutMs = o.connectTimeoutMs;
    this.bufferBytes = o.bufferBytes;
    this.idleBufferBytes = o.idleBufferBytes;
    this.#pool = new BufferPool(this.bufferBytes);
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
    this.#listener = Deno.listen({ hostname: o.bind.host, port: o.bind.port });
    this.#target = o.target;
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
    if (target !== null) checkUpstream(WHO, "target", target);
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
    const acceptedAt = monotonicMs();
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
          this.#emit({ kind: "hold-timeout", heldMs: monotonicMs() - acceptedAt });
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
        const remainingMs = holdDeadline - monotonicMs();
        if (remainingMs > 0) {
          // The master just died (refused): hold the client, try again at the next target or
          // after a short pause.
          if (!counted) {
            counted = true;
            this.#stats.held++;
          }
          await this.#pauseUnlessRetargeted(abort.signal, Math.min(UPSTREAM_RETRY_MS, remainingMs));
          continue;
        }
        this.#stats.upstreamFailures++;
        closeQuietly(client);
        this.#emit({ kind: "upstream-failure", target, error: errorText(e) });
        return;
      }
      if (abort.signal.aborted || this.#closed) {
        closeQuietly(upstream); // connected to a target that is no longer current
        continue;
      }
      return await this.#pipe(client, upstream);
    }
  }

  /** Copies between a client and its upstream until either side ends. */
  async #pipe(client: Deno.TcpConn, upstream: Deno.Conn): Promise<void> {
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
  }

  /** Resolves after `ms`, or at once when `retargeted` aborts (the target changed). */
  async #pauseUnlessRetargeted(retargeted: AbortSignal, ms: number): Promise<void> {
    if (retargeted.aborted) return;
    this.#stats.waiting++;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let onAbort: (() => void) | undefined;
    try {
      await new Promise<void>((resolve) => {
        onAbort = resolve;
        timer = setTimeout(resolve, ms);
        retargeted.addEventListener("abort", onAbort, { once: true });
      });
    } finally {
      clearTimeout(timer);
      if (onAbort !== undefined) retargeted.removeEventListener("abort", onAbort);
      this.#stats.waiting--;
    }
  }

  /** True when a target is there (or the proxy closed), false when `deadline` passed first. */
  async #waitForTarget(deadline: number): Promise<boolean> {
    const remainingMs = deadline - monotonicMs();
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
