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
    // Lease probes (every heartbeat / 8, issue 14) also tell a follower its leader lives, so
    // 30% loss no longer starves a 500 ms timeout: only very heavy loss still does.
    loss: 0.85,
    seed: 1,
  });
  assert.ok(lossy.falseSuspicionsPerHour > 0, JSON.stringify(lossy));
  assert.ok(lossy.electionsPerHour >= lossy.newLeadersPerHour);
});
