/** The allocation-free HMAC-SHA256 (lib/election/hmac_sha256.ts) against node:crypto. */

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import fc from "fast-check";
import { HmacSha256 } from "../../lib/election/hmac_sha256.ts";

Deno.test("hmac-sha256: RFC 4231 test case 2", () => {
  const hmac = new HmacSha256(new TextEncoder().encode("Jefe"));
  const tag = hmac.digest(new TextEncoder().encode("what do ya want for nothing?"));
  assert.equal(
    [...tag].map((b) => b.toString(16).padStart(2, "0")).join(""),
    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
  );
});

Deno.test("hmac-sha256: equal to node:crypto for any key and message (fuzzed), and verify agrees", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 1, maxLength: 200 }),
      fc.array(fc.uint8Array({ maxLength: 1300 }), { minLength: 1, maxLength: 4 }),
      (key, messages) => {
        const hmac = new HmacSha256(key);
        for (const message of messages) {
          const expected = new Uint8Array(createHmac("sha256", key).update(message).digest());
          assert.deepEqual(hmac.digest(message), expected);
          assert.ok(hmac.verify(message, expected));
          const wrong = expected.with(0, expected[0]! ^ 1);
          assert.ok(!hmac.verify(message, wrong));
          assert.ok(!hmac.verify(message, expected.subarray(0, 31)));
        }
      },
    ),
    { numRuns: 300 },
  );
});
