/**
 * Start-up answers are rate-limited: two starting nodes that answer each other's heartbeats at
 * once (a newcomer is owed an immediate reply) would ping-pong for the whole start-up window.
 * Here two elections are wired back to back, every datagram delivered 1 ms after it is sent,
 * and the heartbeats of the first second are counted.
 */

import assert from "node:assert/strict";
import { Election, type ElectionAction } from "../../lib/election/election.ts";
import type { Heartbeat } from "../../lib/election/heartbeat.ts";
import type { Instant } from "../../lib/common/clock.ts";

const WALL0 = 1_700_000_000_000;
const HEARTBEAT_MS = 200;

function at(ms: number): Instant {
  return { monoMs: ms, wallMs: WALL0 + ms };
}

function node(self: string): Election {
  return new Election({
    self,
    electionPort: 7379,
    redisPort: 6379,
    localRedis: { host: "127.0.0.1", port: 6379 },
    bootId: self === "10.0.0.1" ? "00000000000000a1" : "00000000000000b2",
    heartbeatMs: HEARTBEAT_MS,
    failureMs: 1000,
    maxPeers: 8,
  });
}

Deno.test("start-up: two starting nodes send at most one reply per peer per heartbeat interval", () => {
  const nodes = new Map([["10.0.0.1", node("10.0.0.1")], ["10.0.0.2", node("10.0.0.2")]]);
  const queue: { atMs: number; to: string; hb: Heartbeat }[] = [];
  let sent = 0;
  const carry = (actions: ElectionAction[], nowMs: number) => {
    for (const a of actions) {
      if (a.type !== "send") continue;
      for (const to of a.to) {
        sent++;
        queue.push({ atMs: nowMs + 1, to: to.host, hb: a.heartbeat });
      }
    }
  };
  for (const [, e] of nodes) carry(e.setPeers(["10.0.0.1", "10.0.0.2"], at(0)), 0);
  const endMs = 1000;
  for (let t = 0; t <= endMs; t++) {
    while (queue.length > 0 && queue[0]!.atMs <= t) {
      const d = queue.shift()!;
      carry(nodes.get(d.to)!.receive(d.hb, at(t)), t);
    }
    if (t % 50 === 0) { for (const [, e] of nodes) carry(e.tick(at(t)), t); }
  }
  // Steady state is one heartbeat per peer per interval: 2 nodes x 1 peer x (1000 / 200 + 1).
  // Allow a few more for role changes (each change is announced at once).
  const steady = 2 * (endMs / HEARTBEAT_MS + 1);
  assert.ok(sent <= steady + 6, `${sent} heartbeats in the first second (steady: ${steady})`);
  const suppressed = [...nodes.values()].reduce((n, e) => n + e.stats.repliesSuppressed, 0);
  assert.ok(suppressed > 0, "replies owed inside the interval were suppressed");
});
