/** The in-memory redis model's own behaviour (the controller contract is shared, elsewhere). */
import assert from "node:assert/strict";
import {
  MEMORY_NETWORK_MAX_REDIS,
  MemoryRedisNetwork,
} from "../../lib/redis/memory_redis_controller.ts";
import { PARKED_MASTER, REDIS_DOWN } from "../../lib/redis/redis_state.ts";

const A = { host: "10.0.0.1", port: 6379 };
const B = { host: "10.0.0.2", port: 6379 };
const C = { host: "10.0.0.3", port: 6379 };

Deno.test("memory: a replica copies its master's data, replid and offset; chains work", () => {
  const net = new MemoryRedisNetwork();
  const a = net.addRedis(A.host, A.port);
  const b = net.addRedis(B.host, B.port);
  const c = net.addRedis(C.host, C.port);
  a.write("k", "1");
  b.execute(["REPLICAOF", A.host, String(A.port)]);
  c.execute(["REPLICAOF", B.host, String(B.port)]);
  for (const r of [b, c]) {
    assert.equal(r.linkUp, true);
    assert.equal(r.data.get("k"), "1");
    assert.equal(r.replId, a.replId);
    assert.equal(r.offset, a.offset);
  }
  a.write("k", "2");
  assert.equal(c.data.get("k"), "2");
  assert.throws(() => b.write("x", "y"), /READONLY/);
});

Deno.test("memory: a parked redis keeps its data and nobody syncs from it", () => {
  const net = new MemoryRedisNetwork();
  const a = net.addRedis(A.host, A.port);
  const b = net.addRedis(B.host, B.port);
  a.write("dataset", "precious");
  a.execute(["REPLICAOF", PARKED_MASTER.host, String(PARKED_MASTER.port)]);
  b.write("own", "kept");
  b.execute(["REPLICAOF", A.host, String(A.port)]);
  assert.equal(a.linkUp, false);
  assert.equal(b.linkUp, false);
  assert.equal(a.data.get("dataset"), "precious");
  assert.equal(b.data.get("own"), "kept");
  assert.equal(b.data.has("dataset"), false);
});

Deno.test("memory: following a master that restarted empty wipes the replica (why the guard exists)", () => {
  const net = new MemoryRedisNetwork();
  const a = net.addRedis(A.host, A.port);
  const b = net.addRedis(B.host, B.port);
  a.write("k", "v");
  b.execute(["REPLICAOF", A.host, String(A.port)]);
  assert.equal(b.data.size, 1);
  const oldRunId = a.runId;
  a.restart();
  assert.notEqual(a.runId, oldRunId);
  assert.equal(a.data.size, 0);
  assert.equal(b.data.size, 0, "an unguarded replica syncs the empty dataset");
});

Deno.test("memory: crash, hang and password make the controller observe down", async () => {
  const net = new MemoryRedisNetwork();
  const a = net.addRedis(A.host, A.port, { password: "pw" });
  const wrong = net.controller({ ...A, password: null, announceIp: A.host });
  const right = net.controller({ ...A, password: "pw", announceIp: A.host });
  assert.deepEqual(await wrong.observe(), REDIS_DOWN);
  assert.equal((await right.observe()).up, true);
  a.hang();
  assert.deepEqual(await right.observe(), REDIS_DOWN);
  const hung = await right.enforce({ kind: "leader" });
  assert.ok(!hung.ok && hung.reason === "redis-down");
  a.resume();
  assert.equal((await right.observe()).runId, a.runId);
  let lost = 0;
  right.onConnectionLost(() => lost++);
  a.crash();
  assert.equal(lost, 1);
  assert.deepEqual(await right.observe(), REDIS_DOWN);
});

Deno.test("memory: masterauth from enforce lets a replica link to a password master", async () => {
  const net = new MemoryRedisNetwork();
  const a = net.addRedis(A.host, A.port, { password: "pw" });
  const b = net.addRedis(B.host, B.port, { password: "pw", parked: true });
  a.write("k", "v");
  const ctl = net.controller({ ...B, password: "pw", announceIp: B.host });
  const r = await ctl.enforce({ kind: "follow", ...A, expectRunId: a.runId });
  assert.deepEqual(r.commands, [
    `CONFIG SET replica-announce-ip ${B.host}`,
    "CONFIG SET masterauth <redacted>",
    `REPLICAOF ${A.host} ${A.port}`,
  ]);
  assert.equal(b.config.get("masterauth"), "pw");
  assert.equal(b.linkUp, true);
  assert.equal(b.data.get("k"), "v");
});

Deno.test("memory: rejected CONFIG gives a warning once; manualSync waits for sync()", async () => {
  const net = new MemoryRedisNetwork({ manualSync: true });
  const a = net.addRedis(A.host, A.port);
  const b = net.addRedis(B.host, B.port, { rejectConfig: true });
  a.write("k", "v");
  const ctl = net.controller({ ...B, password: null, announceIp: B.host });
  const first = await ctl.enforce({ kind: "follow", ...A, expectRunId: a.runId });
  assert.ok(first.ok);
  assert.equal(first.warnings.length, 1);
  assert.match(first.warnings[0] ?? "", /rejected/);
  assert.equal((await ctl.observe()).linkUp, false);
  net.sync();
  assert.equal((await ctl.observe()).linkUp, true);
  assert.equal(b.data.get("k"), "v");
  const second = await ctl.enforce({ kind: "follow", ...A, expectRunId: a.runId });
  assert.deepEqual(second, { ok: true, commands: [], warnings: [] });
  assert.deepEqual(ctl.results, [first, second]);
  assert.deepEqual(b.commandLog, [
    `CONFIG SET replica-announce-ip ${B.host}`,
    `REPLICAOF ${A.host} ${A.port}`,
  ]);
});

Deno.test("memory: a replication cycle never links up; bad input is refused", () => {
  const net = new MemoryRedisNetwork();
  const a = net.addRedis(A.host, A.port);
  const b = net.addRedis(B.host, B.port);
  a.execute(["REPLICAOF", B.host, String(B.port)]);
  b.execute(["REPLICAOF", A.host, String(A.port)]);
  assert.equal(a.linkUp, false);
  assert.equal(b.linkUp, false);
  assert.throws(() => net.addRedis(A.host, A.port), /already exists/);
  assert.throws(() => a.start(), /already running/);
  const bad = a.execute(["REPLICAOF", "h", "nope"]);
  assert.ok(!bad.ok && bad.kind === "rejected");
  assert.ok(MEMORY_NETWORK_MAX_REDIS > 0);
});
