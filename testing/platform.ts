/**
 * What the tests need to know about the machine they run on: whether the epoll proxy engine
 * can run here (x86_64 Linux; its libc struct layouts are that ABI's). Tests of that engine are
 * registered with `ignore` elsewhere, and their name says why, so `deno task test` passes on
 * arm64 and shows what it skipped.
 *
 * @example
 * ```ts
 * import { epollTest } from "./platform.ts";
 * epollTest("proxy epoll: something", () => {});
 * ```
 */

import { EPOLL_ENGINE_ARCH, EPOLL_ENGINE_OS } from "../lib/proxy/proxy_engine.ts";

/** Why the epoll engine cannot run on this machine, or null when it can. */
export const EPOLL_UNSUPPORTED: string | null =
  Deno.build.os === EPOLL_ENGINE_OS && Deno.build.arch === EPOLL_ENGINE_ARCH
    ? null
    : `ignored on ${Deno.build.os}/${Deno.build.arch}: the epoll engine runs on ` +
      `${EPOLL_ENGINE_OS}/${EPOLL_ENGINE_ARCH} only`;

/**
 * `Deno.test(name, fn)` for a test that needs the epoll engine: ignored off x86_64 Linux, with
 * the reason appended to its name.
 *
 * @example
 * ```ts
 * epollTest("libc: socket addresses", () => {});
 * ```
 */
export function epollTest(name: string, fn: () => void | Promise<void>): void {
  Deno.test({
    name: EPOLL_UNSUPPORTED === null ? name : `${name} (${EPOLL_UNSUPPORTED})`,
    ignore: EPOLL_UNSUPPORTED !== null,
    fn,
  });
}
