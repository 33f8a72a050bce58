import assert from "node:assert/strict";
import type { HiveStatus } from "../../lib/http/hive_status.ts";
import { METRICS_CONTENT_TYPE } from "../../lib/http/metrics.ts";
import { STATUS_PAGE_CSP } from "../../lib/http/status_page.ts";
import { handleStatusRequest, startStatusServer } from "../../lib/http/status_server.ts";
import { FOLLOWER, followerStatus, LEADER, leaderStatus } from "./hive_status_samples.ts";

const HOST = "127.0.4.21";

Deno.test("status server: /healthz follows the loop, /status is JSON, others 404/405 (real socket)", async () => {
  let healthy = true;
  const hive = { healthy: () => healthy, status: () => leaderStatus() };
  const server = await startStatusServer({ host: HOST, port: 0, hive });
  try {
    const base = `http://${HOST}:${server.address.port}`;
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
  assert.equal(post.headers.get("allow"), "GET, HEAD");
});

Deno.test("status server: /readyz answers 200 or 503 with readiness's one-line reason (real socket)", async () => {
  let healthy = true;
  let status: HiveStatus = followerStatus();
  const server = await startStatusServer({
    host: HOST,
    port: 0,
    hive: { healthy: () => healthy, status: () => status },
  });
  try {
    const readyz = async () => {
      const res = await fetch(`http://${HOST}:${server.address.port}/readyz`);
      assert.match(res.headers.get("content-type") ?? "", /^text\/plain/);
      assert.equal(res.headers.get("cache-control"), "no-store");
      return { code: res.status, body: await res.text() };
    };
    assert.deepEqual(await readyz(), {
      code: 200,
      body: `follower: replicating from ${LEADER}, 0 bytes behind\n`,
    });
    status.redis.observation!.linkUp = false;
    assert.deepEqual(await readyz(), {
      code: 503,
      body: `follower: replication link to ${LEADER} down\n`,
    });
    status = followerStatus();
    status.role = "candidate";
    assert.deepEqual(await readyz(), { code: 503, body: "candidate: election in progress\n" });
    status = leaderStatus();
    assert.deepEqual(await readyz(), {
      code: 200,
      body: "leader: redis is master, proxy listening\n",
    });
    healthy = false;
    assert.deepEqual(await readyz(), { code: 503, body: "loop stalled\n" });
  } finally {
    await server.close();
  }
});

Deno.test("status server: /metrics is Prometheus text of the current status (real socket)", async () => {
  let status = followerStatus();
  const server = await startStatusServer({
    host: HOST,
    port: 0,
    hive: { healthy: () => true, status: () => status },
  });
  try {
    const metrics = async () => {
      const res = await fetch(`http://${HOST}:${server.address.port}/metrics`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("content-type"), METRICS_CONTENT_TYPE);
      return await res.text();
    };
    let body = await metrics();
    assert.match(body, /^# HELP redis_hive_info /);
    assert.ok(body.includes(`redis_hive_info{id="${FOLLOWER}"} 1\n`));
    assert.ok(body.includes('redis_hive_role{role="follower"} 1\n'));
    assert.ok(body.includes("redis_hive_ready 1\n"));
    status = leaderStatus();
    status.election.leaderChanges = 42;
    body = await metrics();
    assert.ok(body.includes('redis_hive_role{role="leader"} 1\n'));
    assert.ok(body.includes("redis_hive_leader_changes_total 42\n"));
  } finally {
    await server.close();
  }
});

Deno.test("status server: / is the self-contained page, with a CSP that forbids other origins", async () => {
  const server = await startStatusServer({
    host: HOST,
    port: 0,
    hive: { healthy: () => true, status: () => followerStatus() },
  });
  try {
    const base = `http://${HOST}:${server.address.port}`;
    let res = await fetch(`${base}/`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/html/);
    assert.equal(res.headers.get("content-security-policy"), STATUS_PAGE_CSP);
    const html = await res.text();
    assert.match(html, /^<!doctype html>/);
    assert.doesNotMatch(html, /(src|href)=["']?(https?:)?\/\//i, "no external asset");
    assert.match(html, /fetch\(url/);
    res = await fetch(`${base}/`, { method: "HEAD" });
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "");
  } finally {
    await server.close();
  }
});

Deno.test("status server: a status that throws is a 500 with the message, and the server goes on", async () => {
  let fail = true;
  const server = await startStatusServer({
    host: HOST,
    port: 0,
    hive: {
      healthy: () => true,
      status: () => {
        if (fail) throw new Error("snapshot exploded");
        return leaderStatus();
      },
    },
  });
  try {
    const base = `http://${HOST}:${server.address.port}`;
    let res = await fetch(`${base}/metrics`);
    assert.equal(res.status, 500);
    assert.match(await res.text(), /snapshot exploded/);
    fail = false;
    res = await fetch(`${base}/metrics`);
    assert.equal(res.status, 200);
    await res.body?.cancel();
  } finally {
    await server.close();
  }
});
