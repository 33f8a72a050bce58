/**
 * The master proxy's epoll engine: the same behaviour and API as `MasterProxy` (same
 * {@link ProxyOptions}, `setTarget`, `stats`, `close`, events), with the byte copying done by
 * non-blocking sockets and epoll through libc FFI calls (lib/proxy/epoll/libc.ts) in Web Workers
 * (lib/proxy/epoll/epoll_worker.ts), so the blocking `epoll_wait` never blocks this thread's event
 * loop. Measured at less CPU per request than the Deno read/write loop (docs/benchmarks.md).
 *
 `workers` worker threads (by default one per CPU the process may use,
 * lib/proxy/proxy_workers.ts) serve the port, each with its own epoll set. This thread opens one
 * listening socket and every worker waits on it (`EPOLLEXCLUSIVE`: one idle worker is woken
 * per connection); the worker that accepts a connection gives it to the least-loaded worker
 * (lib/proxy/epoll/epoll_handoff.ts), where it stays: connections are spread evenly, at most
 * one apart, whatever the clients' addresses and timing (`activeByWorker`). `maxConnections`
 * counts over all workers (a shared counter); `setTarget` and `close` are applied by every
 * worker, in turn, before they return.
 *
 * Needs `--allow-ffi` (libc is opened in this thread to wake the worker, and in the worker),
 * x86_64 Linux with glibc. Differences from the Deno engine, none visible to clients:
 * - `setTarget` blocks this thread until the worker has applied the change (microseconds; a
 *   target given as a host name rather than an IP is resolved there with `getaddrinfo`, once
 *   per change, so a slow resolver blocks up to {@link EPOLL_CALL_TIMEOUT_MS});
 * - an idle connection holds no buffer at all (`idleBufferBytes` is validated and ignored);
 * - events raised in the worker reach `onEvent` asynchronously, or at the latest when `stats`
 *   is read (so a counter is never seen before its event);
 * - if the worker crashes (a bug), the error is reported with `reportError`, which ends the
 *   process unless handled: a proxy that silently stopped forwarding would be worse.
 *
 * @example
 * ```ts
 * import { EpollMasterProxy } from "./epoll_proxy.ts";
 * const proxy = await EpollMasterProxy.listen({ bind: { host: "127.0.0.1", port: 6380 } });
 * proxy.setTarget({ host: "127.0.0.11", port: 6379 });
 * await proxy.close();
 * ```
 */

import {
  AF_INET6,
  EFD_NONBLOCK,
  EPOLL_CLOEXEC,
  errno,
  errorText,
  libc,
  resolveSocketAddress,
  SO_REUSEADDR,
  SOCK_CLOEXEC,
  SOCK_NONBLOCK,
  SOCK_STREAM,
  socketAddressPort,
  SOL_SOCKET,
} from "./libc.ts";
import type {
  ProxyEvent,
  ProxyHandle,
  ProxyOptions,
  ProxyStats,
  ProxyUpstream,
} from "../proxy_options.ts";
import {
  checkUpstream,
  copyUpstream,
  resolveProxyOptions,
  sameUpstream,
} from "../proxy_options.ts";
import { type EpollCommand, EpollControl, STAT_FIELDS } from "./epoll_control.ts";
import { EpollHandoff } from "./epoll_handoff.ts";
import type { EpollWorkerInit, EpollWorkerMessage } from "./epoll_worker.ts";

/** Longest wait for the worker to apply a command (or to start, or to stop). */
export const EPOLL_CALL_TIMEOUT_MS = 10_000;
/** `listen` backlog of the proxy socket. */
export const EPOLL_LISTEN_BACKLOG = 1024;

/** The component named in this engine's errors. */
const WHO = "EpollMasterProxy";

const WORKER_URL = new URL("./epoll_worker.ts", import.meta.url);
/** The 8 bytes written to the worker's eventfd to wake it (a u64 1). */
const WAKE = new Uint8Array(new BigUint64Array([1n]).buffer);

/** `MasterProxy`'s public API, served by an epoll loop in a worker. */
export class EpollMasterProxy implements ProxyHandle {
  /** Most bytes in flight per direction per connection. */
  readonly bufferBytes: number;
  /** Validated for compatibility; this engine holds no buffer for an idle connection. */
  readonly idleBufferBytes: number;
  /** The options' `holdMs`. */
  readonly holdMs: number;
  /** The options' `maxConnections`. */
  readonly maxConnections: number;
  /** The options' `connectTimeoutMs`. */
  readonly connectTimeoutMs: number;

  /** How many worker threads serve the port. */
  readonly workers: number;

  readonly #workers: StartedWorker[];
  readonly #listener: number;
  readonly #host: string;
  readonly #port: number;
  readonly #onEvent: (event: ProxyEvent) => void;
  #target: ProxyUpstream;
  #closing: Promise<void> | null = null;
  #crash: string | null = null;

  /**
   * Starts the worker and listens on `opts.bind`. Throws a clear error for bad options, and
   * the listen error (address in use...) with the errno text.
   *
   * @example
   * ```ts
   * const proxy = await EpollMasterProxy.listen({ bind: { host: "0.0.0.0", port: 6380 } });
   * ```
   */
  static async listen(opts: ProxyOptions): Promise<EpollMasterProxy> {
    const {
      holdMs,
      maxConnections,
      connectTimeoutMs,
      bufferBytes,
      idleBufferBytes,
      target,
      workers: workerCount,
    } = resolveProxyOptions(WHO, opts, "epoll");
    const c = libc(); // fails here, clearly, without --allow-ffi or off x86_64 Linux

    const { fd: listener, port } = listenSocket(opts.bind.host, opts.bind.port);
    const wakeFds: number[] = [];
    const openConnections = new SharedArrayBuffer(4);
    const handoff = EpollHandoff.allocate(workerCount);
    const started: StartedWorker[] = [];
    let proxy: EpollMasterProxy | null = null;
    try {
      openWakeFds(c, workerCount, wakeFds);
      for (let i = 0; i < workerCount; i++) {
        const worker = await startWorker(
          {
            control: EpollControl.allocate(),
            listener,
            index: i,
            wakeFds,
            handoff,
            target,
            holdMs,
            maxConnections,
            connectTimeoutMs,
            bufferBytes,
            openConnections,
          },
          wakeFds[i]!,
          {
            events: () => {
              if (proxy !== null) proxy.#drainEvents();
            },
            crashed: (message) => {
              if (proxy !== null) proxy.#crashed(message);
            },
          },
        );
        started.push(worker);
      }
    } catch (e) {
      await stopStartedWorkers(started);
      for (const fd of [listener, ...wakeFds]) c.close(fd);
      throw e;
    }
    proxy = new EpollMasterProxy({
      workers: started,
      listener,
      host: opts.bind.host,
      port,
      onEvent: opts.onEvent ?? (() => {}),
      target,
      settings: { bufferBytes, idleBufferBytes, holdMs, maxConnections, connectTimeoutMs },
    });
    return proxy;
  }

  private constructor(parts: {
    workers: StartedWorker[];
    listener: number;
    host: string;
    port: number;
    onEvent: (event: ProxyEvent) => void;
    target: ProxyUpstream;
    settings: {
      bufferBytes: number;
      idleBufferBytes: number;
      holdMs: number;
      maxConnections: number;
      connectTimeoutMs: number;
    };
  }) {
    this.#workers = parts.workers;
    this.#listener = parts.listener;
    this.workers = parts.workers.length;
    this.#host = parts.host;
    this.#port = parts.port;
    this.#onEvent = parts.onEvent;
    this.#target = parts.target;
    this.bufferBytes = parts.settings.bufferBytes;
    this.idleBufferBytes = parts.settings.idleBufferBytes;
    this.holdMs = parts.settings.holdMs;
    this.maxConnections = parts.settings.maxConnections;
    this.connectTimeoutMs = parts.settings.connectTimeoutMs;
  }

  /** The address actually listened on (the real port when `bind.port` was 0). */
  get address(): { host: string; port: number } {
    return { host: this.#host, port: this.#port };
  }

  /** True until {@link close} is called. */
  get listening(): boolean {
    return this.#closing === null;
  }

  /** The current target (null: holding new connections). */
  get target(): ProxyUpstream {
    return copyUpstream(this.#target);
  }

  /** Open client connections of each worker thread (how they were spread over the workers). */
  get activeByWorker(): number[] {
    return this.#workers.map((w) => w.control.stats.active);
  }

  /** A snapshot of the counters and gauges (also delivering the worker's pending events). */
  get stats(): Readonly<ProxyStats> {
    // First the counters, then the events: a worker posts each event before its counter.
    const stats = this.#workers[0]!.control.stats;
    for (const w of this.#workers.slice(1)) {
      const more = w.control.stats;
      for (const field of STAT_FIELDS) {
        // Every worker applies every target change: count it once.
        if (field !== "targetChanges") stats[field] += more[field];
      }
    }
    this.#drainEvents();
    return stats;
  }

  /**
   * Points new connections at `target` (null: hold them), as `MasterProxy.setTarget`:
   * returns once the worker closed both sides of every proxied connection.
   *
   * @example
   * ```ts
   * declare const proxy: EpollMasterProxy;
   * proxy.setTarget({ host: "127.0.0.12", port: 6379 });
   * ```
   */
  setTarget(target: ProxyUpstream): void {
    if (this.#closing !== null) throw new Error("MasterProxy.setTarget: the proxy is closed");
    if (target !== null) checkUpstream(WHO, "target", target);
    if (sameUpstream(target, this.#target)) return;
    const from = this.#target;
    this.#target = copyUpstream(target);
    let closed = 0;
    for (const w of this.#workers) closed += this.#call(w, { op: "target", target: this.#target });
    this.#drainEvents();
    this.#emit({ kind: "target-change", from, to: this.target, closedConnections: closed });
  }

  /**
   * Stops listening, closes every connection, stops the worker. Idempotent.
   *
   * @example
   * ```ts
   * declare const proxy: EpollMasterProxy;
   * await proxy.close();
   * ```
   */
  close(): Promise<void> {
    if (this.#closing !== null) return this.#closing;
    let stopping: Promise<unknown> = Promise.resolve();
    const crashed = this.#crash !== null;
    if (!crashed) {
      // First no worker accepts (or hands a connection to another), then each closes its own.
      for (const w of this.#workers) this.#call(w, { op: "stop-accepting" });
      for (const w of this.#workers) this.#call(w, { op: "close" });
      stopping = Promise.all(this.#workers.map((w) => withTimeout(w.stopped, "stop")));
    }
    this.#drainEvents();
    this.#closing = stopping.then(() => {
      // Every worker stopped: none uses the listening socket or an eventfd any more. (After a
      // crash they stay open: a live worker may still use them, and the process is ending.)
      if (crashed || this.#crash !== null) return;
      const c = libc();
      c.close(this.#listener);
      for (const w of this.#workers) c.close(w.wakeFd);
    }).finally(() => {
      for (const w of this.#workers) w.worker.terminate();
    });
    return this.#closing;
  }

  #call(w: StartedWorker, command: EpollCommand): number {
    if (this.#crash !== null) throw new Error(`epoll proxy worker crashed: ${this.#crash}`);
    return callWorker(w, command);
  }

  #drainEvents(): void {
    for (const w of this.#workers) {
      for (const event of w.control.drainEvents()) this.#emit(event);
    }
  }

  #emit(event: ProxyEvent): void {
    try {
      this.#onEvent(event);
    } catch (e) {
      console.error("MasterProxy onEvent threw:", e);
    }
  }

  #crashed(message: string): void {
    if (this.#crash !== null) return;
    this.#crash = message;
    reportError(new Error(`epoll proxy worker crashed: ${message}`));
  }
}

/** One running worker: its thread, shared memory and eventfd. */
interface StartedWorker {
  worker: Worker;
  control: EpollControl;
  wakeFd: number;
  /** Resolves when the worker stopped (or crashed). */
  stopped: Promise<void>;
}

/** Posts `command` to a running worker, wakes it, and returns its reply (blocking, bounded). */
function callWorker(w: StartedWorker, command: EpollCommand): number {
  return w.control.call(command, () => {
    if (libc().write(w.wakeFd, WAKE, BigInt(WAKE.length)) !== WAKE.length) {
      throw new Error("EpollMasterProxy: cannot wake the worker");
    }
  }, EPOLL_CALL_TIMEOUT_MS);
}

/** Stops a running worker by its close command, then ends its thread. */
async function stopWorker(w: StartedWorker): Promise<void> {
  try {
    callWorker(w, { op: "close" });
    await withTimeout(w.stopped, "stop");
  } finally {
    w.worker.terminate();
  }
}

/** Starts one worker and waits until it listens (or reports why it cannot). */
async function startWorker(
  init: EpollWorkerInit,
  wakeFd: number,
  on: { events: () => void; crashed: (message: string) => void },
): Promise<StartedWorker> {
  const worker = new Worker(WORKER_URL, { type: "module" });
  const started = Promise.withResolvers<void>();
  const stopped = Promise.withResolvers<void>();
  const crashed = (message: string) => {
    started.reject(new Error(`epoll proxy worker: ${message}`));
    stopped.resolve();
    on.crashed(message);
  };
  worker.onmessage = (event: MessageEvent<EpollWorkerMessage>) => {
    const message = event.data;
    switch (message.kind) {
      case "listening":
        return started.resolve();
      case "error":
        started.reject(new Error(`EpollMasterProxy: ${message.message}`));
        return stopped.resolve();
      case "events":
        return on.events();
      case "crashed":
        return crashed(message.message);
      case "stopped":
        return stopped.resolve();
    }
  };
  worker.onerror = (event) => {
    event.preventDefault();
    crashed(event.message);
  };
  worker.postMessage(init);
  try {
    await withTimeout(started.promise, "start");
    return { worker, control: new EpollControl(init.control), wakeFd, stopped: stopped.promise };
  } catch (e) {
    worker.terminate();
    throw e;
  }
}

/**
 * Opens the proxy's listening socket (non-blocking, `SO_REUSEADDR`), bound to `host:port` (port
 * 0: any free one); returns it and the port. Throws the errno text ("Address already in use").
 */
function listenSocket(host: string, port: number): { fd: number; port: number } {
  const c = libc();
  const address = resolveSocketAddress(host, port);
  const check = (what: string, result: number): number => {
    if (result < 0) throw new Error(`${WHO}: ${what}: ${errorText(errno())}`);
    return result;
  };
  const fd = check(
    "socket",
    c.socket(address.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0),
  );
  try {
    check("setsockopt", c.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, ONE, 4));
    check(`bind ${host}:${port}`, c.bind(fd, address.bytes, address.bytes.length));
    check("listen", c.listen(fd, EPOLL_LISTEN_BACKLOG));
    const name = new Uint8Array(address.family === AF_INET6 ? 28 : 16);
    const nameLength = new Uint32Array([name.length]);
    check("getsockname", c.getsockname(fd, name, new Uint8Array(nameLength.buffer)));
    return { fd, port: socketAddressPort(name) };
  } catch (e) {
    c.close(fd);
    throw e;
  }
}

/** An int 1, for `setsockopt`. */
const ONE = new Uint8Array(new Int32Array([1]).buffer);

async function withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new Error(`epoll proxy worker did not ${what} within ${EPOLL_CALL_TIMEOUT_MS} ms`),
            ),
          EPOLL_CALL_TIMEOUT_MS,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Opens one eventfd per worker (the hand-off's wake-up), appending each to `into` as it opens, so
 * the caller can close the ones opened before a failure.
 */
function openWakeFds(c: ReturnType<typeof libc>, count: number, into: number[]): void {
  for (let i = 0; i < count; i++) {
    const fd = c.eventfd(0, EFD_NONBLOCK | EPOLL_CLOEXEC);
    if (fd < 0) throw new Error(`${WHO}: eventfd: ${errorText(errno())}`);
    into.push(fd);
  }
}

/**
 * Stops the workers of a failed start. A worker that started blocks in epoll_wait, where
 * terminate() cannot reach it: it is told to stop accepting first, or it would keep accepting on
 * the port.
 */
async function stopStartedWorkers(started: readonly StartedWorker[]): Promise<void> {
  for (const w of started) {
    try {
      callWorker(w, { op: "stop-accepting" });
    } catch { /* stopWorker below ends it anyway */ }
  }
  await Promise.allSettled(started.map((w) => stopWorker(w)));
}
