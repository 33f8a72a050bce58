/**
 * End to end, real processes: the leader's hive is SIGKILLed while its redis lives and comes
 * back; the whole leader node is lost; the DNS server stops answering for 10 s. Loopback
 * addresses 127.0.3.50 to 127.0.3.69.
 */

import assert from "node:assert/strict";
import { LocalCluster } from "../../testing/local_cluster.ts";
import { sleep } from "../../testing/wait.ts";
import { assertSettledWithData, electionCounts, keysNamed } from "./e2e_assertions.ts";

const DNS_PORT = 15353;
const DNS = { kind: "dns", listen: "127.0.3.50", port: DNS_PORT } as const;
/** How long the DNS server stops answering. */
const DNS_OUTAGE_MS = 10_000;
/** How often roles are sampled during the outage. */
const DNS_OUTAGE_SAMPLE_MS = 250;

Deno.test("e2e: the leader's hive is SIGKILLed while its redis lives, then comes back: one leader, the old redis demoted", async () => {
  await LocalCluster.run({
    addresses: ["127.0.3.51", "127.0.3.52", "127.0.3.53"],
    discovery: DNS,
  }, async (cluster) => {
    const first = await cluster.waitForSettled();
    const keys = keysNamed("hive-kill", 300);
    await cluster.node(first.followers[0] as string).writeThroughProxy(keys);
    await assertSettledWithData(cluster, keys, { followers: 2, leader: first.leader });

    const old = cluster.node(first.leader);
    await old.killHive("SIGKILL");
    assert.ok(old.redisRunning, "its redis lives on");
    // The others elect one of them; the orphaned redis stays a master until its hive is back.
    const during = await cluster.waitForSettled({ nodes: first.followers, notLeader: old.address });
    const more = keysNamed("hive-kill-during", 100);
    await cluster.node(during.followers[0] as string).writeThroughProxy(more);

    await old.startHive();
    const after = await assertSettledWithData(cluster, [...keys, ...more], {
      followers: 2,
      leader: during.leader,
    });
    const oldStatus = after.statuses.get(old.address);
    assert.equal(oldStatus?.role, "follower");
    assert.equal(oldStatus?.election.elections, 0, "the restarted hive followed with no election");
    const oldInfo = await old.redisInfo();
    assert.equal(oldInfo.get("role"), "slave", "the old master was demoted");
    assert.equal(oldInfo.get("master_host"), during.leader);
    // Only one leader at any moment once back: every node agrees, checked by settle above.
  });
});

Deno.test("e2e: the whole leader node is lost: a new leader, data intact, and the node rejoins", async () => {
  await LocalCluster.run({
    addresses: ["127.0.3.54", "127.0.3.55", "127.0.3.56"],
    discovery: DNS,
  }, async (cluster) => {
    const first = await cluster.waitForSettled();
    const keys = keysNamed("node-loss", 300);
    await cluster.node(first.followers[0] as string).writeThroughProxy(keys);
    await assertSettledWithData(cluster, keys, { followers: 2, leader: first.leader });

    const old = cluster.node(first.leader);
    await old.kill();
    const after = await assertSettledWithData(cluster, keys, {
      followers: 1,
      notLeader: old.address,
      nodes: first.followers,
    });
    const more = keysNamed("node-loss-after", 100);
    await cluster.node(after.followers[0] as string).writeThroughProxy(more);
    // The lost pod leaves the headless Service: nothing changes for the others.
    await cluster.setDnsRecords(first.followers);
    await assertSettledWithData(cluster, [...keys, ...more], {
      followers: 1,
      leader: after.leader,
      nodes: first.followers,
    });

    // A new pod comes back on the same address (empty redis, new hive): it follows and syncs.
    await cluster.setDnsRecords(cluster.nodes.map((n) => n.address));
    await old.restart();
    await assertSettledWithData(cluster, [...keys, ...more], {
      followers: 2,
      leader: after.leader,
    });
  });
});

Deno.test("e2e: the DNS server stops answering for 10 s: roles do not change", async () => {
  await LocalCluster.run({
    addresses: ["127.0.3.57", "127.0.3.58", "127.0.3.59"],
    discovery: DNS,
  }, async (cluster) => {
    const keys = keysNamed("dns-outage", 100);
    const first = await cluster.waitForSettled();
    await cluster.node(first.followers[0] as string).writeThroughProxy(keys);
    const before = await assertSettledWithData(cluster, keys, {
      followers: 2,
      leader: first.leader,
    });
    const failuresBefore = new Map(
      [...before.statuses].map(([a, s]) => [a, Number(s.discovery["failures"])]),
    );
    const dns = cluster.dns;
    assert.ok(dns !== null);

    dns.pause();
    try {
      const end = Date.now() + DNS_OUTAGE_MS;
      let samples = 0;
      while (Date.now() < end) {
        for (const [address, s] of await cluster.statuses()) {
          assert.ok(!(s instanceof Error), `${address} /status: ${s}`);
          const expected = address === first.leader ? "leader" : "follower";
          assert.equal(s.role, expected, `${address} role during the DNS outage`);
          assert.equal(s.leader, first.leader, `${address} leader during the DNS outage`);
          assert.equal(s.peers.filter((p) => p.live).length, 2, `${address} still hears both`);
        }
        samples++;
        await sleep(DNS_OUTAGE_SAMPLE_MS);
      }
      assert.ok(samples >= DNS_OUTAGE_MS / DNS_OUTAGE_SAMPLE_MS / 2, `only ${samples} samples`);
      // The outage was real: every hive's lookups failed meanwhile.
      for (const [address, s] of await cluster.statuses()) {
        assert.ok(!(s instanceof Error));
        assert.ok(
          Number(s.discovery["failures"]) > (failuresBefore.get(address) ?? 0),
          `${address} saw DNS failures: ${JSON.stringify(s.discovery)}`,
        );
      }
    } finally {
      dns.resume();
    }

    const after = await assertSettledWithData(cluster, keys, {
      followers: 2,
      leader: first.leader,
    });
    assert.deepEqual(electionCounts(after), electionCounts(before), "no election, no change");
  });
});
