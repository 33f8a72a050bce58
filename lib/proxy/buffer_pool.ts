/**
 * A pool of equal-sized copy buffers shared by every proxied connection of one proxy.
 *
 * An idle proxied connection keeps a read pending in each direction, and a pending read pins
 * its buffer; with a full-size buffer per direction that is 32 KiB of resident memory per idle
 * connection. So the pumps read into a small per-connection buffer and borrow a full-size one
 * from this pool only while data streams (a read filled the small buffer), returning it as soon
 * as a read no longer fills it. At most {@link BufferPool.maxPooled} free buffers are kept.
 *
 * @example
 * ```ts
 * import { BufferPool } from "./buffer_pool.ts";
 * const pool = new BufferPool(16 * 1024, 64);
 * const buffer = pool.take();
 * pool.give(buffer); // reused by the next take()
 * ```
 */

/** Most free buffers a proxy keeps for reuse (1 MiB at 16 KiB each). */
export const PROXY_POOLED_BUFFERS = 64;

/** Hands out buffers of one size, reusing returned ones. */
export class BufferPool {
  #free: Uint8Array[] = [];

  /** `bufferBytes`: size of every buffer; `maxPooled`: most free buffers kept. */
  constructor(readonly bufferBytes: number, readonly maxPooled: number = PROXY_POOLED_BUFFERS) {
    if (!Number.isInteger(bufferBytes) || bufferBytes < 1) {
      throw new RangeError(
        `BufferPool: bufferBytes must be a positive integer, got ${bufferBytes}`,
      );
    }
    if (!Number.isInteger(maxPooled) || maxPooled < 0) {
      throw new RangeError(`BufferPool: maxPooled must be an integer >= 0, got ${maxPooled}`);
    }
  }

  /** Free buffers held right now. */
  get pooled(): number {
    return this.#free.length;
  }

  /** A buffer of {@link bufferBytes}: a returned one when there is one, else a new one. */
  take(): Uint8Array {
    return this.#free.pop() ?? new Uint8Array(this.bufferBytes);
  }

  /** Returns a buffer no read or write uses any more. Buffers beyond the cap are dropped. */
  give(buffer: Uint8Array): void {
    if (buffer.length !== this.bufferBytes) {
      throw new RangeError(
        `BufferPool: got a ${buffer.length}-byte buffer, expected ${this.bufferBytes}`,
      );
    }
    if (this.#free.length < this.maxPooled) this.#free.push(buffer);
  }
}
