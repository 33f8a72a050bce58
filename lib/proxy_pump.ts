/**
 * The byte pump of the master proxy: copies one direction of a TCP connection with one fixed
 * buffer, so the proxy never holds more than that buffer's size in flight per direction.
 *
 * A plain read/write loop on `Deno.Conn` is the fastest copy measured here (see
 * docs/benchmarks.md): `pipeTo` on the streams, double buffering and `node:net` `pipe()` all
 * spent more CPU per request. The loop allocates nothing per chunk except the write view.
 *
 * Backpressure is the loop itself: the next read is only issued once the previous chunk has
 * been written completely, and a write only completes when the kernel accepted the bytes, so a
 * peer that stops reading stalls its sender at TCP level instead of growing our memory.
 *
 * @example
 * ```ts
 * import { pump, type PumpMeter } from "./proxy_pump.ts";
 * declare const client: Deno.Conn, upstream: Deno.Conn;
 * const meter: PumpMeter = { onRead() {}, onWritten() {}, onDropped() {} };
 * await pump(client, upstream, new Uint8Array(16 * 1024), meter); // until the client's FIN
 * ```
 */

/** Bytes of the buffer used per direction of a proxied connection (HAProxy's default `bufsize`). */
export const PROXY_BUFFER_BYTES = 16 * 1024;

/** Smallest accepted pump buffer. */
export const MIN_PROXY_BUFFER_BYTES = 512;

/** Largest accepted pump buffer. */
export const MAX_PROXY_BUFFER_BYTES = 4 * 1024 * 1024;

/** Observes the bytes a {@link pump} moves; called synchronously on the hot path, keep it cheap. */
export interface PumpMeter {
  /** `bytes` were read from the source and are now buffered. */
  onRead(bytes: number): void;
  /** `bytes` of the buffered data were written to the destination. */
  onWritten(bytes: number): void;
  /** `bytes` still buffered were abandoned because the pump failed. */
  onDropped(bytes: number): void;
}

/**
 * Copies `from` to `to` until `from` reaches end of stream, then shuts down `to`'s write side
 * (forwarding the FIN: a half-closed peer keeps receiving the other direction). Rejects on any
 * read, write or shutdown error, including the other side being closed by the caller.
 *
 * At most `buffer.length` bytes are held at any time; every byte read is reported to
 * `meter.onRead`, and later to exactly one of `onWritten` or `onDropped`.
 *
 * @example
 * ```ts
 * declare const upstream: Deno.Conn, client: Deno.Conn;
 * await pump(upstream, client, new Uint8Array(PROXY_BUFFER_BYTES), {
 *   onRead() {}, onWritten() {}, onDropped() {},
 * });
 * ```
 */
export async function pump(
  from: Deno.Conn,
  to: Deno.Conn,
  buffer: Uint8Array,
  meter: PumpMeter,
): Promise<void> {
  if (buffer.length < MIN_PROXY_BUFFER_BYTES || buffer.length > MAX_PROXY_BUFFER_BYTES) {
    throw new RangeError(
      `pump: buffer of ${buffer.length} bytes, expected ${MIN_PROXY_BUFFER_BYTES}..${MAX_PROXY_BUFFER_BYTES}`,
    );
  }
  let pending = 0;
  try {
    for (;;) {
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
    }
    await to.closeWrite();
  } finally {
    if (pending > 0) meter.onDropped(pending);
  }
}
