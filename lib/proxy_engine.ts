/**
 * Choosing the master proxy's engine: `"deno"` ({@link MasterProxy}, `Deno.listen`/`Deno.connect`
 * read/write loops, the default) or `"epoll"` ({@link EpollMasterProxy}, libc epoll through FFI
 * in a worker; needs `--allow-ffi`). Both have the same options, behaviour and API
 * ({@link ProxyHandle}).
 *
 * @example
 * ```ts
 * import { listenProxy } from "./proxy_engine.ts";
 * const proxy = await listenProxy({ bind: { host: "127.0.0.1", port: 6380 }, engine: "epoll" });
 * proxy.setTarget({ host: "127.0.0.11", port: 6379 });
 * await proxy.close();
 * ```
 */

import { MasterProxy, type ProxyOptions, type ProxyStats } from "./proxy.ts";
import { EpollMasterProxy } from "./proxy_epoll.ts";
import type { ProxyTarget } from "./redis_state.ts";

/** The proxy engines. */
export const PROXY_ENGINES = ["deno", "epoll"] as const;

/** One of {@link PROXY_ENGINES}. */
export type ProxyEngine = typeof PROXY_ENGINES[number];

/** The engine used when none is named. */
export const DEFAULT_PROXY_ENGINE: ProxyEngine = "deno";

/** What both engines offer (the public API of {@link MasterProxy}). */
export interface ProxyHandle {
  readonly bufferBytes: number;
  readonly idleBufferBytes: number;
  readonly holdMs: number;
  readonly maxConnections: number;
  readonly connectTimeoutMs: number;
  readonly address: { host: string; port: number };
  readonly listening: boolean;
  readonly target: ProxyTarget;
  readonly stats: Readonly<ProxyStats>;
  setTarget(target: ProxyTarget): void;
  close(): Promise<void>;
}

/**
 * Starts a proxy with the chosen engine (default {@link DEFAULT_PROXY_ENGINE}); throws a clear
 * error for an unknown engine.
 *
 * @example
 * ```ts
 * const proxy = await listenProxy({ bind: { host: "0.0.0.0", port: 6380 }, engine: "deno" });
 * ```
 */
export function listenProxy(opts: ProxyOptions & { engine?: ProxyEngine }): Promise<ProxyHandle> {
  const engine = opts.engine ?? DEFAULT_PROXY_ENGINE;
  switch (engine) {
    case "deno":
      return MasterProxy.listen(opts);
    case "epoll":
      return EpollMasterProxy.listen(opts);
    default:
      return Promise.reject(
        new TypeError(
          `listenProxy: engine must be one of ${PROXY_ENGINES.join(", ")}, got ${String(engine)}`,
        ),
      );
  }
}
