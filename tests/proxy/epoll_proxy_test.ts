/**
 * The master proxy's epoll engine (lib/proxy/epoll/epoll_proxy.ts): the shared behaviour tests
 * (tests/proxy/proxy_suite.ts) against real redis-server processes and real sockets on loopback
 * 127.0.1.61-.69, plus what is particular to this engine. Needs `--allow-ffi`.
 */
import assert from "node:assert/strict";
import {
  AF_UNIX,
  ipSocketAddress,
  resolveSocketAddress,
  socketAddressPort,
  unixSocketAddress,
} from "../../lib/proxy/epoll/libc.ts";
import { EpollMasterProxy } from "../../lib/proxy/epoll/epoll_proxy.ts";
import { DEFAULT_EPOLL_WORKERS, MAX_EPOLL_WORKERS } from "../../lib/proxy/proxy_options.ts";
import { withRedis } from "../../testing/redis_server.ts";
import { listenProxy } from "../../lib/proxy/proxy_engine.ts";
import { proxySuite } from "./proxy_suite.ts";
import { EPOLL_UNSUPPORTED, epollTest } from "../../testing/platform.ts";

const PROXY_HOST = "127.0.1.61";

proxySuite({
  name: "proxy epoll",
  engine: "epoll",
  ignore: EPOLL_UNSUPPORTED,
  addresses: {
    proxyHost: PROXY_HOST,
    redisA: { host: "127.0.1.62", port: 16379 },
    redisB: { host: "127.0.1.63", port: 16379 },
    nowhere: { host: "127.0.1.69", port: 16399 },
    halfCloseServer: { host: "127.0.1.64", port: 16400 },
  },
});

epollTest("libc: socket addresses from IP literals and names", () => {
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

epollTest(
  "proxy epoll: a listen failure is a clear error; unknown engines are refused",
  async () => {
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
  },
);

epollTest(
  "proxy epoll: two worker threads share the port; the kernel spreads connections; maxConnections bounds them together",
  async () => {
    await withRedis([{ host: "127.0.1.65", port: 16379 }], async () => {
      const proxy = await EpollMasterProxy.listen({
        bind: { host: PROXY_HOST, port: 0 },
        target: { host: "127.0.1.65", port: 16379 },
        maxConnections: 30,
      });
      const conns: Deno.TcpConn[] = [];
      try {
        assert.equal(proxy.workers, DEFAULT_EPOLL_WORKERS);
        assert.equal(DEFAULT_EPOLL_WORKERS, 2);
        const served: boolean[] = [];
        for (let i = 0; i < 40; i++) {
          const conn = await Deno.connect({ hostname: PROXY_HOST, port: proxy.address.port });
          conns.push(conn);
          served.push(await pings(conn));
        }
        // Connections 31 to 40 are past the limit, whichever worker took them.
        assert.deepEqual(served, [...Array(30).fill(true), ...Array(10).fill(false)]);
        const byWorker = proxy.activeByWorker;
        assert.equal(byWorker.length, 2);
        assert.equal(byWorker[0]! + byWorker[1]!, 30);
        assert.ok(byWorker.every((n) => n > 0), `both workers serve: ${byWorker}`);
        const stats = proxy.stats;
        assert.equal(stats.active, 30);
        assert.equal(stats.refused, 10);
        assert.equal(stats.total, 40);
        proxy.setTarget(null); // every worker closes its proxied connections before this returns
        assert.equal(proxy.stats.closedByTargetChange, 30);
        assert.equal(proxy.stats.targetChanges, 1);
      } finally {
        for (const c of conns) c.close();
        await proxy.close();
      }
    });
    await assert.rejects(
      EpollMasterProxy.listen({ bind: { host: PROXY_HOST, port: 0 }, workers: 0 }),
      new RegExp(`workers must be an integer in 1\\.\\.${MAX_EPOLL_WORKERS}, got 0`),
    );
    const single = await EpollMasterProxy.listen({
      bind: { host: PROXY_HOST, port: 0 },
      workers: 1,
    });
    try {
      assert.equal(single.workers, 1);
      // A one-worker proxy does not set SO_REUSEPORT: a second one on its port is refused too.
      await assert.rejects(
        EpollMasterProxy.listen({ bind: single.address }),
        /Address already in use/,
      );
    } finally {
      await single.close();
    }
  },
);

/** PING through `conn`: true on +PONG, false when the proxy closed the connection instead. */
async function pings(conn: Deno.TcpConn): Promise<boolean> {
  await conn.write(new TextEncoder().encode("PING\r\n"));
  const buf = new Uint8Array(16);
  const n = await conn.read(buf).catch(() => null);
  if (n === null) return false;
  assert.equal(new TextDecoder().decode(buf.subarray(0, n)), "+PONG\r\n");
  return true;
}
