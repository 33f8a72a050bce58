/**
 * The master proxy's epoll engine (lib/proxy/epoll/epoll_proxy.ts): the shared behaviour tests
 * (tests/proxy/proxy_suite.ts) against real redis-server processes and real sockets on loopback
 * 127.0.1.61-.69 (the connection-spread test: 127.0.42.31-.32), plus what is particular to this
 * engine. Needs `--allow-ffi`.
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
import { hostProxyWorkerCount, MAX_EPOLL_WORKERS } from "../../lib/proxy/proxy_workers.ts";
import { withRedis } from "../../testing/redis_server.ts";
import { listenProxy } from "../../lib/proxy/proxy_engine.ts";
import { proxySuite } from "./proxy_suite.ts";
import { EPOLL_UNSUPPORTED, epollTest } from "../../testing/platform.ts";

const PROXY_HOST = "127.0.1.61";
/** The burst test's addresses (issue 15's later work: 127.0.42.x). */
const BURST_PROXY_HOST = "127.0.42.31";
const BURST_REDIS_HOST = "127.0.42.32";

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
  "proxy epoll: worker threads share one listening socket; connections are spread evenly; maxConnections bounds them together",
  async () => {
    await withRedis([{ host: "127.0.1.65", port: 16379 }], async () => {
      const proxy = await EpollMasterProxy.listen({
        bind: { host: PROXY_HOST, port: 0 },
        target: { host: "127.0.1.65", port: 16379 },
        maxConnections: 30,
        workers: 2,
      });
      const conns: Deno.TcpConn[] = [];
      try {
        assert.equal(proxy.workers, 2);
        const served: boolean[] = [];
        for (let i = 0; i < 40; i++) {
          const conn = await Deno.connect({ hostname: PROXY_HOST, port: proxy.address.port });
          conns.push(conn);
          served.push(await pings(conn));
        }
        // Connections 31 to 40 are past the limit, whichever worker took them.
        assert.deepEqual(served, [...Array(30).fill(true), ...Array(10).fill(false)]);
        // Each connection went to the least-loaded worker, whichever accepted it.
        assert.deepEqual(proxy.activeByWorker, [15, 15]);
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
    const byDefault = await EpollMasterProxy.listen({ bind: { host: PROXY_HOST, port: 0 } });
    try {
      // Without `workers`: the hive's default, one per CPU this process may use.
      assert.equal(byDefault.workers, hostProxyWorkerCount(null).workers);
      // A second proxy on its port is refused: one plain listening socket, no SO_REUSEPORT.
      await assert.rejects(
        EpollMasterProxy.listen({ bind: byDefault.address, workers: 1 }),
        /bind 127\.0\.1\.61:\d+: Address already in use/,
      );
    } finally {
      await byDefault.close();
    }
  },
);

epollTest(
  "proxy epoll: a burst of connections opened at once is spread over every worker, at most one apart",
  async () => {
    await withRedis([{ host: BURST_REDIS_HOST, port: 16379 }], async () => {
      for (const workers of [2, 3]) {
        const proxy = await EpollMasterProxy.listen({
          bind: { host: BURST_PROXY_HOST, port: 0 },
          target: { host: BURST_REDIS_HOST, port: 16379 },
          workers,
        });
        const conns: Deno.TcpConn[] = [];
        try {
          // 50 clients at once, as redis-benchmark -c 50 opens them (SO_REUSEPORT's hash of
          // their ports gave 17/33 to 25/25 over 2 workers).
          const opened = await Promise.all(
            Array.from(
              { length: 50 },
              () => Deno.connect({ hostname: BURST_PROXY_HOST, port: proxy.address.port }),
            ),
          );
          conns.push(...opened);
          assert.deepEqual(await Promise.all(conns.map(pings)), Array(50).fill(true));
          const byWorker = proxy.activeByWorker;
          assert.equal(byWorker.reduce((a, b) => a + b, 0), 50);
          assert.ok(
            Math.max(...byWorker) - Math.min(...byWorker) <= 1,
            `${workers} workers: ${byWorker}`,
          );
          // Some closed (on whichever workers): the next connections fill the gaps.
          for (const c of conns.splice(0, 10)) c.close();
          while (proxy.stats.active > 40) await new Promise((r) => setTimeout(r, 10));
          const before = proxy.activeByWorker;
          const more = await Promise.all(
            Array.from(
              { length: 10 },
              () => Deno.connect({ hostname: BURST_PROXY_HOST, port: proxy.address.port }),
            ),
          );
          conns.push(...more);
          assert.deepEqual(await Promise.all(more.map(pings)), Array(10).fill(true));
          // Each went to a least-loaded worker: the counts after are the water-filled ones.
          assert.deepEqual(
            sorted(proxy.activeByWorker),
            sorted(waterFill(before, 10)),
            `${workers} workers, before: ${before}`,
          );
        } finally {
          for (const c of conns) c.close();
          await proxy.close();
        }
      }
    });
  },
);

/** `counts` after adding `n`, one at a time, each to a smallest count. */
function waterFill(counts: number[], n: number): number[] {
  const out = [...counts];
  for (let i = 0; i < n; i++) out[out.indexOf(Math.min(...out))]!++;
  return out;
}

function sorted(counts: number[]): number[] {
  return [...counts].sort((a, b) => a - b);
}

/** PING through `conn`: true on +PONG, false when the proxy closed the connection instead. */
async function pings(conn: Deno.TcpConn): Promise<boolean> {
  await conn.write(new TextEncoder().encode("PING\r\n"));
  const buf = new Uint8Array(16);
  const n = await conn.read(buf).catch(() => null);
  if (n === null) return false;
  assert.equal(new TextDecoder().decode(buf.subarray(0, n)), "+PONG\r\n");
  return true;
}
