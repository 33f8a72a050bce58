/**
 * Secure by default, as the runtime shows it: a hive with a secret reports itself authenticated
 * with no warning; a hive started with `--insecure-no-secret` says so on `/status` (and so on the
 * status page, which renders `security.warnings`) and in its start-up log. The refusal to start
 * without either is covered in tests/hive/config_test.ts and, end to end, in
 * tests/security/forged_leader_test.ts.
 */

import assert from "node:assert/strict";
import { Hive, INSECURE_WARNING } from "../../lib/hive/hive.ts";
import { parseConfig } from "../../lib/hive/config.ts";
import { MemoryNetwork } from "../../lib/net/udp_transport.ts";
import { MemoryRedisNetwork } from "../../lib/redis/memory_redis_controller.ts";
import { handleStatusRequest } from "../../lib/http/status_server.ts";
import { STATUS_PAGE_HTML } from "../../lib/http/status_page.ts";

async function startOne(env: Record<string, string>, args: string[] = []): Promise<Hive> {
  const udp = new MemoryNetwork();
  const redisNet = new MemoryRedisNetwork();
  redisNet.addRedis("10.13.0.1", 6379, { parked: true });
  const config = parseConfig(
    ["--peers", "10.13.0.1", "--announce-ip", "10.13.0.1", "--bind", "10.13.0.1", ...args],
    env,
    () => "",
  );
  return await Hive.start(config, {
    udp: (bind) => Promise.resolve(udp.listen(bind)),
    redis: (announceIp) =>
      redisNet.controller({ host: "10.13.0.1", port: 6379, password: null, announceIp }),
    proxy: false,
    http: false,
    sentinel: false, // in-memory parts: no real socket on the test addresses
    nofileLimit: () => null, // the test process's own limit is not the point here
  });
}

Deno.test("security: a hive with a secret is authenticated and warns of nothing", async () => {
  const hive = await startOne({ HIVE_SECRET: "s3cret" });
  try {
    assert.deepEqual(hive.status().security, { authenticated: true, warnings: [] });
  } finally {
    await hive.stop();
  }
});

Deno.test("security: --insecure-no-secret is shown on /status and the status page renders it", async () => {
  const hive = await startOne({}, ["--insecure-no-secret"]);
  try {
    const status = hive.status();
    assert.equal(status.security.authenticated, false);
    assert.deepEqual(status.security.warnings, [INSECURE_WARNING]);
    assert.match(INSECURE_WARNING, /WITHOUT a heartbeat secret/);
    const body = await handleStatusRequest(new Request("http://x/status"), {
      healthy: () => true,
      status: () => hive.status(),
    }).json();
    assert.deepEqual(body.security.warnings, [INSECURE_WARNING]);
    // The page has a place for it and fills it from security.warnings.
    assert.match(STATUS_PAGE_HTML, /id="security"/);
    assert.match(STATUS_PAGE_HTML, /s\.security\.warnings/);
  } finally {
    await hive.stop();
  }
});
