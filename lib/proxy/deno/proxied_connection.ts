/**
 * One proxied connection: a client socket joined to an upstream socket by two {@link pump}s.
 *
 * Half-close is forwarded: when one side shuts down its write side, the other side's write
 * side is shut down too and the other direction keeps flowing until it ends as well. The
 * connection closes both sockets when both directions ended, when either direction fails, or
 * when {@link ProxiedConnection.close} is called (the proxy does so on every target change).
 *
 * @example
 * ```ts
 * import { ProxiedConnection } from "./proxied_connection.ts";
 * import { BufferPool } from "../buffer_pool.ts";
 * declare const client: Deno.TcpConn, upstream: Deno.TcpConn;
 * const meter = { onRead() {}, onWritten() {}, onDropped() {} };
 * const buffers = { idleBufferBytes: 1024, pool: new BufferPool(16 * 1024) };
 * const joined = new ProxiedConnection(client, upstream, buffers, meter, meter);
 * await joined.done; // both sockets are closed now
 * ```
 */

import type { BufferPool } from "../buffer_pool.ts";
import { pump, type PumpMeter } from "./pump.ts";

/** How a {@link ProxiedConnection} ended. */
export type ProxiedEnd =
  /** Both directions reached end of stream. */
  | "finished"
  /** A read, write or shutdown failed (reset, broken pipe...). */
  | "failed"
  /** {@link ProxiedConnection.close} was called first. */
  | "closed";

/** A client connection joined to its upstream; closes both sockets when done. */
export class ProxiedConnection {
  /** Resolves (never rejects) once both sockets are closed, with how the connection ended. */
  readonly done: Promise<ProxiedEnd>;
  #client: Deno.Conn;
  #upstream: Deno.Conn;
  #end: ProxiedEnd | null = null;

  /**
   * Starts copying at once. Each direction has its own idle buffer of `idleBufferBytes` and
   * borrows from `pool` while data streams. `toUpstream` meters client-to-upstream bytes,
   * `toClient` the replies.
   */
  constructor(
    client: Deno.Conn,
    upstream: Deno.Conn,
    buffers: { idleBufferBytes: number; pool: BufferPool },
    toUpstream: PumpMeter,
    toClient: PumpMeter,
  ) {
    this.#client = client;
    this.#upstream = upstream;
    const fail = () => this.#finish("failed");
    const { idleBufferBytes, pool } = buffers;
    const up = pump(client, upstream, { idle: new Uint8Array(idleBufferBytes), pool }, toUpstream)
      .catch(fail);
    const down = pump(upstream, client, { idle: new Uint8Array(idleBufferBytes), pool }, toClient)
      .catch(fail);
    this.done = Promise.all([up, down]).then(() => {
      this.#finish("finished");
      return this.#end as ProxiedEnd;
    });
  }

  /** True once the sockets are closed (or being closed). */
  get closed(): boolean {
    return this.#end !== null;
  }

  /** Closes both sockets now; pending reads and writes fail and the pumps stop. Idempotent. */
  close(): void {
    this.#finish("closed");
  }

  #finish(end: ProxiedEnd): void {
    if (this.#end !== null) return;
    this.#end = end;
    closeQuietly(this.#client);
    closeQuietly(this.#upstream);
  }
}

/** Closes a socket, ignoring "already closed". */
export function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch { /* already closed */ }
}
