/**
 * Adversarial, real processes (redis-server, hives via `deno run` with the production flags and
 * a random secret, real UDP on 127.0.13.51..53, the attacker on 127.0.13.59): forged leader
 * claims that would win everywhere (the oldest lineage, a group of 1024, leading since 1970),
 * with and without a redis `runId`, unsigned, signed with another secret, and signed with the
 * real secret but sent from another address (a capture re-sent from elsewhere). Before this
 * change, without a secret (the default then), every node ran `REPLICAOF <attacker>` within a
 * second and the dataset was replaced. Now: no node follows the attacker, no redis replicates
 * from it, the data stays, nothing is ever sent to the attacker (no reflection), and every
 * forged datagram is counted by reason.
 */

import assert from "node:assert/strict";
import { LocalCluster } from "../../testing/local_cluster.ts";
import { keysNamed } from "../e2e/e2e_assertions.ts";
import { Attacker, sleep } from "./attacker.ts";
import { forgedLeaderHeartbeat as forgedLeader } from "../../testing/election_samples.ts";

const ADDRESSES = ["127.0.13.51", "127.0.13.52", "127.0.13.53"];
const ATTACKER = "127.0.13.59";
const ROUNDS = 40;

Deno.test("security: forged leaders (with and without runId, unsigned, badly signed, re-sent from elsewhere) change nothing", async () => {
  await LocalCluster.run(
    { addresses: ADDRESSES, discovery: { kind: "static" } },
    async (cluster) => {
      const settled = await cluster.waitForSettled();
      const keys = keysNamed("forged", 1000);
      await cluster.node(settled.followers[0]!).writeThroughProxy(keys);
      await cluster.waitForSettled({ leader: settled.leader });
      const attacker = await Attacker.bind(ATTACKER, cluster.ports.election);
      try {
        const victimFollower = settled.followers[1]!;
        for (let seq = 1; seq <= ROUNDS; seq++) {
          for (const node of cluster.nodes) {
            const to = { host: node.address, port: node.ports.election };
            // The attacker's own claims: unsigned, and signed with a guessed secret.
            for (const runId of ["e".repeat(40), null]) {
              const claim = forgedLeader(ATTACKER, seq, { runId });
              await attacker.sendTo(to, await attacker.encode(claim, null));
              await attacker.sendTo(to, await attacker.encode(claim, "guessed-secret"));
            }
            // A real node's name with the real signature (as a captured datagram would have),
            // sent from the attacker's address: it must not make that node look like a leader.
            const spoofed = forgedLeader(victimFollower, 1_000_000 + seq);
            await attacker.sendTo(to, await attacker.encode(spoofed, cluster.secret));
          }
          await sleep(25);
        }
        await sleep(1_500);
        const after = await cluster.waitForSettled({ leader: settled.leader });
        for (const node of cluster.nodes) {
          const s = after.statuses.get(node.address)!;
          assert.equal(s.leader, settled.leader, `${node.address} still follows the real leader`);
          assert.ok(
            !s.peers.some((p) => p.address === ATTACKER),
            `${node.address} never tracked it`,
          );
          const dropped = s.runtime.datagramsDropped;
          assert.equal(dropped.unsigned, 2 * ROUNDS, `${node.address}: unsigned claims counted`);
          assert.equal(dropped["bad-signature"], 2 * ROUNDS, `${node.address}: bad signatures`);
          assert.equal(
            dropped["source-mismatch"],
            ROUNDS,
            `${node.address}: re-sent from elsewhere`,
          );
          const info = await node.redisInfo();
          assert.notEqual(info.get("master_host"), ATTACKER, `${node.address}'s redis`);
          const missing = await node.missingKeys(keys);
          assert.equal(missing.length, 0, `${node.address} lost ${missing.length} keys`);
        }
        assert.deepEqual(
          attacker.captured.map((c) => c.host),
          [],
          "no hive ever sent anything to the attacker (no reflection, no password)",
        );
        const metrics = await (await fetch(
          `http://${settled.leader}:${cluster.ports.http}/metrics`,
        )).text();
        assert.match(metrics, /redis_hive_heartbeats_dropped_total\{reason="source-mismatch"\} 40/);
      } finally {
        await attacker.close();
      }
    },
  );
});
