/**
 * Adversarial, real processes: descriptor exhaustion degrades a hive, never kills it.
 *
 * Three nodes (real redis, hives via `deno run` with the production flags, static peers) on
 * 127.0.13.21 to .23, every hive started under `prlimit --nofile=96:96`, far below what its HTTP
 * cap and proxy could hold. The leader then gets 200 idle HTTP connections and 200 proxy
 * connections at once. Before this change `Deno.serve` died with an uncaught `Too many open
 * files` and the process exited; now new connections are refused (the proxy's cap was lowered to
 * fit the limit, the HTTP server's accepts fail and are retried), the leader keeps its role and
 * its heartbeats (its peers never lose it), and it answers again once the connections close.
 */

import assert from "node:assert/strict";
import { LocalCluster } from "../../testing/local_cluster.ts";

const ADDRESSES = ["127.0.13.21", "127.0.13.22", "127.0.13.23"];
const NOFILE = 96;
const CONNECTIONS_PER_PORT = 200;
/** How long the connections are held (several failure timeouts). */
const HOLD_MS = 4_000;

async function openMany(host: string, port: number, count: number): Promise<Deno.TcpConn[]> {
  const conns: Deno.TcpConn[] = [];
  for (let i = 0; i < count; i++) {
    try {
      conns.push(await Deno.connect({ hostname: host, port }));
    } catch {
      // The backlog is full: the kernel refuses; that is the degraded behaviour too.
    }
  }
  return conns;
}

Deno.test("security: a hive out of file descriptors refuses connections and keeps leading", async () => {
  await LocalCluster.run({
    addresses: ADDRESSES,
    discovery: { kind: "static" },
    hiveCommandPrefix: ["prlimit", `--nofile=${NOFILE}:${NOFILE}`],
  }, async (cluster) => {
    const settled = await cluster.waitForSettled();
    const leader = cluster.node(settled.leader);
    const before = settled.statuses.get(settled.leader)!;
    assert.equal(before.limits.nofileSoft, NOFILE);
    assert.equal(before.limits.maxConnections, 1, "--max-connections lowered to fit the limit");
    assert.ok(
      before.security.warnings.some((w) => w.startsWith("--max-connections lowered")),
      "the lowering is warned about on /status",
    );

    const conns = [
      ...await openMany(leader.address, leader.ports.http, CONNECTIONS_PER_PORT),
      ...await openMany(leader.address, leader.ports.proxy, CONNECTIONS_PER_PORT),
    ];
    const fds = () => Deno.readDirSync(`/proc/${leader.hive!.pid}/fd`).toArray().length;
    let mostFds = 0;
    let peersLostIt = 0;
    try {
      const until = Date.now() + HOLD_MS;
      while (Date.now() < until) {
        try {
          mostFds = Math.max(mostFds, fds());
        } catch { /* exited: asserted below */ }
        for (const other of cluster.nodes.filter((n) => n !== leader)) {
          const s = await other.status();
          if (s.leader !== leader.address) peersLostIt++;
        }
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.ok(leader.hive!.running, "the hive is still running");
      assert.ok(mostFds >= NOFILE - 2, `descriptors were exhausted (at most ${mostFds} open)`);
      assert.equal(peersLostIt, 0, "its peers never lost the leader: heartbeats went on");
    } finally {
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
    }

    // It answers again once the descriptors are back, and counted what it refused.
    let after: Awaited<ReturnType<typeof leader.status>> | null = null;
    for (let i = 0; i < 100 && after === null; i++) {
      try {
        after = await leader.status();
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    assert.ok(after !== null, "the HTTP server answers again");
    assert.equal(after.role, "leader");
    assert.ok(after.http!.acceptErrors > 0, "failed accepts were counted");
    assert.ok((after.proxy.stats?.refused ?? 0) > 0, "proxy connections past the cap were refused");
    const metrics = await (await fetch(
      `http://${leader.address}:${leader.ports.http}/metrics`,
    )).text();
    assert.match(
      metrics,
      /redis_hive_http_connections_refused_total\{reason="accept-error"\} [1-9]/,
    );
  });
});
