/**
 * The master proxy (Deno engine) against real redis-server processes and real sockets
 * (loopback 127.0.1.1-.20; the proxy benchmark uses 127.0.1.40-.59, the epoll engine's tests
 * 127.0.1.61-.69). The behaviour tests are shared with the epoll engine: tests/proxy/proxy_suite.ts.
 */
import assert from "node:assert/strict";
import { BufferPool } from "../../lib/proxy/buffer_pool.ts";
import { proxySuite } from "./proxy_suite.ts";

proxySuite({
  name: "proxy",
  engine: "deno",
  addresses: {
    proxyHost: "127.0.1.1",
    redisA: { host: "127.0.1.2", port: 16379 },
    redisB: { host: "127.0.1.3", port: 16379 },
    nowhere: { host: "127.0.1.9", port: 16399 },
    halfCloseServer: { host: "127.0.1.4", port: 16400 },
  },
});

Deno.test("proxy buffer pool: reuses returned buffers up to its cap, rejects foreign sizes", () => {
  const pool = new BufferPool(1024, 1);
  const a = pool.take();
  const b = pool.take();
  assert.notEqual(a, b);
  assert.equal(a.length, 1024);
  pool.give(a);
  pool.give(b); // beyond the cap: dropped
  assert.equal(pool.pooled, 1);
  assert.equal(pool.take(), a);
  assert.equal(pool.pooled, 0);
  assert.throws(() => pool.give(new Uint8Array(512)), /512-byte buffer, expected 1024/);
  assert.throws(() => new BufferPool(0), /bufferBytes/);
});
