/**
 * PeerDiscovery: the refresh/backoff schedule and the "never report an empty set" rule, driven
 * deterministically by a fake scheduler; then the same rules against a real dnsmasq that is
 * paused (stops answering), emptied and changed.
 *
 * Loopback addresses: dnsmasq on 127.0.2.62 (ports 15320-15329). Record data uses
 * 127.0.2.71-89 (never contacted).
 */

import assert from "node:assert/strict";
import { eventually } from "../../testing/wait.ts";
import {
  backoffDelayMs,
  DISCOVERY_BACKOFF,
  DISCOVERY_BACKOFF_INITIAL_MS,
  DISCOVERY_BACKOFF_MAX_MS,
  DISCOVERY_REFRESH_MS,
  DISCOVERY_RESOLVE_DEADLINE_MS,
  type DiscoveryEvent,
  PeerDiscovery,
  type PeerDiscoveryOptions,
  type Scheduler,
  type TimerHandle,
} from "../../lib/net/peer_discovery.ts";
import { DnsResolver, type PeerResolver, StaticResolver } from "../../lib/net/resolver.ts";
import { startDnsmasq } from "../../testing/dnsmasq.ts";

const NAME = "hive.test";

/** A scheduler whose time moves only when the test says so. */
class FakeScheduler implements Scheduler {
  #nowMs = 0;
  #nextId = 1;
  readonly #timers = new Map<number, { atMs: number; delayMs: number; callback: () => void }>();

  setTimeout(callback: () => void, delayMs: number): TimerHandle {
    const id = this.#nextId++;
    this.#timers.set(id, { atMs: this.#nowMs + delayMs, delayMs, callback });
    return id;
  }

  clearTimeout(handle: TimerHandle): void {
    this.#timers.delete(handle as number);
  }

  now(): number {
    return this.#nowMs;
  }

  /** The delays of the timers still pending, in the order they were set. */
  pendingDelays(): number[] {
    return [...this.#timers.values()].map((timer) => timer.delayMs);
  }

  /** Moves time forward by `ms`, firing due timers in time order. */
  advance(ms: number): void {
    const targetMs = this.#nowMs + ms;
    while (true) {
      let due: [number, { atMs: number; callback: () => void }] | null = null;
      for (const entry of this.#timers) {
        if (entry[1].atMs <= targetMs && (due === null || entry[1].atMs < due[1].atMs)) {
          due = entry;
        }
      }
      if (due === null) break;
      this.#timers.delete(due[0]);
      this.#nowMs = due[1].atMs;
      due[1].callback();
    }
    this.#nowMs = targetMs;
  }
}

/** A discovery on a fake scheduler, recording every onPeers call and event. */
function harness(
  resolver: PeerResolver,
  options: Partial<PeerDiscoveryOptions> = {},
) {
  const scheduler = new FakeScheduler();
  const reported: (readonly string[])[] = [];
  const events: DiscoveryEvent[] = [];
  const discovery = new PeerDiscovery({
    source: { kind: "dns", name: NAME, resolver },
    onPeers: (peers) => reported.push(peers),
    onEvent: (event) => events.push(event),
    scheduler,
    ...options,
  });
  /** Fires the one pending refresh timer and waits for its resolution to be handled. */
  const fireNext = async (): Promise<number> => {
    const delays = scheduler.pendingDelays();
    assert.equal(delays.length, 1, `expected one pending timer, got ${JSON.stringify(delays)}`);
    const delayMs = delays[0] ?? 0;
    scheduler.advance(delayMs);
    await discovery.settled();
    return delayMs;
  };
  return { scheduler, reported, events, discovery, fireNext };
}

Deno.test("backoffDelayMs doubles from the initial delay up to the cap", () => {
  const delays = [1, 2, 3, 4, 5, 6, 7, 8, 50, 5000].map((n) =>
    backoffDelayMs(n, DISCOVERY_BACKOFF)
  );
  assert.deepEqual(delays, [250, 500, 1000, 2000, 4000, 8000, 10000, 10000, 10000, 10000]);
  assert.equal(
    backoffDelayMs(3, { initialMs: 100, factor: 3, maxMs: 1_000_000 }),
    900,
  );
  assert.throws(() => backoffDelayMs(0, DISCOVERY_BACKOFF), /integer >= 1/);
});

Deno.test("failures back off exponentially, capped; a good answer resets the schedule", async () => {
  const resolver = new StaticResolver({ [NAME]: ["127.0.2.71"] });
  resolver.setFailure(NAME, "SERVFAIL");
  const { discovery, reported, events, fireNext } = harness(resolver);
  discovery.start();
  await discovery.settled();

  const retryDelays: number[] = [];
  for (let i = 0; i < 8; i++) retryDelays.push(await fireNext());
  assert.deepEqual(retryDelays, [
    DISCOVERY_BACKOFF_INITIAL_MS,
    500,
    1000,
    2000,
    4000,
    8000,
    DISCOVERY_BACKOFF_MAX_MS,
    DISCOVERY_BACKOFF_MAX_MS,
  ]);
  assert.equal(discovery.stats.failures, 9);
  assert.equal(discovery.stats.consecutiveFailures, 9);
  assert.match(discovery.stats.lastError ?? "", /SERVFAIL/);
  assert.deepEqual(reported, []);
  const failed = events.filter((e) => e.kind === "failed");
  assert.equal(failed.length, 9);
  assert.deepEqual(failed.map((e) => e.kind === "failed" && e.retryInMs).slice(0, 3), [
    250,
    500,
    1000,
  ]);

  resolver.setFailure(NAME, null);
  await fireNext(); // the capped retry succeeds
  assert.deepEqual(reported, [["127.0.2.71"]]);
  assert.equal(discovery.stats.consecutiveFailures, 0);
  assert.equal(await fireNext(), DISCOVERY_REFRESH_MS); // back to the refresh interval

  resolver.setFailure(NAME, "SERVFAIL");
  assert.equal(await fireNext(), DISCOVERY_REFRESH_MS);
  assert.equal(await fireNext(), DISCOVERY_BACKOFF_INITIAL_MS); // the backoff starts over
  assert.deepEqual(discovery.peers, ["127.0.2.71"]);
  discovery.stop();
});

Deno.test("an empty or failed answer keeps the last good set and is never reported", async () => {
  const resolver = new StaticResolver({ [NAME]: ["127.0.2.72", "127.0.2.71"] });
  const { discovery, reported, events, fireNext } = harness(resolver);
  discovery.start();
  await discovery.settled();
  assert.deepEqual(reported, [["127.0.2.71", "127.0.2.72"]]);

  resolver.setRecords(NAME, []);
  assert.equal(await fireNext(), DISCOVERY_REFRESH_MS);
  assert.equal(await fireNext(), DISCOVERY_BACKOFF_INITIAL_MS);
  resolver.setFailure(NAME, "timed out");
  assert.equal(await fireNext(), 500);
  assert.deepEqual(discovery.peers, ["127.0.2.71", "127.0.2.72"]);
  assert.deepEqual(reported, [["127.0.2.71", "127.0.2.72"]]);
  const stats = discovery.stats;
  assert.equal(stats.empties, 2);
  assert.equal(stats.failures, 1);
  assert.equal(stats.resolves, 1);
  const empty = events.find((e) => e.kind === "empty");
  assert.deepEqual(empty, {
    kind: "empty",
    kept: ["127.0.2.71", "127.0.2.72"],
    consecutive: 1,
    retryInMs: DISCOVERY_BACKOFF_INITIAL_MS,
  });

  resolver.setFailure(NAME, null);
  resolver.setRecords(NAME, ["127.0.2.73"]);
  assert.equal(await fireNext(), 1000);
  assert.deepEqual(reported, [["127.0.2.71", "127.0.2.72"], ["127.0.2.73"]]);
  assert.ok(reported.every((peers) => peers.length > 0));
  discovery.stop();
});

Deno.test("an empty first answer reports nothing and backs off", async () => {
  const resolver = new StaticResolver();
  const { discovery, reported, fireNext, scheduler } = harness(resolver);
  discovery.start();
  await discovery.settled();
  assert.deepEqual(scheduler.pendingDelays(), [DISCOVERY_BACKOFF_INITIAL_MS]);
  assert.equal(await fireNext(), DISCOVERY_BACKOFF_INITIAL_MS);
  assert.deepEqual(reported, []);
  assert.deepEqual(discovery.peers, []);
  assert.equal(discovery.stats.empties, 2);
  assert.equal(discovery.stats.lastSuccessAgoMs, null);
  discovery.stop();
});

Deno.test("onPeers is called only when the set changes; stats follow the clock", async () => {
  const resolver = new StaticResolver({ [NAME]: ["127.0.2.74", "127.0.2.75"] });
  const { discovery, reported, events, fireNext, scheduler } = harness(resolver);
  discovery.start();
  await discovery.settled();
  await fireNext();
  await fireNext();
  assert.equal(discovery.stats.resolves, 3);
  assert.equal(resolver.calls, 3);
  assert.deepEqual(reported, [["127.0.2.74", "127.0.2.75"]]);
  assert.deepEqual(events.filter((e) => e.kind === "peers"), [{
    kind: "peers",
    peers: ["127.0.2.74", "127.0.2.75"],
    previous: [],
  }]);

  scheduler.advance(1234);
  assert.equal(discovery.stats.lastSuccessAgoMs, 1234);
  resolver.setRecords(NAME, ["127.0.2.75", "127.0.2.74", "127.0.2.76"]);
  await fireNext();
  assert.deepEqual(reported[1], ["127.0.2.74", "127.0.2.75", "127.0.2.76"]);
  assert.equal(discovery.stats.lastSuccessAgoMs, 0);
  assert.equal(discovery.stats.peers, 3);
  discovery.stop();
});

Deno.test("at most maxPeers addresses are kept: the first in sorted order; the rest counted", async () => {
  const resolver = new StaticResolver({
    [NAME]: ["127.0.2.85", "127.0.2.81", "127.0.2.84", "127.0.2.82", "127.0.2.83"],
  });
  const { discovery, reported, events, fireNext } = harness(resolver, { maxPeers: 3 });
  discovery.start();
  await discovery.settled();
  assert.deepEqual(reported, [["127.0.2.81", "127.0.2.82", "127.0.2.83"]]);
  assert.deepEqual(events.find((e) => e.kind === "truncated"), {
    kind: "truncated",
    dropped: ["127.0.2.84", "127.0.2.85"],
    maxPeers: 3,
  });
  await fireNext();
  assert.equal(discovery.stats.droppedPeers, 4);
  assert.equal(reported.length, 1);
  discovery.stop();
});

Deno.test("a resolver that never answers fails at the deadline and is retried", async () => {
  let calls = 0;
  const silent: PeerResolver = {
    resolve: () => {
      calls++;
      return new Promise<string[]>(() => {});
    },
  };
  const { discovery, events, scheduler, fireNext } = harness(silent);
  discovery.start();
  assert.deepEqual(scheduler.pendingDelays(), [DISCOVERY_RESOLVE_DEADLINE_MS]);
  assert.equal(await fireNext(), DISCOVERY_RESOLVE_DEADLINE_MS);
  assert.equal(discovery.stats.failures, 1);
  assert.match(discovery.stats.lastError ?? "", /no answer within 5000 ms/);
  assert.equal(events[0]?.kind, "failed");
  assert.deepEqual(scheduler.pendingDelays(), [DISCOVERY_BACKOFF_INITIAL_MS]);
  scheduler.advance(DISCOVERY_BACKOFF_INITIAL_MS);
  assert.equal(calls, 2);
  discovery.stop();
  await discovery.settled();
  assert.deepEqual(scheduler.pendingDelays(), []);
});

Deno.test("stop() cancels the timers and ignores an answer still in flight", async () => {
  let answer: (addresses: string[]) => void = () => {};
  const deferred: PeerResolver = {
    resolve: () => new Promise<string[]>((resolve) => (answer = resolve)),
  };
  const { discovery, reported, events, scheduler } = harness(deferred);
  discovery.start();
  discovery.stop();
  discovery.stop(); // idempotent
  await discovery.settled();
  answer(["127.0.2.77"]);
  await Promise.resolve();
  assert.deepEqual(reported, []);
  assert.deepEqual(events, []);
  assert.deepEqual(scheduler.pendingDelays(), []);
  assert.equal(discovery.stats.failures, 0);
  assert.throws(() => discovery.start(), /start called twice/);
});

Deno.test("static peers are reported once, sorted, with no timers", () => {
  const scheduler = new FakeScheduler();
  const reported: (readonly string[])[] = [];
  const discovery = new PeerDiscovery({
    source: { kind: "static", peers: ["127.0.2.79", "127.0.2.78", "127.0.2.79"] },
    onPeers: (peers) => reported.push(peers),
    scheduler,
  });
  discovery.start();
  scheduler.advance(10 * DISCOVERY_REFRESH_MS);
  assert.deepEqual(reported, [["127.0.2.78", "127.0.2.79"]]);
  assert.deepEqual(scheduler.pendingDelays(), []);
  assert.equal(discovery.stats.attempts, 0);
  assert.equal(discovery.stats.lastSuccessAgoMs, null);
  discovery.stop();
});

Deno.test("bad options and bad static lists are rejected with clear errors", () => {
  const onPeers = () => {};
  const dns = { kind: "dns" as const, name: NAME, resolver: new StaticResolver() };
  const cases: [Partial<PeerDiscoveryOptions>, RegExp][] = [
    [{ source: { kind: "static", peers: [] } }, /static peer list is empty/],
    [{ source: { kind: "static", peers: ["127.0.2.80", "pod-a"] } }, /not IP addresses: pod-a/],
    [
      { source: { kind: "static", peers: ["127.0.2.80", "127.0.2.81"] }, maxPeers: 1 },
      /has 2 addresses, more than maxPeers 1/,
    ],
    [{ source: { kind: "dns", name: "", resolver: new StaticResolver() } }, /non-empty string/],
    [{ source: dns, refreshMs: 0 }, /refreshMs must be a positive number/],
    [{ source: dns, maxPeers: 0 }, /maxPeers must be a positive integer/],
    [{ source: dns, backoff: { initialMs: 10, factor: 0.5, maxMs: 100 } }, /factor must be/],
    [{ source: dns, backoff: { initialMs: 100, factor: 2, maxMs: 10 } }, /maxMs \(10\) must be/],
    [{ source: dns, resolveDeadlineMs: -1 }, /resolveDeadlineMs must be a positive/],
  ];
  for (const [options, message] of cases) {
    assert.throws(
      () => new PeerDiscovery({ source: dns, onPeers, ...options }),
      message,
      JSON.stringify(options),
    );
  }
});

/** A generous bound for the waits against a real dnsmasq. */
const DNS_EVENTUALLY_MS = 15_000;

Deno.test("against a real dnsmasq: a paused or emptied server keeps the last good set; changes are picked up", async () => {
  const dns = await startDnsmasq({
    listen: "127.0.2.62",
    port: 15320,
    records: { [NAME]: ["127.0.2.82", "127.0.2.81"] },
  });
  // Tracks every resolution so the test can wait for the ones stop() abandoned.
  const pending: Promise<unknown>[] = [];
  const real = new DnsResolver({ nameServer: dns.nameServer, timeoutMs: 200 });
  const resolver: PeerResolver = {
    resolve(name) {
      const promise = real.resolve(name);
      pending.push(promise.catch(() => {}));
      return promise;
    },
  };
  const reported: (readonly string[])[] = [];
  const events: DiscoveryEvent[] = [];
  const discovery = new PeerDiscovery({
    source: { kind: "dns", name: NAME, resolver },
    onPeers: (peers) => reported.push(peers),
    onEvent: (event) => events.push(event),
    refreshMs: 100,
    backoff: { initialMs: 50, factor: 2, maxMs: 200 },
  });
  try {
    discovery.start();
    await eventually("the first peer set", () => reported.length === 1, {
      timeoutMs: DNS_EVENTUALLY_MS,
    });
    assert.deepEqual(reported, [["127.0.2.81", "127.0.2.82"]]);

    dns.pause();
    try {
      await eventually("three failures while paused", () => discovery.stats.failures >= 3, {
        timeoutMs: DNS_EVENTUALLY_MS,
      });
      assert.deepEqual(discovery.peers, ["127.0.2.81", "127.0.2.82"]);
      assert.equal(reported.length, 1);
      assert.match(discovery.stats.lastError ?? "", /timed out after 200 ms/);
      const failed = events.filter((e) => e.kind === "failed");
      assert.ok(failed.every((e) => e.kind === "failed" && e.kept.length === 2));
    } finally {
      dns.resume();
    }

    await dns.setRecords(NAME, ["127.0.2.83", "127.0.2.81"]);
    await eventually("the changed set after resume", () => reported.length === 2, {
      timeoutMs: DNS_EVENTUALLY_MS,
    });
    assert.deepEqual(reported[1], ["127.0.2.81", "127.0.2.83"]);
    assert.equal(discovery.stats.consecutiveFailures, 0);

    await dns.setRecords(NAME, []);
    await eventually("two empty answers", () => discovery.stats.empties >= 2, {
      timeoutMs: DNS_EVENTUALLY_MS,
    });
    assert.deepEqual(discovery.peers, ["127.0.2.81", "127.0.2.83"]);
    assert.equal(reported.length, 2);

    await dns.setRecords(NAME, ["127.0.2.84"]);
    await eventually("the set after the name came back", () => reported.length === 3, {
      timeoutMs: DNS_EVENTUALLY_MS,
    });
    assert.deepEqual(reported[2], ["127.0.2.84"]);
    assert.ok(reported.every((peers) => peers.length > 0));
  } finally {
    discovery.stop();
    await discovery.settled().catch(() => {});
    await Promise.all(pending);
    await dns.stop();
  }
});
