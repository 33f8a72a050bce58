/**
 * The PeerResolver contract, run against the in-memory StaticResolver and against DnsResolver
 * asking a real dnsmasq; then what only a real server can show: a silent server fails within
 * the timeout, and an absent one is an error, not an empty answer.
 *
 * Loopback addresses: dnsmasq on 127.0.2.61 (ports 15300-15309); 127.0.2.63:15310 has no
 * server. Record data uses 127.0.2.71-89 and 2001:db8::/32 (never contacted).
 */

import assert from "node:assert/strict";
import {
  DnsResolver,
  type PeerResolver,
  ResolveError,
  StaticResolver,
} from "../../lib/net/resolver.ts";
import { type Dnsmasq, startDnsmasq } from "../../testing/dnsmasq.ts";

const DNS_LISTEN = "127.0.2.61";
const NO_SERVER = { ipAddr: "127.0.2.63", port: 15310 };

/** A resolver under test and the way to change the records it answers. */
interface Subject {
  resolver: PeerResolver;
  setRecords(name: string, addresses: readonly string[]): Promise<void>;
}

/** The contract every PeerResolver keeps. */
async function checkContract(t: Deno.TestContext, subject: Subject): Promise<void> {
  const { resolver, setRecords } = subject;

  await t.step("A and AAAA: sorted, de-duplicated, canonical union", async () => {
    await setRecords("mixed.hive.test", [
      "127.0.2.73",
      "2001:DB8:0::2",
      "127.0.2.71",
      "2001:db8::1",
      "127.0.2.73",
    ]);
    assert.deepEqual(await resolver.resolve("mixed.hive.test"), [
      "127.0.2.71",
      "127.0.2.73",
      "2001:db8::1",
      "2001:db8::2",
    ]);
  });

  await t.step("only A records: no AAAA (NODATA) is not an error", async () => {
    await setRecords("v4.hive.test", ["127.0.2.74"]);
    assert.deepEqual(await resolver.resolve("v4.hive.test"), ["127.0.2.74"]);
  });

  await t.step("only AAAA records: no A (NODATA) is not an error", async () => {
    await setRecords("v6.hive.test", ["2001:db8::4", "2001:db8::3"]);
    assert.deepEqual(await resolver.resolve("v6.hive.test"), ["2001:db8::3", "2001:db8::4"]);
  });

  await t.step("an unknown name (NXDOMAIN) resolves to []", async () => {
    assert.deepEqual(await resolver.resolve("absent.hive.test"), []);
  });

  await t.step("records change, and removed records resolve to []", async () => {
    await setRecords("moving.hive.test", ["127.0.2.75"]);
    assert.deepEqual(await resolver.resolve("moving.hive.test"), ["127.0.2.75"]);
    await setRecords("moving.hive.test", ["127.0.2.77", "127.0.2.76"]);
    assert.deepEqual(await resolver.resolve("moving.hive.test"), ["127.0.2.76", "127.0.2.77"]);
    await setRecords("moving.hive.test", []);
    assert.deepEqual(await resolver.resolve("moving.hive.test"), []);
  });

  await t.step("an empty name is rejected with a clear error", async () => {
    await assert.rejects(resolver.resolve(""), /non-empty string/);
  });
}

Deno.test("StaticResolver keeps the PeerResolver contract", async (t) => {
  const resolver = new StaticResolver();
  await checkContract(t, {
    resolver,
    setRecords: (name, addresses) => Promise.resolve(resolver.setRecords(name, addresses)),
  });
});

Deno.test("DnsResolver against a real dnsmasq keeps the PeerResolver contract", async (t) => {
  const dns = await startDnsmasq({ listen: DNS_LISTEN, port: 15300 });
  try {
    await checkContract(t, {
      resolver: new DnsResolver({ nameServer: dns.nameServer }),
      setRecords: (name, addresses) => dns.setRecords(name, addresses),
    });
  } finally {
    await dns.stop();
  }
});

Deno.test("StaticResolver: initial records, failures, bad addresses", async () => {
  const resolver = new StaticResolver({ "svc": ["127.0.2.72", "127.0.2.71"] });
  assert.deepEqual(await resolver.resolve("svc"), ["127.0.2.71", "127.0.2.72"]);
  resolver.setFailure("svc", "server down");
  const error = await resolver.resolve("svc").then(() => null, (e) => e);
  assert.ok(error instanceof ResolveError);
  assert.equal(error.hostname, "svc");
  assert.match(error.message, /resolving "svc" failed: server down/);
  resolver.setFailure("svc", null);
  assert.deepEqual(await resolver.resolve("svc"), ["127.0.2.71", "127.0.2.72"]);
  assert.equal(resolver.calls, 3);
  assert.throws(() => resolver.setRecords("svc", ["not-an-ip"]), /not IP addresses: not-an-ip/);
});

/** Starts dnsmasq serving `records` and runs `body`, always stopping it. */
async function withDnsmasq(
  port: number,
  records: Record<string, string[]>,
  body: (dns: Dnsmasq) => Promise<void>,
): Promise<void> {
  const dns = await startDnsmasq({ listen: DNS_LISTEN, port, records });
  try {
    await body(dns);
  } finally {
    await dns.stop();
  }
}

Deno.test("DnsResolver: a paused (silent) dnsmasq fails within the timeout, then recovers", async () => {
  await withDnsmasq(15301, { "svc.hive.test": ["127.0.2.78"] }, async (dns) => {
    const timeoutMs = 300;
    const resolver = new DnsResolver({ nameServer: dns.nameServer, timeoutMs });
    assert.deepEqual(await resolver.resolve("svc.hive.test"), ["127.0.2.78"]);

    dns.pause();
    try {
      const started = performance.now();
      const error = await resolver.resolve("svc.hive.test").then(() => null, (e) => e);
      const elapsedMs = performance.now() - started;
      assert.ok(error instanceof ResolveError, `expected a ResolveError, got ${error}`);
      assert.match(error.message, /timed out after 300 ms/);
      assert.match(error.message, /server 127\.0\.2\.61:15301/);
      // A generous bound that still tells our deadline from the library's own 15 s timeout.
      assert.ok(elapsedMs < 5_000, `resolve took ${elapsedMs} ms to fail`);
    } finally {
      dns.resume();
    }
    assert.deepEqual(await resolver.resolve("svc.hive.test"), ["127.0.2.78"]);
  });
});

Deno.test("DnsResolver: no server listening is an error, not an empty answer", async () => {
  const resolver = new DnsResolver({ nameServer: NO_SERVER, timeoutMs: 500 });
  const error = await resolver.resolve("svc.hive.test").then(() => null, (e) => e);
  assert.ok(error instanceof ResolveError, `expected a ResolveError, got ${error}`);
  assert.match(error.message, /resolving "svc.hive.test" failed/);
});

Deno.test("DnsResolver: bad options are rejected with clear errors", () => {
  assert.throws(
    () => new DnsResolver({ nameServer: { ipAddr: "dns.example", port: 53 } }),
    /"dns.example" is not an IP address/,
  );
  assert.throws(
    () => new DnsResolver({ nameServer: { ipAddr: "127.0.2.61", port: 0 } }),
    /port 0 is out of range/,
  );
  assert.throws(() => new DnsResolver({ timeoutMs: 0 }), /timeoutMs must be a positive number/);
  const resolver = new DnsResolver({ nameServer: NO_SERVER });
  assert.equal(resolver.timeoutMs, 1000);
});
