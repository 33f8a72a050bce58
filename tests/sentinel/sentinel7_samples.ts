/**
 * Answers of a real redis-sentinel 7.0.15 (Debian's redis-server `--sentinel`, monitoring a
 * master with one replica, a second sentinel configured), captured byte for byte with a raw
 * socket on 2026-11-30. The endpoint's answers are compared with these: exactly where the value
 * is not a timer or an id, by field names and order where it is.
 *
 * @example
 * ```ts
 * import { RESP2 } from "./sentinel7_samples.ts";
 * console.log(RESP2.ping); // "+PONG\r\n"
 * ```
 */

/** RESP2 answers that hold no timer. */
export const RESP2 = {
  ping: "+PONG\r\n",
  pingHello: "$5\r\nhello\r\n",
  role: "*2\r\n$8\r\nsentinel\r\n*1\r\n$8\r\nmymaster\r\n",
  masterAddr: "*2\r\n$11\r\n127.0.16.50\r\n$5\r\n16379\r\n",
  unknownMasterAddr: "*-1\r\n",
  unknownMaster: "-ERR No such master with that name\r\n",
  unknownCommand: "-ERR unknown command 'FOO', with args beginning with: 'bar' \r\n",
  unknownCommandNoArgs: "-ERR unknown command 'QUIT2', with args beginning with: \r\n",
  unknownSubcommand: "-ERR unknown subcommand 'foo'. Try SENTINEL HELP.\r\n",
  sentinelArity: "-ERR wrong number of arguments for 'sentinel' command\r\n",
  getMasterArity:
    "-ERR wrong number of arguments for 'sentinel|get-master-addr-by-name' command\r\n",
  pingArity: "-ERR wrong number of arguments for 'ping' command\r\n",
  setnameOk: "+OK\r\n",
  setnameArity: "-ERR wrong number of arguments for 'client|setname' command\r\n",
  getname: "$3\r\nabc\r\n",
  authNotConfigured: "-ERR AUTH <password> called without any password configured for the " +
    "default user. Are you sure your configuration is correct?\r\n",
  wrongpass: "-WRONGPASS invalid username-password pair or user is disabled.\r\n",
  noproto: "-NOPROTO unsupported protocol version\r\n",
  subscribeTwo: "*3\r\n$9\r\nsubscribe\r\n$14\r\n+switch-master\r\n:1\r\n" +
    "*3\r\n$9\r\nsubscribe\r\n$6\r\n+sdown\r\n:2\r\n",
  psubscribeThird: "*3\r\n$10\r\npsubscribe\r\n$1\r\n*\r\n:3\r\n",
  subscribedPing: "*2\r\n$4\r\npong\r\n$0\r\n\r\n",
  subscribedPingX: "*2\r\n$4\r\npong\r\n$1\r\nx\r\n",
  unsubscribeAll: "*3\r\n$11\r\nunsubscribe\r\n$6\r\n+sdown\r\n:2\r\n" +
    "*3\r\n$11\r\nunsubscribe\r\n$14\r\n+switch-master\r\n:1\r\n",
  punsubscribeAll: "*3\r\n$12\r\npunsubscribe\r\n$1\r\n*\r\n:0\r\n",
  unsubscribeNone: "*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n",
  subscribedRole: "-ERR Can't execute 'role': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / " +
    "QUIT / RESET are allowed in this context\r\n",
  subscribedMyid: "-ERR Can't execute 'sentinel|myid': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE " +
    "/ PING / QUIT / RESET are allowed in this context\r\n",
};

/** RESP3 answers (after `HELLO 3`). */
export const RESP3 = {
  unknownMasterAddr: "_\r\n",
  subscribe: ">3\r\n$9\r\nsubscribe\r\n$14\r\n+switch-master\r\n:1\r\n",
  /** `HELLO 3` on connection id 5 (the version is the one the endpoint imitates). */
  hello: (version: string, id: number) =>
    `%6\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$${version.length}\r\n${version}` +
    `\r\n$5\r\nproto\r\n:3\r\n$2\r\nid\r\n:${id}\r\n$4\r\nmode\r\n$8\r\nsentinel\r\n` +
    "$7\r\nmodules\r\n*0\r\n",
};

/** `SENTINEL master mymaster`: the field names in order (a master that is up). */
export const MASTER_FIELDS = [
  "name",
  "ip",
  "port",
  "runid",
  "flags",
  "link-pending-commands",
  "link-refcount",
  "last-ping-sent",
  "last-ok-ping-reply",
  "last-ping-reply",
  "down-after-milliseconds",
  "info-refresh",
  "role-reported",
  "role-reported-time",
  "config-epoch",
  "num-slaves",
  "num-other-sentinels",
  "quorum",
  "failover-timeout",
  "parallel-syncs",
];

/** `SENTINEL replicas mymaster`: one replica's field names in order (one that is down). */
export const REPLICA_FIELDS_DOWN = [
  "name",
  "ip",
  "port",
  "runid",
  "flags",
  "link-pending-commands",
  "link-refcount",
  "last-ping-sent",
  "last-ok-ping-reply",
  "last-ping-reply",
  "s-down-time",
  "down-after-milliseconds",
  "info-refresh",
  "role-reported",
  "role-reported-time",
  "master-link-down-time",
  "master-link-status",
  "master-host",
  "master-port",
  "slave-priority",
  "slave-repl-offset",
  "replica-announced",
];

/** Its flags. */
export const REPLICA_FLAGS_DOWN = "s_down,slave,disconnected";

/** `SENTINEL sentinels mymaster`: one sentinel's field names in order (one that is down). */
export const SENTINEL_FIELDS_DOWN = [
  "name",
  "ip",
  "port",
  "runid",
  "flags",
  "link-pending-commands",
  "link-refcount",
  "last-ping-sent",
  "last-ok-ping-reply",
  "last-ping-reply",
  "s-down-time",
  "down-after-milliseconds",
  "last-hello-message",
  "voted-leader",
  "voted-leader-epoch",
];

/** Its flags. */
export const SENTINEL_FLAGS_DOWN = "s_down,sentinel,disconnected";

/** The INFO sentinel section's master line. */
export const INFO_MASTER_LINE =
  "master0:name=mymaster,status=ok,address=127.0.16.50:16379,slaves=1,sentinels=2";
