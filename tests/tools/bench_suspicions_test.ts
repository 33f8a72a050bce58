/** `deno task bench suspicions` (simulated, no processes): the counting itself. */
import assert from "node:assert/strict";
import { measureSuspicions } from "../../tools/bench/suspicions.ts";

Deno.test("bench suspicions: a healthy cluster with no loss is never suspected; heavy loss with a short failure timeout is", () => {
  const calm = measureSuspicions({
    heartbeatMs: 200,
    failureMs: 1000,
    hours: 0.1,
    loss: 0,
    seed: 1,
  });
  assert.equal(calm.falseSuspicionsPerHour, 0);
  assert.equal(calm.newLeadersPerHour, 0);
  const lossy = measureSuspicions({
    heartbeatMs: 166,
    failureMs: 500,
    hours: 0.1,
    loss: 0.3,
    seed: 1,
  });
  assert.ok(lossy.falseSuspicionsPerHour > 0, JSON.stringify(lossy));
  assert.ok(lossy.electionsPerHour >= lossy.newLeadersPerHour);
});
