/**
 * A small HTTP/1.1 server for the hive's status surface, on `Deno.listen`, with every limit
 * explicit: at most {@link HTTP_MAX_CONNECTIONS} connections at once (more are answered 503 and
 * closed), the request head within {@link HTTP_HEADER_TIMEOUT_MS} and
 * {@link HTTP_MAX_HEADER_BYTES}, the whole exchange within {@link HTTP_CONNECTION_TIMEOUT_MS},
 * one request per connection (`connection: close`).
 *
 * Why not `Deno.serve`: it has no connection cap and no header or idle timeout, and when the
 * process runs out of file descriptors its accept loop fails with an uncaught error that ends the
 * process (`Too many open files`). Here an accept that fails (out of descriptors, or anything
 * else) is counted, waits ({@link HTTP_ACCEPT_RETRY_MS}, doubling up to
 * {@link HTTP_ACCEPT_RETRY_MAX_MS}) and accepts again: the hive degrades, the election runs on.
 *
 * Requests are GET/HEAD-sized: the body of a request is never read (the handler sees none).
 *
 * @example
 * ```ts
 * import { startHttpServer } from "./http_server.ts";
 * const server = startHttpServer({ host: "127.0.0.1", port: 0 }, () => new Response("ok\n"));
 * console.log(server.address.port, server.stats.accepted);
 * await server.close();
 * ```
 */

/** Most HTTP connections open at once; more are answered 503 and closed. */
export const HTTP_MAX_CONNECTIONS = 64;
/** A connection must have sent its whole request head within this time, else it is closed. */
export const HTTP_HEADER_TIMEOUT_MS = 5_000;
/** A connection is closed this long after it was accepted, whatever it is doing. */
export const HTTP_CONNECTION_TIMEOUT_MS = 15_000;
/** Largest request head (request line and headers); larger ones get 431. */
export const HTTP_MAX_HEADER_BYTES = 8 * 1024;
/** First pause after a failed accept (out of descriptors...). */
export const HTTP_ACCEPT_RETRY_MS = 50;
/** Longest pause after failed accepts in a row. */
export const HTTP_ACCEPT_RETRY_MAX_MS = 1_000;

/** Counters of the server (all totals since start, except `active`). */
export interface HttpServerStats {
  /** Connections open now. */
  active: number;
  /** Connections accepted. */
  accepted: number;
  /** Requests answered by the handler. */
  requests: number;
  /** Refused: {@link HTTP_MAX_CONNECTIONS} were open (answered 503). */
  refusedCap: number;
  /** Accepts that failed (out of file descriptors, or another error). */
  acceptErrors: number;
  /** Closed for not sending the request head in time. */
  headerTimeouts: number;
  /** Closed for not finishing within {@link HTTP_CONNECTION_TIMEOUT_MS}. */
  connectionTimeouts: number;
  /** Answered 400 or 431 (a malformed or oversized request head). */
  badRequests: number;
}

/** A running server. */
export interface HttpServer {
  readonly address: { host: string; port: number };
  readonly stats: HttpServerStats;
  /** Stops accepting, closes every connection, resolves when the accept loop ended. */
  close(): Promise<void>;
}

/** Options of {@link startHttpServer}; the limits default to the constants above. */
export interface HttpServerOptions {
  host: string;
  port: number;
  maxConnections?: number;
  headerTimeoutMs?: number;
  connectionTimeoutMs?: number;
  /** Called for each failed accept (e.g. to log it, rate-limited). */
  onAcceptError?: (error: Error) => void;
}

const encoder = new TextEncoder();
const HEAD_END = encoder.encode("\r\n\r\n");

/** The server's limits, each checked (a whole number of at least 1). */
interface HttpLimits {
  maxConnections: number;
  headerTimeoutMs: number;
  connectionTimeoutMs: number;
}

/** The limits of `options`, defaulted; throws on a value below 1 or not whole. */
function httpLimits(options: HttpServerOptions): HttpLimits {
  const limits: HttpLimits = {
    maxConnections: options.maxConnections ?? HTTP_MAX_CONNECTIONS,
    headerTimeoutMs: options.headerTimeoutMs ?? HTTP_HEADER_TIMEOUT_MS,
    connectionTimeoutMs: options.connectionTimeoutMs ?? HTTP_CONNECTION_TIMEOUT_MS,
  };
  for (const [name, v] of Object.entries(limits)) {
    if (!Number.isInteger(v) || v < 1) {
      throw new Error(`http server: ${name} must be >= 1, got ${v}`);
    }
  }
  return limits;
}

/** What the accept loop and the connections share. */
interface ServerState {
  readonly stats: HttpServerStats;
  /** Connections being served. */
  readonly open: Set<Deno.Conn>;
  closed: boolean;
  /** Ends the accept loop's pause after a failed accept early (set while it pauses). */
  wake: (() => void) | null;
}

/**
 * Listens on `host:port` (throws at once if it cannot) and answers each request with `handler`.
 *
 * @example
 * ```ts
 * const s = startHttpServer({ host: "127.0.0.1", port: 0, maxConnections: 8 }, (req) =>
 *   new Response(new URL(req.url).pathname));
 * await s.close();
 * ```
 */
export function startHttpServer(
  options: HttpServerOptions,
  handler: (req: Request) => Response | Promise<Response>,
): HttpServer {
  const limits = httpLimits(options);
  const listener = Deno.listen({ hostname: options.host, port: options.port, transport: "tcp" });
  const addr = listener.addr as Deno.NetAddr;
  const state: ServerState = {
    stats: {
      active: 0,
      accepted: 0,
      requests: 0,
      refusedCap: 0,
      acceptErrors: 0,
      headerTimeouts: 0,
      connectionTimeouts: 0,
      badRequests: 0,
    },
    open: new Set<Deno.Conn>(),
    closed: false,
    wake: null,
  };
  const serve = (conn: Deno.Conn) =>
    serveConnection(conn, state, limits, (head) => answer(head, addr, handler, state.stats));
  const acceptLoop = acceptConnections(listener, state, limits, serve, options.onAcceptError);
  return {
    address: { host: addr.hostname, port: addr.port },
    stats: state.stats,
    async close(): Promise<void> {
      if (state.closed) return acceptLoop;
      state.closed = true;
      closeQuietly(listener);
      state.wake?.();
      for (const conn of state.open) closeQuietly(conn);
      await acceptLoop;
    },
  };
}

/**
 * Accepts until the server closes: a connection over the cap is refused (503), a failed accept
 * (out of descriptors...) is counted and retried after a pause that doubles up to
 * {@link HTTP_ACCEPT_RETRY_MAX_MS}.
 */
async function acceptConnections(
  listener: Deno.Listener,
  state: ServerState,
  limits: HttpLimits,
  serve: (conn: Deno.Conn) => Promise<void>,
  onAcceptError: ((error: Error) => void) | undefined,
): Promise<void> {
  const stats = state.stats;
  let retryMs = HTTP_ACCEPT_RETRY_MS;
  while (!state.closed) {
    let conn: Deno.Conn;
    try {
      conn = await listener.accept();
    } catch (e) {
      if (state.closed) return;
      stats.acceptErrors++;
      onAcceptError?.(e instanceof Error ? e : new Error(String(e)));
      await pauseAfterAcceptError(state, retryMs);
      retryMs = Math.min(HTTP_ACCEPT_RETRY_MAX_MS, retryMs * 2);
      continue;
    }
    retryMs = HTTP_ACCEPT_RETRY_MS;
    stats.accepted++;
    if (state.closed) {
      closeQuietly(conn);
      return;
    }
    if (state.open.size >= limits.maxConnections) {
      stats.refusedCap++;
      void refuse(conn);
      continue;
    }
    state.open.add(conn);
    stats.active = state.open.size;
    void serve(conn);
  }
}

/** Waits `ms`, or less if the server closes meanwhile ({@link ServerState.wake}). */
async function pauseAfterAcceptError(state: ServerState, ms: number): Promise<void> {
  await new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    state.wake = () => {
      clearTimeout(t);
      resolve();
    };
  });
  state.wake = null;
}

/**
 * Serves one connection within {@link HttpLimits.connectionTimeoutMs}: reads the request head
 * within {@link HttpLimits.headerTimeoutMs}, writes `respond`'s answer, closes.
 */
async function serveConnection(
  conn: Deno.Conn,
  state: ServerState,
  limits: HttpLimits,
  respond: (head: Uint8Array | "too-large") => Promise<{ res: Response; headOnly: boolean }>,
): Promise<void> {
  const stats = state.stats;
  let headerTimer: ReturnType<typeof setTimeout> | undefined;
  const deadline = setTimeout(() => {
    stats.connectionTimeouts++;
    closeQuietly(conn);
  }, limits.connectionTimeoutMs);
  try {
    const head = await new Promise<Uint8Array | "timeout" | "too-large" | null>((resolve) => {
      headerTimer = setTimeout(() => resolve("timeout"), limits.headerTimeoutMs);
      readHead(conn).then(resolve, () => resolve(null));
    });
    clearTimeout(headerTimer);
    if (head === null) return;
    if (head === "timeout") {
      stats.headerTimeouts++;
      return;
    }
    const { res, headOnly } = await respond(head);
    await writeResponse(conn, res, headOnly);
  } catch {
    // The client went away mid-exchange: nothing to answer.
  } finally {
    clearTimeout(headerTimer);
    clearTimeout(deadline);
    closeQuietly(conn);
    state.open.delete(conn);
    stats.active = state.open.size;
  }
}

/**
 * The answer to a request head: 431 when too large, 400 when malformed, else `handler`'s
 * response (500 when it throws), counted.
 */
async function answer(
  head: Uint8Array | "too-large",
  addr: Deno.NetAddr,
  handler: (req: Request) => Response | Promise<Response>,
  stats: HttpServerStats,
): Promise<{ res: Response; headOnly: boolean }> {
  if (head === "too-large") {
    stats.badRequests++;
    return {
      res: new Response("request header too large\n", { status: 431 }),
      headOnly: false,
    };
  }
  const req = parseHead(head, addr);
  if (req === null) {
    stats.badRequests++;
    return { res: new Response("bad request\n", { status: 400 }), headOnly: false };
  }
  let res: Response;
  try {
    res = await handler(req);
  } catch (e) {
    res = new Response(`internal error: ${e instanceof Error ? e.message : e}\n`, {
      status: 500,
    });
  }
  stats.requests++;
  return { res, headOnly: req.method === "HEAD" };
}

/** Answers 503 without reading, bounded in time, and closes. */
async function refuse(conn: Deno.Conn): Promise<void> {
  const t = setTimeout(() => closeQuietly(conn), 1_000);
  try {
    await conn.write(encoder.encode(
      "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: 25\r\n" +
        "connection: close\r\n\r\ntoo many HTTP connections",
    ));
  } catch {
    // Gone already.
  } finally {
    clearTimeout(t);
    closeQuietly(conn);
  }
}

/** Reads until the blank line ending the head; "too-large" past the limit, null on EOF. */
async function readHead(conn: Deno.Conn): Promise<Uint8Array | "too-large" | null> {
  const buf = new Uint8Array(HTTP_MAX_HEADER_BYTES);
  let used = 0;
  while (true) {
    if (used >= buf.length) return "too-large";
    const n = await conn.read(buf.subarray(used));
    if (n === null) return null;
    const from = Math.max(0, used - 3);
    used += n;
    const end = indexOf(buf.subarray(0, used), HEAD_END, from);
    if (end >= 0) return buf.slice(0, end);
  }
}

function indexOf(hay: Uint8Array, needle: Uint8Array, from: number): number {
  outer: for (let i = from; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/** The request head as a `Request` (no body), or null when it is not HTTP/1.x. */
function parseHead(head: Uint8Array, addr: Deno.NetAddr): Request | null {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(head);
  } catch {
    return null;
  }
  const lines = text.split("\r\n");
  const m = /^([A-Z]{1,16}) (\/[^ ]*) HTTP\/1\.[01]$/.exec(lines[0] ?? "");
  if (m === null) return null;
  const headers = new Headers();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon <= 0) return null;
    try {
      headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
    } catch {
      return null;
    }
  }
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  try {
    return new Request(`http://${host}:${addr.port}${m[2]}`, { method: m[1], headers });
  } catch {
    return null;
  }
}

const REASONS: Record<number, string> = {
  200: "OK",
  400: "Bad Request",
  404: "Not Found",
  405: "Method Not Allowed",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

async function writeResponse(conn: Deno.Conn, res: Response, headOnly: boolean): Promise<void> {
  const body = new Uint8Array(await res.arrayBuffer());
  let head = `HTTP/1.1 ${res.status} ${REASONS[res.status] ?? "Status"}\r\n`;
  res.headers.forEach((value, name) => {
    if (name !== "content-length" && name !== "connection") head += `${name}: ${value}\r\n`;
  });
  head += `content-length: ${body.length}\r\nconnection: close\r\n\r\n`;
  const headBytes = encoder.encode(head);
  const out = new Uint8Array(headBytes.length + (headOnly ? 0 : body.length));
  out.set(headBytes, 0);
  if (!headOnly) out.set(body, headBytes.length);
  let written = 0;
  while (written < out.length) written += await conn.write(out.subarray(written));
}

function closeQuietly(c: { close(): void }): void {
  try {
    c.close();
  } catch {
    // Already closed.
  }
}
