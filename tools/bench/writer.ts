/**
 * The write client of the failover and rolling-restart benchmarks: it writes unique keys
 * (`<prefix>:<n>`, the key as value) one `SET` at a time over one connection, every
 * `intervalMs`, reconnects after any error, and records every acknowledged key with the time of
 * its acknowledgement (the benchmarks read the longest gap between two acknowledgements as the
 * write pause, and check the acknowledged keys against the final master for lost writes).
 *
 * With several endpoints it rotates: every (re)connection goes to the next endpoint in turn
 * whose host is not {@link ContinuousWriter.avoid avoided}, as a Kubernetes Service spreads new
 * connections over the pods that are not terminating.
 *
 * @example
 * ```ts
 * import { ContinuousWriter } from "./writer.ts";
 * const writer = new ContinuousWriter({
 *   endpoints: [{ host: "127.0.5.31", port: 16380 }, { host: "127.0.5.32", port: 16380 }],
 *   prefix: "bench:k",
 *   intervalMs: 2,
 * });
 * writer.start();
 * writer.avoid("127.0.5.31"); // moves off that proxy before its pod is restarted
 * const log = await writer.stop();
 * console.log(log.acks.length, log.failureCount);
 * ```
 */

import { sleep } from "../../testing/wait.ts";
import { RespConnection } from "../../testing/resp_connection.ts";

/** Default pause between two writes. */
export const DEFAULT_WRITE_INTERVAL_MS = 2;
/** Largest pause between two writes. */
export const MAX_WRITE_INTERVAL_MS = 1_000;
/** Deadline of a connect and of one write: above the proxy's hold time (3 s), so a held write is waited for. */
export const WRITE_TIMEOUT_MS = 5_000;
/** Pause before reconnecting after a failed write or connection. */
export const RECONNECT_DELAY_MS = 2;
/** Most write failures kept in {@link WriteLog.failures} (the count is exact). */
export const MAX_FAILURES_KEPT = 10_000;
/** Most acknowledged writes recorded by one writer (a guard against a runaway run). */
export const MAX_ACKS = 5_000_000;
/** Most endpoints of one writer. */
export const MAX_ENDPOINTS = 64;

/** A redis, or a proxy in front of one, to write to. */
export interface WriterEndpoint {
  host: string;
  port: number;
}

/** An acknowledged write: its key and when the acknowledgement arrived (`performance.now()`). */
export interface Ack {
  key: string;
  atMs: number;
}

/** A failed write or connection attempt. */
export interface WriteFailure {
  /** When it failed (`performance.now()`). */
  atMs: number;
  /** The endpoint (`host:port`) it was made through. */
  via: string;
  error: string;
}

/** What the writer saw. */
export interface WriteLog {
  /** Acknowledged writes, in the order of their acknowledgement. */
  acks: Ack[];
  /** The first {@link MAX_FAILURES_KEPT} failures. */
  failures: WriteFailure[];
  /** Every failure, counted. */
  failureCount: number;
}

/** Options of a {@link ContinuousWriter}. */
export interface ContinuousWriterOptions {
  /** Where to write: one endpoint, or up to {@link MAX_ENDPOINTS} to rotate over on reconnects. */
  endpoints: readonly WriterEndpoint[];
  /** Key prefix; make it unique per run so runs never share keys. */
  prefix: string;
  /** Pause after each acknowledged write, 0 to {@link MAX_WRITE_INTERVAL_MS}. */
  intervalMs: number;
}

/**
 * Writes unique keys one at a time through one connection until stopped, reconnecting (to the
 * next endpoint in turn that is not avoided) after any error. A key is never reused: a write
 * that failed may or may not have landed.
 *
 * @example
 * ```ts
 * import { ContinuousWriter } from "./writer.ts";
 * const writer = new ContinuousWriter({
 *   endpoints: [{ host: "127.0.3.81", port: 16380 }],
 *   prefix: "bench:crash:1",
 *   intervalMs: 2,
 * });
 * writer.start();
 * // ... inject a fault ...
 * const { acks, failureCount } = await writer.stop();
 * ```
 */
export class ContinuousWriter {
  readonly log: WriteLog = { acks: [], failures: [], failureCount: 0 };
  readonly endpoints: readonly WriterEndpoint[];
  readonly prefix: string;
  readonly intervalMs: number;
  #avoided = new Set<string>();
  #next = 0;
  #stopped = false;
  #runaway = false;
  #done: Promise<void> | null = null;

  constructor(opts: ContinuousWriterOptions) {
    const { endpoints, prefix, intervalMs } = opts;
    if (endpoints.length < 1 || endpoints.length > MAX_ENDPOINTS) {
      throw new RangeError(
        `ContinuousWriter: expected 1 to ${MAX_ENDPOINTS} endpoints, got ${endpoints.length}`,
      );
    }
    for (const e of endpoints) {
      if (e.host === "" || !Number.isInteger(e.port) || e.port < 1 || e.port > 65_535) {
        throw new RangeError(`ContinuousWriter: bad endpoint ${JSON.stringify(e)}`);
      }
    }
    if (prefix === "") throw new RangeError("ContinuousWriter: empty key prefix");
    if (!Number.isInteger(intervalMs) || intervalMs < 0 || intervalMs > MAX_WRITE_INTERVAL_MS) {
      throw new RangeError(
        `ContinuousWriter: intervalMs must be an integer 0..${MAX_WRITE_INTERVAL_MS}, got ${intervalMs}`,
      );
    }
    this.endpoints = [...endpoints];
    this.prefix = prefix;
    this.intervalMs = intervalMs;
  }

  /** The acknowledged writes so far (grows while writing; read it for a window's gaps). */
  get acks(): readonly Ack[] {
    return this.log.acks;
  }

  /** Starts writing in the background. */
  start(): void {
    if (this.#done !== null) throw new Error("ContinuousWriter: already started");
    this.#done = this.#loop();
  }

  /**
   * Stops using every endpoint on `host` (closing the connection to it after the write in
   * flight); throws for a host it does not write to, or when no other host would be left.
   */
  avoid(host: string): void {
    if (!this.endpoints.some((e) => e.host === host)) {
      throw new Error(`ContinuousWriter: unknown host ${host}`);
    }
    if (this.endpoints.every((e) => e.host === host || this.#avoided.has(e.host))) {
      throw new Error(`ContinuousWriter: avoiding ${host} would leave no endpoint`);
    }
    this.#avoided.add(host);
  }

  /** Uses the endpoints on `host` again. */
  allow(host: string): void {
    this.#avoided.delete(host);
  }

  /**
   * Stops after the write in flight and returns the log; throws if the writer stopped early
   * because it recorded {@link MAX_ACKS} acknowledgements.
   */
  async stop(): Promise<WriteLog> {
    this.#stopped = true;
    await this.#done;
    if (this.#runaway) {
      throw new Error(`ContinuousWriter: stopped after ${MAX_ACKS} acknowledged writes (the most)`);
    }
    return this.log;
  }

  #pick(): WriterEndpoint {
    const count = this.endpoints.length;
    for (let i = 0; i < count; i++) {
      const endpoint = this.endpoints[(this.#next + i) % count] as WriterEndpoint;
      if (!this.#avoided.has(endpoint.host)) {
        this.#next = (this.#next + i + 1) % count;
        return endpoint;
      }
    }
    throw new Error("ContinuousWriter: every endpoint avoided"); // avoid() prevents this
  }

  #fail(via: WriterEndpoint | null, error: unknown): void {
    this.log.failureCount++;
    if (this.log.failures.length < MAX_FAILURES_KEPT) {
      this.log.failures.push({
        atMs: performance.now(),
        via: via === null ? "" : `${via.host}:${via.port}`,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }

  async #loop(): Promise<void> {
    let conn: RespConnection | null = null;
    let via: WriterEndpoint | null = null;
    let n = 0;
    try {
      while (!this.#stopped) {
        try {
          if (conn !== null && via !== null && this.#avoided.has(via.host)) {
            conn.close();
            conn = null;
          }
          if (conn === null) {
            via = this.#pick();
            conn = await RespConnection.open(via.host, via.port, { timeoutMs: WRITE_TIMEOUT_MS });
          }
          const key = `${this.prefix}:${n}`;
          n++; // a write that failed may or may not have landed: never reuse its key
          const reply = await conn.command(["SET", key, key], WRITE_TIMEOUT_MS);
          if (reply !== "OK") throw new Error(`SET answered ${JSON.stringify(reply)}`);
          this.log.acks.push({ key, atMs: performance.now() });
          if (this.log.acks.length >= MAX_ACKS) {
            this.#runaway = true;
            break;
          }
          if (this.intervalMs > 0) await sleep(this.intervalMs);
        } catch (e) {
          this.#fail(via, e);
          conn?.close();
          conn = null;
          await sleep(RECONNECT_DELAY_MS);
        }
      }
    } finally {
      conn?.close();
    }
  }
}
