/**
 * A deterministic timer queue for the simulator: callbacks run in order of time, and callbacks
 * scheduled for the same millisecond run in the order they were scheduled.
 *
 * @example
 * ```ts
 * import { EventQueue } from "./event_queue.ts";
 * const q = new EventQueue();
 * q.at(10, () => console.log("second"));
 * q.at(5, () => console.log("first"));
 * q.runUntil(20);
 * ```
 */
export class EventQueue {
  #heap: { time: number; seq: number; fn: () => void }[] = [];
  #seq = 0;
  #now = 0;

  /** The current simulated time in milliseconds. */
  get now(): number {
    return this.#now;
  }

  /** Pending callbacks. */
  get size(): number {
    return this.#heap.length;
  }

  /** Runs `fn` at `time` (not before now). */
  at(time: number, fn: () => void): void {
    if (!(time >= this.#now)) {
      throw new Error(`EventQueue.at: ${time} is in the past (${this.#now})`);
    }
    this.#heap.push({ time, seq: this.#seq++, fn });
    this.#up(this.#heap.length - 1);
  }

  /** Runs `fn` after `delayMs`. */
  after(delayMs: number, fn: () => void): void {
    this.at(this.#now + delayMs, fn);
  }

  /** Runs every callback due up to and including `time`, then sets the clock to `time`. */
  runUntil(time: number, stop?: () => boolean): void {
    while (this.#heap.length > 0 && this.#heap[0]!.time <= time) {
      const item = this.#pop();
      this.#now = item.time;
      item.fn();
      if (stop?.()) return;
    }
    this.#now = Math.max(this.#now, time);
  }

  #less(a: number, b: number): boolean {
    const x = this.#heap[a]!, y = this.#heap[b]!;
    return x.time < y.time || (x.time === y.time && x.seq < y.seq);
  }

  #swap(a: number, b: number): void {
    const h = this.#heap;
    [h[a], h[b]] = [h[b]!, h[a]!];
  }

  #up(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.#less(i, parent)) return;
      this.#swap(i, parent);
      i = parent;
    }
  }

  #pop(): { time: number; seq: number; fn: () => void } {
    const h = this.#heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < h.length && this.#less(l, m)) m = l;
        if (r < h.length && this.#less(r, m)) m = r;
        if (m === i) break;
        this.#swap(i, m);
        i = m;
      }
    }
    return top;
  }
}
