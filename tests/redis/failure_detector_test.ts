/**
 * The failure detector alone (pure: no redis, no clock): what counts as busy, what as dead.
 * The real controller's use of it, against real redis-server processes, is in
 * busy_redis_test.ts.
 */
import assert from "node:assert/strict";
import {
  checkHangMs,
  DEFAULT_REDIS_HANG_MS,
  DEFAULT_SCRIPT_KILL_GRACE_MS,
  RedisFailureDetector,
  sameHealth,
} from "../../lib/redis/failure_detector.ts";

const HANG = DEFAULT_REDIS_HANG_MS;

function up(): RedisFailureDetector {
  const d = new RedisFailureDetector({ hangMs: HANG });
  d.connected(0);
  d.probeSent(0);
  d.answered(1);
  return d;
}

Deno.test("never connected: dead (not-connected); connected and answering: answering", () => {
  const d = new RedisFailureDetector({ hangMs: HANG });
  assert.deepEqual(d.health(0), { state: "dead", reason: "not-connected", unansweredMs: null });
  d.connectFailed("ECONNREFUSED", 1);
  assert.equal(d.health(1).state, "dead");
  d.connected(2);
  d.probeSent(2);
  d.answered(3);
  assert.deepEqual(d.health(3), { state: "answering" });
});

Deno.test("a slow answer is busy up to the hang timeout, then dead (hung)", () => {
  const d = up();
  d.probeSent(100);
  assert.deepEqual(d.health(100 + 700), { state: "busy", reason: "slow", unansweredMs: 700 });
  assert.deepEqual(d.health(100 + HANG - 1), {
    state: "busy",
    reason: "slow",
    unansweredMs: HANG - 1,
  });
  assert.deepEqual(d.health(100 + HANG), { state: "dead", reason: "hung", unansweredMs: HANG });
  // A later probe does not restart the clock: the oldest unanswered one counts.
  d.probeSent(100 + HANG);
  assert.equal(d.health(100 + HANG + 1).state, "dead");
  d.answered(100 + HANG + 2);
  assert.deepEqual(d.health(100 + HANG + 2), { state: "answering" });
});

Deno.test("a dropped connection is busy (reconnecting) until a reconnect is refused", () => {
  const d = up();
  d.connectionLost(50);
  assert.deepEqual(d.health(51), { state: "busy", reason: "reconnecting", unansweredMs: 1 });
  // A timeout or reset while connecting is not a refusal.
  d.connectFailed("ETIMEDOUT", 52);
  d.connectFailed(undefined, 53);
  assert.equal(d.health(54).state, "busy");
  d.connectFailed("ECONNREFUSED", 55);
  assert.deepEqual(d.health(55), { state: "dead", reason: "refused", unansweredMs: 5 });
  // It comes back (a new process, maybe: the observation's run_id tells).
  d.connected(900);
  d.probeSent(900);
  d.answered(901);
  assert.deepEqual(d.health(901), { state: "answering" });
});

Deno.test("CLIENT KILL of the monitoring connection: reconnected at once, never dead", () => {
  const d = up();
  d.connectionLost(10);
  d.connected(11);
  d.probeSent(11);
  assert.equal(d.health(12).state, "busy");
  d.answered(12);
  assert.deepEqual(d.health(12), { state: "answering" });
});

Deno.test("a missing Unix socket file counts as refused; errors on a live connection do not", () => {
  const d = up();
  d.connectFailed("ECONNREFUSED", 5); // still connected: not a reconnect
  assert.deepEqual(d.health(5), { state: "answering" });
  d.connectionLost(6);
  d.connectFailed("ENOENT", 7);
  assert.equal(d.health(7).state, "dead");
});

Deno.test("-BUSY past the hang timeout: SCRIPT KILL once, dead only after the grace", () => {
  const d = up();
  d.probeSent(100);
  d.busyReply(200);
  assert.deepEqual(d.health(300), { state: "busy", reason: "script", unansweredMs: 200 });
  assert.equal(d.shouldKillScript(100 + HANG - 1), false);
  assert.equal(d.shouldKillScript(100 + HANG), true);
  assert.equal(d.health(100 + HANG).state, "busy", "the kill comes first");
  d.scriptKillSent(100 + HANG);
  assert.equal(d.shouldKillScript(100 + HANG + 1), false, "once");
  assert.equal(d.health(100 + HANG + DEFAULT_SCRIPT_KILL_GRACE_MS - 1).state, "busy");
  assert.deepEqual(d.health(100 + HANG + DEFAULT_SCRIPT_KILL_GRACE_MS), {
    state: "dead",
    reason: "hung",
    unansweredMs: HANG + DEFAULT_SCRIPT_KILL_GRACE_MS,
  });
  // The kill worked after all: answering again, and a new busy episode may kill again.
  d.answered(100 + HANG + DEFAULT_SCRIPT_KILL_GRACE_MS + 1);
  d.probeSent(20_000);
  d.busyReply(20_001);
  assert.equal(d.shouldKillScript(20_000 + HANG), true);
});

Deno.test("a master loading is busy (loading), bounded by the hang timeout", () => {
  const d = up();
  d.probeSent(10);
  d.loading(11);
  assert.deepEqual(d.health(500), { state: "busy", reason: "loading", unansweredMs: 490 });
  assert.equal(d.health(10 + HANG).state, "dead");
});

Deno.test("bad hang timeouts are refused with a clear error; sameHealth compares state and reason", () => {
  assert.equal(checkHangMs(5000), 5000);
  assert.throws(() => checkHangMs(499), /hangMs must be an integer in 500\.\.600000, got 499/);
  assert.throws(() => checkHangMs(1.5), /got 1.5/);
  assert.throws(() => new RedisFailureDetector({ hangMs: 0 }), RangeError);
  assert.throws(
    () => new RedisFailureDetector({ hangMs: 1000, scriptKillGraceMs: 0 }),
    /scriptKillGraceMs/,
  );
  assert.ok(sameHealth({ state: "answering" }, { state: "answering" }));
  assert.ok(
    sameHealth(
      { state: "busy", reason: "slow", unansweredMs: 1 },
      { state: "busy", reason: "slow", unansweredMs: 9 },
    ),
  );
  assert.ok(
    !sameHealth(
      { state: "busy", reason: "slow", unansweredMs: 1 },
      { state: "busy", reason: "script", unansweredMs: 1 },
    ),
  );
});
