/**
 * One persistent RESP2 connection for tools and end-to-end tests: send a command (or a
 * pipeline), await its replies, with a deadline. Independent of ioredis (the code under test
 * uses it), built on the test RESP codec, which has no test dependencies.
 *
 * A connection that failed (closed by the peer, timed out, bad bytes) is closed and stays
 * unusable: open a new one. Error replies (`-ERR ...`) do not break the connection.
 *
 * @example
 * ```ts
 * import { RespConnection } from "./resp_connection.ts";
 * const conn = await RespConnection.open("127.0.3.11", 16380);
 * try {
 *   await conn.command(["SET", "k", "v"]); // "OK"
 * } finally {
 *   conn.close();
 * }
 * ```
 */

import { encodeCommand, parseReply, RespReplyError, type RespValue } from "./resp_client.ts";

export { RespReplyError, type RespValue };

/** Default deadline of a connect, and of one command or pipeline. */
export const RESP_CONNECTION_TIMEOUT_MS = 2_000;
/** Most bytes buffered for replies not yet parsed. */
export const RESP_CONNECTION_MAX_BUFFER_BYTES = 64 * 1024 * 1024;
/** Most commands in one {@link RespConnection.pipeline}. */
export const RESP_MAX_PIPELINE = 10_000;

/** A persistent connection to a redis (or a proxy in front of one). */
export class RespConnection {
  #conn: Deno.Conn;
  #buf = new Uint8Array(0);
  #closed = false;
  #busy = false;
  readonly #chunk = new Uint8Array(64 * 1024);

  private constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  /** Connects (no-delay) within `timeoutMs`; throws on refusal or timeout. */
  static async open(
    host: string,
    port: number,
    opts: { timeoutMs?: number } = {},
  ): Promise<RespConnection> {
    const timeoutMs = opts.timeoutMs ?? RESP_CONNECTION_TIMEOUT_MS;
    const connecting = Deno.connect({ hostname: host, port });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`connect to ${host}:${port} timed out after ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    try {
      const conn = await Promise.race([connecting, timeout]);
      conn.setNoDelay(true);
      return new RespConnection(conn);
    } catch (e) {
      connecting.then((late) => late.close(), () => {});
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  /** True once closed (by {@link close} or after a failure). */
  get closed(): boolean {
    return this.#closed;
  }

  /** Sends one command and returns its reply; throws {@link RespReplyError} on an error reply. */
  async command(
    args: readonly string[],
    timeoutMs = RESP_CONNECTION_TIMEOUT_MS,
  ): Promise<RespValue> {
    const [reply] = await this.pipeline([args], timeoutMs);
    if (reply instanceof RespReplyError) throw reply;
    return reply as RespValue;
  }

  /**
   * Sends several commands at once and returns every reply in order (error replies as
   * {@link RespReplyError} values). Any other failure closes the connection and throws.
   */
  async pipeline(
    commands: readonly (readonly string[])[],
    timeoutMs = RESP_CONNECTION_TIMEOUT_MS,
  ): Promise<(RespValue | RespReplyError)[]> {
    if (this.#closed) throw new Error("RespConnection: closed");
    if (this.#busy) throw new Error("RespConnection: one command at a time");
    if (commands.length === 0 || commands.length > RESP_MAX_PIPELINE) {
      throw new RangeError(`pipeline of 1..${RESP_MAX_PIPELINE} commands, got ${commands.length}`);
    }
    this.#busy = true;
    const timer = setTimeout(() => this.close(), timeoutMs);
    try {
      const parts = commands.map((c) => encodeCommand(c));
      const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      let at = 0;
      for (const p of parts) {
        bytes.set(p, at);
        at += p.length;
      }
      for (let off = 0; off < bytes.length;) off += await this.#conn.write(bytes.subarray(off));
      const replies: (RespValue | RespReplyError)[] = [];
      let pos = 0;
      while (replies.length < commands.length) {
        const parsed = parseReply(this.#buf, pos);
        if (parsed !== undefined) {
          replies.push(parsed.value);
          pos = parsed.next;
          continue;
        }
        this.#buf = this.#buf.slice(pos);
        pos = 0;
        const n = await this.#conn.read(this.#chunk);
        if (n === null) throw new Error("connection closed by the server");
        if (this.#buf.length + n > RESP_CONNECTION_MAX_BUFFER_BYTES) {
          throw new Error(`replies exceed ${RESP_CONNECTION_MAX_BUFFER_BYTES} bytes`);
        }
        const grown = new Uint8Array(this.#buf.length + n);
        grown.set(this.#buf);
        grown.set(this.#chunk.subarray(0, n), this.#buf.length);
        this.#buf = grown;
      }
      this.#buf = this.#buf.slice(pos);
      return replies;
    } catch (e) {
      const timedOut = this.#closed;
      this.close();
      if (timedOut) throw new Error(`no reply within ${timeoutMs} ms`, { cause: e });
      throw e;
    } finally {
      clearTimeout(timer);
      this.#busy = false;
    }
  }

  /** Closes the connection. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch { /* already closed */ }
  }
}
