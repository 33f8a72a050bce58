/**
 * EpollHandoff (lib/proxy/epoll/epoll_handoff.ts), the epoll workers' shared load and hand-off
 * queues, driven from one thread: connections go to the least-loaded worker that still takes
 * them (a tie stays with the accepting one), bursts spread at most one apart, a full or retired
 * queue refuses. Pure: no FFI, no socket, so it runs on every platform.
 */

import assert from "node:assert/strict";
import { EPOLL_HANDOFF_SLOTS, EpollHandoff } from "../../lib/proxy/epoll/epoll_handoff.ts";

/** Assigns `n` connections, each accepted by worker `acceptedBy(i)`; returns the loads. */
function burst(h: EpollHandoff, n: number, acceptedBy: (i: number) => number): number[] {
  for (let i = 0; i < n; i++) h.assign(acceptedBy(i));
  return Array.from({ length: h.workers }, (_, i) => h.load(i));
}

Deno.test("epoll handoff: a burst accepted by one worker is spread evenly over all", () => {
  for (const workers of [1, 2, 3, 4, 16]) {
    for (const n of [1, 2, 7, 50, 1000]) {
      const loads = burst(new EpollHandoff(EpollHandoff.allocate(workers), workers), n, () => 0);
      assert.equal(loads.reduce((a, b) => a + b, 0), n);
      assert.ok(
        Math.max(...loads) - Math.min(...loads) <= 1,
        `${workers} workers, ${n} connections: ${loads}`,
      );
    }
  }
  // Accepted by any worker, in any order: still even (50 over 2: 25/25, as SO_REUSEPORT's
  // 17/33 was not).
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % 2;
  assert.deepEqual(burst(new EpollHandoff(EpollHandoff.allocate(2), 2), 50, random), [25, 25]);
});

Deno.test("epoll handoff: a tie stays with the accepting worker; closed connections make room", () => {
  const shared = EpollHandoff.allocate(3);
  const h = new EpollHandoff(shared, 3);
  assert.equal(h.assign(2), 2); // all at 0: keep it
  assert.equal(h.assign(2), 0); // 2 has one: the lowest of the least loaded
  assert.equal(h.assign(2), 1);
  assert.equal(h.assign(1), 1); // all at 1: keep it
  h.release(0); // worker 0 closed its connection
  // Another view of the same memory (another worker) sees the same loads.
  const other = new EpollHandoff(shared, 3);
  assert.deepEqual([0, 1, 2].map((i) => other.load(i)), [0, 2, 1]);
  assert.equal(other.assign(1), 0);
  // Moving a connection that could not be queued back to the accepting worker.
  other.unassign(0, 1);
  assert.deepEqual([0, 1, 2].map((i) => other.load(i)), [0, 3, 1]);
});

Deno.test("epoll handoff: queues are first in first out, bounded, and refuse once retired", () => {
  const h = new EpollHandoff(EpollHandoff.allocate(2), 2);
  assert.equal(h.take(1), -1);
  for (let round = 0; round < 3; round++) {
    // Past the end of the ring more than once: the slots are reused in order.
    for (let i = 0; i < EPOLL_HANDOFF_SLOTS; i++) assert.equal(h.push(1, 1000 + i), true);
    assert.equal(h.push(1, 99), false, "a full queue refuses");
    assert.equal(h.take(1), 1000);
    assert.equal(h.push(1, 5000), true);
    for (let i = 1; i < EPOLL_HANDOFF_SLOTS; i++) assert.equal(h.take(1), 1000 + i);
    assert.equal(h.take(1), 5000);
    assert.equal(h.take(1), -1);
    assert.equal(h.take(0), -1, "worker 0's queue is its own");
  }
  h.push(1, 42);
  h.retire(1);
  assert.equal(h.push(1, 43), false, "a retired worker takes no more");
  assert.equal(h.take(1), 42, "what was queued before is still there, to be closed");
  assert.equal(h.assign(0), 0);
  assert.equal(h.assign(0), 0, "a retired worker is never chosen, however idle");
  h.retire(0);
  assert.equal(h.assign(0), 0, "none takes any: the accepting worker keeps it");
});

Deno.test("epoll handoff: bad sizes and indexes are clear errors", () => {
  assert.throws(() => EpollHandoff.allocate(0), /workers must be a positive integer, got 0/);
  assert.throws(() => new EpollHandoff(EpollHandoff.allocate(2), 3), /expected \d+ bytes for 3/);
  const h = new EpollHandoff(EpollHandoff.allocate(2), 2);
  assert.throws(() => h.assign(2), /worker index must be in 0\.\.1, got 2/);
  assert.throws(() => h.push(-1, 3), /worker index must be in 0\.\.1, got -1/);
  assert.throws(() => h.load(0.5), /got 0\.5/);
});
