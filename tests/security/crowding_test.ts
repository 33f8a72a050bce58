/**
 * Adversarial, real processes: forged peers crowd the bounded peer table while a new pod joins
 * through DNS. The cluster runs `--insecure-no-secret` (so the forgers' unsigned heartbeats are
 * heard at all: with a secret they are dropped at the door, see forged_leader_test.ts) and
 * `--max-peers 8`; 20 forgers on 127.0.113.1..20 send follower heartbeats to every node, 10 per
 * second each, from before the newcomer starts until it has joined. Nodes on 127.0.13.71..74,
 * dnsmasq on 127.0.13.70.
 *
 * Before this change the forgers filled every table, the newcomer listed in DNS was refused by
 * everyone (and a refused DNS peer was not retried until the DNS answer changed), the newcomer's
 * own table filled with forgers before its first DNS answer, and it elected itself on an empty
 * redis: two leaders. Now listed peers take the place of peers only heard, on every node.
 */

import assert from "node:assert/strict";
import { LocalCluster } from "../../testing/local_cluster.ts";
import { Attacker, forgedFollower, sleep } from "./attacker.ts";

const ADDRESSES = ["127.0.13.71", "127.0.13.72", "127.0.13.73"];
const NEWCOMER = "127.0.13.74";
const DNS = "127.0.13.70";
const DNS_PORT = 15314;
const FORGERS = Array.from({ length: 20 }, (_, i) => `127.0.113.${i + 1}`);
const MAX_PEERS = 8;

Deno.test("security: forged peers crowding the tables cannot keep a DNS-listed newcomer out", async () => {
  await LocalCluster.run({
    addresses: ADDRESSES,
    discovery: { kind: "dns", listen: DNS, port: DNS_PORT },
    secret: null,
    hiveArgs: ["--max-peers", String(MAX_PEERS)],
  }, async (cluster) => {
    const settled = await cluster.waitForSettled();
    const forgers = await Promise.all(FORGERS.map((f) => Attacker.bind(f, cluster.ports.election)));
    let stop = false;
    const targets = [...ADDRESSES, NEWCOMER];
    const flood = (async () => {
      for (let seq = 1; !stop; seq++) {
        for (const f of forgers) {
          const bytes = await f.encode(forgedFollower(f.host, seq, cluster.ports.election), null);
          for (const t of targets) await f.sendTo({ host: t, port: cluster.ports.election }, bytes);
        }
        await sleep(100);
      }
    })();
    try {
      // The forgers fill every table first.
      await sleep(1_000);
      for (const [address, s] of await cluster.statuses()) {
        assert.ok(!(s instanceof Error), `${address}: ${s}`);
        assert.equal(s.peers.length, MAX_PEERS, `${address}'s table is full`);
      }
      // The newcomer joins through DNS, under the flood.
      await cluster.addNode(NEWCOMER);
      let mostLeaders = 0;
      const deadline = Date.now() + 12_000;
      while (Date.now() < deadline) {
        const leaders = [...(await cluster.statuses()).values()].filter((s) =>
          !(s instanceof Error) && s.role === "leader"
        );
        mostLeaders = Math.max(mostLeaders, leaders.length);
        await sleep(200);
      }
      assert.equal(mostLeaders, 1, "never two leaders while the newcomer joined");
      const after = await cluster.waitForSettled({ leader: settled.leader });
      assert.equal(after.followers.length, 3, "the newcomer follows the leader");
      for (const [address, s] of after.statuses) {
        const listed = [...ADDRESSES, NEWCOMER].filter((a) => a !== address);
        for (const peer of listed) {
          assert.ok(
            s.peers.some((p) => p.address === peer && p.live),
            `${address} hears listed peer ${peer}`,
          );
        }
      }
      const evicted = [...after.statuses.values()].reduce(
        (n, s) => n + s.election.peersEvicted,
        0,
      );
      assert.ok(evicted > 0, "forgers gave their places to listed peers");
    } finally {
      stop = true;
      await flood;
      await Promise.all(forgers.map((f) => f.close()));
    }
  });
});
