/**
 * The status surface's HTTP server (lib/http/http_server.ts): its connection cap, header
 * timeout, head size limit and request parsing, over real TCP on 127.0.13.1.
 */

import assert from "node:assert/strict";
import { HTTP_MAX_HEADER_BYTES, startHttpServer } from "../../lib/http/http_server.ts";

const HOST = "127.0.13.1";

async function exchange(port: number, request: string): Promise<string> {
  const conn = await Deno.connect({ hostname: HOST, port });
  try {
    await conn.write(new TextEncoder().encode(request));
    const chunks: Uint8Array[] = [];
    const buf = new Uint8Array(65536);
    while (true) {
      const n = await conn.read(buf);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
    }
    return new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c])));
  } finally {
    try {
      conn.close();
    } catch { /* closed */ }
  }
}

Deno.test("http server: answers GET and HEAD with content-length and connection: close", async () => {
  const server = startHttpServer(
    { host: HOST, port: 0 },
    (req) =>
      new Response(`${req.method} ${new URL(req.url).pathname} ${req.headers.get("x-a")}\n`, {
        headers: { "content-type": "text/plain" },
      }),
  );
  try {
    const get = await exchange(
      server.address.port,
      "GET /status?x=1 HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\r\n",
    );
    assert.match(get, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(get, /content-length: 14\r\n/);
    assert.match(get, /connection: close\r\n/);
    assert.ok(get.endsWith("\r\n\r\nGET /status b\n"), get);
    const head = await exchange(server.address.port, "HEAD / HTTP/1.1\r\n\r\n");
    assert.ok(head.endsWith("\r\n\r\n"), "HEAD has no body");
    assert.match(await exchange(server.address.port, "nonsense\r\n\r\n"), /^HTTP\/1\.1 400 /);
    const big = `GET / HTTP/1.1\r\nX: ${"a".repeat(HTTP_MAX_HEADER_BYTES)}\r\n\r\n`;
    assert.match(await exchange(server.address.port, big), /^HTTP\/1\.1 431 /);
    assert.equal(server.stats.requests, 2);
    assert.equal(server.stats.badRequests, 2);
  } finally {
    await server.close();
  }
});

Deno.test("http server: a connection that sends no request head is closed after the header timeout", async () => {
  const server = startHttpServer(
    { host: HOST, port: 0, headerTimeoutMs: 100 },
    () => new Response("x"),
  );
  try {
    const conn = await Deno.connect({ hostname: HOST, port: server.address.port });
    await conn.write(new TextEncoder().encode("GET / HT")); // and then nothing
    assert.equal(await conn.read(new Uint8Array(10)), null, "closed by the server");
    conn.close();
    assert.equal(server.stats.headerTimeouts, 1);
  } finally {
    await server.close();
  }
});

Deno.test("http server: past the connection cap new connections get 503 and idle ones do not block it forever", async () => {
  const server = startHttpServer(
    { host: HOST, port: 0, maxConnections: 3, headerTimeoutMs: 300 },
    () => new Response("ok"),
  );
  const idle: Deno.Conn[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      idle.push(await Deno.connect({ hostname: HOST, port: server.address.port }));
    }
    while (server.stats.active < 3) await new Promise((r) => setTimeout(r, 5));
    const refused = await exchange(server.address.port, "GET / HTTP/1.1\r\n\r\n");
    assert.match(refused, /^HTTP\/1\.1 503 /);
    assert.equal(server.stats.refusedCap, 1);
    // The idle ones time out; the server answers again.
    while (server.stats.active > 0) await new Promise((r) => setTimeout(r, 20));
    assert.match(await exchange(server.address.port, "GET / HTTP/1.1\r\n\r\n"), /^HTTP\/1\.1 200 /);
  } finally {
    for (const c of idle) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    await server.close();
  }
});
