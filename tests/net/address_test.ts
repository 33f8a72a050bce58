/** lib/net/address.ts: canonical IP text, one rule for zone ids, `host:port`. */

import assert from "node:assert/strict";
import { canonicalIp, formatHostPort, normalizeAddresses } from "../../lib/net/address.ts";

Deno.test("normalizeAddresses: canonical, sorted, distinct; a non-address is named", () => {
  assert.deepEqual(
    normalizeAddresses(["127.0.2.80", "2001:DB8::0:1", "127.0.2.8", "127.0.2.80", "2001:db8::1"]),
    ["127.0.2.8", "127.0.2.80", "2001:db8::1"],
  );
  assert.throws(() => normalizeAddresses(["127.0.2.81", "x"]), /not IP addresses: x/);
});

Deno.test("canonicalIp: IPv6 compressed and lower-case; zone ids refused, as by --peers", () => {
  assert.equal(canonicalIp("FD00:0:0::1"), "fd00::1");
  assert.equal(canonicalIp("127.0.2.81"), "127.0.2.81");
  assert.equal(canonicalIp("256.0.0.1"), null);
  assert.equal(canonicalIp("fe80::1%eth0"), null);
  assert.throws(() => normalizeAddresses(["fe80::1%eth0"]), /not IP addresses/);
});

Deno.test("formatHostPort: IPv6 in brackets", () => {
  assert.equal(formatHostPort("127.0.0.1", 6379), "127.0.0.1:6379");
  assert.equal(formatHostPort("fd00::1", 6379), "[fd00::1]:6379");
  assert.equal(formatHostPort("redis.local", 6379), "redis.local:6379");
});
