import assert from "node:assert/strict";
import { handleStatusRequest, startStatusServer } from "../lib/status_server.ts";

Deno.test("status server: /healthz follows the loop, /status is JSON, others 404/405 (real socket)", async () => {
  let healthy = true;
  const hive = {
    healthy: () => healthy,
    status: () => ({
      id: "127.0.2.91",
      role: "leader",
      leader: "127.0.2.91",
      peers: [],
      redis: {},
    }),
  };
  const server = await startStatusServer({ host: "127.0.2.91", port: 0, hive });
  try {
    const base = `http://127.0.2.91:${server.address.port}`;
    let res = await fetch(`${base}/healthz`);
    assert.equal(res.status, 200);
    await res.body?.cancel();
    healthy = false;
    res = await fetch(`${base}/healthz`);
    assert.equal(res.status, 503);
    assert.match(await res.text(), /stalled/);
    res = await fetch(`${base}/status`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /application\/json/);
    const body = await res.json();
    assert.equal(body.role, "leader");
    res = await fetch(`${base}/nope`);
    assert.equal(res.status, 404);
    await res.body?.cancel();
  } finally {
    await server.close();
  }
  const post = handleStatusRequest(new Request("http://x/status", { method: "POST" }), hive);
  assert.equal(post.status, 405);
});
