/**
 * IPv6 end to end, as far as one machine allows: loopback has a single IPv6 address (::1), so
 * this runs ONE real hive process with a real redis on [::1] (UDP, proxy and HTTP listeners all
 * bound to ::1): it must elect itself, promote its redis and proxy writes to it. Several IPv6
 * nodes would need addresses on the host's interfaces, which tests never touch; the multi-node
 * IPv6 paths are covered piecewise (tests/net/udp_transport_test.ts on [::1], tests/election/codec_test.ts,
 * tests/net/resolver_test.ts with AAAA records).
 */

import { randomSecret } from "../../testing/secret.ts";
import { sleep } from "../../testing/wait.ts";
import assert from "node:assert/strict";
import { startRedis } from "../../testing/redis_server.ts";
import { productionDenoFlags } from "../../testing/local_cluster.ts";
import { respCommand } from "../../testing/resp_client.ts";

const REDIS_PORT = 16479;
const ELECTION_PORT = 17479;
const PROXY_PORT = 16480;
const HTTP_PORT = 18480;

Deno.test("IPv6: one hive on [::1] elects itself, promotes its redis and proxies writes to it", async () => {
  const redis = await startRedis({ host: "::1", port: REDIS_PORT, parked: true });
  const dir = await Deno.makeTempDir({ prefix: "hive-ipv6-" });
  const hive = new Deno.Command(Deno.execPath(), {
    args: [
      ...(await productionDenoFlags()),
      "main.ts",
      "--peers",
      "::1",
      "--announce-ip",
      "::1",
      "--bind",
      "::1",
      "--redis-host",
      "::1",
      "--redis-port",
      String(REDIS_PORT),
      "--election-port",
      String(ELECTION_PORT),
      "--proxy-port",
      String(PROXY_PORT),
      "--http-port",
      String(HTTP_PORT),
      "--state-file",
      `${dir}/state.json`,
    ],
    env: { HIVE_SECRET: randomSecret() },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = Promise.all([
    new Response(hive.stdout).text(),
    new Response(hive.stderr).text(),
  ]);
  try {
    // Alone, with no peer to hear, it waits the empty-promotion delay (5 s) before it leads.
    const deadline = Date.now() + 20_000;
    let status: { role?: string; leader?: string | null; proxy?: { target: unknown } } = {};
    while (Date.now() < deadline) {
      try {
        const res = await fetch(`http://[::1]:${HTTP_PORT}/status`);
        status = await res.json();
        if (status.role === "leader" && status.proxy?.target !== null) break;
      } catch {
        // not listening yet
      }
      await sleep(200);
    }
    assert.equal(status.role, "leader", JSON.stringify(status));
    assert.equal(status.leader, "::1");
    const role = await redis.command("ROLE") as unknown[];
    assert.equal(role[0], "master");
    assert.equal(await respCommand("::1", PROXY_PORT, ["SET", "k6", "v6"]), "OK");
    assert.equal(await redis.command("GET", "k6"), "v6");
  } finally {
    hive.kill("SIGKILL");
    await hive.status;
    await output;
    await redis.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
