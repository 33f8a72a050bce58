/**
 * The master proxy's behaviour, shared by both engines (tests/proxy/deno_proxy_test.ts runs it for the Deno
 * engine, tests/proxy/epoll_proxy_test.ts for the epoll engine), against real redis-server processes
 * and real sockets on the loopback addresses each caller passes.
 *
 * @example
 * ```ts
 * import { proxySuite } from "./proxy_suite.ts";
 * proxySuite({ name: "proxy", engine: "deno", addresses: { proxyHost: "127.0.1.1", ... } });
 * ```
 */
import assert from "node:assert/strict";
import {
  DEFAULT_PROXY_HOLD_MS,
  DEFAULT_PROXY_MAX_CONNECTIONS,
  MAX_UNIX_SOCKET_PATH_BYTES,
  PROXY_BUFFER_BYTES,
  type ProxyEvent,
  type ProxyOptions,
} from "../../lib/proxy/proxy_options.ts";
import { listenProxy, type ProxyEngine } from "../../lib/proxy/proxy_engine.ts";
import type { ProxyHandle } from "../../lib/proxy/proxy_options.ts";
import { withRedis } from "../../testing/redis_server.ts";
import { eventually, sleep } from "../../testing/wait.ts";
import { encodeCommand, parseReply, type RespValue } from "../../testing/resp_client.ts";

type Addr = { host: string; port: number };

/** The loopback addresses one run of the suite uses. */
export interface ProxySuiteAddresses {
  /** Where the proxy listens (on a free port). */
  proxyHost: string;
  /** Two redis servers. */
  redisA: Addr;
  redisB: Addr;
  /** Where nothing listens: connecting is refused at once. */
  nowhere: Addr;
  /** A plain TCP server for the half-close test. */
  halfCloseServer: Addr;
}

/** Generous bound for "promptly" and "eventually" (2-core, noisy machines). */
const PROMPT_MS = 3000;

/** A RESP connection kept open across commands (unlike `respCommand`). */
class Client {
  #buf = new Uint8Array(0);
  #pos = 0;
  #chunk = new Uint8Array(64 * 1024);
  constructor(readonly conn: Deno.TcpConn) {}

  static async connect(addr: { host: string; port: number }): Promise<Client> {
    return new Client(await Deno.connect({ hostname: addr.host, port: addr.port }));
  }

  async send(...args: string[]): Promise<void> {
    await writeAll(this.conn, encodeCommand(args));
  }

  /** The next reply, or throws when the connection ends first or `timeoutMs` passes. */
  async reply(timeoutMs = PROMPT_MS): Promise<RespValue> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const parsed = parseReply(this.#buf, this.#pos);
      if (parsed !== undefined) {
        this.#pos = parsed.next;
        if (parsed.value instanceof Error) throw parsed.value;
        return parsed.value;
      }
      const n = await readWithin(this.conn, this.#chunk, deadline - Date.now());
      if (n === "timeout") throw new Error("no reply in time");
      if (n === null) throw new Error("connection closed before the reply");
      const grown = new Uint8Array(this.#buf.length - this.#pos + n);
      grown.set(this.#buf.subarray(this.#pos));
      grown.set(this.#chunk.subarray(0, n), this.#buf.length - this.#pos);
      this.#buf = grown;
      this.#pos = 0;
    }
  }

  async command(...args: string[]): Promise<RespValue> {
    await this.send(...args);
    return await this.reply();
  }

  close(): void {
    try {
      this.conn.close();
    } catch { /* closed */ }
  }
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}

/** One read bounded by `ms`: bytes read, null at end of stream (or reset), or "timeout". */
async function readWithin(
  conn: Deno.Conn,
  buf: Uint8Array,
  ms: number,
): Promise<number | null | "timeout"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), Math.max(0, ms));
  });
  try {
    return await Promise.race([conn.read(buf).catch(() => null), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Reads until the peer closes; "closed" or "timeout". Discards the bytes. */
async function closedWithin(conn: Deno.Conn, ms: number): Promise<"closed" | "timeout"> {
  const deadline = Date.now() + ms;
  const buf = new Uint8Array(64 * 1024);
  for (;;) {
    const n = await readWithin(conn, buf, deadline - Date.now());
    if (n === "timeout") return "timeout";
    if (n === null) return "closed";
  }
}

function rssBytes(): number {
  return Deno.memoryUsage().rss;
}

/**
 * Registers the behaviour tests for `engine`, named `${name}: ...`.
 *
 * @example
 * ```ts
 * proxySuite({ name: "proxy epoll", engine: "epoll", addresses });
 * ```
 */
export function proxySuite(
  { name, engine, addresses, ignore = null }: {
    name: string;
    engine: ProxyEngine;
    addresses: ProxySuiteAddresses;
    /** Why this engine cannot run here (its tests are then ignored, the reason in their name). */
    ignore?: string | null;
  },
): void {
  const test = (title: string, fn: () => Promise<void>) =>
    Deno.test({
      name: ignore === null ? title : `${title} (${ignore})`,
      ignore: ignore !== null,
      fn,
    });
  const PROXY_HOST = addresses.proxyHost;
  const REDIS_A = addresses.redisA;
  const REDIS_B = addresses.redisB;
  const NOWHERE = addresses.nowhere;
  const HALF_CLOSE_SERVER = addresses.halfCloseServer;
  const listen = (opts: ProxyOptions) => listenProxy({ ...opts, engine });

  async function withProxy<T>(
    opts: Partial<ProxyOptions>,
    fn: (proxy: ProxyHandle, events: ProxyEvent[]) => Promise<T>,
  ): Promise<T> {
    const events: ProxyEvent[] = [];
    const proxy = await listen({
      bind: { host: PROXY_HOST, port: 0 },
      onEvent: (e) => events.push(e),
      ...opts,
    });
    try {
      return await fn(proxy, events);
    } finally {
      await proxy.close();
    }
  }

  test(`${name}: writes through the proxy land on the target redis`, async () => {
    await withRedis([REDIS_A], async ([a]) => {
      await withProxy({ target: REDIS_A }, async (proxy) => {
        const client = await Client.connect(proxy.address);
        try {
          assert.equal(await client.command("SET", "through", "proxy"), "OK");
          assert.equal(await client.command("GET", "through"), "proxy");
          assert.equal(proxy.stats.proxied, 1);
        } finally {
          client.close();
        }
        assert.equal(await a!.command("GET", "through"), "proxy");
        const stats = proxy.stats;
        assert.equal(stats.total, 1);
        assert.ok(stats.bytesToUpstream > 0 && stats.bytesToClient > 0, JSON.stringify(stats));
        await eventually("connection gone", () => proxy.stats.active === 0);
        assert.equal(proxy.stats.bufferedBytes, 0);
      });
    });
  });

  test(`${name}: a target change closes proxied connections; reconnecting reaches the new one`, async () => {
    await withRedis([REDIS_A, REDIS_B], async ([a, b]) => {
      await withProxy({ target: REDIS_A }, async (proxy, events) => {
        const old = await Client.connect(proxy.address);
        const idle = await Client.connect(proxy.address);
        try {
          assert.equal(await old.command("SET", "k", "on-a"), "OK");
          assert.equal(await idle.command("PING"), "PONG");
          proxy.setTarget(REDIS_A); // the same target: nothing happens
          assert.equal(await old.command("PING"), "PONG");
          assert.equal(proxy.stats.targetChanges, 0);

          proxy.setTarget(REDIS_B);
          assert.equal(await closedWithin(old.conn, PROMPT_MS), "closed");
          assert.equal(await closedWithin(idle.conn, PROMPT_MS), "closed");
          const stats = proxy.stats;
          assert.equal(stats.closedByTargetChange, 2);
          assert.equal(stats.targetChanges, 1);
          const change = events.find((e) => e.kind === "target-change");
          assert.deepEqual(change, {
            kind: "target-change",
            from: REDIS_A,
            to: REDIS_B,
            closedConnections: 2,
          });
        } finally {
          old.close();
          idle.close();
        }
        const again = await Client.connect(proxy.address);
        try {
          assert.equal(await again.command("SET", "k", "on-b"), "OK");
        } finally {
          again.close();
        }
        assert.equal(await a!.command("GET", "k"), "on-a");
        assert.equal(await b!.command("GET", "k"), "on-b");
      });
    });
  });

  test(`${name}: a client connecting with no target is served once a target is set`, async () => {
    await withRedis([REDIS_A], async ([a]) => {
      await withProxy({ holdMs: 10_000 }, async (proxy) => {
        const client = await Client.connect(proxy.address);
        try {
          await client.send("SET", "held", "then-served");
          await eventually("client waiting", () => proxy.stats.waiting === 1);
          await sleep(200);
          assert.equal(proxy.stats.bytesToUpstream, 0); // nothing forwarded while waiting
          proxy.setTarget(REDIS_A);
          assert.equal(await client.reply(), "OK");
        } finally {
          client.close();
        }
        assert.equal(await a!.command("GET", "held"), "then-served");
        const stats = proxy.stats;
        assert.equal(stats.held, 1);
        assert.equal(stats.waiting, 0);
        assert.equal(stats.holdTimeouts, 0);
      });
    });
  });

  test(`${name}: a held client is closed when holdMs passes without a target`, async () => {
    const holdMs = 300;
    await withProxy({ holdMs }, async (proxy, events) => {
      const start = Date.now();
      const client = await Client.connect(proxy.address);
      try {
        await client.send("PING");
        assert.equal(await closedWithin(client.conn, holdMs + PROMPT_MS), "closed");
        const waitedMs = Date.now() - start;
        assert.ok(waitedMs >= holdMs - 20, `closed after ${waitedMs} ms, before holdMs`);
      } finally {
        client.close();
      }
      assert.equal(proxy.stats.holdTimeouts, 1);
      assert.equal(proxy.stats.held, 1);
      const timeout = events.find((e) => e.kind === "hold-timeout");
      assert.ok(timeout?.kind === "hold-timeout" && timeout.heldMs >= holdMs - 20);
    });
  });

  test(`${name}: going back to no target holds new connections, served by the next target`, async () => {
    await withRedis([REDIS_A, REDIS_B], async ([_a, b]) => {
      await withProxy({ target: REDIS_A, holdMs: 10_000 }, async (proxy) => {
        proxy.setTarget(null);
        assert.equal(proxy.target, null);
        const client = await Client.connect(proxy.address);
        try {
          await client.send("SET", "k", "after-election");
          await eventually("client waiting", () => proxy.stats.waiting === 1);
          proxy.setTarget(REDIS_B);
          assert.equal(await client.reply(), "OK");
        } finally {
          client.close();
        }
        assert.equal(await b!.command("GET", "k"), "after-election");
      });
    });
  });

  test(`${name}: connections past maxConnections are refused at once`, async () => {
    await withRedis([REDIS_A], async () => {
      await withProxy({ target: REDIS_A, maxConnections: 2 }, async (proxy, events) => {
        // One after the other: with several epoll workers, connections made at the same time
        // may be accepted in any order.
        const first = await Client.connect(proxy.address);
        assert.equal(await first.command("PING"), "PONG");
        const second = await Client.connect(proxy.address);
        assert.equal(await second.command("PING"), "PONG");
        const third = await Client.connect(proxy.address);
        try {
          assert.equal(await closedWithin(third.conn, PROMPT_MS), "closed");
          assert.equal(proxy.stats.refused, 1);
          assert.equal(proxy.stats.total, 3);
          assert.deepEqual(events.find((e) => e.kind === "refused"), {
            kind: "refused",
            openConnections: 2,
            maxConnections: 2,
          });
          first.close();
          await eventually("a slot frees", () => proxy.stats.active === 1);
          const fourth = await Client.connect(proxy.address);
          try {
            assert.equal(await fourth.command("PING"), "PONG");
          } finally {
            fourth.close();
          }
        } finally {
          first.close();
          second.close();
          third.close();
        }
      });
    });
  });

  test(`${name}: a client that stops reading does not grow the proxy's buffers`, async () => {
    const valueBytes = 4 * 1024 * 1024;
    const gets = 16; // 64 MiB of replies the client does not read
    await withRedis([REDIS_A], async ([a]) => {
      await a!.command("SET", "big", "x".repeat(valueBytes));
      await withProxy({ target: REDIS_A }, async (proxy) => {
        const client = await Client.connect(proxy.address);
        try {
          const rssBefore = rssBytes();
          for (let i = 0; i < gets; i++) await client.send("GET", "big");
          // The reply stream stalls once the client's and the proxy's socket buffers are full.
          let last = -1;
          await eventually("reply stream stalled", async () => {
            const now = proxy.stats.bytesToClient;
            const stalled = now > 0 && now === last;
            last = now;
            await sleep(200);
            return stalled;
          }, { timeoutMs: 20_000 });
          const stats = proxy.stats;
          assert.ok(
            stats.bufferedBytes <= 2 * PROXY_BUFFER_BYTES,
            `buffered ${stats.bufferedBytes} bytes, bound ${2 * PROXY_BUFFER_BYTES}`,
          );
          assert.ok(stats.bytesToClient < (gets * valueBytes) / 4, `sent ${stats.bytesToClient}`);
          const grownBytes = rssBytes() - rssBefore;
          assert.ok(grownBytes < 32 * 1024 * 1024, `rss grew by ${grownBytes} bytes`);

          // Once the client reads again, every byte arrives intact.
          const replyBytes = gets * (valueBytes + `$${valueBytes}\r\n\r\n`.length);
          const buf = new Uint8Array(256 * 1024);
          let received = 0;
          let xs = 0;
          while (received < replyBytes) {
            const n = await readWithin(client.conn, buf, 10_000);
            assert.ok(typeof n === "number", `stream ended after ${received} bytes: ${n}`);
            for (let i = 0; i < n; i++) if (buf[i] === 120) xs++;
            received += n;
          }
          assert.equal(received, replyBytes);
          assert.equal(xs, gets * valueBytes);
        } finally {
          client.close();
        }
      });
    });
  });

  test(`${name}: an upstream connect failure closes the client at once, counted and reported`, async () => {
    await withProxy({ target: NOWHERE }, async (proxy, events) => {
      const client = await Client.connect(proxy.address);
      try {
        assert.equal(await closedWithin(client.conn, PROMPT_MS), "closed");
      } finally {
        client.close();
      }
      assert.equal(proxy.stats.upstreamFailures, 1);
      const failure = events.find((e) => e.kind === "upstream-failure");
      assert.ok(failure?.kind === "upstream-failure", JSON.stringify(events));
      assert.deepEqual(failure.target, NOWHERE);
      assert.match(failure.error, /refused/i);
    });
  });

  test(`${name}: a Unix socket target: writes land on that redis; changes to and from it close connections`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "hive-proxy-unix-" });
    const path = `${dir}/redis.sock`;
    try {
      const unixRedis = {
        ...REDIS_A,
        extraArgs: ["--unixsocket", path, "--unixsocketperm", "700"],
      };
      await withRedis([unixRedis, REDIS_B], async ([a, b]) => {
        await withProxy({ target: { path } }, async (proxy, events) => {
          assert.deepEqual(proxy.target, { path });
          const viaSocket = await Client.connect(proxy.address);
          try {
            assert.equal(await viaSocket.command("SET", "k", "via-socket"), "OK");
            assert.equal(await viaSocket.command("GET", "k"), "via-socket");
            proxy.setTarget({ path }); // the same target: nothing happens
            assert.equal(proxy.stats.targetChanges, 0);
            proxy.setTarget(REDIS_B);
            assert.equal(await closedWithin(viaSocket.conn, PROMPT_MS), "closed");
          } finally {
            viaSocket.close();
          }
          assert.equal(await a!.command("GET", "k"), "via-socket");
          const viaTcp = await Client.connect(proxy.address);
          try {
            assert.equal(await viaTcp.command("SET", "k", "via-tcp"), "OK");
            proxy.setTarget({ path });
            assert.equal(await closedWithin(viaTcp.conn, PROMPT_MS), "closed");
          } finally {
            viaTcp.close();
          }
          assert.equal(await b!.command("GET", "k"), "via-tcp");
          const changes = events.filter((e) => e.kind === "target-change");
          assert.deepEqual(changes.map((e) => e.kind === "target-change" && [e.from, e.to]), [
            [{ path }, REDIS_B],
            [REDIS_B, { path }],
          ]);
          const again = await Client.connect(proxy.address);
          try {
            assert.equal(await again.command("GET", "k"), "via-socket");
          } finally {
            again.close();
          }
        });
      });
      // No one listens on the socket any more: the client is closed, the failure reported.
      await withProxy({ target: { path } }, async (proxy, events) => {
        const client = await Client.connect(proxy.address);
        try {
          assert.equal(await closedWithin(client.conn, PROMPT_MS), "closed");
        } finally {
          client.close();
        }
        const failure = events.find((e) => e.kind === "upstream-failure");
        assert.ok(failure?.kind === "upstream-failure", JSON.stringify(events));
        assert.deepEqual(failure.target, { path });
        assert.equal(proxy.stats.upstreamFailures, 1);
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });

  test(`${name}: half-close is forwarded and the answer still arrives`, async () => {
    // Upstream: reads until the client's FIN, then answers with the byte count and closes.
    const server = Deno.listen({ hostname: HALF_CLOSE_SERVER.host, port: HALF_CLOSE_SERVER.port });
    const served = (async () => {
      const conn = await server.accept();
      try {
        const buf = new Uint8Array(4096);
        let total = 0;
        for (;;) {
          const n = await conn.read(buf);
          if (n === null) break;
          total += n;
        }
        await writeAll(conn, new TextEncoder().encode(`got ${total} bytes`));
      } finally {
        conn.close();
      }
    })();
    try {
      await withProxy({ target: HALF_CLOSE_SERVER }, async (proxy) => {
        const conn = await Deno.connect({ hostname: PROXY_HOST, port: proxy.address.port });
        try {
          await writeAll(conn, new Uint8Array(100_000).fill(7));
          await conn.closeWrite();
          const chunks: Uint8Array[] = [];
          const buf = new Uint8Array(4096);
          for (;;) {
            const n = await readWithin(conn, buf, PROMPT_MS);
            assert.notEqual(n, "timeout", "no answer: the FIN was not forwarded");
            if (n === null || n === "timeout") break;
            chunks.push(buf.slice(0, n));
          }
          const answer = new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c])));
          assert.equal(answer, "got 100000 bytes");
        } finally {
          conn.close();
        }
        await served;
        await eventually("connection closed", () => proxy.stats.active === 0);
      });
    } finally {
      server.close();
      await served.catch(() => {});
    }
  });

  test(`${name}: half-close with redis: the reply to the last command arrives`, async () => {
    await withRedis([REDIS_A], async () => {
      await withProxy({ target: REDIS_A }, async (proxy) => {
        const conn = await Deno.connect({ hostname: PROXY_HOST, port: proxy.address.port });
        try {
          await writeAll(conn, encodeCommand(["PING", "last words"]));
          await conn.closeWrite();
          const buf = new Uint8Array(1024);
          let text = "";
          for (;;) {
            const n = await readWithin(conn, buf, PROMPT_MS);
            assert.notEqual(n, "timeout");
            if (n === null || n === "timeout") break;
            text += new TextDecoder().decode(buf.subarray(0, n));
          }
          assert.equal(text, "$10\r\nlast words\r\n");
        } finally {
          conn.close();
        }
      });
    });
  });

  test(`${name}: close() closes waiting and proxied connections and frees the port`, async () => {
    await withRedis([REDIS_A], async () => {
      const proxy = await listen({ bind: { host: PROXY_HOST, port: 0 }, holdMs: 60_000 });
      const port = proxy.address.port;
      let proxied: Client | null = null;
      let waiting: Client | null = null;
      try {
        proxy.setTarget(REDIS_A);
        proxied = await Client.connect(proxy.address);
        assert.equal(await proxied.command("PING"), "PONG");
        proxy.setTarget(null);
        waiting = await Client.connect(proxy.address);
        await eventually("client waiting", () => proxy.stats.waiting === 1);
        await proxy.close();
        assert.equal(proxy.listening, false);
        assert.equal(proxy.stats.active, 0);
        assert.equal(await closedWithin(waiting.conn, PROMPT_MS), "closed");
        assert.throws(() => proxy.setTarget(REDIS_A), /closed/);
        await proxy.close(); // idempotent
      } finally {
        proxied?.close();
        waiting?.close();
        await proxy.close();
      }
      const again = await listen({ bind: { host: PROXY_HOST, port } });
      await again.close();
    });
  });

  test(`${name}: bad options and targets get clear errors`, async () => {
    const bind = { host: PROXY_HOST, port: 0 };
    await assert.rejects(listen({ bind, holdMs: -1 }), /holdMs/);
    await assert.rejects(listen({ bind, maxConnections: 0 }), /maxConnections/);
    await assert.rejects(listen({ bind, bufferBytes: 1.5 }), /bufferBytes/);
    await assert.rejects(listen({ bind, connectTimeoutMs: 0 }), /connectTimeoutMs/);
    await assert.rejects(
      listen({ bind, bufferBytes: 4096, idleBufferBytes: 4097 }),
      /idleBufferBytes must be an integer in 1\.\.4096/,
    );
    await assert.rejects(listen({ bind: { host: "", port: 1 } }), /bind\.host/);
    await assert.rejects(
      listen({ bind: { host: PROXY_HOST, port: 70000 } }),
      /bind\.port/,
    );
    await assert.rejects(
      listen({ bind, target: { host: "h", port: 0 } }),
      /target\.port/,
    );
    await withProxy({}, (proxy) => {
      assert.equal(proxy.holdMs, DEFAULT_PROXY_HOLD_MS);
      assert.equal(proxy.maxConnections, DEFAULT_PROXY_MAX_CONNECTIONS);
      assert.equal(proxy.bufferBytes, PROXY_BUFFER_BYTES);
      assert.throws(() => proxy.setTarget({ host: "127.0.1.2", port: 0 }), /target\.port/);
      assert.throws(() => proxy.setTarget({ host: "", port: 6379 }), /target\.host/);
      assert.throws(
        () => proxy.setTarget({ path: "redis.sock" }),
        /target\.path must be an absolute/,
      );
      assert.throws(
        () => proxy.setTarget({ path: `/${"x".repeat(MAX_UNIX_SOCKET_PATH_BYTES)}` }),
        /target\.path must be at most 107 bytes, got 108/,
      );
      assert.equal(proxy.target, null);
      return Promise.resolve();
    });
  });
}
