/**
 * The Sentinel endpoint over real TCP (loopback 127.0.16.41): its limits (connections, request
 * size, bytes waiting for a client), the events on a change of master (to channel and pattern
 * subscribers, in order, after the answer), and the bounded wait for a master.
 */

import assert from "node:assert/strict";
import {
  SENTINEL_LIMITS,
  type SentinelLimits,
  SentinelServer,
} from "../../lib/sentinel/sentinel_server.ts";
import type { SentinelMaster, SentinelView } from "../../lib/sentinel/sentinel_view.ts";
import { sleep } from "../../testing/wait.ts";

const HOST = "127.0.16.41";
const A: SentinelMaster = { ip: "10.0.0.1", port: 6379, runId: "a" };
const B: SentinelMaster = { ip: "10.0.0.2", port: 6379, runId: "b" };
/** Bound of every wait for bytes in these tests (a hang fails the test, it is no timing). */
const READ_BOUND_MS = 5_000;

const enc = new TextEncoder();
const dec = new TextDecoder();

class Source {
  master: SentinelMaster | null = A;
  sentinelView(): SentinelView {
    return { self: HOST, master: this.master, replicas: [], sentinels: [] };
  }
}

async function withServer(
  opts: { limits?: Partial<SentinelLimits>; eventDelayMs?: number; password?: string },
  fn: (server: SentinelServer, source: Source) => Promise<void>,
): Promise<void> {
  const source = new Source();
  const server = await SentinelServer.listen({
    host: HOST,
    port: 0,
    self: HOST,
    masterName: "mymaster",
    password: opts.password ?? null,
    downAfterMs: 1000,
    source,
    limits: opts.limits,
    eventDelayMs: opts.eventDelayMs,
  });
  try {
    await fn(server, source);
  } finally {
    await server.close();
  }
}

/** A raw client: send text, read until the received text satisfies a predicate. */
class Raw {
  text = "";
  closed = false;
  #reading: Promise<void>;
  private constructor(readonly conn: Deno.TcpConn) {
    this.#reading = (async () => {
      const buf = new Uint8Array(64 * 1024);
      try {
        for (;;) {
          const n = await conn.read(buf);
          if (n === null) break;
          this.text += dec.decode(buf.subarray(0, n));
        }
      } catch { /* reset */ }
      this.closed = true;
    })();
  }
  static async open(port: number): Promise<Raw> {
    return new Raw(await Deno.connect({ hostname: HOST, port }));
  }
  async send(s: string): Promise<void> {
    await this.conn.write(enc.encode(s));
  }
  async until(what: string, ok: (text: string, closed: boolean) => boolean): Promise<string> {
    const deadline = Date.now() + READ_BOUND_MS;
    while (!ok(this.text, this.closed)) {
      if (Date.now() > deadline) throw new Error(`no ${what} in ${JSON.stringify(this.text)}`);
      await sleep(5);
    }
    return this.text;
  }
  async close(): Promise<void> {
    try {
      this.conn.close();
    } catch { /* closed */ }
    await this.#reading;
  }
}

Deno.test("sentinel server: one connection over the limit is told so and closed", async () => {
  await withServer({ limits: { maxConnections: 2 } }, async (server) => {
    const a = await Raw.open(server.address.port);
    const b = await Raw.open(server.address.port);
    await a.send("PING\r\n");
    await b.send("PING\r\n");
    await a.until("PONG", (t) => t === "+PONG\r\n");
    await b.until("PONG", (t) => t === "+PONG\r\n");
    const c = await Raw.open(server.address.port);
    await c.until(
      "refusal",
      (t, closed) => closed && t === "-ERR max number of clients reached\r\n",
    );
    assert.equal(server.stats.connectionsRefused, 1);
    await a.close();
    await b.close();
    await c.close();
  });
});

Deno.test("sentinel server: a request over a limit gets a protocol error and the connection closes", async () => {
  await withServer({}, async (server) => {
    const c = await Raw.open(server.address.port);
    await c.send(`*${SENTINEL_LIMITS.maxArgs + 1}\r\n`);
    await c.until(
      "error and close",
      (t, closed) =>
        closed && t === `-ERR Protocol error: more than ${SENTINEL_LIMITS.maxArgs} arguments\r\n`,
    );
    await c.close();
    const d = await Raw.open(server.address.port);
    await d.send("*1\r\n$" + (SENTINEL_LIMITS.maxCommandBytes + 1) + "\r\n");
    await d.until("error and close", (t, closed) => closed && t.startsWith("-ERR Protocol error"));
    await d.close();
    assert.equal(server.stats.protocolErrors, 2);
  });
});

Deno.test("sentinel server: a reply over the bytes a client may have waiting closes it", async () => {
  await withServer({ limits: { maxPendingOutputBytes: 100 } }, async (server) => {
    const c = await Raw.open(server.address.port);
    await c.send("PING\r\nSENTINEL master mymaster\r\n");
    await c.until("close", (_t, closed) => closed);
    assert.ok(!c.text.includes("mymaster"), "the reply over the limit is never sent");
    assert.equal(server.stats.slowClientsClosed, 1);
    await c.close();
  });
});

Deno.test("sentinel server: a change of master reaches channel and pattern subscribers, in Sentinel's order", async () => {
  await withServer({ eventDelayMs: 0 }, async (server, source) => {
    const sub = await Raw.open(server.address.port);
    await sub.send("SUBSCRIBE +switch-master\r\nPSUBSCRIBE [-+]sdown\r\n");
    await sub.until("confirmations", (t) => t.includes("psubscribe"));
    const resp3 = await Raw.open(server.address.port);
    await resp3.send("HELLO 3\r\nSUBSCRIBE +switch-master\r\n");
    await resp3.until("confirmation", (t) => t.includes(">3\r\n$9\r\nsubscribe"));
    sub.text = "";
    resp3.text = "";
    source.master = null;
    server.refresh();
    source.master = B;
    server.refresh();
    server.refresh(); // nothing new: nothing published
    const expected = "*4\r\n$8\r\npmessage\r\n$9\r\n[-+]sdown\r\n$6\r\n+sdown\r\n" +
      "$29\r\nmaster mymaster 10.0.0.1 6379\r\n" +
      "*3\r\n$7\r\nmessage\r\n$14\r\n+switch-master\r\n$36\r\nmymaster 10.0.0.1 6379 10.0.0.2 6379\r\n";
    await sub.until("events", (t) => t.length >= expected.length);
    assert.equal(sub.text, expected);
    await resp3.until("push", (t) => t.includes("+switch-master"));
    assert.equal(
      resp3.text,
      ">3\r\n$7\r\nmessage\r\n$14\r\n+switch-master\r\n$36\r\nmymaster 10.0.0.1 6379 10.0.0.2 6379\r\n",
    );
    assert.equal(server.announced, B);
    await sub.close();
    await resp3.close();
  });
});

Deno.test("sentinel server: while there is no master, the address query waits for one, and is answered before the event", async () => {
  await withServer(
    { eventDelayMs: 50, limits: { maxMasterWaitMs: READ_BOUND_MS } },
    async (server, source) => {
      source.master = null;
      server.refresh();
      const sub = await Raw.open(server.address.port);
      await sub.send("SUBSCRIBE +switch-master\r\n");
      await sub.until("confirmation", (t) => t.includes("subscribe"));
      const query = await Raw.open(server.address.port);
      await query.send("SENTINEL get-master-addr-by-name mymaster\r\nPING\r\n");
      let answeredWhileSubscriberWaited = false;
      let sawEventFirst = false;
      // The master comes back only after the query is waiting.
      await sleep(20);
      assert.equal(query.text, "", "no answer while there is no master");
      source.master = B;
      server.refresh();
      await query.until("answer", (t) => {
        if (t.length > 0) {
          sawEventFirst = sub.text.includes("message");
          answeredWhileSubscriberWaited = true;
        }
        return t.includes("PONG");
      });
      assert.equal(query.text, "*2\r\n$8\r\n10.0.0.2\r\n$4\r\n6379\r\n+PONG\r\n");
      assert.ok(
        answeredWhileSubscriberWaited && !sawEventFirst,
        "the answer comes before the event",
      );
      await sub.until("event", (t) => t.includes("+switch-master\r\n$36"));
      await sub.close();
      await query.close();
    },
  );
  await withServer({ limits: { maxMasterWaitMs: 30 } }, async (server, source) => {
    source.master = null;
    server.refresh();
    const c = await Raw.open(server.address.port);
    await c.send("SENTINEL get-master-addr-by-name mymaster\r\n");
    await c.until("null after the bound", (t) => t === "*-1\r\n");
    await c.close();
  });
});

Deno.test("sentinel server: a due event waits while a fresh query connection is open, and goes out when it closes", async () => {
  await withServer({ eventDelayMs: 0 }, async (server, source) => {
    const sub = await Raw.open(server.address.port);
    await sub.send("SUBSCRIBE +switch-master\r\n");
    await sub.until("confirmation", (t) => t.includes("subscribe"));
    // A client resolving the master (as ioredis does on a fresh connection) is mid-resolve.
    const query = await Raw.open(server.address.port);
    await query.send("PING\r\n");
    await query.until("PONG", (t) => t.includes("PONG"));
    sub.text = "";
    source.master = B;
    server.refresh();
    // Well past the event's due time (0 ms), and well under the hold's bound (1 s).
    await sleep(100);
    assert.equal(sub.text, "", "no +switch-master while the query connection is open");
    await query.close();
    await sub.until("event once the query connection closed", (t) => t.includes("+switch-master"));
    await sub.close();
  });
});
