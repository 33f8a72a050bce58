/**
 * The hive's configuration: command-line flags, each also readable from an environment variable.
 *
 * A flag beats the environment, which beats the default. Every value is validated here, once;
 * bad input throws a {@link ConfigError} naming the flag (and the environment variable when the
 * value came from there) and the accepted form. `main.ts` turns it into exit status
 * {@link exitCodeForConfigError}.
 *
 * Environment variables set to the empty string count as unset (the shell and Kubernetes
 * convention), except `HIVE_SECRET`: an empty secret is an error, so a broken Secret reference
 * never silently turns authentication off.
 *
 * @example
 * ```ts
 * import { parseConfig } from "./config.ts";
 * const config = parseConfig(["--peers", "127.0.0.11,127.0.0.12"], {}, Deno.readTextFileSync);
 * console.log(config.electionPort, config.peers); // 7379 ["127.0.0.11", "127.0.0.12"]
 * ```
 */

import { parseArgs } from "node:util";
import { isIP } from "node:net";
import {
  DEFAULT_PROXY_HOLD_MS,
  DEFAULT_PROXY_MAX_CONNECTIONS,
  isUnixSocketPath,
  MAX_PROXY_CONNECTIONS,
  MAX_UNIX_SOCKET_PATH_BYTES,
  PROXY_ENGINE_REQUESTS,
  type ProxyEngineRequest,
} from "../proxy/proxy_options.ts";
import { MAX_EPOLL_WORKERS } from "../proxy/proxy_workers.ts";
import { invariant, MAX_DURATION_MS } from "../common/assert.ts";
import { canonicalIp } from "../net/address.ts";
import { MAX_PEERS } from "../net/peer_discovery.ts";
import { FAILURE_TO_HEARTBEAT_MIN_RATIO } from "../election/election.ts";
import { FENCE_MODES, type FenceMode } from "../election/fence.ts";
import {
  DEFAULT_REDIS_HANG_MS,
  MAX_REDIS_HANG_MS,
  MIN_REDIS_HANG_MS,
} from "../redis/failure_detector.ts";
import { DEFAULT_MAX_CLOCK_SKEW_MS } from "../election/replay_guard.ts";

/** Exit status of the process when the configuration is invalid (the usual "usage" status). */
export const exitCodeForConfigError = 2;

/** The log levels, least to most severe (LogTape's names). */
export const LOG_LEVELS = ["trace", "debug", "info", "warning", "error", "fatal"] as const;

/** A log level accepted by `--log-level`. */
export type LogLevel = typeof LOG_LEVELS[number];

/** The log output formats accepted by `--log-format`. */
export const LOG_FORMATS = ["json", "pretty"] as const;

/** A log output format: JSON lines for machines, or a pretty one-line text for humans. */
export type LogFormat = typeof LOG_FORMATS[number];

/** A DNS server address. */
export interface HostPort {
  /** An IP address (v4, or v6 without brackets). */
  host: string;
  /** A port 1..65535. */
  port: number;
}

/** The validated configuration of one hive process. */
export interface Config {
  /** Headless Service name resolved (A and AAAA) to find the peers, or null with `--peers`. */
  service: string | null;
  /** Static peer addresses (canonical form, no duplicates), or null with `--service`. */
  peers: string[] | null;
  /** The DNS server used to resolve `service`, or null for the system resolver. */
  dnsServer: HostPort | null;
  /** This node's address as peers see it, or null to detect it. */
  announceIp: string | null;
  /** The address the UDP, proxy and HTTP listeners bind. */
  bind: string;
  /** UDP heartbeat/election port. */
  electionPort: number;
  /** Master proxy TCP port. */
  proxyPort: number;
  /** HTTP port of `/healthz`, `/readyz`, `/status`, `/metrics`. */
  httpPort: number;
  /** How the hive reaches its own redis (IP or host name). */
  redisHost: string;
  /** Its own redis's port, also told to peers. */
  redisPort: number;
  /**
   * Its own redis's Unix socket (redis `--unixsocket`), or null. When set, the hive talks to
   * its own redis through it, and so does its proxy while it leads: no TCP stack on either
   * side (docs/benchmarks.md). Peers still reach this redis at `announceIp:redisPort`.
   */
  redisSocket: string | null;
  /** Interval between two heartbeats. */
  heartbeatMs: number;
  /** Silence after which a peer is lost (>= {@link FAILURE_TO_HEARTBEAT_MIN_RATIO} heartbeats). */
  failureMs: number;
  /**
   * How long the local redis may leave the hive unanswered (a script, a fork, a pause) before
   * it counts as dead; see lib/redis/failure_detector.ts.
   */
  redisHangMs: number;
  /** Interval between two DNS lookups of `service`. */
  dnsRefreshMs: number;
  /**
   * Heartbeats sent further than this from this node's wall clock are dropped: the replay window
   * and the clock skew tolerated between nodes (lib/election/replay_guard.ts).
   */
  maxClockSkewMs: number;
  /** How long a new proxied connection waits for a leader before it is closed. */
  proxyHoldMs: number;
  /** Most client connections the proxy holds at once. */
  maxConnections: number;
  /** Which master proxy engine to run (`auto`: decided at start, see lib/proxy/proxy_engine.ts). */
  proxyEngine: ProxyEngineRequest;
  /**
   * Worker threads of the epoll engine (the Deno engine runs on the main thread); null when not
   * given: one per CPU the container may use (lib/proxy/proxy_workers.ts).
   */
  proxyWorkers: number | null;
  /** Most peers tracked (and most addresses in `peers`). */
  maxPeers: number;
  /**
   * The write fence (lib/election/fence.ts): `auto` arms it for a peer set of 3 or more (a
   * leader that does not hear a majority refuses writes), `on` also for 2, `off` never.
   */
  fence: FenceMode;
  /**
   * Shared secret for the heartbeat HMAC, or null to send unsigned heartbeats (only with
   * {@link Config.insecureNoSecret}: without a secret anyone on the network can take over).
   */
  secret: string | null;
  /**
   * `--insecure-no-secret`: run without a secret, told so in words. Warned about at every start
   * and shown on `/status`; refused together with a secret or a redis password.
   */
  insecureNoSecret: boolean;
  /** Password of the local redis (and of its master), or null. */
  redisPassword: string | null;
  /**
   * File where the hive keeps which redis process holds which dataset lineage, so a restarted
   * hive (not pod) still knows its redis holds the dataset; null keeps nothing. On Kubernetes
   * it lives on an emptyDir volume: it survives a container restart, not a new pod.
   */
  stateFile: string | null;
  /** Sentinel-protocol endpoint port (lib/sentinel/), or 0 for none. */
  sentinelPort: number;
  /** The master's name on the Sentinel endpoint. */
  masterName: string;
  /** Password Sentinel clients must give (`AUTH`/`HELLO AUTH`), or null for none. */
  sentinelPassword: string | null;
  /** Lowest level logged. */
  logLevel: LogLevel;
  /** Log output format. */
  logFormat: LogFormat;
  /** `--help` was given: print {@link formatHelp} and exit; the other fields are defaults. */
  help: boolean;
}

/** The defaults of every setting that has one. */
export const DEFAULTS = {
  bind: "0.0.0.0",
  electionPort: 7379,
  proxyPort: 6380,
  httpPort: 8080,
  redisHost: "127.0.0.1",
  redisPort: 6379,
  heartbeatMs: 200,
  failureMs: 1000,
  redisHangMs: DEFAULT_REDIS_HANG_MS,
  dnsRefreshMs: 2000,
  maxClockSkewMs: DEFAULT_MAX_CLOCK_SKEW_MS,
  proxyHoldMs: DEFAULT_PROXY_HOLD_MS,
  maxConnections: DEFAULT_PROXY_MAX_CONNECTIONS,
  proxyEngine: "auto",
  proxyWorkers: null,
  maxPeers: MAX_PEERS,
  fence: "auto",
  sentinelPort: 26379,
  masterName: "mymaster",
  logLevel: "info",
  /** Used when stdout is not a terminal (containers, files, pipes). */
  logFormatNotTty: "json",
  /** Used when stdout is a terminal. */
  logFormatTty: "pretty",
  /** Port assumed when `--dns-server` names no port. */
  dnsServerPort: 53,
} as const satisfies {
  proxyEngine: ProxyEngineRequest;
  fence: FenceMode;
  logLevel: LogLevel;
  logFormatNotTty: LogFormat;
  logFormatTty: LogFormat;
  [key: string]: unknown;
};

/** Upper bound of `--max-peers` (the peer table and every per-peer list are bounded by it). */
export const MAX_PEERS_LIMIT = 1024;

/** Longest secret or redis password accepted, in characters. */
export const MAX_SECRET_CHARS = 4096;

/** Longest DNS name accepted (RFC 1035, without the trailing dot). */
export const MAX_DNS_NAME_CHARS = 253;

/** Longest rejected value quoted in an error message; longer ones are cut. */
export const MAX_QUOTED_VALUE_CHARS = 80;

/**
 * A bad flag or environment value. `flag` is the flag (`--election-port`), `envVar` the
 * environment variable the value came from (or null), `expected` the accepted form.
 *
 * @example
 * ```ts
 * import { ConfigError, parseConfig } from "./config.ts";
 * try {
 *   parseConfig(["--peers", "10.0.0.1", "--election-port", "abc"], {}, Deno.readTextFileSync);
 * } catch (e) {
 *   if (e instanceof ConfigError) console.error(e.message);
 *   // --election-port: expected an integer port 1..65535, got "abc"
 * }
 * ```
 */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  /** The flag at fault, e.g. `--election-port`. */
  readonly flag: string;
  /** The environment variable the bad value came from, or null when it came from a flag. */
  readonly envVar: string | null;
  /** The accepted form, e.g. `an integer port 1..65535`. */
  readonly expected: string;

  /** `detail` is the message after the flag, e.g. `expected ..., got "abc"`. */
  constructor(flag: string, envVar: string | null, expected: string, detail: string) {
    super(`${flag}${envVar === null ? "" : ` (from env ${envVar})`}: ${detail}`);
    this.flag = flag;
    this.envVar = envVar;
    this.expected = expected;
  }
}

/** One flag: its name without dashes, environment variable, value placeholder, help and default. */
interface FlagSpec {
  name: string;
  env: string | null;
  /** Placeholder shown in help; null for a boolean flag. */
  value: string | null;
  help: string;
  /** The default as shown in help. */
  defaultText: string;
  short?: string;
}

const PORT_FORM = "an integer port 1..65535";
const SENTINEL_PORT_FORM = "an integer port 1..65535, or 0 for no Sentinel endpoint";
const DURATION_FORM = `a whole number of milliseconds 1..${MAX_DURATION_MS}`;
const DNS_NAME_FORM = "a DNS name such as redis-hive or redis-hive.default.svc.cluster.local";
const IP_FORM = "an IPv4 or IPv6 address";
const PEERS_FORM = "a comma-separated list of distinct IP addresses, e.g. 10.0.0.1,10.0.0.2";
const DNS_SERVER_FORM = "HOST:PORT with an IP host, e.g. 10.96.0.10:53 or [fd00::a]:53";
const HOST_FORM = "an IP address or a DNS name";
/** Longest `--master-name`. */
export const MAX_MASTER_NAME_CHARS = 128;
const MASTER_NAME_FORM =
  `1..${MAX_MASTER_NAME_CHARS} printable ASCII characters without spaces, e.g. mymaster`;

/** Every flag, in help order. */
const FLAGS: readonly FlagSpec[] = [
  {
    name: "service",
    env: "HIVE_SERVICE",
    value: "NAME",
    help: "headless Service name to resolve (A and AAAA) for peers",
    defaultText: "none",
  },
  {
    name: "peers",
    env: "HIVE_PEERS",
    value: "IP,IP,...",
    help: "static peer list instead of --service",
    defaultText: "none",
  },
  {
    name: "dns-server",
    env: "HIVE_DNS_SERVER",
    value: "HOST:PORT",
    help: "resolver for --service (IPv6 as [::1]:53)",
    defaultText: "system",
  },
  {
    name: "announce-ip",
    env: "POD_IP",
    value: "IP",
    help: "this node's address as peers see it",
    defaultText: "detected",
  },
  {
    name: "bind",
    env: "HIVE_BIND",
    value: "IP",
    help: "address the UDP, proxy and HTTP listeners bind",
    defaultText: DEFAULTS.bind,
  },
  {
    name: "election-port",
    env: "HIVE_ELECTION_PORT",
    value: "N",
    help: "UDP heartbeat/election port",
    defaultText: String(DEFAULTS.electionPort),
  },
  {
    name: "proxy-port",
    env: "HIVE_PROXY_PORT",
    value: "N",
    help: "master proxy TCP port",
    defaultText: String(DEFAULTS.proxyPort),
  },
  {
    name: "http-port",
    env: "HIVE_HTTP_PORT",
    value: "N",
    help: "HTTP port of /healthz /readyz /status /metrics",
    defaultText: String(DEFAULTS.httpPort),
  },
  {
    name: "redis-host",
    env: "HIVE_REDIS_HOST",
    value: "HOST",
    help: "how the hive reaches its own redis",
    defaultText: DEFAULTS.redisHost,
  },
  {
    name: "redis-port",
    env: "HIVE_REDIS_PORT",
    value: "N",
    help: "its own redis's port, also told to peers",
    defaultText: String(DEFAULTS.redisPort),
  },
  {
    name: "redis-socket",
    env: "HIVE_REDIS_SOCKET",
    value: "PATH",
    help: "its own redis's Unix socket, used by the hive and its proxy while leading",
    defaultText: "none",
  },
  {
    name: "heartbeat-ms",
    env: "HIVE_HEARTBEAT_MS",
    value: "MS",
    help: "interval between heartbeats",
    defaultText: String(DEFAULTS.heartbeatMs),
  },
  {
    name: "failure-ms",
    env: "HIVE_FAILURE_MS",
    value: "MS",
    help:
      `silence after which a peer is lost (>= ${FAILURE_TO_HEARTBEAT_MIN_RATIO}x --heartbeat-ms)`,
    defaultText: String(DEFAULTS.failureMs),
  },
  {
    name: "redis-hang-ms",
    env: "HIVE_REDIS_HANG_MS",
    value: "MS",
    help: "how long the local redis may not answer (busy) before it counts as dead " +
      `(${MIN_REDIS_HANG_MS}..${MAX_REDIS_HANG_MS}; default: redis's busy-reply-threshold)`,
    defaultText: String(DEFAULT_REDIS_HANG_MS),
  },
  {
    name: "dns-refresh-ms",
    env: "HIVE_DNS_REFRESH_MS",
    value: "MS",
    help: "interval between DNS lookups of --service",
    defaultText: String(DEFAULTS.dnsRefreshMs),
  },
  {
    name: "max-clock-skew-ms",
    env: "HIVE_MAX_CLOCK_SKEW_MS",
    value: "MS",
    help: "replay window: heartbeats sent further than this from the local clock are dropped; " +
      "node clocks must agree within it",
    defaultText: String(DEFAULTS.maxClockSkewMs),
  },
  {
    name: "proxy-hold-ms",
    env: "HIVE_PROXY_HOLD_MS",
    value: "MS",
    help: "how long a new client connection waits for a leader",
    defaultText: String(DEFAULTS.proxyHoldMs),
  },
  {
    name: "max-connections",
    env: "HIVE_MAX_CONNECTIONS",
    value: "N",
    help: "most client connections the proxy holds at once",
    defaultText: String(DEFAULTS.maxConnections),
  },
  {
    name: "proxy-engine",
    env: "HIVE_PROXY_ENGINE",
    value: PROXY_ENGINE_REQUESTS.join("|"),
    help: "master proxy engine; auto: epoll on x86_64 Linux with --allow-ffi, else deno",
    defaultText: DEFAULTS.proxyEngine,
  },
  {
    name: "proxy-workers",
    env: "HIVE_PROXY_WORKERS",
    value: "N",
    help: "epoll engine worker threads",
    defaultText: "one per CPU the container may use (cgroup cpu.max, else the CPUs)",
  },
  {
    name: "fence",
    env: "HIVE_FENCE",
    value: FENCE_MODES.join("|"),
    help: "refuse writes on a leader that does not hear a majority; auto: on for 3+ peers",
    defaultText: DEFAULTS.fence,
  },
  {
    name: "max-peers",
    env: "HIVE_MAX_PEERS",
    value: "N",
    help: "most peers tracked (and most addresses in --peers)",
    defaultText: String(DEFAULTS.maxPeers),
  },
  {
    name: "secret-file",
    env: "HIVE_SECRET",
    value: "PATH",
    help: "file holding the heartbeat HMAC secret (trimmed); HIVE_SECRET holds the secret itself",
    defaultText: "required (or --insecure-no-secret)",
  },
  {
    name: "insecure-no-secret",
    env: "HIVE_INSECURE_NO_SECRET",
    value: null,
    help: "run with unsigned heartbeats: anyone who can reach the election port can take over " +
      "the dataset (local experiments only)",
    defaultText: "off",
  },
  {
    name: "redis-password-file",
    env: "REDIS_PASSWORD",
    value: "PATH",
    help: "file holding the redis password (trimmed); REDIS_PASSWORD holds the password itself",
    defaultText: "none",
  },
  {
    name: "state-file",
    env: "HIVE_STATE_FILE",
    value: "PATH",
    help: "file that keeps which redis process holds the dataset across hive restarts",
    defaultText: "none",
  },
  {
    name: "sentinel-port",
    env: "HIVE_SENTINEL_PORT",
    value: "N",
    help: "Sentinel-protocol endpoint for sentinel-aware clients (0 = off)",
    defaultText: String(DEFAULTS.sentinelPort),
  },
  {
    name: "master-name",
    env: "HIVE_MASTER_NAME",
    value: "NAME",
    help: "the master's name on the Sentinel endpoint",
    defaultText: DEFAULTS.masterName,
  },
  {
    name: "sentinel-password-file",
    env: "HIVE_SENTINEL_PASSWORD",
    value: "PATH",
    help: "file holding the Sentinel endpoint's password (trimmed); " +
      "HIVE_SENTINEL_PASSWORD holds the password itself",
    defaultText: "none",
  },
  {
    name: "log-level",
    env: "HIVE_LOG_LEVEL",
    value: LOG_LEVELS.join("|"),
    help: "lowest level logged",
    defaultText: DEFAULTS.logLevel,
  },
  {
    name: "log-format",
    env: "HIVE_LOG_FORMAT",
    value: LOG_FORMATS.join("|"),
    help: "JSON lines or pretty text",
    defaultText: `${DEFAULTS.logFormatNotTty} (${DEFAULTS.logFormatTty} when stdout is a terminal)`,
  },
  {
    name: "help",
    env: null,
    value: null,
    help: "print this help and exit",
    defaultText: "",
    short: "h",
  },
];

function specOf(name: string): FlagSpec {
  const spec = FLAGS.find((f) => f.name === name);
  if (spec === undefined) throw new Error(`config: no flag spec named ${name}`);
  return spec;
}

/** The `node:util` parseArgs option table, built from {@link FLAGS}. */
function parseArgsOptions(): Record<string, { type: "string" | "boolean"; short?: string }> {
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = {};
  for (const f of FLAGS) {
    options[f.name] = f.short === undefined
      ? { type: f.value === null ? "boolean" : "string" }
      : { type: f.value === null ? "boolean" : "string", short: f.short };
  }
  return options;
}

/** A raw value and where it came from. */
interface Raw {
  text: string;
  /** The environment variable it came from, or null for a flag. */
  env: string | null;
}

function quote(text: string): string {
  const cut = text.length > MAX_QUOTED_VALUE_CHARS
    ? `${text.slice(0, MAX_QUOTED_VALUE_CHARS)}...`
    : text;
  return JSON.stringify(cut);
}

function bad(spec: FlagSpec, raw: Raw, expected: string, detail?: string): ConfigError {
  return new ConfigError(
    `--${spec.name}`,
    raw.env,
    expected,
    detail ?? `expected ${expected}, got ${quote(raw.text)}`,
  );
}

/** Turns a `node:util` parseArgs error into a ConfigError naming the flag. */
function argsError(error: unknown): ConfigError {
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: unknown } | null)?.code;
  // Node names the option first, in quotes: 'Unknown option '--x'', 'Option '-h, --help' ...'.
  const quoted = /'([^']*)'/.exec(message)?.[1] ?? "";
  const flag = /--[A-Za-z0-9-]+/.exec(quoted)?.[0] ?? /^-[A-Za-z0-9]/.exec(quoted)?.[0];
  if (code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL") {
    return new ConfigError("arguments", null, "flags only", `unexpected argument ${quote(quoted)}`);
  }
  if (flag === undefined) {
    return new ConfigError("arguments", null, "flags only (see --help)", message);
  }
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
    return new ConfigError(flag, null, "a known flag", "unknown flag (see --help)");
  }
  const spec = FLAGS.find((f) => `--${f.name}` === flag || `-${f.short}` === flag);
  if (spec !== undefined && spec.value === null) {
    return new ConfigError(flag, null, "no value", "takes no value");
  }
  const form = spec === undefined ? "a value" : `a value ${spec.value}`;
  if (message.includes("ambiguous")) {
    return new ConfigError(
      flag,
      null,
      form,
      `expected ${form}, got another flag (write ${flag}=VALUE for a value starting with "-")`,
    );
  }
  return new ConfigError(flag, null, form, `expected ${form}, got nothing`);
}

function parseIntegerIn(text: string, min: number, max: number): number | null {
  if (!/^[0-9]{1,10}$/.test(text)) return null;
  const n = Number(text);
  return n >= min && n <= max ? n : null;
}

function isDnsName(text: string): boolean {
  const name = text.endsWith(".") ? text.slice(0, -1) : text;
  if (name.length === 0 || name.length > MAX_DNS_NAME_CHARS) return false;
  return name.split(".").every((label) =>
    /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/.test(label)
  );
}

function masterName(r: Raw | null): string {
  if (r === null) return DEFAULTS.masterName;
  if (!new RegExp(`^[\\x21-\\x7e]{1,${MAX_MASTER_NAME_CHARS}}$`).test(r.text)) {
    throw bad(specOf("master-name"), r, MASTER_NAME_FORM);
  }
  return r.text;
}

function parsePeers(spec: FlagSpec, raw: Raw): string[] {
  const peers: string[] = [];
  for (const item of raw.text.split(",")) {
    const trimmed = item.trim();
    const ip = canonicalIp(trimmed);
    if (ip === null) {
      throw bad(
        spec,
        raw,
        PEERS_FORM,
        `expected ${PEERS_FORM}, got ${quote(trimmed)} in ${quote(raw.text)}`,
      );
    }
    if (peers.includes(ip)) {
      throw bad(spec, raw, PEERS_FORM, `expected ${PEERS_FORM}, got ${quote(ip)} twice`);
    }
    peers.push(ip);
  }
  return peers;
}

function parseDnsServer(spec: FlagSpec, raw: Raw): HostPort {
  const text = raw.text;
  let host: string | null = null;
  let portText: string | undefined;
  const bracketed = /^\[([^\]]+)\](?::([^:]*))?$/.exec(text);
  if (bracketed !== null) {
    const ip = canonicalIp(bracketed[1] ?? "");
    host = ip !== null && isIP(ip) === 6 ? ip : null;
    portText = bracketed[2];
  } else if (isIP(text) !== 0) {
    host = canonicalIp(text); // a bare address: the default DNS port
  } else {
    const hostAndPort = /^([^:]+):([^:]*)$/.exec(text);
    if (hostAndPort !== null && isIP(hostAndPort[1] ?? "") === 4) {
      host = hostAndPort[1] ?? null;
      portText = hostAndPort[2];
    }
  }
  const port = portText === undefined ? DEFAULTS.dnsServerPort : parseIntegerIn(portText, 1, 65535);
  if (host === null || port === null) throw bad(spec, raw, DNS_SERVER_FORM);
  return { host, port };
}

/** A secret from a file (trimmed, non-empty) or from the environment (as is). */
function readSecret(
  spec: FlagSpec,
  path: string | undefined,
  envValue: string | undefined,
  readTextFile: (path: string) => string,
  emptyEnvIsError: boolean,
): string | null {
  const what = spec.name === "secret-file" ? "secret" : "password";
  const form =
    `a readable file holding a non-empty ${what} of at most ${MAX_SECRET_CHARS} characters`;
  let secret: string;
  let source: Raw;
  if (path !== undefined) {
    source = { text: path, env: null };
    let content: string;
    try {
      content = readTextFile(path);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw bad(spec, source, form, `expected ${form}, cannot read ${quote(path)}: ${reason}`);
    }
    secret = content.trim();
    if (secret.length === 0) {
      throw bad(spec, source, form, `expected ${form}, ${quote(path)} is empty`);
    }
  } else if (envValue !== undefined && (envValue !== "" || emptyEnvIsError)) {
    // Never quote a secret in a message.
    source = { text: "", env: spec.env };
    secret = envValue;
    if (secret.length === 0) {
      throw bad(
        spec,
        source,
        `a non-empty ${what}`,
        `expected a non-empty ${what} (unset it to run without one)`,
      );
    }
  } else {
    return null;
  }
  if (secret.length > MAX_SECRET_CHARS) {
    throw bad(
      spec,
      source,
      form,
      `expected at most ${MAX_SECRET_CHARS} characters, got ${secret.length}`,
    );
  }
  return secret;
}

/**
 * Parses and validates the configuration.
 *
 * @param args the command-line arguments (`Deno.args`)
 * @param env the environment (`Deno.env.toObject()`)
 * @param readTextFile reads `--secret-file` and `--redis-password-file` (`Deno.readTextFileSync`)
 * @param stdoutIsTty whether stdout is a terminal: picks the default `--log-format`
 * @throws {ConfigError} on any bad flag or environment value
 *
 * @example
 * ```ts
 * import { parseConfig } from "./config.ts";
 * const env = { HIVE_SERVICE: "redis-hive" };
 * const config = parseConfig(["--election-port", "7400"], env, Deno.readTextFileSync);
 * console.log(config.service, config.electionPort); // "redis-hive" 7400
 * ```
 */
export function parseConfig(
  args: string[],
  env: Record<string, string | undefined>,
  readTextFile: (path: string) => string,
  stdoutIsTty = false,
): Config {
  const values = parseFlagValues(args);
  const defaults = defaultConfig(stdoutIsTty);
  if (values["help"] === true) return { ...defaults, help: true };
  const read = flagReader(values, env);
  const source = peerSource(read);
  const config = readEachValue(read, defaults, source, readTextFile);
  checkRelations(read, config, source);
  checkSecureDefault(read, config);
  return { ...config, service: source.service?.text ?? null, peers: source.peers };
}

/** The flags' raw values (`node:util` parseArgs), each given at most once. */
function parseFlagValues(args: string[]): Record<string, string | boolean | undefined> {
  try {
    const parsed = parseArgs({
      args,
      options: parseArgsOptions(),
      strict: true,
      allowPositionals: false,
      tokens: true,
    });
    const seen = new Set<string>();
    for (const token of parsed.tokens) {
      if (token.kind !== "option") continue;
      if (seen.has(token.name)) {
        throw new ConfigError(`--${token.name}`, null, "one occurrence", "given more than once");
      }
      seen.add(token.name);
    }
    return parsed.values;
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    throw argsError(error);
  }
}

/** The configuration with every default (and `--log-format`'s default for this stdout). */
function defaultConfig(stdoutIsTty: boolean): Config {
  return {
    service: null,
    peers: null,
    dnsServer: null,
    announceIp: null,
    bind: DEFAULTS.bind,
    electionPort: DEFAULTS.electionPort,
    proxyPort: DEFAULTS.proxyPort,
    httpPort: DEFAULTS.httpPort,
    redisHost: DEFAULTS.redisHost,
    redisPort: DEFAULTS.redisPort,
    heartbeatMs: DEFAULTS.heartbeatMs,
    failureMs: DEFAULTS.failureMs,
    redisHangMs: DEFAULTS.redisHangMs,
    dnsRefreshMs: DEFAULTS.dnsRefreshMs,
    maxClockSkewMs: DEFAULTS.maxClockSkewMs,
    proxyHoldMs: DEFAULTS.proxyHoldMs,
    maxConnections: DEFAULTS.maxConnections,
    proxyEngine: DEFAULTS.proxyEngine,
    proxyWorkers: DEFAULTS.proxyWorkers,
    maxPeers: DEFAULTS.maxPeers,
    fence: DEFAULTS.fence,
    secret: null,
    insecureNoSecret: false,
    redisPassword: null,
    stateFile: null,
    redisSocket: null,
    sentinelPort: DEFAULTS.sentinelPort,
    masterName: DEFAULTS.masterName,
    sentinelPassword: null,
    logLevel: DEFAULTS.logLevel,
    logFormat: stdoutIsTty ? DEFAULTS.logFormatTty : DEFAULTS.logFormatNotTty,
    help: false,
  };
}

/** Reads one flag at a time, each kind of value with its own check (see {@link flagReader}). */
interface FlagReader {
  /** The flag's value, else its environment variable's (empty counts as unset), else null. */
  raw(name: string): Raw | null;
  /** The raw value of a secret flag (`--secret-file`...), as given on the command line. */
  flag(name: string): string | undefined;
  /** The environment. */
  env: Record<string, string | undefined>;
  integer(name: string, fallback: number, min: number, max: number, form: string): number;
  port(name: string, fallback: number): number;
  duration(name: string, fallback: number): number;
  ip(name: string): string | null;
  unixSocketPath(name: string): string | null;
  oneOf<T extends string>(name: string, allowed: readonly T[], fallback: T): T;
  host(name: string, fallback: string): string;
}

/** A {@link FlagReader} over the parsed flags and the environment. */
function flagReader(
  values: Record<string, string | boolean | undefined>,
  env: Record<string, string | undefined>,
): FlagReader {
  const raw = (name: string): Raw | null => {
    const spec = specOf(name);
    const flagValue = values[name];
    if (typeof flagValue === "string") return { text: flagValue, env: null };
    if (spec.env !== null) {
      const envValue = env[spec.env];
      if (envValue !== undefined && envValue !== "") return { text: envValue, env: spec.env };
    }
    return null;
  };
  const integer = (name: string, fallback: number, min: number, max: number, form: string) => {
    const r = raw(name);
    if (r === null) return fallback;
    const n = parseIntegerIn(r.text, min, max);
    if (n === null) throw bad(specOf(name), r, form);
    return n;
  };
  return {
    raw,
    flag: (name) => values[name] as string | undefined,
    env,
    integer,
    port: (name, fallback) => integer(name, fallback, 1, 65535, PORT_FORM),
    duration: (name, fallback) => integer(name, fallback, 1, MAX_DURATION_MS, DURATION_FORM),
    ip: (name) => {
      const r = raw(name);
      if (r === null) return null;
      const canonical = canonicalIp(r.text);
      if (canonical === null) throw bad(specOf(name), r, IP_FORM);
      return canonical;
    },
    unixSocketPath: (name) => {
      const r = raw(name);
      if (r === null) return null;
      if (!isUnixSocketPath(r.text)) {
        const form = `an absolute path of at most ${MAX_UNIX_SOCKET_PATH_BYTES} bytes`;
        throw bad(specOf(name), r, form);
      }
      return r.text;
    },
    oneOf: <T extends string>(name: string, allowed: readonly T[], fallback: T): T => {
      const r = raw(name);
      if (r === null) return fallback;
      const found = allowed.find((a) => a === r.text);
      if (found === undefined) throw bad(specOf(name), r, `one of ${allowed.join(", ")}`);
      return found;
    },
    host: (name, fallback) => {
      const r = raw(name);
      if (r === null) return fallback;
      const canonical = canonicalIp(r.text);
      if (canonical === null && !isDnsName(r.text)) throw bad(specOf(name), r, HOST_FORM);
      return canonical ?? r.text;
    },
  };
}

/** Where the peers come from: `--service` or `--peers` (both raw, one of them null, or both). */
interface PeerSource {
  service: Raw | null;
  peersRaw: Raw | null;
  peers: string[] | null;
}

/**
 * The peer source. A flag beats the environment here too: `--peers` on the command line
 * overrides HIVE_SERVICE from the environment (which is then ignored), and the other way round.
 * Each value is checked on its own (both given is refused later, in {@link checkRelations}).
 */
function peerSource(read: FlagReader): PeerSource {
  let service = read.raw("service");
  let peersRaw = read.raw("peers");
  if (service !== null && peersRaw !== null && (service.env === null) !== (peersRaw.env === null)) {
    if (service.env === null) peersRaw = null;
    else service = null;
  }
  if (service !== null && !isDnsName(service.text)) {
    throw bad(specOf("service"), service, DNS_NAME_FORM);
  }
  const peers = peersRaw === null ? null : parsePeers(specOf("peers"), peersRaw);
  return { service, peersRaw, peers };
}

/**
 * Every value on its own, so an error names the flag the user got wrong (the first one, in the
 * order below).
 */
function readEachValue(
  read: FlagReader,
  defaults: Config,
  source: PeerSource,
  readTextFile: (path: string) => string,
): Config {
  return {
    ...defaults,
    ...readAddresses(read, source),
    ...readTimings(read),
    ...readLimits(read),
    ...readSecrets(read, readTextFile),
    ...readSentinel(read, readTextFile),
    logLevel: read.oneOf("log-level", LOG_LEVELS, DEFAULTS.logLevel),
    logFormat: read.oneOf("log-format", LOG_FORMATS, defaults.logFormat),
  };
}

/** Where the hive listens and finds its peers, redis and DNS server. */
function readAddresses(
  read: FlagReader,
  source: PeerSource,
): Pick<
  Config,
  | "dnsServer"
  | "redisHost"
  | "peers"
  | "announceIp"
  | "bind"
  | "electionPort"
  | "proxyPort"
  | "httpPort"
  | "redisPort"
  | "redisSocket"
> {
  const dnsServerRaw = read.raw("dns-server");
  const dnsServer = dnsServerRaw === null
    ? null
    : parseDnsServer(specOf("dns-server"), dnsServerRaw);
  const redisHost = read.host("redis-host", DEFAULTS.redisHost);
  return {
    dnsServer,
    redisHost,
    peers: source.peers,
    announceIp: read.ip("announce-ip"),
    bind: read.ip("bind") ?? DEFAULTS.bind,
    electionPort: read.port("election-port", DEFAULTS.electionPort),
    proxyPort: read.port("proxy-port", DEFAULTS.proxyPort),
    httpPort: read.port("http-port", DEFAULTS.httpPort),
    redisPort: read.port("redis-port", DEFAULTS.redisPort),
    redisSocket: read.unixSocketPath("redis-socket"),
  };
}

/** The election's, redis watch's, DNS's and proxy hold's durations. */
function readTimings(
  read: FlagReader,
): Pick<
  Config,
  | "heartbeatMs"
  | "failureMs"
  | "redisHangMs"
  | "dnsRefreshMs"
  | "maxClockSkewMs"
  | "proxyHoldMs"
> {
  return {
    heartbeatMs: read.duration("heartbeat-ms", DEFAULTS.heartbeatMs),
    failureMs: read.duration("failure-ms", DEFAULTS.failureMs),
    redisHangMs: read.integer(
      "redis-hang-ms",
      DEFAULTS.redisHangMs,
      MIN_REDIS_HANG_MS,
      MAX_REDIS_HANG_MS,
      `milliseconds, an integer ${MIN_REDIS_HANG_MS}..${MAX_REDIS_HANG_MS}`,
    ),
    dnsRefreshMs: read.duration("dns-refresh-ms", DEFAULTS.dnsRefreshMs),
    maxClockSkewMs: read.duration("max-clock-skew-ms", DEFAULTS.maxClockSkewMs),
    proxyHoldMs: read.duration("proxy-hold-ms", DEFAULTS.proxyHoldMs),
  };
}

/** The proxy's and the peer table's limits, the proxy engine and the fence mode. */
function readLimits(
  read: FlagReader,
): Pick<Config, "maxConnections" | "proxyEngine" | "fence" | "proxyWorkers" | "maxPeers"> {
  return {
    maxConnections: read.integer(
      "max-connections",
      DEFAULTS.maxConnections,
      1,
      MAX_PROXY_CONNECTIONS,
      `an integer 1..${MAX_PROXY_CONNECTIONS}`,
    ),
    proxyEngine: read.oneOf("proxy-engine", PROXY_ENGINE_REQUESTS, DEFAULTS.proxyEngine),
    fence: read.oneOf("fence", FENCE_MODES, DEFAULTS.fence),
    proxyWorkers: read.raw("proxy-workers") === null ? DEFAULTS.proxyWorkers : read.integer(
      "proxy-workers",
      1,
      1,
      MAX_EPOLL_WORKERS,
      `an integer 1..${MAX_EPOLL_WORKERS}`,
    ),
    maxPeers: read.integer(
      "max-peers",
      DEFAULTS.maxPeers,
      1,
      MAX_PEERS_LIMIT,
      `an integer 1..${MAX_PEERS_LIMIT}`,
    ),
  };
}

/** The heartbeat secret, the redis password and whether running without a secret is wanted. */
function readSecrets(
  read: FlagReader,
  readTextFile: (path: string) => string,
): Pick<Config, "secret" | "redisPassword" | "insecureNoSecret"> {
  return {
    secret: readSecret(
      specOf("secret-file"),
      read.flag("secret-file"),
      read.env["HIVE_SECRET"],
      readTextFile,
      true,
    ),
    redisPassword: readSecret(
      specOf("redis-password-file"),
      read.flag("redis-password-file"),
      read.env["REDIS_PASSWORD"],
      readTextFile,
      false,
    ),
    insecureNoSecret: insecureNoSecretOf(
      read.flag("insecure-no-secret") as unknown as boolean | undefined,
      read.env["HIVE_INSECURE_NO_SECRET"],
    ) !== null,
  };
}

/** The state file and the Sentinel endpoint. */
function readSentinel(
  read: FlagReader,
  readTextFile: (path: string) => string,
): Pick<Config, "stateFile" | "sentinelPort" | "masterName" | "sentinelPassword"> {
  return {
    stateFile: read.raw("state-file")?.text ?? null,
    sentinelPort: read.integer(
      "sentinel-port",
      DEFAULTS.sentinelPort,
      0,
      65535,
      SENTINEL_PORT_FORM,
    ),
    masterName: masterName(read.raw("master-name")),
    sentinelPassword: readSecret(
      specOf("sentinel-password-file"),
      read.flag("sentinel-password-file"),
      read.env["HIVE_SENTINEL_PASSWORD"],
      readTextFile,
      false,
    ),
  };
}

/** Then the relations between values, and exactly one peer source. */
function checkRelations(read: FlagReader, config: Config, source: PeerSource): void {
  const failureRaw = read.raw("failure-ms");
  if (config.failureMs < FAILURE_TO_HEARTBEAT_MIN_RATIO * config.heartbeatMs) {
    const ratio = FAILURE_TO_HEARTBEAT_MIN_RATIO;
    if (failureRaw !== null) {
      const form = `at least ${ratio} x --heartbeat-ms (${ratio * config.heartbeatMs})`;
      throw bad(specOf("failure-ms"), failureRaw, form);
    }
    const heartbeatRaw = read.raw("heartbeat-ms");
    invariant(heartbeatRaw !== null, "config: the defaults satisfy the failure/heartbeat ratio");
    const most = Math.floor(config.failureMs / ratio);
    throw bad(specOf("heartbeat-ms"), heartbeatRaw, `at most --failure-ms / ${ratio} (${most})`);
  }
  if (config.proxyPort === config.httpPort) {
    const httpRaw = read.raw("http-port") ?? { text: String(config.httpPort), env: null };
    throw bad(
      specOf("http-port"),
      httpRaw,
      "a port other than --proxy-port",
      `expected a port other than --proxy-port, got ${config.httpPort} for both`,
    );
  }
  if (
    config.sentinelPort !== 0 &&
    (config.sentinelPort === config.proxyPort || config.sentinelPort === config.httpPort)
  ) {
    throw bad(
      specOf("sentinel-port"),
      read.raw("sentinel-port") ?? { text: String(config.sentinelPort), env: null },
      "a port other than --proxy-port and --http-port",
      `expected a port other than --proxy-port and --http-port, got ${config.sentinelPort}`,
    );
  }
  const { service, peersRaw, peers } = source;
  if (peers !== null && peersRaw !== null && peers.length > config.maxPeers) {
    const form = `at most --max-peers (${config.maxPeers}) addresses`;
    throw bad(specOf("peers"), peersRaw, form, `expected ${form}, got ${peers.length}`);
  }
  if (service !== null && peersRaw !== null) {
    const fromEnv = service.env !== null;
    throw new ConfigError(
      "--service",
      service.env,
      "exactly one of --service and --peers",
      `expected exactly one of --service and --peers${
        fromEnv ? " (HIVE_SERVICE, HIVE_PEERS)" : ""
      }, got both`,
    );
  }
  if (service === null && peers === null) {
    throw new ConfigError(
      "--service",
      null,
      "exactly one of --service and --peers",
      "expected exactly one of --service NAME or --peers IP,IP,... " +
        "(or HIVE_SERVICE / HIVE_PEERS), got neither",
    );
  }
}

/** Secure by default: a secret, or the words that say the hive runs without one. */
function checkSecureDefault(read: FlagReader, config: Config): void {
  const insecure = insecureNoSecretOf(
    read.flag("insecure-no-secret") as unknown as boolean | undefined,
    read.env["HIVE_INSECURE_NO_SECRET"],
  );
  if (config.secret === null && insecure === null) {
    throw new ConfigError(
      "--secret-file",
      null,
      INSECURE_FORM,
      `expected ${INSECURE_FORM}, got neither: without a secret anyone who can reach the ` +
        "election port can take over the dataset",
    );
  }
  if (config.secret !== null && insecure !== null) {
    throw new ConfigError(
      "--insecure-no-secret",
      insecure.env,
      "no secret with --insecure-no-secret",
      "expected no secret with --insecure-no-secret, got a secret too (drop one of them)",
    );
  }
  if (config.redisPassword !== null && insecure !== null) {
    throw new ConfigError(
      "--insecure-no-secret",
      insecure.env,
      "a heartbeat secret whenever a redis password is set",
      "expected a heartbeat secret with --redis-password-file (REDIS_PASSWORD), got " +
        "--insecure-no-secret: the password would go to any address that claims to lead",
    );
  }
}

/** What `--secret-file` expects when it is missing. */
const INSECURE_FORM =
  "a secret (--secret-file PATH or HIVE_SECRET) or, for a local experiment, --insecure-no-secret";

/**
 * `--insecure-no-secret` (boolean flag) or `HIVE_INSECURE_NO_SECRET` (`1`/`true`/`yes`, or
 * `0`/`false`/`no` for off; anything else is an error). Null when off.
 */
function insecureNoSecretOf(
  flag: string | boolean | undefined,
  envValue: string | undefined,
): { env: string | null } | null {
  if (flag === true) return { env: null };
  if (envValue === undefined || envValue === "") return null;
  const v = envValue.trim().toLowerCase();
  if (["1", "true", "yes"].includes(v)) return { env: "HIVE_INSECURE_NO_SECRET" };
  if (["0", "false", "no"].includes(v)) return null;
  throw new ConfigError(
    "--insecure-no-secret",
    "HIVE_INSECURE_NO_SECRET",
    "1, true or yes (0, false or no for off)",
    `expected 1, true or yes (0, false or no for off), got ${
      JSON.stringify(envValue.slice(0, 80))
    }`,
  );
}

/**
 * The `--help` text: usage, then every flag with its environment variable and default.
 *
 * @example
 * ```ts
 * import { formatHelp } from "./config.ts";
 * console.log(formatHelp());
 * ```
 */
export function formatHelp(): string {
  const lines = [
    "redis-hive: high availability for non-persistent Redis on Kubernetes.",
    "",
    "Usage: redis-hive (--service NAME | --peers IP,IP,...) [flags]",
    "",
    "Each flag can also be set by the environment variable shown. A flag beats the environment,",
    "which beats the default; an environment variable set to the empty string counts as unset",
    "(except HIVE_SECRET, where it is an error). Bad values exit with status " +
    `${exitCodeForConfigError}.`,
    "",
    "Flags:",
  ];
  for (const f of FLAGS) {
    const names = f.short === undefined ? `--${f.name}` : `-${f.short}, --${f.name}`;
    lines.push(`  ${names}${f.value === null ? "" : ` ${f.value}`}`);
    lines.push(`      ${f.help}`);
    const facts = [
      ...(f.env === null ? [] : [`env ${f.env}`]),
      ...(f.defaultText === "" ? [] : [`default ${f.defaultText}`]),
    ];
    if (facts.length > 0) lines.push(`      (${facts.join("; ")})`);
  }
  return lines.join("\n") + "\n";
}
