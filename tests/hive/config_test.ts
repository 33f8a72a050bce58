import assert from "node:assert/strict";
import { FAILURE_TO_HEARTBEAT_MIN_RATIO } from "../../lib/election/election.ts";
import {
  type Config,
  ConfigError,
  DEFAULTS,
  exitCodeForConfigError,
  formatHelp,
  MAX_SECRET_CHARS,
  parseConfig,
} from "../../lib/hive/config.ts";

/** Reads no file: every test that reads one uses a real temporary file. */
function noFiles(path: string): string {
  throw new Error(`test reads no file, asked for ${path}`);
}

/** The secret the helpers add when a test gives none (the hive refuses to start without one). */
const TEST_SECRET = "test-secret";

/** `env` plus HIVE_SECRET, unless the test chose a secret or insecure mode itself. */
function withSecret(args: string[], env: Record<string, string>): Record<string, string> {
  const chose = "HIVE_SECRET" in env || "HIVE_INSECURE_NO_SECRET" in env ||
    args.includes("--secret-file") || args.includes("--insecure-no-secret") ||
    args.includes("--help");
  return chose ? env : { ...env, HIVE_SECRET: TEST_SECRET };
}

function parse(args: string[], env: Record<string, string> = {}, tty = false): Config {
  return parseConfig(args, withSecret(args, env), Deno.readTextFileSync, tty);
}

/** Asserts that parsing fails with a ConfigError naming `flag` (and `envVar`), and returns it. */
function rejects(
  args: string[],
  env: Record<string, string>,
  flag: string,
  envVar: string | null,
): ConfigError {
  let caught: unknown;
  try {
    parseConfig(args, withSecret(args, env), Deno.readTextFileSync);
  } catch (error) {
    caught = error;
  }
  assert.ok(
    caught instanceof ConfigError,
    `${args.join(" ")} ${JSON.stringify(env)}: no ConfigError`,
  );
  assert.equal(caught.flag, flag, caught.message);
  assert.equal(caught.envVar, envVar, caught.message);
  assert.ok(caught.message.startsWith(`${flag}`), caught.message);
  if (envVar !== null) assert.ok(caught.message.includes(envVar), caught.message);
  assert.ok(caught.expected.length > 0);
  return caught;
}

function withTempFile<T>(content: string, body: (path: string) => T): T {
  const path = Deno.makeTempFileSync({ prefix: "hive-config-test-" });
  try {
    Deno.writeTextFileSync(path, content);
    return body(path);
  } finally {
    Deno.removeSync(path);
  }
}

Deno.test("config: defaults apply when neither flag nor environment sets a value", () => {
  const config = parse(["--peers", "127.0.0.11"]);
  assert.deepEqual(
    config,
    {
      service: null,
      peers: ["127.0.0.11"],
      dnsServer: null,
      announceIp: null,
      bind: "0.0.0.0",
      electionPort: 7379,
      proxyPort: 6380,
      httpPort: 8080,
      redisHost: "127.0.0.1",
      redisPort: 6379,
      redisSocket: null,
      heartbeatMs: 200,
      failureMs: 1000,
      redisHangMs: 5000,
      dnsRefreshMs: 2000,
      maxClockSkewMs: 15000,
      proxyHoldMs: 3000,
      maxConnections: 10000,
      proxyEngine: "auto",
      proxyWorkers: null,
      maxPeers: 64,
      fence: "auto",
      secret: TEST_SECRET,
      insecureNoSecret: false,
      redisPassword: null,
      stateFile: null,
      sentinelPort: 26379,
      masterName: "mymaster",
      sentinelPassword: null,
      logLevel: "info",
      logFormat: "json",
      help: false,
    } satisfies Config,
  );
  assert.equal(DEFAULTS.electionPort, config.electionPort);
  assert.ok(DEFAULTS.failureMs >= FAILURE_TO_HEARTBEAT_MIN_RATIO * DEFAULTS.heartbeatMs);
  assert.equal(exitCodeForConfigError, 2);
});

Deno.test("config: the default log format is pretty on a terminal, JSON lines otherwise", () => {
  assert.equal(parse(["--peers", "127.0.0.11"], {}, true).logFormat, "pretty");
  assert.equal(parse(["--peers", "127.0.0.11"], {}, false).logFormat, "json");
  assert.equal(
    parse(["--peers", "127.0.0.11", "--log-format", "json"], {}, true).logFormat,
    "json",
  );
});

/** [flag, env var, Config field, flag value, env value, parsed flag value, parsed env value, default] */
const PRECEDENCE: [string, string, keyof Config, string, string, unknown, unknown, unknown][] = [
  ["service", "HIVE_SERVICE", "service", "a.b", "c", "a.b", "c", null],
  [
    "dns-server",
    "HIVE_DNS_SERVER",
    "dnsServer",
    "10.0.0.53:5353",
    "[::1]:53",
    {
      host: "10.0.0.53",
      port: 5353,
    },
    { host: "::1", port: 53 },
    null,
  ],
  ["announce-ip", "POD_IP", "announceIp", "127.0.0.11", "fd00::b", "127.0.0.11", "fd00::b", null],
  ["bind", "HIVE_BIND", "bind", "127.0.0.12", "::", "127.0.0.12", "::", "0.0.0.0"],
  ["election-port", "HIVE_ELECTION_PORT", "electionPort", "1", "65535", 1, 65535, 7379],
  ["proxy-port", "HIVE_PROXY_PORT", "proxyPort", "7000", "7001", 7000, 7001, 6380],
  ["http-port", "HIVE_HTTP_PORT", "httpPort", "9000", "9001", 9000, 9001, 8080],
  [
    "redis-host",
    "HIVE_REDIS_HOST",
    "redisHost",
    "localhost",
    "10.1.2.3",
    "localhost",
    "10.1.2.3",
    "127.0.0.1",
  ],
  ["redis-port", "HIVE_REDIS_PORT", "redisPort", "6400", "6401", 6400, 6401, 6379],
  [
    "redis-socket",
    "HIVE_REDIS_SOCKET",
    "redisSocket",
    "/a.sock",
    "/b.sock",
    "/a.sock",
    "/b.sock",
    null,
  ],
  ["heartbeat-ms", "HIVE_HEARTBEAT_MS", "heartbeatMs", "100", "50", 100, 50, 200],
  ["failure-ms", "HIVE_FAILURE_MS", "failureMs", "2000", "3000", 2000, 3000, 1000],
  ["redis-hang-ms", "HIVE_REDIS_HANG_MS", "redisHangMs", "800", "9000", 800, 9000, 5000],
  ["dns-refresh-ms", "HIVE_DNS_REFRESH_MS", "dnsRefreshMs", "500", "600", 500, 600, 2000],
  [
    "max-clock-skew-ms",
    "HIVE_MAX_CLOCK_SKEW_MS",
    "maxClockSkewMs",
    "1000",
    "2000",
    1000,
    2000,
    15000,
  ],
  ["proxy-hold-ms", "HIVE_PROXY_HOLD_MS", "proxyHoldMs", "10", "20", 10, 20, 3000],
  ["max-connections", "HIVE_MAX_CONNECTIONS", "maxConnections", "5", "6", 5, 6, 10000],
  ["proxy-engine", "HIVE_PROXY_ENGINE", "proxyEngine", "deno", "epoll", "deno", "epoll", "auto"],
  ["proxy-workers", "HIVE_PROXY_WORKERS", "proxyWorkers", "1", "4", 1, 4, null],
  ["max-peers", "HIVE_MAX_PEERS", "maxPeers", "3", "4", 3, 4, 64],
  ["log-level", "HIVE_LOG_LEVEL", "logLevel", "trace", "fatal", "trace", "fatal", "info"],
  ["log-format", "HIVE_LOG_FORMAT", "logFormat", "pretty", "json", "pretty", "json", "json"],
];

Deno.test("config: for every flag, the flag beats the environment, which beats the default", () => {
  for (
    const [flag, envVar, field, flagText, envText, flagValue, envValue, fallback] of PRECEDENCE
  ) {
    const base = ["--peers", "127.0.0.11"];
    const label = `--${flag} / ${envVar}`;
    assert.deepEqual(parse(base)[field], fallback, `${label}: default`);
    assert.deepEqual(parse(base, { [envVar]: "" })[field], fallback, `${label}: empty env`);
    if (flag === "service") continue; // a peer source: its precedence is checked below
    assert.deepEqual(parse(base, { [envVar]: envText })[field], envValue, `${label}: env`);
    assert.deepEqual(
      parse([...base, `--${flag}`, flagText], { [envVar]: envText })[field],
      flagValue,
      `${label}: flag over env`,
    );
  }
  assert.equal(parse(["--service", "a.b"], { HIVE_SERVICE: "c" }).service, "a.b");
  assert.equal(parse([], { HIVE_SERVICE: "c" }).service, "c");
  assert.deepEqual(parse([], { HIVE_PEERS: "10.0.0.1, 10.0.0.2" }).peers, ["10.0.0.1", "10.0.0.2"]);
  assert.deepEqual(
    parse(["--peers", "10.0.0.3"], { HIVE_PEERS: "10.0.0.1" }).peers,
    ["10.0.0.3"],
  );
});

Deno.test("config: a peer source given as a flag overrides the other source from the environment", () => {
  const flagPeers = parse(["--peers", "10.0.0.1"], { HIVE_SERVICE: "redis-hive" });
  assert.deepEqual([flagPeers.service, flagPeers.peers], [null, ["10.0.0.1"]]);
  const flagService = parse(["--service", "redis-hive"], { HIVE_PEERS: "not an ip" });
  assert.deepEqual([flagService.service, flagService.peers], ["redis-hive", null]);
});

Deno.test("config: --service and --peers: exactly one is required", () => {
  const both = rejects(["--service", "redis-hive", "--peers", "10.0.0.1"], {}, "--service", null);
  assert.match(both.message, /--peers/);
  assert.match(both.message, /both/);
  rejects([], { HIVE_SERVICE: "redis-hive", HIVE_PEERS: "10.0.0.1" }, "--service", "HIVE_SERVICE");
  const neither = rejects([], {}, "--service", null);
  assert.match(neither.message, /--peers/);
  assert.match(neither.message, /neither/);
  rejects(["--election-port", "7000"], { HIVE_SERVICE: "" }, "--service", null);
});

/** [flag, env var, bad value, a word the accepted form contains] */
const BAD_VALUES: [string, string, string, string][] = [
  ["service", "HIVE_SERVICE", "bad name!", "DNS name"],
  ["service", "HIVE_SERVICE", `${"a".repeat(64)}.svc`, "DNS name"],
  ["peers", "HIVE_PEERS", "10.0.0.1,,10.0.0.2", "IP addresses"],
  ["peers", "HIVE_PEERS", "10.0.0.1,redis-0", "IP addresses"],
  ["peers", "HIVE_PEERS", "10.0.0.1,10.0.0.1", "distinct"],
  ["peers", "HIVE_PEERS", "fd00::1,FD00:0::1", "distinct"],
  ["peers", "HIVE_PEERS", "fe80::1%eth0", "IP addresses"],
  ["dns-server", "HIVE_DNS_SERVER", "dns.local:53", "HOST:PORT"],
  ["dns-server", "HIVE_DNS_SERVER", "10.0.0.53:0", "HOST:PORT"],
  ["dns-server", "HIVE_DNS_SERVER", "10.0.0.53:", "HOST:PORT"],
  ["dns-server", "HIVE_DNS_SERVER", "[10.0.0.53]:53", "HOST:PORT"],
  ["dns-server", "HIVE_DNS_SERVER", "::1:53x", "HOST:PORT"],
  ["announce-ip", "POD_IP", "10.0.0", "IPv4 or IPv6"],
  ["announce-ip", "POD_IP", "010.0.0.1", "IPv4 or IPv6"],
  ["bind", "HIVE_BIND", "localhost", "IPv4 or IPv6"],
  ["election-port", "HIVE_ELECTION_PORT", "abc", "port 1..65535"],
  ["election-port", "HIVE_ELECTION_PORT", "0", "port 1..65535"],
  ["proxy-port", "HIVE_PROXY_PORT", "65536", "port 1..65535"],
  ["http-port", "HIVE_HTTP_PORT", "80.5", "port 1..65535"],
  ["redis-host", "HIVE_REDIS_HOST", "redis host", "IP address or a DNS name"],
  ["redis-port", "HIVE_REDIS_PORT", "-1", "port 1..65535"],
  ["redis-socket", "HIVE_REDIS_SOCKET", "run/redis.sock", "absolute path of at most 107 bytes"],
  ["redis-socket", "HIVE_REDIS_SOCKET", `/${"s".repeat(107)}`, "absolute path of at most 107"],
  ["heartbeat-ms", "HIVE_HEARTBEAT_MS", "0", "milliseconds"],
  ["failure-ms", "HIVE_FAILURE_MS", "1e3", "milliseconds"],
  ["redis-hang-ms", "HIVE_REDIS_HANG_MS", "499", "milliseconds, an integer 500..600000"],
  ["redis-hang-ms", "HIVE_REDIS_HANG_MS", "600001", "milliseconds, an integer 500..600000"],
  ["dns-refresh-ms", "HIVE_DNS_REFRESH_MS", "3600001", "milliseconds"],
  ["max-clock-skew-ms", "HIVE_MAX_CLOCK_SKEW_MS", "0", "milliseconds"],
  ["proxy-hold-ms", "HIVE_PROXY_HOLD_MS", " 100", "milliseconds"],
  ["max-connections", "HIVE_MAX_CONNECTIONS", "0", "integer 1.."],
  ["proxy-engine", "HIVE_PROXY_ENGINE", "uring", "auto, epoll, deno"],
  ["proxy-engine", "HIVE_PROXY_ENGINE", "Deno", "auto, epoll, deno"],
  ["proxy-workers", "HIVE_PROXY_WORKERS", "0", "integer 1..16"],
  ["proxy-workers", "HIVE_PROXY_WORKERS", "17", "integer 1..16"],
  ["max-peers", "HIVE_MAX_PEERS", "many", "integer 1.."],
  ["log-level", "HIVE_LOG_LEVEL", "warn", "trace, debug, info, warning, error, fatal"],
  ["log-format", "HIVE_LOG_FORMAT", "text", "json, pretty"],
];

Deno.test("config: every bad value names its flag, the accepted form and, from the environment, the variable", () => {
  for (const [flag, envVar, value, form] of BAD_VALUES) {
    const base = flag === "service" || flag === "peers" ? [] : ["--peers", "127.0.0.11"];
    const viaFlag = rejects([...base, `--${flag}=${value}`], {}, `--${flag}`, null);
    assert.ok(viaFlag.expected.includes(form), `${viaFlag.expected} lacks ${form}`);
    assert.ok(viaFlag.message.includes(form), viaFlag.message);
    assert.match(viaFlag.message, /, got /);
    const viaEnv = rejects(base, { [envVar]: value }, `--${flag}`, envVar);
    assert.ok(viaEnv.message.includes(form), viaEnv.message);
  }
});

Deno.test("config: the documented example message", () => {
  const error = rejects(
    ["--peers", "10.0.0.1", "--election-port", "abc"],
    {},
    "--election-port",
    null,
  );
  assert.equal(error.message, `--election-port: expected an integer port 1..65535, got "abc"`);
  const fromEnv = rejects(
    ["--peers", "10.0.0.1"],
    { HIVE_ELECTION_PORT: "abc" },
    "--election-port",
    "HIVE_ELECTION_PORT",
  );
  assert.equal(
    fromEnv.message,
    `--election-port (from env HIVE_ELECTION_PORT): expected an integer port 1..65535, got "abc"`,
  );
});

Deno.test("config: addresses are canonical; the DNS server port defaults to 53", () => {
  const config = parse([
    "--peers",
    "FD00:0:0::1 ,10.0.0.2",
    "--announce-ip",
    "FD00::0:1",
    "--dns-server",
    "FD00::53",
  ]);
  assert.deepEqual(config.peers, ["fd00::1", "10.0.0.2"]);
  assert.equal(config.announceIp, "fd00::1");
  assert.deepEqual(config.dnsServer, { host: "fd00::53", port: 53 });
  assert.deepEqual(parse(["--peers", "10.0.0.1", "--dns-server", "10.0.0.53"]).dnsServer, {
    host: "10.0.0.53",
    port: 53,
  });
  assert.deepEqual(parse(["--peers", "10.0.0.1", "--dns-server", "[::1]"]).dnsServer, {
    host: "::1",
    port: 53,
  });
});

Deno.test("config: --failure-ms must be at least 3 heartbeats; the error names the flag that was set", () => {
  const ok = parse(["--peers", "10.0.0.1", "--heartbeat-ms", "100", "--failure-ms", "300"]);
  assert.deepEqual([ok.heartbeatMs, ok.failureMs], [100, 300]);
  const failure = rejects(
    ["--peers", "10.0.0.1", "--heartbeat-ms", "100", "--failure-ms", "299"],
    {},
    "--failure-ms",
    null,
  );
  assert.match(failure.message, /--heartbeat-ms/);
  rejects(["--peers", "10.0.0.1"], { HIVE_FAILURE_MS: "500" }, "--failure-ms", "HIVE_FAILURE_MS");
  const heartbeat = rejects(
    ["--peers", "10.0.0.1", "--heartbeat-ms", "334"],
    {},
    "--heartbeat-ms",
    null,
  );
  assert.match(heartbeat.message, /--failure-ms/);
});

Deno.test("config: the peers list is bounded by --max-peers", () => {
  const peers = ["10.0.0.1", "10.0.0.2", "10.0.0.3"].join(",");
  assert.equal(parse(["--peers", peers, "--max-peers", "3"]).peers?.length, 3);
  const error = rejects(["--peers", peers, "--max-peers", "2"], {}, "--peers", null);
  assert.match(error.message, /--max-peers/);
  rejects(["--max-peers", "2"], { HIVE_PEERS: peers }, "--peers", "HIVE_PEERS");
});

Deno.test("config: the proxy and HTTP ports must differ", () => {
  const error = rejects(["--peers", "10.0.0.1", "--http-port", "6380"], {}, "--http-port", null);
  assert.match(error.message, /--proxy-port/);
});

Deno.test("config: bad command lines name the flag", () => {
  rejects(["--peers", "10.0.0.1", "--bogus"], {}, "--bogus", null);
  rejects(["--peers", "10.0.0.1", "-x"], {}, "-x", null);
  rejects(["--peers"], {}, "--peers", null);
  const dash = rejects(["--election-port", "--peers", "10.0.0.1"], {}, "--election-port", null);
  assert.match(dash.message, /--election-port=VALUE/);
  rejects(
    ["--peers", "10.0.0.1", "--election-port", "1", "--election-port", "2"],
    {},
    "--election-port",
    null,
  );
  rejects(["--peers", "10.0.0.1", "--help=yes"], {}, "--help", null);
  const positional = rejects(["--peers", "10.0.0.1", "extra"], {}, "arguments", null);
  assert.match(positional.message, /"extra"/);
});

Deno.test("config: --help short-circuits: other values are not validated", () => {
  assert.equal(parse(["--help"]).help, true);
  assert.equal(parse(["-h"], { HIVE_ELECTION_PORT: "abc" }).help, true);
  const help = parseConfig(["--help", "--election-port", "abc"], {}, noFiles);
  assert.equal(help.help, true);
  assert.equal(help.electionPort, DEFAULTS.electionPort);
  assert.equal(parse(["--peers", "10.0.0.1"]).help, false);
});

Deno.test("config: --secret-file is read and trimmed; HIVE_SECRET holds the secret itself", () => {
  withTempFile("  s3cret\n\n", (path) => {
    assert.equal(parse(["--peers", "10.0.0.1", "--secret-file", path]).secret, "s3cret");
    assert.equal(
      parse(["--peers", "10.0.0.1", "--secret-file", path], { HIVE_SECRET: "from-env" }).secret,
      "s3cret",
    );
  });
  assert.equal(parse(["--peers", "10.0.0.1"], { HIVE_SECRET: " from env " }).secret, " from env ");
  withTempFile(" \n\t\n", (path) => {
    const error = rejects(
      ["--peers", "10.0.0.1", "--secret-file", path],
      {},
      "--secret-file",
      null,
    );
    assert.match(error.message, /empty/);
  });
  const missing = `${Deno.makeTempDirSync()}/absent`;
  try {
    const error = rejects(
      ["--peers", "10.0.0.1", "--secret-file", missing],
      {},
      "--secret-file",
      null,
    );
    assert.ok(error.message.includes(missing), error.message);
  } finally {
    Deno.removeSync(missing.slice(0, -"/absent".length));
  }
  const empty = rejects(
    ["--peers", "10.0.0.1"],
    { HIVE_SECRET: "" },
    "--secret-file",
    "HIVE_SECRET",
  );
  assert.match(empty.message, /non-empty/);
  const long = "k".repeat(MAX_SECRET_CHARS + 1);
  const tooLong = rejects(
    ["--peers", "10.0.0.1"],
    { HIVE_SECRET: long },
    "--secret-file",
    "HIVE_SECRET",
  );
  assert.ok(!tooLong.message.includes("kkkk"), "a secret is never quoted in a message");
  assert.equal(
    parse(["--peers", "10.0.0.1"], { HIVE_SECRET: "k".repeat(MAX_SECRET_CHARS) }).secret?.length,
    MAX_SECRET_CHARS,
  );
});

Deno.test("config: --redis-password-file is read and trimmed; REDIS_PASSWORD holds the password", () => {
  withTempFile("pa55\n", (path) => {
    const config = parse(["--peers", "10.0.0.1", "--redis-password-file", path], {
      REDIS_PASSWORD: "other",
    });
    assert.equal(config.redisPassword, "pa55");
  });
  assert.equal(
    parse(["--peers", "10.0.0.1"], { REDIS_PASSWORD: "env-pw" }).redisPassword,
    "env-pw",
  );
  assert.equal(parse(["--peers", "10.0.0.1"], { REDIS_PASSWORD: "" }).redisPassword, null);
  withTempFile("", (path) => {
    rejects(
      ["--peers", "10.0.0.1", "--redis-password-file", path],
      {},
      "--redis-password-file",
      null,
    );
  });
});

/** The flags the product promises (README's flag table), with their environment variables and defaults. */
const DOCUMENTED_FLAGS: [string, string | null, string | null][] = [
  ["--service", "HIVE_SERVICE", null],
  ["--peers", "HIVE_PEERS", null],
  ["--dns-server", "HIVE_DNS_SERVER", null],
  ["--announce-ip", "POD_IP", null],
  ["--bind", "HIVE_BIND", "0.0.0.0"],
  ["--election-port", "HIVE_ELECTION_PORT", "7379"],
  ["--proxy-port", "HIVE_PROXY_PORT", "6380"],
  ["--http-port", "HIVE_HTTP_PORT", "8080"],
  ["--redis-host", "HIVE_REDIS_HOST", "127.0.0.1"],
  ["--redis-port", "HIVE_REDIS_PORT", "6379"],
  ["--redis-socket", "HIVE_REDIS_SOCKET", "none"],
  ["--heartbeat-ms", "HIVE_HEARTBEAT_MS", "200"],
  ["--failure-ms", "HIVE_FAILURE_MS", "1000"],
  ["--redis-hang-ms", "HIVE_REDIS_HANG_MS", "5000"],
  ["--dns-refresh-ms", "HIVE_DNS_REFRESH_MS", "2000"],
  ["--max-clock-skew-ms", "HIVE_MAX_CLOCK_SKEW_MS", "15000"],
  ["--proxy-hold-ms", "HIVE_PROXY_HOLD_MS", "3000"],
  ["--max-connections", "HIVE_MAX_CONNECTIONS", "10000"],
  ["--proxy-engine", "HIVE_PROXY_ENGINE", "auto"],
  ["--proxy-workers", "HIVE_PROXY_WORKERS", "one per CPU the container may use"],
  ["--max-peers", "HIVE_MAX_PEERS", "64"],
  ["--secret-file", "HIVE_SECRET", null],
  ["--insecure-no-secret", "HIVE_INSECURE_NO_SECRET", "off"],
  ["--redis-password-file", "REDIS_PASSWORD", null],
  ["--sentinel-port", "HIVE_SENTINEL_PORT", "26379"],
  ["--master-name", "HIVE_MASTER_NAME", "mymaster"],
  ["--sentinel-password-file", "HIVE_SENTINEL_PASSWORD", null],
  ["--log-level", "HIVE_LOG_LEVEL", "info"],
  ["--log-format", "HIVE_LOG_FORMAT", "json"],
  ["--help", null, null],
];

Deno.test("config: --help text lists every flag with its environment variable and default", () => {
  const help = formatHelp();
  const lines = help.split("\n");
  for (const [flag, envVar, fallback] of DOCUMENTED_FLAGS) {
    const at = lines.findIndex((line) => new RegExp(`^  (-\\w, )?${flag}( |$)`).test(line));
    assert.ok(at >= 0, `help lacks ${flag}`);
    // The flag's block: its line and the indented lines after it.
    const block = [lines[at]];
    for (let i = at + 1; i < lines.length && lines[i]?.startsWith("      "); i++) {
      block.push(lines[i]);
    }
    const text = block.join("\n");
    if (envVar !== null) assert.ok(text.includes(`env ${envVar}`), `${flag}: ${text}`);
    if (fallback !== null) assert.ok(text.includes(`default ${fallback}`), `${flag}: ${text}`);
    // Every flag in the help is one the parser knows (it wants a value, it is not unknown).
    if (
      flag !== "--help" && flag !== "--peers" && flag !== "--service" &&
      flag !== "--insecure-no-secret"
    ) {
      const caught = (() => {
        try {
          parseConfig(["--peers", "10.0.0.1", flag], {}, noFiles);
        } catch (error) {
          return error;
        }
        return null;
      })();
      assert.ok(caught instanceof ConfigError && !caught.message.includes("unknown"), `${flag}`);
    }
  }
});

/**
 * Runs `deno run --allow-env --allow-read main.ts <args>` from the project root in a clean
 * environment (only what deno needs, plus `extraEnv`; no --allow-net: a hive that went on to
 * start would fail with another message and status 1).
 */
async function runMain(
  args: string[],
  extraEnv: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: Record<string, string> = {};
  for (const name of ["PATH", "HOME", "DENO_DIR", "XDG_CACHE_HOME"]) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-env", "--allow-read", "main.ts", ...args],
    cwd: new URL("../..", import.meta.url),
    env: { ...env, ...extraEnv },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return {
    code: output.code,
    stdout: text.decode(output.stdout),
    stderr: text.decode(output.stderr),
  };
}

Deno.test("main.ts: a bad flag exits with status 2 and a message naming the flag", async () => {
  const output = await runMain(["--election-port", "abc"]);
  assert.equal(output.code, exitCodeForConfigError, output.stderr);
  assert.match(output.stderr, /^redis-hive: --election-port: .*"abc"/m);
  assert.equal(output.stdout, "");

  const help = await runMain(["--help"]);
  assert.equal(help.code, 0, help.stderr);
  assert.equal(help.stdout.trimEnd(), formatHelp().trimEnd());
});

Deno.test("main.ts: --proxy-engine epoll without --allow-ffi exits with status 2 naming the flag", async () => {
  const base = ["--peers", "127.0.0.1", "--insecure-no-secret"];
  for (
    const [args, extraEnv] of [
      [["--proxy-engine", "epoll"], {}],
      [[], { HIVE_PROXY_ENGINE: "epoll" }],
    ] as const
  ) {
    const output = await runMain([...base, ...args], extraEnv);
    assert.equal(output.code, exitCodeForConfigError, output.stderr);
    assert.match(output.stderr, /^redis-hive: --proxy-engine: .*--allow-ffi/m);
    assert.equal(output.stdout, "");
  }
});

Deno.test("config: --state-file / HIVE_STATE_FILE names the hive's state file", () => {
  assert.equal(parse(["--peers", "10.0.0.1"], {}).stateFile, null);
  assert.equal(
    parse(["--peers", "10.0.0.1"], { HIVE_STATE_FILE: "/var/run/hive/state.json" }).stateFile,
    "/var/run/hive/state.json",
  );
  assert.equal(
    parse(["--peers", "10.0.0.1", "--state-file", "/tmp/s.json"], { HIVE_STATE_FILE: "/x" })
      .stateFile,
    "/tmp/s.json",
  );
});

Deno.test("config: secure by default: no secret is refused unless --insecure-no-secret says so", () => {
  const none = (() => {
    try {
      parseConfig(["--peers", "10.0.0.1"], {}, noFiles);
    } catch (error) {
      return error;
    }
    return null;
  })();
  assert.ok(none instanceof ConfigError, "a hive without a secret must not start");
  assert.equal(none.flag, "--secret-file");
  assert.match(none.message, /--insecure-no-secret/);
  assert.match(none.message, /take over/);

  const flag = parseConfig(["--peers", "10.0.0.1", "--insecure-no-secret"], {}, noFiles);
  assert.equal(flag.secret, null);
  assert.equal(flag.insecureNoSecret, true);
  for (const yes of ["1", "true", "YES"]) {
    const c = parseConfig(["--peers", "10.0.0.1"], { HIVE_INSECURE_NO_SECRET: yes }, noFiles);
    assert.equal(c.insecureNoSecret, true, yes);
  }
  rejects(["--peers", "10.0.0.1"], { HIVE_INSECURE_NO_SECRET: "0" }, "--secret-file", null);
  rejects(
    ["--peers", "10.0.0.1"],
    { HIVE_INSECURE_NO_SECRET: "maybe" },
    "--insecure-no-secret",
    "HIVE_INSECURE_NO_SECRET",
  );
  // Contradictions are refused: a secret and the insecure flag; a redis password without a secret
  // (it would be sent to whoever claims to lead).
  rejects(
    ["--peers", "10.0.0.1", "--insecure-no-secret"],
    { HIVE_SECRET: "s" },
    "--insecure-no-secret",
    null,
  );
  const password = rejects(
    ["--peers", "10.0.0.1", "--insecure-no-secret"],
    { REDIS_PASSWORD: "pw" },
    "--insecure-no-secret",
    null,
  );
  assert.match(password.message, /password/);
  assert.equal(parse(["--peers", "10.0.0.1"]).insecureNoSecret, false);
});

Deno.test("main.ts: without a secret the hive exits with status 2 naming --secret-file", async () => {
  const output = await runMain(["--peers", "127.0.0.1"]);
  assert.equal(output.code, exitCodeForConfigError, output.stderr);
  assert.match(output.stderr, /^redis-hive: --secret-file: .*--insecure-no-secret/m);
});
