import assert from "node:assert/strict";
import { eventually, sleep } from "../../testing/wait.ts";
import { isIP } from "node:net";
import { MAX_DATAGRAM_BYTES } from "../../lib/election/codec.ts";
import {
  type DatagramTransport,
  type Endpoint,
  formatEndpoint,
  listenUdp,
  MAX_UDP_PAYLOAD_BYTES,
  MemoryNetwork,
  normalizeAddress,
  type TransportErrorHandler,
} from "../../lib/net/udp_transport.ts";

// Allotted to this file: 127.0.2.1 .. 127.0.2.20, and [::1] ports 17400 .. 17499.
const A = "127.0.2.1";
const B = "127.0.2.2";
const C = "127.0.2.3";
const V6_PORT_A = 17400;
const V6_PORT_B = 17401;
const V6_ONLY_PORT = 17405;

/** Generous bound for "eventually" on a noisy 2-core machine; never a performance claim. */
const EVENTUALLY_MS = 5000;
/** How long an absence is watched for after a later datagram proved the path was drained. */
const QUIET_MS = 100;

interface ListenOpts {
  onError?: TransportErrorHandler;
  ipv6Only?: boolean;
}

/** One isolated network per test: opens transports and closes every one of them at the end. */
interface World {
  listen(bind: Endpoint, opts?: ListenOpts): Promise<DatagramTransport>;
}

type WorldFactory = () => World;

interface Received {
  bytes: Uint8Array;
  from: Endpoint;
}

/** Collects what a transport receives. */
class Inbox {
  readonly items: Received[] = [];
  constructor(transport: DatagramTransport) {
    transport.setHandler((bytes, from) => this.items.push({ bytes, from }));
  }
  /** Waits until at least `count` datagrams arrived, returns the `count`-th. */
  async nth(count: number): Promise<Received> {
    await until(() => this.items.length >= count, `${count} datagram(s) to arrive`);
    const item = this.items[count - 1];
    assert.ok(item !== undefined);
    return item;
  }
}

/** Polls `condition` every 5 ms until true, at most {@link EVENTUALLY_MS}. */
function until(condition: () => boolean, what: string): Promise<true> {
  return eventually(what, () => condition() || undefined, {
    timeoutMs: EVENTUALLY_MS,
    intervalMs: 5,
  });
}

function bytesOf(...values: number[]): Uint8Array {
  return new Uint8Array(values);
}

/** Runs `body` with a fresh world, closing every transport it opened even on failure. */
function inWorld(
  factory: WorldFactory,
  body: (listen: World["listen"]) => Promise<void>,
): () => Promise<void> {
  return async () => {
    const world = factory();
    const opened: DatagramTransport[] = [];
    const listen = async (bind: Endpoint, opts?: ListenOpts) => {
      const t = await world.listen(bind, opts);
      opened.push(t);
      return t;
    };
    try {
      await body(listen);
    } finally {
      await Promise.all(opened.map((t) => t.close()));
    }
  };
}

/** The contract every {@link DatagramTransport} implementation meets. */
function transportContract(name: string, factory: WorldFactory): void {
  const test = (title: string, body: (listen: World["listen"]) => Promise<void>) =>
    Deno.test(`${name}: ${title}`, inWorld(factory, body));

  test("send and receive between two endpoints, both ways, sender reported", async (listen) => {
    const a = await listen({ host: A, port: 0 });
    const b = await listen({ host: B, port: 0 });
    assert.equal(a.local.host, A);
    assert.ok(a.local.port > 0 && b.local.port > 0 && a.local.port !== 0);
    const inA = new Inbox(a);
    const inB = new Inbox(b);

    a.send(b.local, bytesOf(1, 2, 3));
    const got = await inB.nth(1);
    assert.deepEqual([...got.bytes], [1, 2, 3]);
    assert.deepEqual(got.from, a.local);

    b.send(got.from, bytesOf(4, 5));
    const reply = await inA.nth(1);
    assert.deepEqual([...reply.bytes], [4, 5]);
    assert.deepEqual(reply.from, { host: B, port: b.local.port });
  });

  test("a wildcard-bound sender is reported at an address that reaches it", async (listen) => {
    const w = await listen({ host: "0.0.0.0", port: 0 });
    const b = await listen({ host: B, port: 0 });
    const inW = new Inbox(w);
    const inB = new Inbox(b);
    w.send(b.local, bytesOf(9));
    const got = await inB.nth(1);
    assert.equal(isIP(got.from.host), 4);
    assert.equal(got.from.port, w.local.port);
    b.send(got.from, bytesOf(10));
    assert.deepEqual([...(await inW.nth(1)).bytes], [10]);
  });

  test("datagrams larger than MAX_DATAGRAM_BYTES reach the handler whole", async (listen) => {
    const a = await listen({ host: A, port: 0 });
    const b = await listen({ host: B, port: 0 });
    const inB = new Inbox(b);
    const big = crypto.getRandomValues(new Uint8Array(MAX_DATAGRAM_BYTES * 3));
    a.send(b.local, big);
    assert.deepEqual((await inB.nth(1)).bytes, big);
  });

  test("the sender may reuse its buffer right after send", async (listen) => {
    const a = await listen({ host: A, port: 0 });
    const b = await listen({ host: B, port: 0 });
    const inB = new Inbox(b);
    const buffer = bytesOf(1, 1, 1);
    a.send(b.local, buffer);
    buffer.fill(2);
    a.send(b.local, buffer);
    const first = await inB.nth(1);
    const second = await inB.nth(2);
    assert.deepEqual(
      [[...first.bytes], [...second.bytes]].sort(),
      [[1, 1, 1], [2, 2, 2]],
    );
  });

  test("setHandler replaces the previous handler", async (listen) => {
    const a = await listen({ host: A, port: 0 });
    const b = await listen({ host: B, port: 0 });
    const first = new Inbox(b);
    a.send(b.local, bytesOf(1));
    await first.nth(1);
    const second = new Inbox(b);
    a.send(b.local, bytesOf(2));
    assert.deepEqual([...(await second.nth(1)).bytes], [2]);
    assert.equal(first.items.length, 1);
  });

  test("close stops delivery; sends to and from a closed transport do not throw", async (listen) => {
    const errors: [Error, Endpoint | null][] = [];
    const a = await listen({ host: A, port: 0 }, { onError: (e, to) => errors.push([e, to]) });
    const b = await listen({ host: B, port: 0 });
    const c = await listen({ host: C, port: 0 });
    const inB = new Inbox(b);
    const inC = new Inbox(c);
    a.send(b.local, bytesOf(1));
    await inB.nth(1);

    await b.close();
    await b.close(); // idempotent
    a.send(b.local, bytesOf(2));
    a.send(c.local, bytesOf(3)); // sent after: once it arrived, the first one was handled
    await inC.nth(1);
    await sleep(QUIET_MS);
    assert.equal(inB.items.length, 1, "a closed transport received a datagram");

    const errorsBefore = errors.length;
    b.send(a.local, bytesOf(4)); // b's own onError (default: logged), must not throw
    assert.equal(errors.length, errorsBefore);

    // The sender still works after sending to a closed port (ICMP port unreachable).
    a.send(c.local, bytesOf(5));
    assert.deepEqual([...(await inC.nth(2)).bytes], [5]);
  });

  test("a closed transport reports its own sends to onError", async (listen) => {
    const errors: [Error, Endpoint | null][] = [];
    const a = await listen({ host: A, port: 0 }, { onError: (e, to) => errors.push([e, to]) });
    const b = await listen({ host: B, port: 0 });
    await a.close();
    a.send(b.local, bytesOf(1));
    assert.equal(errors.length, 1);
    assert.match(errors[0]?.[0].message ?? "", /closed/);
    assert.deepEqual(errors[0]?.[1], b.local);
  });

  test("invalid destinations and oversized datagrams go to onError, never throw", async (listen) => {
    const errors: [Error, Endpoint | null][] = [];
    const a = await listen({ host: A, port: 0 }, { onError: (e, to) => errors.push([e, to]) });
    const b = await listen({ host: B, port: 0 });
    const inB = new Inbox(b);
    const bad: [Endpoint, Uint8Array, RegExp][] = [
      [{ host: "not-an-ip", port: 7379 }, bytesOf(1), /not an IP literal/],
      [{ host: B, port: 0 }, bytesOf(1), /port 0/],
      [{ host: B, port: 65536 }, bytesOf(1), /port 65536/],
      [b.local, new Uint8Array(MAX_UDP_PAYLOAD_BYTES + 1), /MAX_UDP_PAYLOAD_BYTES/],
    ];
    for (const [to, bytes] of bad) a.send(to, bytes);
    assert.equal(errors.length, bad.length);
    bad.forEach(([to, , pattern], i) => {
      assert.match(errors[i]?.[0].message ?? "", pattern);
      assert.deepEqual(errors[i]?.[1], to);
    });
    a.send(b.local, bytesOf(7));
    assert.deepEqual([...(await inB.nth(1)).bytes], [7]);
    assert.equal(inB.items.length, 1);
  });

  test("sending from an IPv4 transport to an IPv6 address is an error, not a throw", async (listen) => {
    const errors: [Error, Endpoint | null][] = [];
    const a = await listen({ host: A, port: 0 }, { onError: (e, to) => errors.push([e, to]) });
    const to = { host: "::1", port: V6_PORT_A };
    a.send(to, bytesOf(1));
    await until(() => errors.length > 0, "the send error");
    assert.deepEqual(errors[0]?.[1], to);
  });

  test("binding an address in use fails", async (listen) => {
    const a = await listen({ host: A, port: 0 });
    await assert.rejects(listen({ host: A, port: a.local.port }), /in use|EADDRINUSE/i);
    await assert.rejects(listen({ host: "0.0.0.0", port: a.local.port }), /in use|EADDRINUSE/i);
  });

  test("binding a name instead of an IP literal is a programmer error", async (listen) => {
    await assert.rejects(listen({ host: "localhost", port: 0 }), /not an IP literal/);
    await assert.rejects(listen({ host: A, port: 70000 }), /port 70000/);
  });

  test("IPv6 on [::1]: both ways, sender reported as ::1", async (listen) => {
    const a = await listen({ host: "::1", port: V6_PORT_A });
    const b = await listen({ host: "::1", port: V6_PORT_B });
    assert.deepEqual(a.local, { host: "::1", port: V6_PORT_A });
    const inA = new Inbox(a);
    const inB = new Inbox(b);
    a.send(b.local, bytesOf(6));
    const got = await inB.nth(1);
    assert.deepEqual(got.from, { host: "::1", port: V6_PORT_A });
    b.send(got.from, bytesOf(7));
    assert.deepEqual((await inA.nth(1)).from, { host: "::1", port: V6_PORT_B });
  });

  test("a dual-stack :: bind receives IPv4, reported without the ::ffff: prefix", async (listen) => {
    const dual = await listen({ host: "::", port: 0 });
    const a = await listen({ host: A, port: 0 });
    const inDual = new Inbox(dual);
    const inA = new Inbox(a);
    a.send({ host: C, port: dual.local.port }, bytesOf(8));
    const got = await inDual.nth(1);
    assert.deepEqual(got.from, a.local);
    dual.send(got.from, bytesOf(9));
    assert.deepEqual([...(await inA.nth(1)).bytes], [9]);
  });

  test("an ipv6Only :: bind does not receive IPv4", async (listen) => {
    const v6 = await listen({ host: "::", port: V6_ONLY_PORT }, { ipv6Only: true });
    const a = await listen({ host: A, port: 0 });
    const c = await listen({ host: C, port: 0 });
    const inV6 = new Inbox(v6);
    const inC = new Inbox(c);
    a.send({ host: B, port: V6_ONLY_PORT }, bytesOf(1));
    a.send(c.local, bytesOf(2));
    await inC.nth(1);
    await sleep(QUIET_MS);
    assert.equal(inV6.items.length, 0);
    a.send({ host: "::1", port: V6_ONLY_PORT }, bytesOf(3)); // a is IPv4: cannot reach it
    const b6 = await listen({ host: "::1", port: V6_PORT_B });
    b6.send({ host: "::1", port: V6_ONLY_PORT }, bytesOf(4));
    assert.deepEqual((await inV6.nth(1)).from, { host: "::1", port: V6_PORT_B });
  });
}

transportContract("listenUdp", () => ({
  listen: (bind, opts) => listenUdp(bind, { ...opts, onError: opts?.onError ?? (() => {}) }),
}));

transportContract("MemoryNetwork", () => {
  const network = new MemoryNetwork();
  return {
    listen: (bind, opts) => {
      try {
        return Promise.resolve(
          network.listen(bind, { ...opts, onError: opts?.onError ?? (() => {}) }),
        );
      } catch (error) {
        return Promise.reject(error);
      }
    },
  };
});

// ---- real socket only ----

Deno.test("listenUdp: the receive buffer size is applied and reported", async () => {
  const small = await listenUdp({ host: A, port: 0 }, { recvBufferBytes: 64 * 1024 });
  const large = await listenUdp({ host: A, port: 0 }, { recvBufferBytes: 1024 * 1024 });
  try {
    assert.ok(small.recvBufferBytes >= 64 * 1024, `granted ${small.recvBufferBytes}`);
    assert.ok(large.recvBufferBytes > small.recvBufferBytes, `granted ${large.recvBufferBytes}`);
  } finally {
    await small.close();
    await large.close();
  }
});

Deno.test("listenUdp: bad options and non-local addresses fail with a clear error", async () => {
  await assert.rejects(listenUdp({ host: A, port: 0 }, { recvBufferBytes: 10 }), /recvBufferBytes/);
  await assert.rejects(
    listenUdp({ host: A, port: 0 }, { sendBufferBytes: 1.5 }),
    /sendBufferBytes/,
  );
  // A documentation-range address is not on this machine: the bind fails, nothing is sent.
  await assert.rejects(listenUdp({ host: "192.0.2.1", port: 0 }), /cannot bind UDP 192\.0\.2\.1/);
});

// ---- in-memory only ----

Deno.test("MemoryNetwork: the filter loses datagrams and the counters say so", async () => {
  const network = new MemoryNetwork();
  const a = network.listen({ host: A, port: 7379 });
  const b = network.listen({ host: B, port: 7379 });
  const inB = new Inbox(b);
  network.setFilter((from, to) => !(from.host === A && to.host === B));
  a.send(b.local, bytesOf(1));
  await network.settled();
  assert.equal(inB.items.length, 0);
  network.setFilter(null);
  a.send(b.local, bytesOf(2));
  a.send({ host: C, port: 7379 }, bytesOf(3));
  await network.settled();
  assert.deepEqual(inB.items.map((r) => [...r.bytes]), [[2]]);
  assert.deepEqual(network.stats, { sent: 3, delivered: 1, filtered: 1, undeliverable: 1 });
  await a.close();
  await b.close();
});

Deno.test("MemoryNetwork: delivery is never synchronous inside send", async () => {
  const network = new MemoryNetwork();
  const a = network.listen({ host: A, port: 1 });
  const b = network.listen({ host: B, port: 1 });
  const inB = new Inbox(b);
  a.send(b.local, bytesOf(1));
  assert.equal(inB.items.length, 0);
  await network.settled();
  assert.equal(inB.items.length, 1);
});

Deno.test("normalizeAddress strips only the IPv4-mapped prefix", () => {
  assert.equal(normalizeAddress("::ffff:127.0.2.1"), "127.0.2.1");
  assert.equal(normalizeAddress("::FFFF:10.0.0.1"), "10.0.0.1");
  assert.equal(normalizeAddress("::ffff:abcd"), "::ffff:abcd");
  assert.equal(normalizeAddress("::1"), "::1");
  assert.equal(normalizeAddress("127.0.0.1"), "127.0.0.1");
});

Deno.test("formatEndpoint brackets IPv6 hosts", () => {
  assert.equal(formatEndpoint({ host: "::1", port: 17400 }), "[::1]:17400");
  assert.equal(formatEndpoint({ host: A, port: 7379 }), `${A}:7379`);
});
