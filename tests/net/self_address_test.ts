/**
 * detectSelfAddress: exactly one resolved peer address must be a local interface address.
 * Mostly a pure function over given interface lists; one case reads the real interfaces.
 */

import assert from "node:assert/strict";
import { detectSelfAddress, SelfAddressError } from "../../lib/net/self_address.ts";

const POD_INTERFACES = [
  { address: "127.0.0.1" },
  { address: "::1" },
  { address: "10.244.1.17" },
  { address: "FD00:10:244:1::17" },
  { address: "fe80::c0ff:eeff:fe00:1" },
];

Deno.test("the one resolved address that is local is the announce address", () => {
  assert.equal(
    detectSelfAddress(["10.244.2.5", "10.244.1.17", "10.244.3.9"], POD_INTERFACES),
    "10.244.1.17",
  );
  // IPv6 is compared in canonical form; the candidate is returned as given.
  assert.equal(
    detectSelfAddress(["fd00:10:244:2::5", "fd00:10:244:1:0:0:0:17"], POD_INTERFACES),
    "fd00:10:244:1:0:0:0:17",
  );
  // The same address listed twice is still one match.
  assert.equal(detectSelfAddress(["10.244.1.17", "10.244.1.17"], POD_INTERFACES), "10.244.1.17");
});

Deno.test("no local address among the candidates: an error that says to set --announce-ip/POD_IP", () => {
  const error = (() => {
    try {
      detectSelfAddress(["10.244.2.5", "10.244.3.9"], POD_INTERFACES);
    } catch (e) {
      return e;
    }
    return null;
  })();
  assert.ok(error instanceof SelfAddressError);
  assert.deepEqual(error.matches, []);
  assert.match(
    error.message,
    /none of the resolved peer addresses \(10\.244\.2\.5, 10\.244\.3\.9\)/,
  );
  assert.match(error.message, /--announce-ip/);
  assert.match(error.message, /POD_IP/);
  assert.throws(() => detectSelfAddress([], POD_INTERFACES), /\(no addresses\)/);
});

Deno.test("several local addresses among the candidates: an ambiguity error naming them", () => {
  assert.throws(
    () => detectSelfAddress(["10.244.2.5", "fd00:10:244:1::17", "10.244.1.17"], POD_INTERFACES),
    (error: unknown) => {
      assert.ok(error instanceof SelfAddressError);
      assert.deepEqual(error.matches, ["fd00:10:244:1::17", "10.244.1.17"]);
      assert.match(error.message, /ambiguous/);
      assert.match(error.message, /fd00:10:244:1::17, 10\.244\.1\.17/);
      assert.match(error.message, /--announce-ip/);
      return true;
    },
  );
});

Deno.test("a candidate that is not an IP address is a clear error", () => {
  assert.throws(
    () => detectSelfAddress(["10.244.1.17", "redis-hive-0"], POD_INTERFACES),
    /peer address "redis-hive-0" is not an IP address/,
  );
});

Deno.test("with the real interfaces: the loopback address is found among test-net addresses", () => {
  const local = Deno.networkInterfaces().map((i) => i.address);
  assert.ok(local.includes("127.0.0.1"), `no 127.0.0.1 among ${local.join(", ")}`);
  // 192.0.2.0/24 and 2001:db8::/32 are documentation ranges: never local.
  assert.equal(detectSelfAddress(["192.0.2.10", "127.0.0.1", "2001:db8::10"]), "127.0.0.1");
  assert.throws(() => detectSelfAddress(["192.0.2.10", "2001:db8::10"]), SelfAddressError);
});
