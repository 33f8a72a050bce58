import assert from "node:assert/strict";
import { sourceMatches } from "../../lib/net/source_address.ts";

Deno.test("source address: equal addresses match whatever their spelling", () => {
  assert.ok(sourceMatches("10.0.0.7", "10.0.0.7"));
  assert.ok(sourceMatches("fd00::7", "FD00:0:0:0::7"));
  assert.ok(sourceMatches("127.0.0.11", "::ffff:127.0.0.11"));
  assert.ok(sourceMatches("::1", "0:0:0:0:0:0:0:1"));
});

Deno.test("source address: another address, or no address, never matches", () => {
  assert.ok(!sourceMatches("10.0.0.7", "10.0.0.66"));
  assert.ok(!sourceMatches("127.0.0.11", "127.0.0.1"));
  assert.ok(!sourceMatches("fd00::7", "fd00::8"));
  assert.ok(!sourceMatches("not-an-ip", "not-an-ip"));
  assert.ok(!sourceMatches("", ""));
});
