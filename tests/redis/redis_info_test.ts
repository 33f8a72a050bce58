import assert from "node:assert/strict";
import { MAX_INFO_TEXT_CHARS, observationFromInfo, parseInfo } from "../../lib/redis/redis_info.ts";
import {
  MASTER_PERSISTENCE,
  MASTER_REPLICATION,
  MASTER_SERVER,
  PARKED_REPLICATION,
  REPLICA_PERSISTENCE,
  REPLICA_REPLICATION,
  REPLICA_SERVER,
} from "./redis7_info_samples.ts";

Deno.test("parseInfo reads key:value lines of real redis 7 INFO text, CRLF and all", () => {
  const server = parseInfo(MASTER_SERVER);
  assert.equal(server.get("redis_version"), "7.0.15");
  assert.equal(server.get("run_id"), "28c2840b9a9131b3a02ceb9398f2ca9d5e361bc0");
  assert.equal(server.get("tcp_port"), "16379");
  assert.equal(server.has("# Server"), false);
  for (const [key, value] of server) {
    assert.ok(!key.includes("\r") && !value.includes("\r"), `CR left in ${key}`);
  }
  // Values keep their own colons (only the first one splits).
  const slave0 = parseInfo(MASTER_REPLICATION).get("slave0");
  assert.equal(slave0, "ip=127.0.2.32,port=16379,state=online,offset=50,lag=1");
  assert.equal(parseInfo("a:b:c\n").get("a"), "b:c");
});

Deno.test("parseInfo skips headers and blank lines and accepts LF-only text", () => {
  const info = parseInfo("# Replication\n\nrole:master\n\n# Other\nx:\n");
  assert.deepEqual([...info], [["role", "master"], ["x", ""]]);
  assert.equal(parseInfo("").size, 0);
});

Deno.test("parseInfo rejects lines without a key and oversized text with a clear error", () => {
  assert.throws(
    () => parseInfo("role:master\r\ngarbage\r\n"),
    /INFO line without "key:": "garbage"/,
  );
  assert.throws(() => parseInfo(":value\n"), /INFO line without/);
  assert.throws(() => parseInfo("a".repeat(MAX_INFO_TEXT_CHARS + 1)), /INFO text too long/);
});

Deno.test("observationFromInfo: a master", () => {
  const obs = observationFromInfo(
    parseInfo(MASTER_SERVER),
    parseInfo(MASTER_REPLICATION),
    parseInfo(MASTER_PERSISTENCE),
  );
  assert.deepEqual(obs, {
    up: true,
    runId: "28c2840b9a9131b3a02ceb9398f2ca9d5e361bc0",
    role: "master",
    masterHost: null,
    masterPort: null,
    linkUp: false,
    loading: false,
    replId: "97e45a2d9910b9308d03ff4c5059baab1f4d7354",
    offset: 50,
  });
});

Deno.test("observationFromInfo: a replica with its link up (role:slave maps to replica)", () => {
  const obs = observationFromInfo(
    parseInfo(REPLICA_SERVER),
    parseInfo(REPLICA_REPLICATION),
    parseInfo(REPLICA_PERSISTENCE),
  );
  assert.deepEqual(obs, {
    up: true,
    runId: "bd165380403729bfe3e84e350a760c0c0662f9e9",
    role: "replica",
    masterHost: "127.0.2.31",
    masterPort: 16379,
    linkUp: true,
    loading: false,
    replId: "97e45a2d9910b9308d03ff4c5059baab1f4d7354",
    offset: 50,
  });
});

Deno.test("observationFromInfo: a parked replica has its link down", () => {
  const obs = observationFromInfo(parseInfo(PARKED_REPLICATION));
  assert.equal(obs.role, "replica");
  assert.equal(obs.masterHost, "127.0.0.1");
  assert.equal(obs.masterPort, 1);
  assert.equal(obs.linkUp, false);
  assert.equal(obs.runId, null); // no server section given
});

Deno.test("observationFromInfo: loading and a sync in progress both count as loading", () => {
  const persistence = MASTER_PERSISTENCE.replace("loading:0", "loading:1");
  assert.notEqual(persistence, MASTER_PERSISTENCE);
  assert.equal(observationFromInfo(parseInfo(persistence)).loading, true);
  const syncing = REPLICA_REPLICATION.replace(
    "master_sync_in_progress:0",
    "master_sync_in_progress:1",
  );
  assert.notEqual(syncing, REPLICA_REPLICATION);
  assert.equal(observationFromInfo(parseInfo(syncing)).loading, true);
  assert.equal(observationFromInfo(parseInfo(REPLICA_REPLICATION)).loading, false);
});

Deno.test("observationFromInfo: unknown roles and malformed numbers degrade, not throw", () => {
  const obs = observationFromInfo(
    parseInfo("role:sentinel\nmaster_host:h\nmaster_port:x\nmaster_repl_offset:nope\n"),
  );
  assert.equal(obs.role, "unknown");
  assert.equal(obs.masterHost, null);
  assert.equal(obs.masterPort, null);
  assert.equal(obs.offset, 0);
  const badPort = observationFromInfo(parseInfo("role:slave\nmaster_host:h\nmaster_port:x\n"));
  assert.equal(badPort.masterHost, "h");
  assert.equal(badPort.masterPort, null);
});
