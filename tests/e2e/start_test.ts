/**
 * End to end, real processes (redis-server, hive via `deno run` with the production flags,
 * dnsmasq): a cold start of 3 nodes with DNS discovery (the default proxy engine, epoll) and
 * with static peers (`--proxy-engine deno`), and a 4th node joining a settled cluster. Loopback
 * addresses 127.0.3.10 to 127.0.3.29.
 */

import { epollTest } from "../../testing/platform.ts";
import assert from "node:assert/strict";
import type { ProxyEngineRequest } from "../../lib/proxy/proxy_options.ts";
import type { ProxyEngine } from "../../lib/proxy/proxy_engine.ts";
import { type DiscoveryOptions, LocalCluster } from "../../testing/local_cluster.ts";
import { assertSettledWithData, electionCounts, keysNamed } from "./e2e_assertions.ts";
import { respCommand } from "../../testing/resp_client.ts";

const DNS_PORT = 15353;

/**
 * Starts 3 nodes with `discovery`, each with `--proxy-engine engineFlag` when given (else the
 * default), and checks that every node runs the `engine` it must and proxies writes to the master.
 */
async function coldStart(
  addresses: string[],
  discovery: DiscoveryOptions,
  engine: { flag: ProxyEngineRequest | null; expected: ProxyEngine; workers: number },
): Promise<void> {
  const hiveArgs = engine.flag === null ? [] : ["--proxy-engine", engine.flag];
  if (engine.workers !== 2 && engine.expected === "epoll") {
    hiveArgs.push("--proxy-workers", String(engine.workers));
  }
  await LocalCluster.run({ addresses, discovery, hiveArgs }, async (cluster) => {
    const settled = await cluster.waitForSettled();
    assert.equal(settled.followers.length, 2);
    for (const [address, s] of settled.statuses) {
      assert.equal(s.proxy.engine, engine.expected, `${address}: ${s.proxy.engineReason}`);
      assert.equal(s.proxy.workers, engine.workers, `${address}'s proxy threads`);
      assert.equal(s.id, address);
      assert.equal(s.leader, settled.leader, `${address} names the leader`);
      assert.equal(s.peers.filter((p) => p.live).length, 2, `${address} hears both peers`);
    }
    // Writes through a follower's proxy reach the master and every replica.
    const keys = keysNamed("cold", 200);
    await cluster.node(settled.followers[0] as string).writeThroughProxy(keys);
    const after = await assertSettledWithData(cluster, keys, {
      followers: 2,
      leader: settled.leader,
    });
    assert.ok(after.offset > 0, "the master's offset moved with the writes");
  });
}

epollTest(
  "e2e: cold start of 3 with DNS discovery: one leader, two replicas in sync, epoll proxies with --proxy-workers 3",
  async () => {
    // The production flags include --allow-ffi, so the default (auto) runs the epoll engine on
    // the x86_64 Linux machines the tests run on.
    await coldStart(
      ["127.0.3.11", "127.0.3.12", "127.0.3.13"],
      { kind: "dns", listen: "127.0.3.10", port: DNS_PORT },
      { flag: null, expected: "epoll", workers: 3 }, // --proxy-workers 3
    );
  },
);

Deno.test("e2e: cold start of 3 with static peers and --proxy-engine deno: writes reach the master", async () => {
  await coldStart(["127.0.3.14", "127.0.3.15", "127.0.3.16"], { kind: "static" }, {
    flag: "deno",
    expected: "deno",
    workers: 1,
  });
});

Deno.test("e2e: a 4th node joins: it follows at once with no election, and syncs", async () => {
  await LocalCluster.run({
    addresses: ["127.0.3.17", "127.0.3.18", "127.0.3.19"],
    discovery: { kind: "dns", listen: "127.0.3.10", port: DNS_PORT },
  }, async (cluster) => {
    const before = await cluster.waitForSettled();
    const keys = keysNamed("join", 200);
    await cluster.node(before.followers[0] as string).writeThroughProxy(keys);
    const settled = await assertSettledWithData(cluster, keys, {
      followers: 2,
      leader: before.leader,
    });
    const countsBefore = electionCounts(settled);

    const newcomer = await cluster.addNode("127.0.3.20");
    const joined = await assertSettledWithData(cluster, keys, {
      followers: 3,
      leader: before.leader,
    });
    const newStatus = joined.statuses.get(newcomer.address);
    assert.ok(newStatus !== undefined);
    assert.equal(newStatus.role, "follower");
    assert.equal(newStatus.election.elections, 0, "the newcomer never stood for election");
    assert.equal(newStatus.election.leaderChanges, 1, "the newcomer only ever followed one leader");
    const countsAfter = electionCounts(joined);
    for (const [address, counts] of countsBefore) {
      assert.deepEqual(countsAfter.get(address), counts, `${address} saw no election`);
    }

    // The newcomer's proxy forwards to the master too.
    const more = keysNamed("join-after", 50);
    await newcomer.writeThroughProxy(more);
    await assertSettledWithData(cluster, [...keys, ...more], {
      followers: 3,
      leader: before.leader,
    });
  });
});

Deno.test("e2e: with --redis-socket, the leader's proxy and hive reach their redis through its Unix socket; followers' over TCP", async () => {
  await LocalCluster.run({
    addresses: ["127.0.3.21", "127.0.3.22", "127.0.3.23"],
    discovery: { kind: "static" },
    redisSocket: true,
  }, async (cluster) => {
    const settled = await cluster.waitForSettled();
    const leader = cluster.node(settled.leader);
    assert.ok(leader.redisSocket !== null);
    for (const [address, s] of settled.statuses) {
      const expected: string = address === settled.leader
        ? `unix:${leader.redisSocket}`
        : `${settled.leader}:${leader.ports.redis}`;
      assert.equal(s.proxy.upstream, expected, `${address}'s proxy upstream`);
    }
    // A connection through the leader's proxy is, to redis, a Unix socket client.
    const info = await respCommand(leader.address, leader.ports.proxy, ["CLIENT", "INFO"]);
    assert.equal(typeof info, "string");
    assert.match(info as string, new RegExp(`laddr=${leader.redisSocket}:0 `), String(info));
    // ...and through a follower's proxy, a TCP client of the leader's redis.
    const follower = cluster.node(settled.followers[0] as string);
    const viaFollower = await respCommand(follower.address, follower.ports.proxy, [
      "CLIENT",
      "INFO",
    ]);
    assert.match(
      viaFollower as string,
      new RegExp(`laddr=${settled.leader}:${leader.ports.redis} `),
    );
    // The leader's hive itself talks to its redis over the socket: a socket client is there
    // with no proxied connection open.
    const clients = await respCommand(leader.address, leader.ports.redis, ["CLIENT", "LIST"]);
    const socketClients = (clients as string).split("\n").filter((l) =>
      l.includes(`laddr=${leader.redisSocket}:0 `)
    );
    assert.ok(socketClients.length >= 1, String(clients));
    const keys = keysNamed("socket", 100);
    await leader.writeThroughProxy(keys);
    await assertSettledWithData(cluster, keys, { followers: 2, leader: settled.leader });
  });
});
