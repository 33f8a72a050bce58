/**
 * How the epoll engine's workers share one listening socket and spread its connections: shared
 * memory (one `SharedArrayBuffer`, every worker of a proxy holds a view) with, per worker, the
 * number of client connections it owns (its load), whether it still takes connections, and a
 * bounded queue of accepted sockets handed to it by the others.
 *
 * Whichever worker accepts a connection (the kernel wakes one idle worker, `EPOLLEXCLUSIVE`)
 * gives it to the least-loaded worker that still takes connections ({@link EpollHandoff.assign};
 * a tie stays with the accepting worker, else goes to the lowest index), as HAProxy's threads
 * do with their shared listener. So a burst of connections is spread evenly (at most one apart)
 * whatever the timing, where `SO_REUSEPORT`'s hash of the client's address put 17 of 50
 * connections on one worker and 33 on the other (docs/benchmarks.md). A worker whose queue is
 * full ({@link EPOLL_HANDOFF_SLOTS}) or that stopped taking connections is skipped.
 *
 * Shared-memory only: no sockets, no timers. The queues are guarded by a spin lock per worker
 * (held for a few array writes); the wake-up of the receiving worker (its eventfd) is the
 * caller's.
 *
 * @example
 * ```ts
 * import { EpollHandoff } from "./epoll_handoff.ts";
 * const shared = EpollHandoff.allocate(2);
 * const w0 = new EpollHandoff(shared, 2);
 * w0.assign(0); // 0: a tie stays with the accepting worker
 * w0.assign(0); // 1: worker 1 owns fewer connections
 * w0.push(1, 42); // true: fd 42 waits in worker 1's queue
 * new EpollHandoff(shared, 2).take(1); // 42
 * ```
 */

/** Most accepted sockets waiting in one worker's queue; past it the accepting worker keeps them. */
export const EPOLL_HANDOFF_SLOTS = 1024;

/** Int32 slots per worker: load, taking (1/0), lock, queue head, queued count, then the queue. */
const HEADER_INTS = 5;
const LOAD = 0;
const TAKING = 1;
const LOCK = 2;
const HEAD = 3;
const COUNT = 4;
const WORKER_INTS = HEADER_INTS + EPOLL_HANDOFF_SLOTS;

/** The shared state of one proxy's workers, seen from one thread. */
export class EpollHandoff {
  readonly #ints: Int32Array;
  /** How many workers share it. */
  readonly workers: number;

  /**
   * A zeroed buffer for `workers` workers, each taking connections.
   *
   * @example
   * ```ts
   * const shared = EpollHandoff.allocate(4);
   * ```
   */
  static allocate(workers: number): SharedArrayBuffer {
    if (!Number.isInteger(workers) || workers < 1) {
      throw new RangeError(`EpollHandoff: workers must be a positive integer, got ${workers}`);
    }
    const buffer = new SharedArrayBuffer(workers * WORKER_INTS * 4);
    const ints = new Int32Array(buffer);
    for (let i = 0; i < workers; i++) ints[i * WORKER_INTS + TAKING] = 1;
    return buffer;
  }

  /**
   * A view of `buffer` (from {@link allocate} with the same `workers`).
   *
   * @example
   * ```ts
   * const view = new EpollHandoff(EpollHandoff.allocate(2), 2);
   * ```
   */
  constructor(buffer: SharedArrayBuffer, workers: number) {
    if (buffer.byteLength !== workers * WORKER_INTS * 4) {
      throw new RangeError(
        `EpollHandoff: expected ${workers * WORKER_INTS * 4} bytes for ${workers} workers, ` +
          `got ${buffer.byteLength}`,
      );
    }
    this.#ints = new Int32Array(buffer);
    this.workers = workers;
  }

  /**
   * The worker a connection accepted by worker `self` goes to: the one owning the fewest
   * connections among those still taking them (`self` on a tie, else the lowest index; `self`
   * when none takes them). Counts the connection in that worker's load at once, so the next
   * call sees it.
   *
   * @example
   * ```ts
   * const h = new EpollHandoff(EpollHandoff.allocate(2), 2);
   * [h.assign(1), h.assign(1), h.assign(1)]; // [1, 0, 1]
   * ```
   */
  assign(self: number): number {
    this.#check(self);
    const ints = this.#ints;
    let best = self;
    let bestLoad = Atomics.load(ints, self * WORKER_INTS + TAKING) === 1
      ? Atomics.load(ints, self * WORKER_INTS + LOAD)
      : Infinity;
    for (let i = 0; i < this.workers; i++) {
      if (i === self || Atomics.load(ints, i * WORKER_INTS + TAKING) !== 1) continue;
      const load = Atomics.load(ints, i * WORKER_INTS + LOAD);
      if (load < bestLoad) {
        best = i;
        bestLoad = load;
      }
    }
    Atomics.add(ints, best * WORKER_INTS + LOAD, 1);
    return best;
  }

  /**
   * Moves one connection of `from`'s load to `to`'s (a hand-off that could not be queued stays
   * with the accepting worker).
   *
   * @example
   * ```ts
   * const h = new EpollHandoff(EpollHandoff.allocate(2), 2);
   * h.unassign(1, 0);
   * ```
   */
  unassign(from: number, to: number): void {
    this.#check(from);
    this.#check(to);
    Atomics.sub(this.#ints, from * WORKER_INTS + LOAD, 1);
    Atomics.add(this.#ints, to * WORKER_INTS + LOAD, 1);
  }

  /**
   * Worker `self` closed one of its connections.
   *
   * @example
   * ```ts
   * const h = new EpollHandoff(EpollHandoff.allocate(1), 1);
   * h.assign(0);
   * h.release(0); // h.load(0) === 0
   * ```
   */
  release(self: number): void {
    this.#check(self);
    Atomics.sub(this.#ints, self * WORKER_INTS + LOAD, 1);
  }

  /**
   * The connections worker `i` owns (assigned and not yet closed).
   *
   * @example
   * ```ts
   * new EpollHandoff(EpollHandoff.allocate(2), 2).load(1); // 0
   * ```
   */
  load(i: number): number {
    this.#check(i);
    return Atomics.load(this.#ints, i * WORKER_INTS + LOAD);
  }

  /**
   * Worker `self` takes no more connections: {@link assign} skips it from now on, and
   * {@link push} to it fails. Call {@link take} afterwards to empty its queue.
   *
   * @example
   * ```ts
   * const h = new EpollHandoff(EpollHandoff.allocate(2), 2);
   * h.retire(1);
   * h.assign(0); // 0
   * ```
   */
  retire(self: number): void {
    this.#check(self);
    const base = self * WORKER_INTS;
    this.#lock(base);
    Atomics.store(this.#ints, base + TAKING, 0);
    this.#unlock(base);
  }

  /**
   * Queues the accepted socket `fd` for worker `to`; false when its queue is full or it no longer
   * takes connections (the caller keeps the socket).
   *
   * @example
   * ```ts
   * const h = new EpollHandoff(EpollHandoff.allocate(2), 2);
   * h.push(1, 17); // true
   * ```
   */
  push(to: number, fd: number): boolean {
    this.#check(to);
    const ints = this.#ints;
    const base = to * WORKER_INTS;
    this.#lock(base);
    try {
      if (ints[base + TAKING] !== 1) return false;
      const count = ints[base + COUNT]!;
      if (count >= EPOLL_HANDOFF_SLOTS) return false;
      ints[base + HEADER_INTS + ((ints[base + HEAD]! + count) % EPOLL_HANDOFF_SLOTS)] = fd;
      ints[base + COUNT] = count + 1;
      return true;
    } finally {
      this.#unlock(base);
    }
  }

  /**
   * The oldest socket queued for worker `self`, or -1 when its queue is empty.
   *
   * @example
   * ```ts
   * new EpollHandoff(EpollHandoff.allocate(1), 1).take(0); // -1
   * ```
   */
  take(self: number): number {
    this.#check(self);
    const ints = this.#ints;
    const base = self * WORKER_INTS;
    this.#lock(base);
    try {
      const count = ints[base + COUNT]!;
      if (count === 0) return -1;
      const head = ints[base + HEAD]!;
      ints[base + HEAD] = (head + 1) % EPOLL_HANDOFF_SLOTS;
      ints[base + COUNT] = count - 1;
      return ints[base + HEADER_INTS + head]!;
    } finally {
      this.#unlock(base);
    }
  }

  #lock(base: number): void {
    while (Atomics.compareExchange(this.#ints, base + LOCK, 0, 1) !== 0) {
      // Another worker holds it for a few array writes: spin.
    }
  }

  #unlock(base: number): void {
    Atomics.store(this.#ints, base + LOCK, 0);
  }

  #check(i: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.workers) {
      throw new RangeError(
        `EpollHandoff: worker index must be in 0..${this.workers - 1}, got ${i}`,
      );
    }
  }
}
