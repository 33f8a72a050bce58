/**
 * The epoll proxy engine's loop, run in a Web Worker by lib/proxy/epoll/epoll_proxy.ts: non-blocking
 * sockets and one level-triggered epoll set, driven by libc calls through FFI (lib/proxy/epoll/libc.ts).
 * The worker blocks in `epoll_wait`, never in its own event loop: commands from the main thread
 * arrive through shared memory and an eventfd (lib/proxy/epoll/epoll_control.ts).
 *
 * Per connection pair, two flows (client → upstream, upstream → client). A readable source is
 * read into one shared scratch buffer of `bufferBytes` and written to its destination at once;
 * only what the destination does not take is copied into a pooled buffer of `bufferBytes`
 * (the flow's pending bytes), and the source is not read again until those are written: at most
 * `bufferBytes` per direction, and an idle connection holds no buffer at all.
 * End of stream from a source becomes `shutdown(SHUT_WR)` of its destination (half-close); the
 * pair closes when both flows ended, or at once on any error.
 *
 * Every worker of a proxy waits on the one listening socket the main thread opened
 * (`EPOLLEXCLUSIVE`: the kernel wakes one idle worker per connection, not all), and gives each
 * connection it accepts to the least-loaded worker (lib/proxy/epoll/epoll_handoff.ts): kept, or
 * queued for another and that worker woken through its eventfd. The receiving worker tunes
 * nothing more: the accepting one checked `maxConnections` and set the socket options.
 *
 * Protocol: the main thread posts one {@link EpollWorkerInit}; the worker answers
 * `{ kind: "listening" }` (or `{ kind: "error" }`) and runs until the "close" command. Before
 * "close", the main thread sends every worker "stop-accepting" (so no worker hands a connection
 * to one that is closing); "close" then closes the connections it owns and those still queued.
 *
 * @example
 * ```ts
 * // Started by EpollMasterProxy.listen, not directly:
 * const worker = new Worker(new URL("./epoll_worker.ts", import.meta.url), { type: "module" });
 * ```
 */

import { monotonicMs } from "../../common/clock.ts";
import {
  AF_UNIX,
  EAGAIN,
  EINPROGRESS,
  EINTR,
  EPOLL_CLOEXEC,
  EPOLL_CTL_ADD,
  EPOLL_CTL_DEL,
  EPOLL_CTL_MOD,
  EPOLL_EVENT_STRUCT_BYTES,
  EPOLLERR,
  EPOLLEXCLUSIVE,
  EPOLLHUP,
  EPOLLIN,
  EPOLLOUT,
  errno,
  errorText,
  IPPROTO_TCP,
  type Libc,
  libc,
  MSG_DONTWAIT,
  MSG_NOSIGNAL,
  resolveSocketAddress,
  SHUT_WR,
  SO_ERROR,
  SO_KEEPALIVE,
  SOCK_CLOEXEC,
  SOCK_NONBLOCK,
  SOCK_STREAM,
  type SocketAddress,
  SOL_SOCKET,
  TCP_NODELAY,
  unixSocketAddress,
} from "./libc.ts";
import { BufferPool } from "../buffer_pool.ts";
import { type EpollCommand, EpollControl, STAT } from "./epoll_control.ts";
import { EpollHandoff } from "./epoll_handoff.ts";
import {
  type ProxyEvent,
  type ProxyUpstream,
  type TcpUpstream,
  type UnixUpstream,
  UPSTREAM_RETRY_MS,
} from "../proxy_options.ts";

/** Most events taken from one `epoll_wait`. */
export const EPOLL_MAX_EVENTS = 256;
/** Most connections accepted per readiness of the listening socket (then others get a turn). */
export const EPOLL_ACCEPT_BATCH = 64;
/** Pause after a failed `accept` (out of file descriptors...) before accepting again. */
export const EPOLL_ACCEPT_RETRY_MS = 100;

/** The first message to the worker. */
export interface EpollWorkerInit {
  control: SharedArrayBuffer;
  /** The listening socket, opened by the main thread, shared by every worker (never closed here). */
  listener: number;
  /** This worker's index among the proxy's workers. */
  index: number;
  /**
   * Every worker's eventfd, by index (opened and closed by the main thread): a write wakes that
   * worker, for a command or a handed-off connection.
   */
  wakeFds: number[];
  /** The workers' shared load and hand-off queues (lib/proxy/epoll/epoll_handoff.ts). */
  handoff: SharedArrayBuffer;
  target: ProxyUpstream;
  holdMs: number;
  maxConnections: number;
  connectTimeoutMs: number;
  bufferBytes: number;
  /**
   * An `Int32Array(1)` shared by every worker of the proxy: open client connections over all
   * of them, so `maxConnections` bounds the proxy, not each worker.
   */
  openConnections: SharedArrayBuffer;
}

/** Messages from the worker. */
export type EpollWorkerMessage =
  | { kind: "listening" }
  | { kind: "error"; message: string }
  | { kind: "events" }
  | { kind: "crashed"; message: string }
  | { kind: "stopped" };

/** Accepted, neither waiting nor connecting yet. */
const ACCEPTED = -1;
const WAITING = 0;
const CONNECTING = 1;
const PROXIED = 2;
const CLOSED = 3;
/** A registered mask meaning "not in the epoll set". */
const UNREGISTERED = -1;

const ACTIVE = STAT.active;
const PROXIED_STAT = STAT.proxied;
const WAITING_STAT = STAT.waiting;
const BYTES_TO_UPSTREAM = STAT.bytesToUpstream;
const BYTES_TO_CLIENT = STAT.bytesToClient;
const BUFFERED = STAT.bufferedBytes;
const SEND_FLAGS = MSG_NOSIGNAL | MSG_DONTWAIT;

/** Bytes flowing one way: what the destination has not taken yet, and whether the source ended. */
class Flow {
  pending: Uint8Array | null = null;
  start = 0;
  end = 0;
  /** The source sent its FIN (and the destination was shut for writing). */
  ended = false;
}

/** A client connection and, once connected, its upstream. */
class Pair {
  state = ACCEPTED;
  upstream = -1;
  /** Registered epoll masks (UNREGISTERED: not in the set). */
  clientMask = UNREGISTERED;
  upstreamMask = UNREGISTERED;
  /** Counted in `held` already. */
  held = false;
  connectDeadline = 0;
  /** Waiting after a failed upstream connect: try the same target again at this time (0: no). */
  retryAt = 0;
  /** The last upstream connect error, reported if the hold runs out. */
  lastError = "";
  /** The target this pair connects (or is connected) to. */
  target: TcpUpstream | UnixUpstream | null = null;
  readonly toUpstream = new Flow();
  readonly toClient = new Flow();
  constructor(
    readonly client: number,
    readonly generation: number,
    readonly acceptedAt: number,
    readonly holdDeadline: number,
  ) {}
}

/** The proxy loop of one worker. */
class EpollLoop {
  readonly #c: Libc;
  readonly #control: EpollControl;
  readonly #stats: Float64Array;
  readonly #opts: EpollWorkerInit;
  readonly #pool: BufferPool;
  readonly #scratch: Uint8Array;
  readonly #scratchBytes: bigint;
  readonly #epoll: number;
  readonly #listener: number;
  readonly #wakeFd: number;
  readonly #index: number;
  readonly #handoff: EpollHandoff;
  /** Listening (false after "stop-accepting"). */
  #accepting = true;
  readonly #one = new Uint8Array(new Int32Array([1]).buffer);
  readonly #event = new Uint8Array(EPOLL_EVENT_STRUCT_BYTES);
  readonly #event32 = new Uint32Array(this.#event.buffer);
  /** Pairs by file descriptor (client and upstream). */
  readonly #byFd: (Pair | undefined)[] = [];
  /** Open client connections over every worker of the proxy (shared). */
  readonly #openConnections: Int32Array;
  readonly #open = new Set<Pair>();
  readonly #waiting = new Set<Pair>();
  readonly #connecting = new Set<Pair>();
  #generation = 0;
  #target: ProxyUpstream = null;
  #targetAddress: SocketAddress | null = null;
  #targetError = "";
  #acceptResumeAt = 0;
  #stopped = false;

  constructor(opts: EpollWorkerInit) {
    this.#c = libc();
    this.#opts = opts;
    this.#control = new EpollControl(opts.control);
    this.#stats = this.#control.statValues;
    this.#openConnections = new Int32Array(opts.openConnections);
    this.#pool = new BufferPool(opts.bufferBytes);
    this.#scratch = new Uint8Array(opts.bufferBytes);
    this.#scratchBytes = BigInt(opts.bufferBytes);
    this.#index = opts.index;
    this.#handoff = new EpollHandoff(opts.handoff, opts.wakeFds.length);
    const wakeFd = opts.wakeFds[opts.index];
    if (wakeFd === undefined) throw new Error(`EpollLoop: no eventfd for worker ${opts.index}`);
    this.#wakeFd = wakeFd;
    this.#listener = opts.listener;
    this.#epoll = this.#check("epoll_create1", this.#c.epoll_create1(EPOLL_CLOEXEC));
    try {
      this.#listen();
      this.#ctl(EPOLL_CTL_ADD, this.#wakeFd, 0, EPOLLIN);
    } catch (e) {
      this.#c.close(this.#epoll);
      throw e;
    }
    this.#useTarget(opts.target);
  }

  /** Waits on the shared listening socket (one idle worker is woken per connection). */
  #listen(): void {
    this.#ctl(EPOLL_CTL_ADD, this.#listener, 0, EPOLLIN | EPOLLEXCLUSIVE);
  }

  /** No longer waits on the listening socket (`EPOLLEXCLUSIVE` cannot be modified, only removed). */
  #unlisten(): void {
    this.#ctl(EPOLL_CTL_DEL, this.#listener, 0, 0);
  }

  /** Runs until the close command. */
  run(): void {
    const c = this.#c;
    const events = new Uint8Array(EPOLL_EVENT_STRUCT_BYTES * EPOLL_MAX_EVENTS);
    const events32 = new Uint32Array(events.buffer);
    const byFd = this.#byFd;
    while (!this.#stopped) {
      const timeoutMs = this.#nextTimeoutMs();
      const n = c.epoll_wait(this.#epoll, events, EPOLL_MAX_EVENTS, timeoutMs);
      if (n < 0) {
        const e = errno();
        if (e === EINTR) continue;
        throw new Error(`epoll_wait: ${errorText(e)}`);
      }
      for (let i = 0; i < n; i++) {
        const mask = events32[3 * i]!;
        const fd = events32[3 * i + 1]!;
        const generation = events32[3 * i + 2]!;
        const pair = byFd[fd];
        if (pair !== undefined && pair.generation === generation) {
          this.#onPairEvent(pair, fd, mask);
        } else if (generation === 0 && fd === this.#listener) {
          this.#accept();
        } else if (generation === 0 && fd === this.#wakeFd) {
          this.#onWake();
          if (this.#stopped) return;
        } // else: a stale event for a pair closed earlier in this batch
      }
      if (this.#waiting.size > 0 || this.#connecting.size > 0 || this.#acceptResumeAt !== 0) {
        this.#runTimers();
      }
    }
  }

  // ---- events ----

  #onPairEvent(p: Pair, fd: number, mask: number): void {
    if (p.state === CONNECTING) {
      if (fd === p.upstream) this.#finishConnect(p);
      return;
    }
    if (p.state !== PROXIED) return;
    if (mask & EPOLLERR) return this.#close(p);
    const isClient = fd === p.client;
    const inFlow = isClient ? p.toUpstream : p.toClient;
    const outFlow = isClient ? p.toClient : p.toUpstream;
    if (mask & EPOLLOUT && outFlow.pending !== null) {
      this.#flush(p, fd, outFlow, isClient ? BYTES_TO_CLIENT : BYTES_TO_UPSTREAM);
      if (p.state !== PROXIED) return;
    }
    if (mask & (EPOLLIN | EPOLLHUP)) {
      if (!inFlow.ended && inFlow.pending === null) {
        const to = isClient ? p.upstream : p.client;
        this.#read(p, fd, to, inFlow, isClient ? BYTES_TO_UPSTREAM : BYTES_TO_CLIENT);
      } else if (mask & EPOLLHUP) {
        this.#close(p); // reset by the peer while this side was not being read
      }
    }
  }

  /** Reads once from `from` and writes to `to` at once; keeps what `to` does not take. */
  #read(p: Pair, from: number, to: number, flow: Flow, bytesStat: number): void {
    const c = this.#c;
    const scratch = this.#scratch;
    const r = c.recv(from, scratch, this.#scratchBytes, MSG_DONTWAIT);
    if (r > 0) {
      let w = c.send(to, scratch, BigInt(r), SEND_FLAGS);
      if (w === r) {
        this.#stats[bytesStat]! += r;
        return;
      }
      if (w < 0) {
        if (errno() !== EAGAIN) return this.#close(p);
        w = 0;
      }
      this.#stats[bytesStat]! += w;
      const pending = this.#pool.take();
      pending.set(scratch.subarray(w, r));
      flow.pending = pending;
      flow.start = 0;
      flow.end = r - w;
      this.#stats[BUFFERED]! += r - w;
      return this.#refresh(p);
    }
    if (r === 0) {
      flow.ended = true;
      c.shutdown(to, SHUT_WR);
      return this.#refresh(p);
    }
    if (errno() !== EAGAIN) this.#close(p);
  }

  /** Writes a flow's pending bytes to `to`; once all are written, its source is read again. */
  #flush(p: Pair, to: number, flow: Flow, bytesStat: number): void {
    const pending = flow.pending;
    if (pending === null) throw new Error("EpollLoop.flush: nothing pending");
    const w = this.#c.send(
      to,
      pending.subarray(flow.start, flow.end),
      BigInt(flow.end - flow.start),
      SEND_FLAGS,
    );
    if (w < 0) {
      if (errno() !== EAGAIN) this.#close(p);
      return;
    }
    this.#stats[bytesStat]! += w;
    this.#stats[BUFFERED]! -= w;
    flow.start += w;
    if (flow.start === flow.end) {
      this.#pool.give(pending);
      flow.pending = null;
      flow.start = flow.end = 0;
      this.#refresh(p);
    }
  }

  /**
   * Re-registers both sockets of a proxied pair for what they can do now, or closes the pair
   * when both flows ended. A socket with nothing to do whose outgoing side is shut leaves the
   * epoll set (so its hang-up is not reported over and over).
   */
  #refresh(p: Pair): void {
    const up = p.toUpstream;
    const down = p.toClient;
    if (up.ended && down.ended) return this.#close(p);
    let clientMask = (up.ended || up.pending !== null ? 0 : EPOLLIN) |
      (down.pending !== null ? EPOLLOUT : 0);
    if (clientMask === 0 && down.ended) clientMask = UNREGISTERED;
    let upstreamMask = (down.ended || down.pending !== null ? 0 : EPOLLIN) |
      (up.pending !== null ? EPOLLOUT : 0);
    if (upstreamMask === 0 && up.ended) upstreamMask = UNREGISTERED;
    if (clientMask !== p.clientMask) {
      this.#register(p, p.client, p.clientMask, clientMask);
      p.clientMask = clientMask;
    }
    if (upstreamMask !== p.upstreamMask) {
      this.#register(p, p.upstream, p.upstreamMask, upstreamMask);
      p.upstreamMask = upstreamMask;
    }
  }

  #register(p: Pair, fd: number, from: number, to: number): void {
    if (to === UNREGISTERED) this.#ctl(EPOLL_CTL_DEL, fd, p.generation, 0);
    else this.#ctl(from === UNREGISTERED ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, p.generation, to);
  }

  // ---- accept, hold, connect ----

  #accept(): void {
    const c = this.#c;
    const stats = this.#stats;
    if (!this.#accepting || this.#acceptResumeAt !== 0) return; // an event from before
    for (let i = 0; i < EPOLL_ACCEPT_BATCH; i++) {
      const fd = c.accept4(this.#listener, null, null, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        const e = errno();
        if (e === EAGAIN) return;
        if (e === EINTR || e === ECONNABORTED) continue;
        this.#emit({ kind: "accept-error", error: `accept: ${errorText(e)}` });
        this.#unlisten();
        this.#acceptResumeAt = monotonicMs() + EPOLL_ACCEPT_RETRY_MS;
        return;
      }
      stats[STAT.total]!++;
      const open = Atomics.add(this.#openConnections, 0, 1);
      if (open >= this.#opts.maxConnections) {
        Atomics.sub(this.#openConnections, 0, 1);
        this.#emit({
          kind: "refused",
          openConnections: open,
          maxConnections: this.#opts.maxConnections,
        });
        stats[STAT.refused]!++;
        c.close(fd);
        continue;
      }
      if (!this.#tune(fd)) {
        Atomics.sub(this.#openConnections, 0, 1);
        c.close(fd); // the client is already gone
        continue;
      }
      const to = this.#handoff.assign(this.#index);
      if (to !== this.#index) {
        if (this.#handoff.push(to, fd)) {
          this.#wake(to);
          continue;
        }
        this.#handoff.unassign(to, this.#index); // its queue is full, or it is closing: keep it
      }
      this.#adopt(fd);
    }
  }

  /** Wakes worker `to` to take its handed-off connections. */
  #wake(to: number): void {
    // Fails only when its eventfd counter is near 2^64: it is awake already.
    this.#c.write(this.#opts.wakeFds[to]!, WAKE, 8n);
  }

  /** Serves an accepted, counted and tuned client connection this worker now owns. */
  #adopt(fd: number): void {
    this.#stats[ACTIVE]!++;
    const now = monotonicMs();
    this.#generation = this.#generation >= 0xffff_ffff ? 1 : this.#generation + 1;
    const p = new Pair(fd, this.#generation, now, now + this.#opts.holdMs);
    this.#byFd[fd] = p;
    this.#open.add(p);
    if (this.#target === null) this.#hold(p, now);
    else this.#connect(p);
  }

  /** No-delay and keepalive; false when the socket refuses them. */
  #tune(fd: number): boolean {
    const c = this.#c;
    return c.setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, this.#one, 4) === 0 &&
      c.setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, this.#one, 4) === 0;
  }

  #hold(p: Pair, now: number): void {
    if (!p.held) {
      p.held = true;
      this.#stats[STAT.held]!++;
    }
    if (now >= p.holdDeadline) return this.#holdTimeout(p, now);
    p.state = WAITING;
    this.#waiting.add(p);
    this.#stats[WAITING_STAT]!++;
  }

  #holdTimeout(p: Pair, now: number): void {
    if (p.lastError !== "" && p.target !== null) {
      // It waited after failed connects: the upstream failed, not the election.
      this.#emit({ kind: "upstream-failure", target: { ...p.target }, error: p.lastError });
      this.#stats[STAT.upstreamFailures]!++;
    } else {
      this.#emit({ kind: "hold-timeout", heldMs: now - p.acceptedAt });
      this.#stats[STAT.holdTimeouts]!++;
    }
    this.#close(p);
  }

  #connect(p: Pair): void {
    const c = this.#c;
    const target = this.#target;
    if (target === null) throw new Error("EpollLoop.connect: no target");
    if (p.state === WAITING) {
      this.#waiting.delete(p);
      this.#stats[WAITING_STAT]!--;
    }
    p.state = CONNECTING;
    p.retryAt = 0;
    p.target = target;
    const address = this.#targetAddress;
    if (address === null) return this.#upstreamFailure(p, this.#targetError);
    const fd = c.socket(address.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return this.#upstreamFailure(p, `socket: ${errorText(errno())}`);
    p.upstream = fd;
    this.#byFd[fd] = p;
    if (address.family !== AF_UNIX && !this.#tune(fd)) {
      return this.#upstreamFailure(p, `setsockopt: ${errorText(errno())}`);
    }
    if (c.connect(fd, address.bytes, address.bytes.length) === 0) return this.#joined(p);
    const e = errno();
    if (e !== EINPROGRESS) return this.#upstreamFailure(p, errorText(e));
    this.#ctl(EPOLL_CTL_ADD, fd, p.generation, EPOLLOUT);
    p.upstreamMask = EPOLLOUT;
    p.connectDeadline = monotonicMs() + this.#opts.connectTimeoutMs;
    this.#connecting.add(p);
  }

  #finishConnect(p: Pair): void {
    const error = new Int32Array(1);
    const length = new Uint32Array([4]);
    const failed = this.#c.getsockopt(
      p.upstream,
      SOL_SOCKET,
      SO_ERROR,
      new Uint8Array(error.buffer),
      new Uint8Array(length.buffer),
    );
    this.#connecting.delete(p);
    if (failed !== 0) return this.#upstreamFailure(p, `getsockopt: ${errorText(errno())}`);
    if (error[0] !== 0) return this.#upstreamFailure(p, errorText(error[0]!));
    this.#joined(p);
  }

  #joined(p: Pair): void {
    this.#connecting.delete(p);
    p.state = PROXIED;
    this.#stats[PROXIED_STAT]!++;
    this.#refresh(p);
  }

  #upstreamFailure(p: Pair, error: string): void {
    const now = monotonicMs();
    if (now < p.holdDeadline) {
      // The master just died (refused): hold the client, try again at the next target or
      // after a short pause.
      this.#connecting.delete(p);
      this.#closeUpstream(p);
      p.lastError = error;
      p.retryAt = Math.min(now + UPSTREAM_RETRY_MS, p.holdDeadline);
      this.#hold(p, now);
      return;
    }
    const target = p.target;
    if (target !== null) this.#emit({ kind: "upstream-failure", target: { ...target }, error });
    this.#stats[STAT.upstreamFailures]!++;
    this.#close(p);
  }

  /** Closes both sockets of a pair and forgets it. Idempotent. */
  #close(p: Pair): void {
    const c = this.#c;
    const stats = this.#stats;
    if (p.state === CLOSED) return;
    if (p.state === WAITING) {
      this.#waiting.delete(p);
      stats[WAITING_STAT]!--;
    } else if (p.state === CONNECTING) {
      this.#connecting.delete(p);
    } else if (p.state === PROXIED) {
      stats[PROXIED_STAT]!--;
    }
    for (const flow of [p.toUpstream, p.toClient]) {
      if (flow.pending === null) continue;
      stats[BUFFERED]! -= flow.end - flow.start;
      this.#pool.give(flow.pending);
      flow.pending = null;
    }
    this.#closeUpstream(p);
    this.#byFd[p.client] = undefined;
    c.close(p.client);
    p.state = CLOSED;
    this.#open.delete(p);
    stats[ACTIVE]!--;
    Atomics.sub(this.#openConnections, 0, 1);
    this.#handoff.release(this.#index);
  }

  #closeUpstream(p: Pair): void {
    if (p.upstream < 0) return;
    this.#byFd[p.upstream] = undefined;
    this.#c.close(p.upstream);
    p.upstream = -1;
    p.upstreamMask = UNREGISTERED;
  }

  // ---- timers ----

  #nextTimeoutMs(): number {
    if (this.#waiting.size === 0 && this.#connecting.size === 0 && this.#acceptResumeAt === 0) {
      return -1;
    }
    let next = Infinity;
    for (const p of this.#waiting) {
      next = Math.min(next, p.holdDeadline);
      if (p.retryAt !== 0 && this.#target !== null) next = Math.min(next, p.retryAt);
    }
    for (const p of this.#connecting) next = Math.min(next, p.connectDeadline);
    if (this.#acceptResumeAt !== 0) next = Math.min(next, this.#acceptResumeAt);
    return Math.max(0, Math.ceil(next - monotonicMs()));
  }

  #runTimers(): void {
    const now = monotonicMs();
    for (const p of [...this.#waiting]) {
      if (now >= p.holdDeadline) this.#holdTimeout(p, now);
      else if (p.retryAt !== 0 && now >= p.retryAt && this.#target !== null) this.#connect(p);
    }
    for (const p of this.#connecting) {
      if (now >= p.connectDeadline) this.#upstreamFailure(p, "connect timed out");
    }
    if (this.#acceptResumeAt !== 0 && now >= this.#acceptResumeAt) {
      this.#acceptResumeAt = 0;
      if (this.#accepting) this.#listen();
    }
  }

  // ---- commands ----

  #onWake(): void {
    this.#c.read(this.#wakeFd, new Uint8Array(8), 8n); // resets the eventfd
    for (;;) {
      const command = this.#control.takeCommand();
      if (command === null) break;
      this.#control.reply(this.#execute(command));
      if (this.#stopped) return;
    }
    for (let fd = this.#handoff.take(this.#index); fd >= 0; fd = this.#handoff.take(this.#index)) {
      this.#adopt(fd);
    }
  }

  #execute(command: EpollCommand): number {
    switch (command.op) {
      case "target":
        return this.#setTarget(command.target);
      case "stop-accepting":
        this.#stopAccepting();
        return 0;
      case "close":
        this.#stop();
        return 0;
    }
  }

  /** Accepts no more connections and takes no more from the other workers. Idempotent. */
  #stopAccepting(): void {
    if (!this.#accepting) return;
    this.#accepting = false;
    if (this.#acceptResumeAt === 0) this.#unlisten(); // else: out of the set already
    this.#acceptResumeAt = 0;
    this.#handoff.retire(this.#index);
  }

  /** Points new connections at `target`; returns how many proxied connections it closed. */
  #setTarget(target: ProxyUpstream): number {
    this.#useTarget(target);
    this.#stats[STAT.targetChanges]!++;
    let closed = 0;
    const now = monotonicMs();
    for (const p of [...this.#open]) {
      if (p.state === PROXIED) {
        this.#close(p);
        closed++;
      } else if (p.state === CONNECTING) {
        this.#connecting.delete(p);
        this.#closeUpstream(p);
        if (target === null) this.#hold(p, now);
        else this.#connect(p);
      } else if (p.state === WAITING && target !== null) {
        this.#connect(p);
      }
    }
    this.#stats[STAT.closedByTargetChange]! += closed;
    return closed;
  }

  /** Resolves `target` once (a failure is reported by every connect until the next target). */
  #useTarget(target: ProxyUpstream): void {
    this.#target = target;
    this.#targetAddress = null;
    this.#targetError = "";
    if (target === null) return;
    try {
      this.#targetAddress = "path" in target
        ? unixSocketAddress(target.path)
        : resolveSocketAddress(target.host, target.port);
    } catch (e) {
      this.#targetError = e instanceof Error ? e.message : String(e);
    }
  }

  #stop(): void {
    this.#stopAccepting();
    for (const p of [...this.#open]) this.#close(p);
    // Handed to this worker and not yet served: close them too.
    for (let fd = this.#handoff.take(this.#index); fd >= 0; fd = this.#handoff.take(this.#index)) {
      this.#c.close(fd);
      Atomics.sub(this.#openConnections, 0, 1);
      this.#handoff.release(this.#index);
    }
    this.#stopped = true;
  }

  /**
   * Closes the epoll set, and after a crash every socket this worker owns. The listening socket
   * and the eventfds are the main thread's: it closes them once every worker stopped.
   */
  release(): void {
    const c = this.#c;
    if (!this.#stopped) {
      for (const p of this.#open) {
        c.close(p.client);
        if (p.upstream >= 0) c.close(p.upstream);
      }
    }
    c.close(this.#epoll);
  }

  // ---- helpers ----

  #ctl(op: number, fd: number, generation: number, mask: number): void {
    this.#event32[0] = mask;
    this.#event32[1] = fd;
    this.#event32[2] = generation;
    this.#check("epoll_ctl", this.#c.epoll_ctl(this.#epoll, op, fd, this.#event));
  }

  #check(what: string, result: number): number {
    if (result < 0) throw new Error(`${what}: ${errorText(errno())}`);
    return result;
  }

  /**
   * Posts an event. Called before the counter that goes with it changes and before the client is
   * closed: the main thread reads the stats first and then drains the events, so it never sees
   * a counter without its event.
   */
  #emit(event: ProxyEvent): void {
    this.#control.postEvent(event);
    post({ kind: "events" });
  }
}

/** Software caused connection abort (accept: the client left before being accepted). */
const ECONNABORTED = 103;
/** The 8 bytes written to a worker's eventfd to wake it (a u64 1). */
const WAKE = new Uint8Array(new BigUint64Array([1n]).buffer);

interface WorkerScope {
  onmessage: ((event: MessageEvent<EpollWorkerInit>) => void) | null;
  postMessage(message: EpollWorkerMessage): void;
  close(): void;
}
const scope = self as unknown as WorkerScope;

function post(message: EpollWorkerMessage): void {
  scope.postMessage(message);
}

scope.onmessage = (event) => {
  scope.onmessage = null;
  let loop: EpollLoop;
  try {
    loop = new EpollLoop(event.data);
  } catch (e) {
    post({ kind: "error", message: e instanceof Error ? e.message : String(e) });
    scope.close();
    return;
  }
  post({ kind: "listening" });
  let outcome: EpollWorkerMessage = { kind: "stopped" };
  try {
    loop.run();
  } catch (e) {
    outcome = { kind: "crashed", message: e instanceof Error ? (e.stack ?? e.message) : String(e) };
  } finally {
    loop.release();
    post(outcome);
    scope.close();
  }
};
