/**
 * The hive's HTTP surface on `--bind`:`--http-port` (`Deno.serve`): `GET /healthz` (200 while
 * the loop turns, else 503) and `GET /status` (JSON: PRODUCT.md's `id`, `role`, `leader`,
 * `peers`, `redis`, and more). Anything else is 404; a method other than GET or HEAD is 405.
 *
 * @example
 * ```ts
 * import { startStatusServer } from "./status_server.ts";
 * const server = await startStatusServer({
 *   host: "127.0.0.1", port: 8080, hive: { healthy: () => true, status: () => ({ role: "leader" }) },
 * });
 * await server.close();
 * ```
 */

/** What the server reports on. */
export interface StatusSource {
  /** The process is alive and its loop turns. */
  healthy(): boolean;
  /** Everything the node knows (serialized as JSON). */
  status(): unknown;
}

/** A running status server. */
export interface StatusServer {
  /** The bound address (useful with port 0). */
  readonly address: { host: string; port: number };
  /** Stops listening and closes open connections. */
  close(): Promise<void>;
}

/** Options of {@link startStatusServer}. */
export interface StatusServerOptions {
  host: string;
  port: number;
  hive: StatusSource;
}

const JSON_HEADERS = { "content-type": "application/json; charset=utf-8" };
const TEXT_HEADERS = { "content-type": "text/plain; charset=utf-8" };

/** Answers one request; exported for tests without a socket. */
export function handleStatusRequest(req: Request, hive: StatusSource): Response {
  if (req.method !== "GET" && req.method !== "HEAD") {
    return new Response("method not allowed\n", { status: 405, headers: TEXT_HEADERS });
  }
  const path = new URL(req.url).pathname;
  switch (path) {
    case "/healthz":
      return hive.healthy()
        ? new Response("ok\n", { headers: TEXT_HEADERS })
        : new Response("loop stalled\n", { status: 503, headers: TEXT_HEADERS });
    case "/status":
      return new Response(JSON.stringify(hive.status(), null, 2) + "\n", { headers: JSON_HEADERS });
    default:
      return new Response("not found\n", { status: 404, headers: TEXT_HEADERS });
  }
}

/** Starts the HTTP server; resolves once it listens. */
export function startStatusServer(options: StatusServerOptions): Promise<StatusServer> {
  return new Promise((resolve, reject) => {
    try {
      const server = Deno.serve({
        hostname: options.host,
        port: options.port,
        onListen: (addr) => {
          resolve({
            address: { host: addr.hostname, port: addr.port },
            close: () => server.shutdown(),
          });
        },
        onError: (e) =>
          new Response(`internal error: ${e instanceof Error ? e.message : e}\n`, {
            status: 500,
            headers: TEXT_HEADERS,
          }),
      }, (req) => handleStatusRequest(req, options.hive));
    } catch (e) {
      reject(e);
    }
  });
}
