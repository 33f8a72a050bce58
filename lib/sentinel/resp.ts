/**
 * The RESP wire format of the Sentinel endpoint: a bounded, incremental request parser
 * (multibulk `*N $len ...` as clients send, and inline `PING\r\n` as telnet users type) and a
 * reply encoder for RESP2 and RESP3 (`HELLO 3`).
 *
 * Replies are built as {@link Reply} values, protocol-neutral; {@link encodeReply} writes them
 * for the connection's protocol the way redis does: a map is a flat array in RESP2 and `%` in
 * RESP3, a push (pub/sub message) is an array in RESP2 and `>` in RESP3, the two nulls are
 * `$-1` / `*-1` in RESP2 and `_` in RESP3.
 *
 * Every limit is explicit ({@link RESP_LIMITS}); a request over one is a {@link RespProtocolError},
 * after which the connection must be closed (redis does the same: the stream cannot be resynced).
 *
 * @example
 * ```ts
 * import { encodeReply, RequestParser, reply } from "./resp.ts";
 * const parser = new RequestParser();
 * parser.push(new TextEncoder().encode("*1\r\n$4\r\nPING\r\n"));
 * console.log(parser.next()); // ["PING"]
 * const bytes = encodeReply(reply.simple("PONG"), 2); // "+PONG\r\n"
 * ```
 */

/** The limits of one request (one command with its arguments). */
export interface RespLimits {
  /** Most arguments in one command (the command name included). */
  maxArgs: number;
  /** Most bytes in one command, framing included; also the longest inline line. */
  maxCommandBytes: number;
}

/**
 * The endpoint's request limits: Sentinel clients send short commands (the longest is a
 * `SUBSCRIBE` of a few channels or a `CLIENT SETNAME`), so these are generous and small.
 */
export const RESP_LIMITS: Readonly<RespLimits> = {
  maxArgs: 64,
  maxCommandBytes: 16 * 1024,
};

/** A request the parser refuses: the connection gets `-ERR Protocol error: ...` and is closed. */
export class RespProtocolError extends Error {
  override readonly name = "RespProtocolError";
}

/** A protocol-neutral reply. */
export type Reply =
  | { type: "simple"; text: string }
  | { type: "error"; text: string }
  | { type: "integer"; value: number }
  | { type: "bulk"; text: string }
  /** RESP2: a bulk string; RESP3: `=` with the `txt` format (what redis answers to INFO). */
  | { type: "verbatim"; text: string }
  /** RESP2 `$-1`, RESP3 `_`. */
  | { type: "null-bulk" }
  /** RESP2 `*-1`, RESP3 `_`. */
  | { type: "null-array" }
  | { type: "array"; items: Reply[] }
  /** RESP2: a flat array of keys and values; RESP3: `%`. */
  | { type: "map"; entries: [Reply, Reply][] }
  /** RESP2: an array; RESP3: `>` (pub/sub messages and subscription confirmations). */
  | { type: "push"; items: Reply[] };

/** Reply constructors. */
export const reply = {
  simple: (text: string): Reply => ({ type: "simple", text }),
  /** `text` starts with the error code, e.g. `ERR unknown command`. */
  error: (text: string): Reply => ({ type: "error", text }),
  integer: (value: number): Reply => ({ type: "integer", value }),
  bulk: (text: string): Reply => ({ type: "bulk", text }),
  verbatim: (text: string): Reply => ({ type: "verbatim", text }),
  nullBulk: (): Reply => ({ type: "null-bulk" }),
  nullArray: (): Reply => ({ type: "null-array" }),
  array: (items: Reply[]): Reply => ({ type: "array", items }),
  /** A map of bulk-string keys to bulk-string values (Sentinel's instance descriptions). */
  stringMap: (entries: readonly (readonly [string, string])[]): Reply => ({
    type: "map",
    entries: entries.map(([k, v]) => [reply.bulk(k), reply.bulk(v)]),
  }),
  map: (entries: [Reply, Reply][]): Reply => ({ type: "map", entries }),
  push: (items: Reply[]): Reply => ({ type: "push", items }),
};

/** The RESP protocol version of a connection. */
export type RespProtocol = 2 | 3;

const encoder = new TextEncoder();

/**
 * Encodes `r` for `protocol`.
 *
 * @example
 * ```ts
 * import { encodeReply, reply } from "./resp.ts";
 * encodeReply(reply.nullArray(), 2); // "*-1\r\n"
 * encodeReply(reply.nullArray(), 3); // "_\r\n"
 * ```
 */
export function encodeReply(r: Reply, protocol: RespProtocol): Uint8Array {
  return encoder.encode(replyText(r, protocol));
}

/** The reply as a string (RESP is bytes; every text here is UTF-8 and lengths count bytes). */
export function replyText(r: Reply, protocol: RespProtocol): string {
  const parts: string[] = [];
  write(r, protocol, parts);
  return parts.join("");
}

function write(r: Reply, protocol: RespProtocol, out: string[]): void {
  switch (r.type) {
    case "simple":
      out.push(`+${oneLine(r.text)}\r\n`);
      return;
    case "error":
      out.push(`-${oneLine(r.text)}\r\n`);
      return;
    case "integer":
      out.push(`:${Math.trunc(r.value)}\r\n`);
      return;
    case "bulk":
      out.push(`$${encoder.encode(r.text).length}\r\n${r.text}\r\n`);
      return;
    case "verbatim":
      if (protocol === 2) {
        out.push(`$${encoder.encode(r.text).length}\r\n${r.text}\r\n`);
      } else out.push(`=${encoder.encode(r.text).length + 4}\r\ntxt:${r.text}\r\n`);
      return;
    case "null-bulk":
      out.push(protocol === 3 ? "_\r\n" : "$-1\r\n");
      return;
    case "null-array":
      out.push(protocol === 3 ? "_\r\n" : "*-1\r\n");
      return;
    case "array":
    case "push":
      out.push(`${r.type === "push" && protocol === 3 ? ">" : "*"}${r.items.length}\r\n`);
      for (const item of r.items) write(item, protocol, out);
      return;
    case "map":
      out.push(protocol === 3 ? `%${r.entries.length}\r\n` : `*${r.entries.length * 2}\r\n`);
      for (const [k, v] of r.entries) {
        write(k, protocol, out);
        write(v, protocol, out);
      }
      return;
  }
}

/** Simple strings and errors cannot hold CR or LF (redis replaces them by spaces too). */
function oneLine(text: string): string {
  return text.replace(/[\r\n]/g, " ");
}

const CR = 13;
const LF = 10;
const decoder = new TextDecoder();

/**
 * Incremental request parser: {@link push} bytes as they arrive, then call {@link next} until it
 * returns null (a partial command stays buffered). Arguments are decoded as UTF-8 text.
 *
 * @example
 * ```ts
 * import { RequestParser } from "./resp.ts";
 * const p = new RequestParser();
 * p.push(new TextEncoder().encode("SENTINEL myid\r\n*1\r\n$4\r\nPI"));
 * p.next(); // ["SENTINEL", "myid"]
 * p.next(); // null: waits for the rest
 * ```
 */
export class RequestParser {
  #buf = new Uint8Array(0);
  #pos = 0;
  readonly #limits: RespLimits;

  constructor(limits: RespLimits = RESP_LIMITS) {
    this.#limits = limits;
  }

  /** Bytes received and not yet parsed. */
  get buffered(): number {
    return this.#buf.length - this.#pos;
  }

  /** Appends received bytes. */
  push(bytes: Uint8Array): void {
    const rest = this.#buf.subarray(this.#pos);
    const next = new Uint8Array(rest.length + bytes.length);
    next.set(rest);
    next.set(bytes, rest.length);
    this.#buf = next;
    this.#pos = 0;
  }

  /**
   * The next complete command, or null when more bytes are needed. An empty inline line is
   * skipped (redis ignores it too).
   *
   * @throws {RespProtocolError} on malformed framing or a request over a limit
   */
  next(): string[] | null {
    for (;;) {
      if (this.#pos >= this.#buf.length) return null;
      const parsed = this.#buf[this.#pos] === 0x2a /* '*' */ ? this.#multibulk() : this.#inline();
      if (parsed === null) {
        if (this.buffered > this.#limits.maxCommandBytes) {
          throw new RespProtocolError(
            `command over ${this.#limits.maxCommandBytes} bytes`,
          );
        }
        return null;
      }
      if (parsed.length > 0) return parsed;
    }
  }

  /** The line starting at `from` (without CRLF) and the index after its LF, or null. */
  #line(from: number): { text: string; end: number } | null {
    const buf = this.#buf;
    const limit = Math.min(buf.length, from + this.#limits.maxCommandBytes + 2);
    for (let i = from; i < limit; i++) {
      if (buf[i] === LF) {
        const stop = i > from && buf[i - 1] === CR ? i - 1 : i;
        return { text: decoder.decode(buf.subarray(from, stop)), end: i + 1 };
      }
    }
    if (buf.length - from > this.#limits.maxCommandBytes) {
      throw new RespProtocolError(`line over ${this.#limits.maxCommandBytes} bytes`);
    }
    return null;
  }

  #inline(): string[] | null {
    const line = this.#line(this.#pos);
    if (line === null) return null;
    this.#pos = line.end;
    return splitInline(line.text);
  }

  #multibulk(): string[] | null {
    const start = this.#pos;
    const header = this.#line(start);
    if (header === null) return null;
    const count = parseLength(header.text.slice(1), "multibulk length");
    if (count > this.#limits.maxArgs) {
      throw new RespProtocolError(`more than ${this.#limits.maxArgs} arguments`);
    }
    let at = header.end;
    const args: string[] = [];
    for (let i = 0; i < count; i++) {
      if (at >= this.#buf.length) return null;
      if (this.#buf[at] !== 0x24 /* '$' */) {
        throw new RespProtocolError(
          `expected '$', got '${String.fromCharCode(this.#buf[at] ?? 0)}'`,
        );
      }
      const len = this.#line(at);
      if (len === null) return null;
      const bytes = parseLength(len.text.slice(1), "bulk length");
      if (bytes > this.#limits.maxCommandBytes) {
        throw new RespProtocolError(`argument over ${this.#limits.maxCommandBytes} bytes`);
      }
      if (len.end + bytes + 2 - start > this.#limits.maxCommandBytes) {
        throw new RespProtocolError(`command over ${this.#limits.maxCommandBytes} bytes`);
      }
      if (this.#buf.length < len.end + bytes + 2) return null;
      if (this.#buf[len.end + bytes] !== CR || this.#buf[len.end + bytes + 1] !== LF) {
        throw new RespProtocolError("bulk string not terminated by CRLF");
      }
      args.push(decoder.decode(this.#buf.subarray(len.end, len.end + bytes)));
      at = len.end + bytes + 2;
    }
    this.#pos = at;
    return args;
  }
}

function parseLength(text: string, what: string): number {
  if (!/^[0-9]{1,10}$/.test(text)) throw new RespProtocolError(`invalid ${what}`);
  return Number(text);
}

/**
 * Splits an inline command as redis does: words separated by spaces, with "double" (backslash
 * escapes) and 'single' quotes.
 *
 * @throws {RespProtocolError} on unbalanced quotes
 */
export function splitInline(line: string): string[] {
  const args: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (i < line.length && /\s/.test(line[i]!)) i++;
    if (i >= line.length) break;
    let word = "";
    const quote = line[i] === '"' || line[i] === "'" ? line[i] : null;
    if (quote !== null) {
      i++;
      let closed = false;
      while (i < line.length) {
        const c = line[i]!;
        if (quote === '"' && c === "\\" && i + 1 < line.length) {
          const n = line[i + 1]!;
          word += n === "n" ? "\n" : n === "r" ? "\r" : n === "t" ? "\t" : n;
          i += 2;
          continue;
        }
        if (c === quote) {
          closed = true;
          i++;
          break;
        }
        word += c;
        i++;
      }
      if (!closed || (i < line.length && !/\s/.test(line[i]!))) {
        throw new RespProtocolError("unbalanced quotes in request");
      }
    } else {
      while (i < line.length && !/\s/.test(line[i]!)) word += line[i++];
    }
    args.push(word);
  }
  return args;
}
