/**
 * The Sentinel endpoint's commands against a real redis-sentinel 7.0's answers
 * (sentinel7_samples.ts), byte for byte where they hold no timer, plus what redis-hive adds:
 * null while there is no master, the refused commands, the password.
 */

import assert from "node:assert/strict";
import { type Reply, replyText, type RespProtocol } from "../../lib/sentinel/resp.ts";
import {
  handleCommand,
  newSession,
  SENTINEL_COMPAT_VERSION,
  type SentinelContext,
  type Session,
} from "../../lib/sentinel/sentinel_commands.ts";
import type { SentinelMaster, SentinelView } from "../../lib/sentinel/sentinel_view.ts";
import {
  INFO_MASTER_LINE,
  MASTER_FIELDS,
  REPLICA_FIELDS_DOWN,
  REPLICA_FLAGS_DOWN,
  RESP2,
  RESP3,
  SENTINEL_FIELDS_DOWN,
  SENTINEL_FLAGS_DOWN,
} from "./sentinel7_samples.ts";

const MASTER: SentinelMaster = { ip: "127.0.16.50", port: 16379, runId: "f".repeat(40) };

/** The captured sentinel's world: a master, one replica down, one other sentinel down. */
function view(master: SentinelMaster | null = MASTER): SentinelView {
  return {
    self: "127.0.16.50",
    master,
    replicas: [{
      ip: "127.0.0.1",
      port: 16379,
      runId: "",
      up: false,
      linkUp: false,
      offset: 0,
    }],
    sentinels: [{ ip: "127.0.0.1", port: 26379, live: false }],
  };
}

function context(
  opts: { master?: SentinelMaster | null; password?: string | null; lastKnown?: SentinelMaster } =
    {},
): SentinelContext {
  const v = view(opts.master === undefined ? MASTER : opts.master);
  return {
    settings: {
      masterName: "mymaster",
      password: opts.password ?? null,
      myId: "a".repeat(40),
      idOf: (ip) => `id-${ip}`,
      downAfterMs: 1000,
      maxSubscriptionsPerConnection: 4,
      port: 26379,
    },
    view: () => v,
    lastKnownMaster: () => opts.lastKnown ?? null,
    epoch: () => 3,
    connectedClients: () => 1,
    uptimeMs: () => 5000,
  };
}

/** Runs commands on one session; returns the RESP text of each command's replies. */
function run(
  commands: string[][],
  ctx = context(),
  session: Session = newSession(5),
): string[] {
  return commands.map((args) => {
    const before: RespProtocol = session.protocol;
    const result = handleCommand(args, session, ctx);
    // HELLO answers in the protocol it selects; everything else in the session's.
    const protocol = args[0]?.toLowerCase() === "hello" ? session.protocol : before;
    return result.replies.map((r) => replyText(r, protocol)).join("");
  });
}

/** The field names and values of a flat RESP2 map reply. */
function fields(r: Reply): Map<string, string> {
  assert.equal(r.type, "map");
  if (r.type !== "map") throw new Error("not a map");
  return new Map(r.entries.map(([k, v]) => [text(k), text(v)]));
}

function text(r: Reply): string {
  if (r.type !== "bulk") throw new Error(`not a bulk string: ${r.type}`);
  return r.text;
}

Deno.test("sentinel commands: the answers that hold no timer are byte for byte Sentinel 7's", () => {
  const [ping, pingHello, role, addr, addrUnknown, masterUnknown, unknown, unknownNoArgs] = run([
    ["PING"],
    ["PING", "hello"],
    ["ROLE"],
    ["SENTINEL", "get-master-addr-by-name", "mymaster"],
    ["SENTINEL", "get-master-addr-by-name", "nope"],
    ["SENTINEL", "master", "nope"],
    ["FOO", "bar"],
    ["QUIT2"],
  ]);
  assert.equal(ping, RESP2.ping);
  assert.equal(pingHello, RESP2.pingHello);
  assert.equal(role, RESP2.role);
  assert.equal(addr, RESP2.masterAddr);
  assert.equal(addrUnknown, RESP2.unknownMasterAddr);
  assert.equal(masterUnknown, RESP2.unknownMaster);
  assert.equal(unknown, RESP2.unknownCommand);
  assert.equal(unknownNoArgs, RESP2.unknownCommandNoArgs);
  assert.deepEqual(
    run([
      ["SENTINEL", "foo"],
      ["SENTINEL"],
      ["SENTINEL", "get-master-addr-by-name"],
      ["PING", "a", "b"],
      ["CLIENT", "SETNAME", "abc"],
      ["CLIENT", "SETNAME"],
      ["CLIENT", "GETNAME"],
      ["AUTH", "pw"],
      ["AUTH", "u", "pw"],
      ["HELLO", "4"],
      ["SENTINEL", "replicas", "nope"],
      ["SENTINEL", "slaves", "nope"],
      ["SENTINEL", "sentinels", "nope"],
    ]),
    [
      RESP2.unknownSubcommand,
      RESP2.sentinelArity,
      RESP2.getMasterArity,
      RESP2.pingArity,
      RESP2.setnameOk,
      RESP2.setnameArity,
      RESP2.getname,
      RESP2.authNotConfigured,
      RESP2.wrongpass,
      RESP2.noproto,
      RESP2.unknownMaster,
      RESP2.unknownMaster,
      RESP2.unknownMaster,
    ],
  );
});

Deno.test("sentinel commands: pub/sub confirmations and the subscribed context, RESP2", () => {
  assert.deepEqual(
    run([
      ["SUBSCRIBE", "+switch-master", "+sdown"],
      ["PSUBSCRIBE", "*"],
      ["PING"],
      ["PING", "x"],
      ["ROLE"],
      ["SENTINEL", "myid"],
      ["UNSUBSCRIBE"],
      ["PUNSUBSCRIBE"],
      ["UNSUBSCRIBE"],
      ["PING"],
    ]),
    [
      RESP2.subscribeTwo,
      RESP2.psubscribeThird,
      RESP2.subscribedPing,
      RESP2.subscribedPingX,
      RESP2.subscribedRole,
      RESP2.subscribedMyid,
      RESP2.unsubscribeAll,
      RESP2.punsubscribeAll,
      RESP2.unsubscribeNone,
      RESP2.ping,
    ],
  );
});

Deno.test("sentinel commands: RESP3 after HELLO 3: the map, null, pushes, any command while subscribed", () => {
  const [hello, addr, sub, role] = run([
    ["HELLO", "3"],
    ["SENTINEL", "get-master-addr-by-name", "nope"],
    ["SUBSCRIBE", "+switch-master"],
    ["ROLE"],
  ]);
  assert.equal(hello, RESP3.hello(SENTINEL_COMPAT_VERSION, 5));
  assert.equal(addr, RESP3.unknownMasterAddr);
  assert.equal(sub, RESP3.subscribe);
  assert.equal(role, RESP2.role, "ROLE while subscribed is allowed in RESP3, same bytes");
  const [masterMap] = run([["HELLO", "3"], ["SENTINEL", "master", "mymaster"]]).slice(1);
  assert.ok(masterMap!.startsWith("%20\r\n$4\r\nname\r\n"), masterMap);
  assert.equal(run([["HELLO", "2", "SETNAME", "x"]])[0]!.slice(0, 4), "*12\r");
});

Deno.test("sentinel commands: SENTINEL master, replicas, sentinels have Sentinel's fields in its order", () => {
  const ctx = context();
  const session = newSession(1);
  const master = handleCommand(["SENTINEL", "master", "mymaster"], session, ctx).replies[0]!;
  const m = fields(master);
  assert.deepEqual([...m.keys()], MASTER_FIELDS);
  assert.equal(m.get("ip"), MASTER.ip);
  assert.equal(m.get("port"), String(MASTER.port));
  assert.equal(m.get("flags"), "master");
  assert.equal(m.get("num-slaves"), "1");
  assert.equal(m.get("num-other-sentinels"), "1");
  assert.equal(m.get("config-epoch"), "3");
  const masters = handleCommand(["SENTINEL", "masters"], session, ctx).replies[0]!;
  assert.equal(masters.type, "array");
  assert.deepEqual(masters.type === "array" ? masters.items : [], [master]);

  for (const sub of ["replicas", "slaves"]) {
    const r = handleCommand(["SENTINEL", sub, "mymaster"], session, ctx).replies[0]!;
    assert.equal(r.type, "array");
    if (r.type !== "array") continue;
    const replica = fields(r.items[0]!);
    assert.deepEqual([...replica.keys()], REPLICA_FIELDS_DOWN);
    assert.equal(replica.get("flags"), REPLICA_FLAGS_DOWN);
    assert.equal(replica.get("name"), "127.0.0.1:16379");
  }
  const s = handleCommand(["SENTINEL", "sentinels", "mymaster"], session, ctx).replies[0]!;
  assert.equal(s.type, "array");
  if (s.type === "array") {
    const peer = fields(s.items[0]!);
    assert.deepEqual([...peer.keys()], SENTINEL_FIELDS_DOWN);
    assert.equal(peer.get("flags"), SENTINEL_FLAGS_DOWN);
    assert.equal(peer.get("name"), "id-127.0.0.1");
    assert.equal(peer.get("runid"), "id-127.0.0.1");
  }
  const info = run([["INFO", "sentinel"]], ctx)[0]!;
  assert.ok(info.includes(`${INFO_MASTER_LINE}\r\n`), info);
  assert.ok(info.startsWith("$") && info.includes("# Sentinel\r\nsentinel_masters:1\r\n"));
  assert.equal(run([["SENTINEL", "myid"]], ctx)[0], `$40\r\n${"a".repeat(40)}\r\n`);
});

Deno.test("sentinel commands: a replica that is up and linked: flags slave, link ok, its master", () => {
  const v: SentinelView = {
    self: "10.0.0.2",
    master: { ip: "10.0.0.1", port: 6379, runId: "r1" },
    replicas: [{ ip: "10.0.0.2", port: 6379, runId: "r2", up: true, linkUp: true, offset: 42 }],
    sentinels: [{ ip: "10.0.0.1", port: 26379, live: true }],
  };
  const ctx = { ...context(), view: () => v };
  const r = handleCommand(["SENTINEL", "replicas", "mymaster"], newSession(1), ctx).replies[0]!;
  if (r.type !== "array") throw new Error("not an array");
  const f = fields(r.items[0]!);
  assert.equal(f.get("flags"), "slave");
  assert.equal(f.has("s-down-time"), false);
  assert.equal(f.get("master-link-status"), "ok");
  assert.equal(f.get("master-host"), "10.0.0.1");
  assert.equal(f.get("master-port"), "6379");
  assert.equal(f.get("slave-repl-offset"), "42");
  const s = handleCommand(["SENTINEL", "sentinels", "mymaster"], newSession(1), ctx).replies[0]!;
  if (s.type !== "array") throw new Error("not an array");
  assert.equal(fields(s.items[0]!).get("flags"), "sentinel");
});

Deno.test("sentinel commands: no confirmed master: a null address; SENTINEL master says it is down", () => {
  const last = { ip: "10.0.0.9", port: 6379, runId: "old" };
  const ctx = context({ master: null, lastKnown: last });
  assert.deepEqual(
    run([["SENTINEL", "get-master-addr-by-name", "mymaster"], ["HELLO", "3"], [
      "SENTINEL",
      "get-master-addr-by-name",
      "mymaster",
    ]], ctx).filter((_, i) => i !== 1),
    ["*-1\r\n", "_\r\n"],
  );
  const m = fields(
    handleCommand(["SENTINEL", "master", "mymaster"], newSession(1), ctx).replies[0]!,
  );
  assert.equal(m.get("flags"), "s_down,o_down,master");
  assert.equal(m.get("ip"), "10.0.0.9", "the last known address, as Sentinel shows it");
  assert.ok(m.has("s-down-time") && m.has("o-down-time"));
  assert.ok(run([["INFO"]], ctx)[0]!.includes("status=odown,address=10.0.0.9:6379"));
});

Deno.test("sentinel commands: SET, FAILOVER, MONITOR, REMOVE and the like are refused, saying why", () => {
  const refused = run([
    ["SENTINEL", "SET", "mymaster", "quorum", "1"],
    ["SENTINEL", "failover", "mymaster"],
    ["SENTINEL", "monitor", "x", "127.0.0.1", "6379", "2"],
    ["SENTINEL", "remove", "mymaster"],
    ["SENTINEL", "reset", "*"],
    ["SENTINEL", "config", "set", "announce-ip", "1.2.3.4"],
  ]);
  for (const line of refused) {
    assert.match(
      line,
      /^-ERR SENTINEL [A-Z-]+ is not supported by redis-hive: .+docs\/sentinel\.md\)\r\n$/,
    );
  }
  assert.match(refused[1]!, /elects the master itself/);
});

Deno.test("sentinel commands: with a password, nothing but AUTH/HELLO AUTH/QUIT before it", () => {
  const ctx = context({ password: "s3cret" });
  const session = newSession(9);
  assert.deepEqual(
    run(
      [
        ["PING"],
        ["SENTINEL", "get-master-addr-by-name", "mymaster"],
        ["HELLO", "3"],
        ["AUTH", "wrong"],
        ["AUTH", "other", "s3cret"],
        ["HELLO", "3", "AUTH", "default", "nope"],
      ],
      ctx,
      session,
    ),
    [
      "-NOAUTH Authentication required.\r\n",
      "-NOAUTH Authentication required.\r\n",
      "-NOAUTH HELLO must be called with the client already authenticated, otherwise the " +
      "HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and " +
      "select the RESP protocol version at the same time\r\n",
      RESP2.wrongpass,
      RESP2.wrongpass,
      RESP2.wrongpass,
    ],
  );
  assert.equal(session.authenticated, false);
  assert.equal(run([["AUTH", "s3cret"]], ctx, session)[0], "+OK\r\n");
  assert.equal(run([["PING"]], ctx, session)[0], "+PONG\r\n");
  const other = newSession(10);
  assert.ok(run([["HELLO", "3", "AUTH", "default", "s3cret"]], ctx, other)[0]!.startsWith("%6"));
  assert.equal(other.authenticated, true);
  assert.equal(other.protocol, 3);
});

Deno.test("sentinel commands: CLIENT SETINFO, QUIT, the subscription limit", () => {
  assert.deepEqual(
    run([
      ["CLIENT", "SETINFO", "LIB-NAME", "ioredis"],
      ["CLIENT", "SETINFO", "lib-ver", "6.0.0"],
      ["CLIENT", "SETINFO", "other", "x"],
      ["CLIENT", "SETNAME", "has space"],
      ["CLIENT", "KILL", "x"],
    ]),
    [
      "+OK\r\n",
      "+OK\r\n",
      "-ERR Unrecognized option 'other'\r\n",
      "-ERR Client names cannot contain spaces, newlines or special characters.\r\n",
      "-ERR unknown subcommand 'KILL'. Try CLIENT HELP.\r\n",
    ],
  );
  const quit = handleCommand(["QUIT"], newSession(1), context());
  assert.equal(quit.close, true);
  const session = newSession(1);
  const out = run([["SUBSCRIBE", "a", "b", "c", "d", "e"]], context(), session)[0]!;
  assert.ok(out.endsWith("-ERR too many subscriptions on this connection (at most 4)\r\n"), out);
  assert.equal(session.channels.size, 4);
});
