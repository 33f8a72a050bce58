/**
 * The hive's HTTP surface on `--bind`:`--http-port` (lib/http/http_server.ts: a connection cap,
 * header and connection timeouts, and an accept loop that survives running out of descriptors):
 *
 * - `GET /healthz`: 200 while the loop turns, else 503 (`loop stalled`).
 * - `GET /readyz`: 200 when {@link readiness} says ready, else 503; the body is the one-line
 *   reason either way (503 `loop stalled` too while the loop does not turn).
 * - `GET /status`: JSON of the node's {@link HiveStatus} (`id`, `role`, `leader`, `peers`,
 *   `redis`, and more; the contract is lib/http/hive_status.ts, described in docs/operations.md).
 * - `GET /metrics`: Prometheus text format 0.0.4 ({@link metricsText}).
 * - `GET /`: the status page ({@link STATUS_PAGE_HTML}), which polls `/status` and `/readyz`.
 *
 * Anything else is 404; a method other than GET or HEAD is 405. No answer is cached.
 *
 * @example
 * ```ts
 * import { startStatusServer } from "./status_server.ts";
 * declare const hive: StatusSource; // a running Hive
 * const server = await startStatusServer({ host: "127.0.0.1", port: 8080, hive });
 * console.log(`http://${server.address.host}:${server.address.port}/`);
 * await server.close();
 * ```
 */

import type { HiveStatus } from "./hive_status.ts";
import { type HttpServerStats, startHttpServer } from "./http_server.ts";
import { METRICS_CONTENT_TYPE, metricsText } from "./metrics.ts";
import { readiness } from "./readiness.ts";
import { STATUS_PAGE_CSP, STATUS_PAGE_HTML } from "./status_page.ts";

/** What the server reports on (a running `Hive`, or a fake in tests). */
export interface StatusSource {
  /** The process is alive and its loop turns. */
  healthy(): boolean;
  /** Everything the node knows (served as JSON, and the source of readiness and metrics). */
  status(): HiveStatus;
}

/** A running status server. */
export interface StatusServer {
  /** The bound address (useful with port 0). */
  readonly address: { host: string; port: number };
  /** Connections, refusals and timeouts (see {@link HttpServerStats}). */
  readonly stats: HttpServerStats;
  /** Stops listening and closes open connections. */
  close(): Promise<void>;
}

/** Options of {@link startStatusServer}. */
export interface StatusServerOptions {
  host: string;
  port: number;
  hive: StatusSource;
  /** Called for each failed accept (out of file descriptors...): the server waits and retries. */
  onAcceptError?: (error: Error) => void;
}

const NO_STORE = { "cache-control": "no-store" };
const JSON_HEADERS = { ...NO_STORE, "content-type": "application/json; charset=utf-8" };
const TEXT_HEADERS = { ...NO_STORE, "content-type": "text/plain; charset=utf-8" };
const METRICS_HEADERS = { ...NO_STORE, "content-type": METRICS_CONTENT_TYPE };
const HTML_HEADERS = {
  ...NO_STORE,
  "content-type": "text/html; charset=utf-8",
  "content-security-policy": STATUS_PAGE_CSP,
  "x-content-type-options": "nosniff",
};

function text(body: string, status = 200): Response {
  return new Response(body + "\n", { status, headers: TEXT_HEADERS });
}

/**
 * Answers one request; exported for tests without a socket.
 *
 * @example
 * ```ts
 * import { handleStatusRequest } from "./status_server.ts";
 * declare const hive: StatusSource; // a running Hive
 * const res = handleStatusRequest(new Request("http://x/readyz"), hive);
 * console.log(res.status, await res.text());
 * ```
 */
export function handleStatusRequest(req: Request, hive: StatusSource): Response {
  if (req.method !== "GET" && req.method !== "HEAD") {
    return new Response("method not allowed\n", {
      status: 405,
      headers: { ...TEXT_HEADERS, allow: "GET, HEAD" },
    });
  }
  const path = new URL(req.url).pathname;
  switch (path) {
    case "/healthz":
      return hive.healthy() ? text("ok") : text("loop stalled", 503);
    case "/readyz": {
      if (!hive.healthy()) return text("loop stalled", 503);
      const r = readiness(hive.status());
      return text(r.reason, r.ready ? 200 : 503);
    }
    case "/status":
      return new Response(JSON.stringify(hive.status(), null, 2) + "\n", { headers: JSON_HEADERS });
    case "/metrics":
      return new Response(metricsText(hive.status()), { headers: METRICS_HEADERS });
    case "/":
      return new Response(STATUS_PAGE_HTML, { headers: HTML_HEADERS });
    default:
      return text("not found", 404);
  }
}

/**
 * Starts the HTTP server; resolves once it listens.
 *
 * @example
 * ```ts
 * import { startStatusServer } from "./status_server.ts";
 * declare const hive: StatusSource; // a running Hive
 * const server = await startStatusServer({ host: "127.0.0.1", port: 0, hive });
 * await server.close();
 * ```
 */
export function startStatusServer(options: StatusServerOptions): Promise<StatusServer> {
  try {
    const server = startHttpServer({
      host: options.host,
      port: options.port,
      onAcceptError: options.onAcceptError,
    }, (req) => handleStatusRequest(req, options.hive));
    return Promise.resolve({
      address: server.address,
      stats: server.stats,
      close: () => server.close(),
    });
  } catch (e) {
    return Promise.reject(e);
  }
}
