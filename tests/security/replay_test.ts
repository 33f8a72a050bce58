/**
 * Adversarial, real processes: replays of captured heartbeats across restarts of either side
 * (redis-server and hives with a random secret on 127.0.13.61..63, DNS discovery through a real
 * dnsmasq on 127.0.13.60, the attacker on 127.0.13.69, `--max-clock-skew-ms 4000`).
 *
 * The attacker gets the real, signed heartbeats by being listed in DNS (every hive then sends it
 * its heartbeats, as it would to any pod). It captures follower A's heartbeats, A's hive
 * restarts (a new boot), the receiver B's hive restarts too (it remembers nothing), B hears A's
 * current boot, and then the attacker replays A's previous boot to B from A's own address.
 * Before this change B accepted the previous boot, retired the current one and ignored A from
 * then on (`stale`). Now the replays are dropped as `old-boot`, B keeps hearing A, and once the
 * captures are older than the window they are dropped as `expired`.
 */

import assert from "node:assert/strict";
import { LocalCluster, type LocalNode } from "../../testing/local_cluster.ts";
import { Attacker, type Captured, sleep } from "./attacker.ts";

const ADDRESSES = ["127.0.13.61", "127.0.13.62", "127.0.13.63"];
const DNS = "127.0.13.60";
const DNS_PORT = 15313;
const ATTACKER = "127.0.13.69";
const WINDOW_MS = 4_000;

async function until(what: string, ok: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await ok().catch(() => false)) return;
    await sleep(100);
  }
  throw new Error(`timed out waiting: ${what}`);
}

async function hears(receiver: LocalNode, sender: string): Promise<boolean> {
  const s = await receiver.status();
  return s.peers.some((p) => p.address === sender && p.live);
}

Deno.test("security: a previous boot's heartbeats replayed after restarts of both sides neither silence nor impersonate the peer", async () => {
  await LocalCluster.run({
    addresses: ADDRESSES,
    discovery: { kind: "dns", listen: DNS, port: DNS_PORT },
    hiveArgs: ["--max-clock-skew-ms", String(WINDOW_MS)],
  }, async (cluster) => {
    const settled = await cluster.waitForSettled();
    const [a, b] = settled.followers.map((f) => cluster.node(f)) as [LocalNode, LocalNode];
    const listener = await Attacker.bind(ATTACKER, cluster.ports.election);
    let captured: Captured[] = [];
    try {
      await cluster.setDnsRecords([...ADDRESSES, ATTACKER]);
      await until("A's heartbeats are captured", () => {
        return Promise.resolve(listener.captured.filter((c) => c.host === a.address).length >= 10);
      });
      captured = listener.captured.filter((c) => c.host === a.address).slice(-10);
      const lastCapturedAtMs = captured.at(-1)!.atMs;

      // Both sides restart: A (a new boot), then B (it remembers nothing of A).
      await a.killHive();
      await a.startHive();
      await b.killHive();
      await b.startHive();
      await until("B hears A's current boot", () => hears(b, a.address));
      const before = (await b.status()).election;

      // The replay: A's previous boot, from A's own address, to B, again and again.
      const spoofer = await Attacker.bind(a.address, 0);
      try {
        for (let round = 0; round < 10; round++) {
          for (const c of captured) {
            await spoofer.sendTo({ host: b.address, port: b.ports.election }, c.bytes);
          }
          await sleep(100);
        }
        // B still hears A, for longer than the failure timeout after the replays.
        for (let i = 0; i < 15; i++) {
          assert.ok(await hears(b, a.address), "B keeps hearing A's current boot");
          await sleep(100);
        }
        const after = (await b.status()).election;
        assert.ok(
          after.heartbeatsOldBoot + after.heartbeatsExpired >
            before.heartbeatsOldBoot + before.heartbeatsExpired,
          "the replays were dropped as old-boot (or expired)",
        );
        const s = await b.status();
        assert.equal(s.leader, settled.leader, "B follows the real leader");

        // Once older than the window, captures are dropped as expired, whatever B remembers.
        await sleep(Math.max(0, lastCapturedAtMs + WINDOW_MS + 500 - Date.now()));
        const beforeExpired = (await b.status()).election.heartbeatsExpired;
        for (const c of captured) {
          await spoofer.sendTo({ host: b.address, port: b.ports.election }, c.bytes);
        }
        await until("late replays are counted as expired", async () => {
          return (await b.status()).election.heartbeatsExpired >= beforeExpired + captured.length;
        }, 5_000);
        assert.ok(await hears(b, a.address));
      } finally {
        await spoofer.close();
      }
    } finally {
      await listener.close();
    }
  });
});
