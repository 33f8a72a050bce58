/**
 * Shared assertions of the end-to-end tests (tests/e2e_*_test.ts) on a {@link LocalCluster}:
 * roles, replication and data.
 *
 * @example
 * ```ts
 * import { assertSettledWithData, keysNamed } from "./e2e_assertions.ts";
 * const keys = keysNamed("cold", 100);
 * await cluster.node(follower).writeThroughProxy(keys);
 * await assertSettledWithData(cluster, keys, { followers: 2 });
 * ```
 */

import assert from "node:assert/strict";
import type { LocalCluster, SettledCluster, SettleOptions } from "../../testing/local_cluster.ts";

/** `count` distinct keys `e2e:<prefix>:<i>`. */
export function keysNamed(prefix: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `e2e:${prefix}:${i}`);
}

/**
 * Waits until the cluster settles (one leader, every other node its follower, every redis
 * replicating the leader's in sync, every proxy forwarding there), then asserts it has
 * `followers` followers, that the master counts them as connected replicas, and that every
 * node's redis holds every key of `keys`. Returns the settled cluster.
 */
export async function assertSettledWithData(
  cluster: LocalCluster,
  keys: readonly string[],
  opts: SettleOptions & { followers: number },
): Promise<SettledCluster> {
  const settled = await cluster.waitForSettled(opts);
  assert.equal(settled.followers.length, opts.followers, `followers of ${settled.leader}`);
  const info = await cluster.node(settled.leader).redisInfo();
  assert.equal(info.get("role"), "master");
  assert.equal(Number(info.get("connected_slaves")), opts.followers, "connected replicas");
  for (const address of [settled.leader, ...settled.followers]) {
    const missing = await cluster.node(address).missingKeys(keys);
    assert.deepEqual(
      missing.slice(0, 10),
      [],
      `${address} misses ${missing.length} of ${keys.length} keys`,
    );
  }
  return settled;
}

/** The `/status` election counters of every node taking part, by address. */
export function electionCounts(
  settled: SettledCluster,
): Map<string, { elections: number; leaderChanges: number }> {
  return new Map(
    [...settled.statuses].map(([address, s]) => [address, {
      elections: s.election.elections,
      leaderChanges: s.election.leaderChanges,
    }]),
  );
}
