/**
 * The byte pump of the master proxy: copies one direction of a TCP connection with one buffer
 * at a time, so the proxy never holds more than {@link PROXY_BUFFER_BYTES} in flight per
 * direction.
 *
 * A plain read/write loop on `Deno.Conn` is the fastest copy measured here (see
 * docs/benchmarks.md): `pipeTo` on the streams, double buffering and `node:net` `pipe()` all
 * spent more CPU per request. The loop allocates nothing per chunk except the write view.
 * It reads into a small per-connection buffer and borrows a full-size one from a shared
 * {@link BufferPool} only while data streams, so idle connections stay cheap.
 *
 * Backpressure is the loop itself: the next read is only issued once the previous chunk has
 * been written completely, and a write only completes when the kernel accepted the bytes, so a
 * peer that stops reading stalls its sender at TCP level instead of growing our memory.
 *
 * @example
 * ```ts
 * import { pump, type PumpMeter } from "./pump.ts";
 * import { BufferPool } from "../buffer_pool.ts";
 * declare const client: Deno.Conn, upstream: Deno.Conn;
 * const meter: PumpMeter = { onRead() {}, onWritten() {}, onDropped() {} };
 * const buffers = { idle: new Uint8Array(1024), pool: new BufferPool(16 * 1024) };
 * await pump(client, upstream, buffers, meter); // until the client's FIN
 * ```
 */

import type { BufferPool } from "../buffer_pool.ts";
import { MAX_PROXY_BUFFER_BYTES, MIN_PROXY_BUFFER_BYTES } from "../proxy_options.ts";

/** Observes the bytes a {@link pump} moves; called synchronously on the hot path, keep it cheap. */
export interface PumpMeter {
  /** `bytes` were read from the source and are now buffered. */
  onRead(bytes: number): void;
  /** `bytes` of the buffered data were written to the destination. */
  onWritten(bytes: number): void;
  /** `bytes` still buffered were abandoned because the pump failed. */
  onDropped(bytes: number): void;
}

/** The buffers one direction of a connection copies with. */
export interface PumpBuffers {
  /** The connection's own small buffer, read into while little data flows. */
  idle: Uint8Array;
  /** Full-size buffers, borrowed while data streams. Their size is the in-flight bound. */
  pool: BufferPool;
}

/**
 * Copies `from` to `to` until `from` reaches end of stream, then shuts down `to`'s write side
 * (forwarding the FIN: a half-closed peer keeps receiving the other direction). Rejects on any
 * read, write or shutdown error, including the other side being closed by the caller.
 *
 * Reads go to `buffers.idle`; once a read fills it, the next reads borrow a full-size buffer
 * from `buffers.pool` until a read no longer fills that. At most `buffers.pool.bufferBytes`
 * bytes are held at any time; every byte read is reported to `meter.onRead`, and later to
 * exactly one of `onWritten` or `onDropped`.
 *
 * @example
 * ```ts
 * import { BufferPool } from "../buffer_pool.ts";
 * import { PROXY_BUFFER_BYTES } from "../proxy_options.ts";
 * declare const upstream: Deno.Conn, client: Deno.Conn;
 * const buffers = { idle: new Uint8Array(1024), pool: new BufferPool(PROXY_BUFFER_BYTES) };
 * await pump(upstream, client, buffers, { onRead() {}, onWritten() {}, onDropped() {} });
 * ```
 */
export async function pump(
  from: Deno.Conn,
  to: Deno.Conn,
  buffers: PumpBuffers,
  meter: PumpMeter,
): Promise<void> {
  const { idle, pool } = buffers;
  const bound = pool.bufferBytes;
  if (bound < MIN_PROXY_BUFFER_BYTES || bound > MAX_PROXY_BUFFER_BYTES) {
    throw new RangeError(
      `pump: buffers of ${bound} bytes, expected ${MIN_PROXY_BUFFER_BYTES}..${MAX_PROXY_BUFFER_BYTES}`,
    );
  }
  if (idle.length < 1 || idle.length > bound) {
    throw new RangeError(`pump: idle buffer of ${idle.length} bytes, expected 1..${bound}`);
  }
  let pending = 0;
  let streaming = false;
  try {
    for (;;) {
      // A borrowed buffer is only returned after its read and writes completed, so no op
      // still uses it; after a failure it is left to the garbage collector.
      const buffer: Uint8Array = streaming ? pool.take() : idle;
      const n = await from.read(buffer);
      if (n === null) break;
      pending = n;
      meter.onRead(n);
      let offset = 0;
      while (offset < n) {
        const written = await to.write(
          offset === 0 && n === buffer.length ? buffer : buffer.subarray(offset, n),
        );
        if (!(written > 0)) throw new Error(`pump: write returned ${written}`);
        offset += written;
        pending -= written;
        meter.onWritten(written);
      }
      streaming = n === buffer.length;
      if (buffer !== idle) pool.give(buffer);
    }
    await to.closeWrite();
  } finally {
    if (pending > 0) meter.onDropped(pending);
  }
}
