/**
 * The master proxy's engines and the choice between them: `"epoll"` ({@link EpollMasterProxy},
 * libc epoll through FFI in a worker; needs `--allow-ffi` and x86_64 Linux) or `"deno"`
 * ({@link MasterProxy}, `Deno.listen`/`Deno.connect` read/write loops; needs no more than
 * `--allow-net`). Both have the same options, behaviour and API ({@link ProxyHandle}).
 *
 * The hive runs `--proxy-engine auto` by default: {@link chooseProxyEngine} picks epoll where it
 * can run (less CPU per request and less memory per idle connection, docs/benchmarks.md), else
 * deno, and says why.
 *
 * @example
 * ```ts
 * import { chooseProxyEngine, currentProxyPlatform, listenProxy } from "./proxy_engine.ts";
 * const { engine, reason } = chooseProxyEngine("auto", currentProxyPlatform());
 * const proxy = await listenProxy({ bind: { host: "127.0.0.1", port: 6380 }, engine });
 * proxy.setTarget({ host: "127.0.0.11", port: 6379 });
 * await proxy.close();
 * ```
 */

import { MasterProxy } from "./deno/deno_proxy.ts";
import {
  PROXY_ENGINE_REQUESTS,
  type ProxyEngineRequest,
  type ProxyHandle,
  type ProxyOptions,
} from "./proxy_options.ts";
import { EpollMasterProxy } from "./epoll/epoll_proxy.ts";

/** The proxy engines. */
export const PROXY_ENGINES = ["deno", "epoll"] as const;

/** One of {@link PROXY_ENGINES}. */
export type ProxyEngine = typeof PROXY_ENGINES[number];

/**
 * The engine {@link listenProxy} (and tools/bench/proxy_server.ts) runs when none is named: the one that
 * runs everywhere with no permission beyond `--allow-net`. Not the hive's default: the hive runs
 * `--proxy-engine auto`, which picks epoll where it can ({@link chooseProxyEngine}).
 */
export const DEFAULT_PROXY_ENGINE: ProxyEngine = "deno";

/** The OS the epoll engine runs on (`Deno.build.os`). */
export const EPOLL_ENGINE_OS = "linux";

/** The CPU the epoll engine runs on (`Deno.build.arch`): lib/proxy/epoll/libc.ts hard-codes its struct layouts. */
export const EPOLL_ENGINE_ARCH = "x86_64";

/**
 * `--proxy-engine epoll` where that engine cannot run. `flag` and `expected` as a bad flag's
 * error has them: main.ts exits with the configuration error status (2) for it.
 *
 * @example
 * ```ts
 * import { chooseProxyEngine, ProxyEngineUnavailableError } from "./proxy_engine.ts";
 * try {
 *   chooseProxyEngine("epoll", { os: "darwin", arch: "x86_64", ffiGranted: true });
 * } catch (e) {
 *   if (e instanceof ProxyEngineUnavailableError) console.error(e.message);
 * }
 * ```
 */
export class ProxyEngineUnavailableError extends Error {
  override readonly name = "ProxyEngineUnavailableError";
  /** The flag at fault: `--proxy-engine`. */
  readonly flag = "--proxy-engine";
  /** The accepted values on this platform. */
  readonly expected: string;

  /** `detail`: why the engine cannot run here, and the fix. */
  constructor(expected: string, detail: string) {
    super(`--proxy-engine: ${detail}`);
    this.expected = expected;
  }
}

/** The facts of this process that decide whether the epoll engine can run. */
export interface ProxyPlatform {
  /** `Deno.build.os`. */
  os: string;
  /** `Deno.build.arch`. */
  arch: string;
  /** Whether the process may call native code: `--allow-ffi`, unrestricted. */
  ffiGranted: boolean;
}

/** The engine to run, and why (for the start-up log line and `/status`). */
export interface ProxyEngineChoice {
  engine: ProxyEngine;
  reason: string;
}

/**
 * This process's {@link ProxyPlatform}: its OS and CPU, and whether `--allow-ffi` is granted (a
 * query, never a prompt).
 *
 * @example
 * ```ts
 * import { currentProxyPlatform } from "./proxy_engine.ts";
 * console.log(currentProxyPlatform()); // { os: "linux", arch: "x86_64", ffiGranted: true }
 * ```
 */
export function currentProxyPlatform(): ProxyPlatform {
  return {
    os: Deno.build.os,
    arch: Deno.build.arch,
    ffiGranted: Deno.permissions.querySync({ name: "ffi" }).state === "granted",
  };
}

/**
 * Decides which engine runs for `--proxy-engine requested` on `platform`. `auto` is epoll on
 * x86_64 Linux with `--allow-ffi`, else deno (the reason says what was missing); `deno` is deno;
 * `epoll` where it cannot run throws a {@link ProxyEngineUnavailableError} naming
 * `--proxy-engine` (main.ts exits 2 for it, as for a bad flag). Pure: the platform facts are an argument ({@link currentProxyPlatform}).
 *
 * @throws {ProxyEngineUnavailableError} for `epoll` off x86_64 Linux or without `--allow-ffi`
 * @throws {TypeError} for a value that is not one of {@link PROXY_ENGINE_REQUESTS} (a bug)
 *
 * @example
 * ```ts
 * import { chooseProxyEngine } from "./proxy_engine.ts";
 * chooseProxyEngine("auto", { os: "linux", arch: "aarch64", ffiGranted: true });
 * // { engine: "deno", reason: "auto: the epoll engine runs on linux/x86_64 only, this is linux/aarch64" }
 * ```
 */
export function chooseProxyEngine(
  requested: ProxyEngineRequest,
  platform: ProxyPlatform,
): ProxyEngineChoice {
  const where = `${platform.os}/${platform.arch}`;
  const supported = platform.os === EPOLL_ENGINE_OS && platform.arch === EPOLL_ENGINE_ARCH;
  const wrongPlatform =
    `the epoll engine runs on ${EPOLL_ENGINE_OS}/${EPOLL_ENGINE_ARCH} only, this is ${where}`;
  const noFfi = "the epoll engine calls libc through FFI and needs --allow-ffi, not granted";
  switch (requested) {
    case "deno":
      return { engine: "deno", reason: "--proxy-engine deno" };
    case "auto":
      if (!supported) return { engine: "deno", reason: `auto: ${wrongPlatform}` };
      if (!platform.ffiGranted) return { engine: "deno", reason: `auto: ${noFfi}` };
      return { engine: "epoll", reason: `auto: ${where} with --allow-ffi` };
    case "epoll": {
      const expected = `deno or auto, or epoll on ${EPOLL_ENGINE_OS}/${EPOLL_ENGINE_ARCH} ` +
        "with --allow-ffi";
      const fix = "use --proxy-engine deno or auto";
      if (!supported) {
        throw new ProxyEngineUnavailableError(expected, `${wrongPlatform}; ${fix}`);
      }
      if (!platform.ffiGranted) {
        throw new ProxyEngineUnavailableError(expected, `${noFfi}; run with --allow-ffi or ${fix}`);
      }
      return { engine: "epoll", reason: "--proxy-engine epoll" };
    }
    default:
      throw new TypeError(
        `chooseProxyEngine: requested must be one of ${PROXY_ENGINE_REQUESTS.join(", ")}, ` +
          `got ${String(requested)}`,
      );
  }
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
