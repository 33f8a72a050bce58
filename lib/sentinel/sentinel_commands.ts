/**
 * The Sentinel endpoint's commands: a pure function from one request and the connection's
 * {@link Session} to the replies, in Sentinel's formats (checked against redis-sentinel 7.0's
 * answers, byte for byte where the value is not a timer).
 *
 * Served: `PING`, `AUTH`, `HELLO [2|3] [AUTH user pass] [SETNAME name]`, `CLIENT SETNAME |
 * GETNAME | ID | SETINFO`, `ROLE`, `INFO [section]`, `QUIT`, `SUBSCRIBE`, `PSUBSCRIBE`,
 * `UNSUBSCRIBE`, `PUNSUBSCRIBE`, and `SENTINEL get-master-addr-by-name | master | masters |
 * replicas | slaves | sentinels | myid | ckquorum | info-cache | pending-scripts | help`.
 * Refused with a clear error: `SENTINEL set | failover | monitor | remove | reset |
 * flushconfig | config | simulate-failure | is-master-down-by-addr | debug` (the hive elects the
 * master and takes its settings from its own flags). Anything else gets Sentinel's
 * `unknown command` error.
 *
 * @example
 * ```ts
 * import { handleCommand, newSession, type SentinelContext } from "./sentinel_commands.ts";
 * declare const ctx: SentinelContext; // the server's, over the hive's view
 * const session = newSession(1);
 * const out = handleCommand(["SENTINEL", "get-master-addr-by-name", "mymaster"], session, ctx);
 * // out.replies[0] is the address pair or a null array
 * ```
 */

import { type Reply, reply, type RespProtocol } from "./resp.ts";
import type { SentinelMaster, SentinelView } from "./sentinel_view.ts";

/** The redis version the endpoint reports (HELLO, INFO): the Sentinel release it imitates. */
export const SENTINEL_COMPAT_VERSION = "7.2.0";
/** Longest client name accepted by `CLIENT SETNAME` / `HELLO ... SETNAME`. */
export const MAX_CLIENT_NAME_CHARS = 256;

/** One connection's state. */
export interface Session {
  /** A number unique to the connection (`CLIENT ID`, `HELLO`'s `id`). */
  readonly id: number;
  protocol: RespProtocol;
  authenticated: boolean;
  name: string | null;
  channels: Set<string>;
  patterns: Set<string>;
}

/** A new connection's session (RESP2, not authenticated, no subscription). */
export function newSession(id: number): Session {
  return {
    id,
    protocol: 2,
    authenticated: false,
    name: null,
    channels: new Set(),
    patterns: new Set(),
  };
}

/** The endpoint's fixed settings. */
export interface SentinelSettings {
  /** `--master-name`. */
  masterName: string;
  /** The password clients must give (`--sentinel-password-file`), or null for none. */
  password: string | null;
  /** This endpoint's 40-hex-digit id (`SENTINEL myid`). */
  myId: string;
  /** The other endpoints' ids, by address. */
  idOf: (ip: string) => string;
  /** Reported as `down-after-milliseconds`: the hive's `--failure-ms`. */
  downAfterMs: number;
  /** Most channels plus patterns one connection may subscribe to. */
  maxSubscriptionsPerConnection: number;
  /** The port the endpoint listens on (INFO's `tcp_port`). */
  port: number;
}

/** What a command may read besides its session. */
export interface SentinelContext {
  settings: SentinelSettings;
  /** The current view (computed on demand: most commands need none). */
  view(): SentinelView;
  /** The last master announced, kept while none is (flags then say it is down). */
  lastKnownMaster(): SentinelMaster | null;
  /** How many times the announced master changed (Sentinel's `config-epoch`). */
  epoch(): number;
  /** Connections open now (INFO clients). */
  connectedClients(): number;
  /** Milliseconds since the endpoint started (INFO server). */
  uptimeMs(): number;
}

/** The outcome of one command. */
export interface CommandResult {
  replies: Reply[];
  /** Close the connection once the replies are written (`QUIT`). */
  close: boolean;
}

const AUTH_NOT_CONFIGURED = "ERR AUTH <password> called without any password configured for " +
  "the default user. Are you sure your configuration is correct?";
const WRONGPASS = "WRONGPASS invalid username-password pair or user is disabled.";
const NOAUTH = "NOAUTH Authentication required.";
const NOAUTH_HELLO = "NOAUTH HELLO must be called with the client already authenticated, " +
  "otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the " +
  "client and select the RESP protocol version at the same time";
const NO_SUCH_MASTER = "ERR No such master with that name";
const SUBSCRIBED_ONLY =
  "only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context";

/** Commands that run before authentication. */
const NO_AUTH_COMMANDS = new Set(["auth", "hello", "quit"]);
/** Commands a RESP2 connection may send while subscribed. */
const SUBSCRIBED_COMMANDS = new Set([
  "subscribe",
  "psubscribe",
  "unsubscribe",
  "punsubscribe",
  "ping",
  "quit",
]);

/** Why each refused SENTINEL subcommand is refused. */
const REFUSED: Record<string, string> = {
  set: "the hive's settings come from its own flags",
  failover: "the hive elects the master itself (no manual failover)",
  monitor: "the hive serves exactly one master, named by --master-name",
  remove: "the hive serves exactly one master, named by --master-name",
  reset: "the hive keeps no Sentinel state to reset",
  flushconfig: "the hive keeps no Sentinel configuration file",
  config: "the hive's settings come from its own flags",
  "simulate-failure": "the hive has no failure simulation",
  "is-master-down-by-addr": "the hive runs no Sentinel quorum",
  debug: "the hive's timers come from its own flags",
};

/**
 * Answers one request (`args[0]` is the command name, any case).
 *
 * @example
 * ```ts
 * import { handleCommand, newSession, type SentinelContext } from "./sentinel_commands.ts";
 * declare const ctx: SentinelContext; // the server's, over the hive's view
 * const s = newSession(7);
 * handleCommand(["HELLO", "3"], s, ctx).replies; // the HELLO map; s.protocol is now 3
 * ```
 */
export function handleCommand(
  args: readonly string[],
  session: Session,
  ctx: SentinelContext,
): CommandResult {
  const out = (...replies: Reply[]): CommandResult => ({ replies, close: false });
  const name = (args[0] ?? "").toLowerCase();
  if (ctx.settings.password !== null && !session.authenticated && !NO_AUTH_COMMANDS.has(name)) {
    return out(reply.error(NOAUTH));
  }
  const subscribed = session.channels.size + session.patterns.size > 0;
  if (subscribed && session.protocol === 2 && !SUBSCRIBED_COMMANDS.has(name)) {
    const full = name === "sentinel" || name === "client"
      ? `${name}|${(args[1] ?? "").toLowerCase()}`
      : name;
    return out(reply.error(`ERR Can't execute '${full}': ${SUBSCRIBED_ONLY}`));
  }
  switch (name) {
    case "ping": {
      if (args.length > 2) return out(arity("ping"));
      if (subscribed && session.protocol === 2) {
        return out(reply.array([reply.bulk("pong"), reply.bulk(args[1] ?? "")]));
      }
      return out(args.length === 2 ? reply.bulk(args[1]!) : reply.simple("PONG"));
    }
    case "quit":
      return { replies: [reply.simple("OK")], close: true };
    case "auth":
      return out(auth(args.slice(1), session, ctx.settings));
    case "hello":
      return out(hello(args.slice(1), session, ctx.settings));
    case "client":
      return out(client(args, session));
    case "role":
      if (args.length !== 1) return out(arity("role"));
      return out(
        reply.array([reply.bulk("sentinel"), reply.array([reply.bulk(ctx.settings.masterName)])]),
      );
    case "info":
      return out(reply.verbatim(info(args.slice(1), ctx)));
    case "subscribe":
    case "psubscribe":
      return { replies: subscribe(name, args, session, ctx.settings), close: false };
    case "unsubscribe":
    case "punsubscribe":
      return { replies: unsubscribe(name, args.slice(1), session), close: false };
    case "sentinel":
      return out(sentinel(args, ctx));
    default:
      return out(unknownCommand(args));
  }
}

function arity(command: string): Reply {
  return reply.error(`ERR wrong number of arguments for '${command}' command`);
}

/** Redis's `unknown command` error: the name and the first arguments, each quoted. */
export function unknownCommand(args: readonly string[]): Reply {
  let shown = "";
  for (const a of args.slice(1)) {
    if (shown.length >= 128) break;
    shown += `'${a.slice(0, 128 - shown.length)}' `;
  }
  const command = (args[0] ?? "").slice(0, 128);
  return reply.error(`ERR unknown command '${command}', with args beginning with: ${shown}`);
}

function passwordMatches(given: string, expected: string): boolean {
  const a = new TextEncoder().encode(given);
  const b = new TextEncoder().encode(expected);
  // Compares every byte whatever the first difference, so timing does not tell the prefix.
  let diff = a.length ^ b.length;
  for (let i = 0; i < Math.max(a.length, b.length); i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return diff === 0;
}

/** Checks credentials; null when accepted, else the error. */
function checkCredentials(
  user: string | null,
  password: string,
  settings: SentinelSettings,
): Reply | null {
  if (settings.password === null) {
    if (user === null) return reply.error(AUTH_NOT_CONFIGURED);
    return user === "default" ? null : reply.error(WRONGPASS);
  }
  if ((user === null || user === "default") && passwordMatches(password, settings.password)) {
    return null;
  }
  return reply.error(WRONGPASS);
}

function auth(params: readonly string[], session: Session, settings: SentinelSettings): Reply {
  if (params.length !== 1 && params.length !== 2) return arity("auth");
  const user = params.length === 2 ? params[0]! : null;
  const error = checkCredentials(user, params[params.length - 1]!, settings);
  if (error !== null) return error;
  session.authenticated = true;
  return reply.simple("OK");
}

function validClientName(name: string): boolean {
  return name.length <= MAX_CLIENT_NAME_CHARS && /^[\x21-\x7e]*$/.test(name);
}

const BAD_CLIENT_NAME = "ERR Client names cannot contain spaces, newlines or special characters.";

function hello(params: readonly string[], session: Session, settings: SentinelSettings): Reply {
  let protocol = session.protocol;
  let i = 0;
  if (params.length > 0) {
    const v = params[0]!;
    if (!/^-?[0-9]{1,10}$/.test(v)) {
      return reply.error("ERR Protocol version is not an integer or out of range");
    }
    const n = Number(v);
    if (n !== 2 && n !== 3) return reply.error("NOPROTO unsupported protocol version");
    protocol = n;
    i = 1;
  }
  let credentials: { user: string; password: string } | null = null;
  let setName: string | null = null;
  for (; i < params.length; i++) {
    const option = params[i]!.toLowerCase();
    const left = params.length - i - 1;
    if (option === "auth" && left >= 2) {
      credentials = { user: params[i + 1]!, password: params[i + 2]! };
      i += 2;
    } else if (option === "setname" && left >= 1) {
      setName = params[i + 1]!;
      i += 1;
    } else {
      return reply.error(`ERR Syntax error in HELLO option '${params[i]}'`);
    }
  }
  if (credentials !== null) {
    const error = checkCredentials(credentials.user, credentials.password, settings);
    if (error !== null) return error;
    session.authenticated = true;
  } else if (settings.password !== null && !session.authenticated) {
    return reply.error(NOAUTH_HELLO);
  }
  if (setName !== null) {
    if (!validClientName(setName)) return reply.error(BAD_CLIENT_NAME);
    session.name = setName === "" ? null : setName;
  }
  session.protocol = protocol;
  return reply.map([
    [reply.bulk("server"), reply.bulk("redis")],
    [reply.bulk("version"), reply.bulk(SENTINEL_COMPAT_VERSION)],
    [reply.bulk("proto"), reply.integer(protocol)],
    [reply.bulk("id"), reply.integer(session.id)],
    [reply.bulk("mode"), reply.bulk("sentinel")],
    [reply.bulk("modules"), reply.array([])],
  ]);
}

function client(args: readonly string[], session: Session): Reply {
  if (args.length < 2) return arity("client");
  const sub = args[1]!.toLowerCase();
  const fixed: Record<string, number> = { setname: 3, getname: 2, id: 2, setinfo: 4 };
  const want = fixed[sub];
  if (want === undefined) {
    return reply.error(`ERR unknown subcommand '${args[1]}'. Try CLIENT HELP.`);
  }
  if (args.length !== want) return arity(`client|${sub}`);
  switch (sub) {
    case "setname": {
      const name = args[2]!;
      if (!validClientName(name)) return reply.error(BAD_CLIENT_NAME);
      session.name = name === "" ? null : name;
      return reply.simple("OK");
    }
    case "getname":
      return session.name === null ? reply.nullBulk() : reply.bulk(session.name);
    case "id":
      return reply.integer(session.id);
    default: { // setinfo
      const attr = args[2]!.toLowerCase();
      if (attr !== "lib-name" && attr !== "lib-ver") {
        return reply.error(`ERR Unrecognized option '${args[2]}'`);
      }
      if (!/^[\x21-\x7e]*$/.test(args[3]!) || args[3]!.length > MAX_CLIENT_NAME_CHARS) {
        return reply.error(
          `ERR ${attr} cannot contain spaces, newlines or special characters.`,
        );
      }
      return reply.simple("OK");
    }
  }
}

function info(sections: readonly string[], ctx: SentinelContext): string {
  const wanted = sections.length === 0
    ? new Set(["server", "clients", "sentinel"])
    : new Set(sections.map((s) => s.toLowerCase()));
  const all = ["all", "default", "everything"].some((s) => wanted.has(s));
  const parts: string[] = [];
  if (all || wanted.has("server")) {
    parts.push(
      [
        "# Server",
        `redis_version:${SENTINEL_COMPAT_VERSION}`,
        "redis_mode:sentinel",
        "implementation:redis-hive",
        `tcp_port:${ctx.settings.port}`,
        `run_id:${ctx.settings.myId}`,
        `uptime_in_seconds:${Math.floor(ctx.uptimeMs() / 1000)}`,
        "",
      ].join("\r\n"),
    );
  }
  if (all || wanted.has("clients")) {
    parts.push(["# Clients", `connected_clients:${ctx.connectedClients()}`, ""].join("\r\n"));
  }
  if (all || wanted.has("sentinel")) {
    const view = ctx.view();
    const master = view.master ?? ctx.lastKnownMaster();
    const address = master === null ? "?:0" : `${master.ip}:${master.port}`;
    parts.push(
      [
        "# Sentinel",
        "sentinel_masters:1",
        "sentinel_tilt:0",
        "sentinel_tilt_since_seconds:-1",
        "sentinel_running_scripts:0",
        "sentinel_scripts_queue_length:0",
        "sentinel_simulate_failure_flags:0",
        `master0:name=${ctx.settings.masterName},status=${
          view.master === null ? "odown" : "ok"
        },address=${address},slaves=${view.replicas.length},sentinels=${view.sentinels.length + 1}`,
        "",
      ].join("\r\n"),
    );
  }
  return parts.join("\r\n");
}

function subscribe(
  name: "subscribe" | "psubscribe",
  args: readonly string[],
  session: Session,
  settings: SentinelSettings,
): Reply[] {
  if (args.length < 2) return [arity(name)];
  const set = name === "subscribe" ? session.channels : session.patterns;
  const replies: Reply[] = [];
  for (const target of args.slice(1)) {
    if (!set.has(target)) {
      if (session.channels.size + session.patterns.size >= settings.maxSubscriptionsPerConnection) {
        replies.push(
          reply.error(
            `ERR too many subscriptions on this connection (at most ${settings.maxSubscriptionsPerConnection})`,
          ),
        );
        continue;
      }
      set.add(target);
    }
    replies.push(
      reply.push([
        reply.bulk(name),
        reply.bulk(target),
        reply.integer(session.channels.size + session.patterns.size),
      ]),
    );
  }
  return replies;
}

function unsubscribe(
  name: "unsubscribe" | "punsubscribe",
  targets: readonly string[],
  session: Session,
): Reply[] {
  const set = name === "unsubscribe" ? session.channels : session.patterns;
  const list = targets.length > 0 ? [...targets] : [...set].reverse();
  const count = () => session.channels.size + session.patterns.size;
  if (list.length === 0) {
    return [reply.push([reply.bulk(name), reply.nullBulk(), reply.integer(count())])];
  }
  return list.map((target) => {
    set.delete(target);
    return reply.push([reply.bulk(name), reply.bulk(target), reply.integer(count())]);
  });
}

const SENTINEL_ARITY: Record<string, number> = {
  "get-master-addr-by-name": 3,
  master: 3,
  masters: 2,
  replicas: 3,
  slaves: 3,
  sentinels: 3,
  myid: 2,
  ckquorum: 3,
  "pending-scripts": 2,
  help: 2,
};

function sentinel(args: readonly string[], ctx: SentinelContext): Reply {
  if (args.length < 2) return arity("sentinel");
  const sub = args[1]!.toLowerCase();
  const refused = REFUSED[sub];
  if (refused !== undefined) {
    return reply.error(
      `ERR SENTINEL ${sub.toUpperCase()} is not supported by redis-hive: ${refused} ` +
        "(see docs/sentinel.md)",
    );
  }
  if (sub === "info-cache") {
    if (args.length < 3) return arity("sentinel|info-cache");
    return reply.array([]);
  }
  const want = SENTINEL_ARITY[sub];
  if (want === undefined) {
    return reply.error(`ERR unknown subcommand '${args[1]}'. Try SENTINEL HELP.`);
  }
  if (args.length !== want) return arity(`sentinel|${sub}`);
  const settings = ctx.settings;
  const known = want === 3 && args[2] === settings.masterName;
  switch (sub) {
    case "get-master-addr-by-name": {
      if (!known) return reply.nullArray();
      const master = ctx.view().master;
      if (master === null) return reply.nullArray();
      return reply.array([reply.bulk(master.ip), reply.bulk(String(master.port))]);
    }
    case "master":
      return known ? reply.stringMap(masterFields(ctx)) : reply.error(NO_SUCH_MASTER);
    case "masters":
      return reply.array([reply.stringMap(masterFields(ctx))]);
    case "replicas":
    case "slaves":
      return known
        ? reply.array(replicaEntries(ctx).map((e) => reply.stringMap(e)))
        : reply.error(NO_SUCH_MASTER);
    case "sentinels":
      return known
        ? reply.array(sentinelEntries(ctx).map((e) => reply.stringMap(e)))
        : reply.error(NO_SUCH_MASTER);
    case "myid":
      return reply.bulk(settings.myId);
    case "ckquorum": {
      if (!known) return reply.error(NO_SUCH_MASTER);
      const usable = ctx.view().sentinels.filter((s) => s.live).length + 1;
      return reply.simple(
        `OK ${usable} usable Sentinels. redis-hive needs no quorum: its hives elect the ` +
          "master among those that hear each other",
      );
    }
    case "pending-scripts":
      return reply.array([]);
    default: // help
      return reply.array(
        [
          "SENTINEL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
          "GET-MASTER-ADDR-BY-NAME <master-name>",
          "MASTER <master-name>",
          "MASTERS",
          "REPLICAS <master-name>",
          "SLAVES <master-name>",
          "SENTINELS <master-name>",
          "MYID",
          "CKQUORUM <master-name>",
          "Refused by redis-hive: SET, FAILOVER, MONITOR, REMOVE, RESET, FLUSHCONFIG, CONFIG.",
        ].map((line) => reply.simple(line)),
      );
  }
}

type Fields = [string, string][];

/** Sentinel's description of the master (`SENTINEL master`), in its field order. */
export function masterFields(ctx: SentinelContext): Fields {
  const view = ctx.view();
  const master = view.master ?? ctx.lastKnownMaster();
  const down = view.master === null;
  const s = ctx.settings;
  return [
    ["name", s.masterName],
    ["ip", master?.ip ?? "?"],
    ["port", String(master?.port ?? 0)],
    ["runid", master?.runId ?? ""],
    ["flags", down ? "s_down,o_down,master" : "master"],
    ["link-pending-commands", "0"],
    ["link-refcount", "1"],
    ["last-ping-sent", "0"],
    ["last-ok-ping-reply", "0"],
    ["last-ping-reply", "0"],
    ...(down ? [["s-down-time", "0"], ["o-down-time", "0"]] satisfies Fields : []),
    ["down-after-milliseconds", String(s.downAfterMs)],
    ["info-refresh", "0"],
    ["role-reported", "master"],
    ["role-reported-time", "0"],
    ["config-epoch", String(ctx.epoch())],
    ["num-slaves", String(view.replicas.length)],
    ["num-other-sentinels", String(view.sentinels.length)],
    ["quorum", "1"],
    ["failover-timeout", String(s.downAfterMs)],
    ["parallel-syncs", "1"],
  ];
}

/** Sentinel's descriptions of the replicas (`SENTINEL replicas`). */
export function replicaEntries(ctx: SentinelContext): Fields[] {
  const view = ctx.view();
  const master = view.master;
  return view.replicas.map((r) => {
    const linked = r.up && r.linkUp && master !== null;
    const flags = r.up ? "slave" : "s_down,slave,disconnected";
    return [
      ["name", `${r.ip}:${r.port}`],
      ["ip", r.ip],
      ["port", String(r.port)],
      ["runid", r.runId],
      ["flags", flags],
      ["link-pending-commands", "0"],
      ["link-refcount", "1"],
      ["last-ping-sent", "0"],
      ["last-ok-ping-reply", "0"],
      ["last-ping-reply", "0"],
      ...(r.up ? [] : [["s-down-time", "0"]] satisfies Fields),
      ["down-after-milliseconds", String(ctx.settings.downAfterMs)],
      ["info-refresh", "0"],
      ["role-reported", "slave"],
      ["role-reported-time", "0"],
      ["master-link-down-time", "0"],
      ["master-link-status", linked ? "ok" : "err"],
      ["master-host", linked ? master.ip : "?"],
      ["master-port", String(linked ? master.port : 0)],
      ["slave-priority", "100"],
      ["slave-repl-offset", String(r.offset)],
      ["replica-announced", "1"],
    ];
  });
}

/** Sentinel's descriptions of the other sentinels (`SENTINEL sentinels`). */
export function sentinelEntries(ctx: SentinelContext): Fields[] {
  return ctx.view().sentinels.map((p) => {
    const id = ctx.settings.idOf(p.ip);
    return [
      ["name", id],
      ["ip", p.ip],
      ["port", String(p.port)],
      ["runid", id],
      ["flags", p.live ? "sentinel" : "s_down,sentinel,disconnected"],
      ["link-pending-commands", "0"],
      ["link-refcount", "1"],
      ["last-ping-sent", "0"],
      ["last-ok-ping-reply", "0"],
      ["last-ping-reply", "0"],
      ...(p.live ? [] : [["s-down-time", "0"]] satisfies Fields),
      ["down-after-milliseconds", String(ctx.settings.downAfterMs)],
      ["last-hello-message", "0"],
      ["voted-leader", "?"],
      ["voted-leader-epoch", "0"],
    ];
  });
}
