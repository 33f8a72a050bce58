/**
 * The choice of the master proxy's engine (`--proxy-engine`): {@link chooseProxyEngine} on every
 * combination of request, OS, CPU and FFI permission, and {@link currentProxyPlatform} against
 * this process. No I/O: the platform is an argument.
 */

import assert from "node:assert/strict";
import { PROXY_ENGINE_REQUESTS } from "../../lib/proxy/proxy_options.ts";
import {
  chooseProxyEngine,
  currentProxyPlatform,
  EPOLL_ENGINE_ARCH,
  EPOLL_ENGINE_OS,
  PROXY_ENGINES,
  ProxyEngineUnavailableError,
  type ProxyPlatform,
} from "../../lib/proxy/proxy_engine.ts";

const LINUX_X86: ProxyPlatform = { os: "linux", arch: "x86_64", ffiGranted: true };
const NO_FFI: ProxyPlatform = { ...LINUX_X86, ffiGranted: false };
const ARM: ProxyPlatform = { ...LINUX_X86, arch: "aarch64" };
const MAC: ProxyPlatform = { os: "darwin", arch: "x86_64", ffiGranted: true };

/** Asserts that `fn` throws a ProxyEngineUnavailableError naming `--proxy-engine` whose message matches `pattern`. */
function rejectsEngine(fn: () => unknown, pattern: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof ProxyEngineUnavailableError, `wrong error: ${String(caught)}`);
  assert.equal(caught.flag, "--proxy-engine");
  assert.ok(caught.message.startsWith("--proxy-engine: "), caught.message);
  assert.match(caught.message, pattern);
  assert.match(caught.expected, /deno or auto/);
}

Deno.test("proxy engine: the flag's values are auto and every engine", () => {
  assert.deepEqual(
    PROXY_ENGINE_REQUESTS.filter((r) => r !== "auto").sort(),
    [...PROXY_ENGINES].sort(),
  );
  assert.equal(EPOLL_ENGINE_OS, "linux");
  assert.equal(EPOLL_ENGINE_ARCH, "x86_64");
});

Deno.test("proxy engine: auto is epoll on x86_64 Linux with --allow-ffi", () => {
  const choice = chooseProxyEngine("auto", LINUX_X86);
  assert.equal(choice.engine, "epoll");
  assert.match(choice.reason, /^auto: linux\/x86_64 with --allow-ffi$/);
});

Deno.test("proxy engine: auto falls back to deno without --allow-ffi, saying so", () => {
  const choice = chooseProxyEngine("auto", NO_FFI);
  assert.equal(choice.engine, "deno");
  assert.match(choice.reason, /^auto: .*--allow-ffi, not granted/);
});

Deno.test("proxy engine: auto falls back to deno off x86_64 Linux, naming the platform", () => {
  for (const platform of [ARM, MAC, { ...ARM, ffiGranted: false }]) {
    const choice = chooseProxyEngine("auto", platform);
    assert.equal(choice.engine, "deno", JSON.stringify(platform));
    assert.match(choice.reason, /^auto: the epoll engine runs on linux\/x86_64 only/);
    assert.ok(choice.reason.endsWith(`this is ${platform.os}/${platform.arch}`), choice.reason);
  }
});

Deno.test("proxy engine: deno is deno everywhere, with or without --allow-ffi", () => {
  for (const platform of [LINUX_X86, NO_FFI, ARM, MAC]) {
    assert.deepEqual(chooseProxyEngine("deno", platform), {
      engine: "deno",
      reason: "--proxy-engine deno",
    });
  }
});

Deno.test("proxy engine: epoll is epoll where it can run", () => {
  assert.deepEqual(chooseProxyEngine("epoll", LINUX_X86), {
    engine: "epoll",
    reason: "--proxy-engine epoll",
  });
});

Deno.test("proxy engine: epoll where it cannot run is a clear error naming --proxy-engine", () => {
  rejectsEngine(
    () => chooseProxyEngine("epoll", NO_FFI),
    /needs --allow-ffi.*run with --allow-ffi/,
  );
  rejectsEngine(
    () => chooseProxyEngine("epoll", ARM),
    /linux\/x86_64 only, this is linux\/aarch64/,
  );
  rejectsEngine(() => chooseProxyEngine("epoll", MAC), /this is darwin\/x86_64/);
  // Both missing: the platform is named first (granting --allow-ffi would not help).
  rejectsEngine(
    () => chooseProxyEngine("epoll", { ...ARM, ffiGranted: false }),
    /this is linux\/aarch64/,
  );
});

Deno.test("proxy engine: a value outside the flag's is a programmer error", () => {
  assert.throws(
    // @ts-expect-error: not a ProxyEngineRequest
    () => chooseProxyEngine("uring", LINUX_X86),
    (e) => e instanceof TypeError && /one of auto, epoll, deno, got uring/.test(e.message),
  );
});

Deno.test("proxy engine: currentProxyPlatform reads this process (run with --allow-all)", () => {
  const platform = currentProxyPlatform();
  assert.deepEqual(platform, {
    os: Deno.build.os,
    arch: Deno.build.arch,
    ffiGranted: Deno.permissions.querySync({ name: "ffi" }).state === "granted",
  });
  assert.equal(platform.ffiGranted, true, "the tests run with --allow-all");
});
