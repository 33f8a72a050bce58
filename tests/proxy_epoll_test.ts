/**
 * The master proxy's epoll engine (lib/proxy_epoll.ts): the shared behaviour tests
 * (tests/proxy_suite.ts) against real redis-server processes and real sockets on loopback
 * 127.0.1.61-.69, plus what is particular to this engine. Needs `--allow-ffi`.
 */
import assert from "node:assert/strict";
import {
  AF_UNIX,
  ipSocketAddress,
  resolveSocketAddress,
  socketAddressPort,
  unixSocketAddress,
} from "../lib/libc.ts";
import { listenProxy } from "../lib/proxy_engine.ts";
import { proxySuite } from "./proxy_suite.ts";

const PROXY_HOST = "127.0.1.61";

proxySuite({
  name: "proxy epoll",
  engine: "epoll",
  addresses: {
    proxyHost: PROXY_HOST,
    redisA: { host: "127.0.1.62", port: 16379 },
    redisB: { host: "127.0.1.63", port: 16379 },
    nowhere: { host: "127.0.1.69", port: 16399 },
    halfCloseServer: { host: "127.0.1.64", port: 16400 },
  },
});

Deno.test("libc: socket addresses from IP literals and names", () => {
  const v4 = ipSocketAddress("127.0.1.61", 6379);
  assert.deepEqual([...(v4?.bytes ?? [])].slice(0, 8), [2, 0, 0x18, 0xeb, 127, 0, 1, 61]);
  assert.equal(socketAddressPort(v4!.bytes), 6379);
  const v6 = ipSocketAddress("::1", 80);
  assert.equal(v6?.bytes.length, 28);
  assert.equal(v6?.bytes[23], 1);
  assert.equal(ipSocketAddress("localhost", 1), null);
  assert.equal(resolveSocketAddress("localhost", 6380).bytes.length > 0, true);
  assert.equal(socketAddressPort(resolveSocketAddress("localhost", 6380).bytes), 6380);
  assert.throws(() => resolveSocketAddress("no-such-host.invalid", 1), /cannot resolve/);
  const unix = unixSocketAddress("/run/r.sock");
  assert.equal(unix.family, AF_UNIX);
  assert.deepEqual([...unix.bytes], [1, 0, ...new TextEncoder().encode("/run/r.sock"), 0]);
  assert.equal(unixSocketAddress(`/${"x".repeat(106)}`).bytes.length, 2 + 107 + 1);
  assert.throws(() => unixSocketAddress(`/${"x".repeat(107)}`), /1\.\.107 bytes/);
  assert.throws(() => unixSocketAddress(""), /1\.\.107 bytes/);
  assert.throws(() => unixSocketAddress("/a\0b"), /without NUL/);
});

Deno.test("proxy epoll: a listen failure is a clear error; unknown engines are refused", async () => {
  const first = await listenProxy({ bind: { host: PROXY_HOST, port: 0 }, engine: "epoll" });
  try {
    await assert.rejects(
      listenProxy({ bind: first.address, engine: "epoll" }),
      /bind 127\.0\.1\.61:\d+: Address already in use/,
    );
  } finally {
    await first.close();
  }
  await assert.rejects(
    // @ts-expect-error: an engine that does not exist
    listenProxy({ bind: { host: PROXY_HOST, port: 0 }, engine: "uring" }),
    /engine must be one of deno, epoll, got uring/,
  );
});
