/**
 * A local redis-hive cluster of real processes: N nodes, each a `redis-server` and a hive
 * (`deno run` with the production permission flags of `deno task start`, read from deno.json)
 * on its own loopback address, with static peers or DNS discovery through a real dnsmasq.
 *
 * Every node uses the same ports on its own address, as pods do. The cluster can kill and
 * restart a node's redis (parked or plain), kill and restart a hive, kill a whole node, add a
 * node, read every node's `/status` and redis `INFO replication`, and wait for a settled state.
 * {@link LocalCluster.stop} kills every process it started (also after a failure), and an
 * `unload` listener kills whatever is still alive when the process exits, so nothing is orphaned.
 *
 * Used by the end-to-end tests, `deno task bench failover`, and the future `deno task dev`; it
 * imports only test fixtures that have no test dependencies (real redis-server, real dnsmasq).
 *
 * @example
 * ```ts
 * import { LocalCluster } from "./local_cluster.ts";
 * await using cluster = await LocalCluster.start({
 *   addresses: ["127.0.3.11", "127.0.3.12", "127.0.3.13"],
 *   discovery: { kind: "dns", listen: "127.0.3.2", port: 15353 },
 * });
 * const settled = await cluster.waitForSettled();
 * console.log(settled.leader, settled.followers);
 * await cluster.node(settled.leader).killRedis();
 * ```
 */

import { randomSecret } from "./secret.ts";
import type { HiveStatus } from "../lib/http/hive_status.ts";
import { parseInfo } from "../lib/redis/redis_info.ts";
import { type Dnsmasq, startDnsmasq } from "./dnsmasq.ts";
import { type RedisProcess, startRedis } from "./redis_server.ts";
import { sleep } from "./wait.ts";
import { respCommand, type RespValue } from "./resp_client.ts";
import { RespConnection } from "./resp_connection.ts";

/** How long a new hive process may take to answer `/healthz` (deno start-up included). */
export const HIVE_START_TIMEOUT_MS = 30_000;
/** How long a hive may take to exit after SIGTERM/SIGINT before it gets SIGKILL. */
export const HIVE_STOP_TIMEOUT_MS = 5_000;
/** How long a killed process may take to be reaped. */
export const PROCESS_EXIT_TIMEOUT_MS = 5_000;
/** Most log lines kept per hive process (the oldest are dropped). */
export const HIVE_LOG_MAX_LINES = 5_000;
/** Deadline of one HTTP request to a hive (`/status`, `/healthz`). */
export const STATUS_TIMEOUT_MS = 2_000;
/** Deadline of one redis command sent by the cluster. */
export const REDIS_COMMAND_TIMEOUT_MS = 2_000;
/** Default bound of {@link LocalCluster.waitForSettled}. */
export const SETTLE_TIMEOUT_MS = 20_000;
/** Most nodes one cluster runs. */
export const MAX_NODES = 32;
/** Keys per `MGET` when reading keys back. */
export const KEY_READ_BATCH = 1_000;
/**
 * Attempts at starting a process (redis, hive, dnsmasq) that failed with "address already in
 * use": DNS clients bind random UDP ports on the wildcard address for a moment, so a fixed
 * port on a loopback address is now and then taken for a few milliseconds.
 */
export const ADDRESS_IN_USE_ATTEMPTS = 3;
/** Pause between two such attempts. */
export const ADDRESS_IN_USE_RETRY_MS = 200;
/** Default headless Service name served by dnsmasq. */
export const DEFAULT_SERVICE_NAME = "redis-hive";

/** The ports every node uses on its own address. */
export interface NodePorts {
  redis: number;
  election: number;
  proxy: number;
  http: number;
  /** The hive's Sentinel endpoint (`--sentinel-port`; 0 = off). */
  sentinel: number;
}

/**
 * Default ports: not the product defaults, so a cluster never collides with a process that
 * listens on a wildcard address on 6379/7379/6380/8080.
 */
export const DEFAULT_NODE_PORTS: Readonly<NodePorts> = {
  redis: 16379,
  election: 17379,
  proxy: 16380,
  http: 18080,
  sentinel: 36379,
};

/** How the hives find each other. */
export type DiscoveryOptions =
  | { kind: "static" }
  | {
    kind: "dns";
    /** Loopback address dnsmasq listens on (not a node address). */
    listen: string;
    /** Its UDP/TCP port. */
    port: number;
    /** The headless name (default {@link DEFAULT_SERVICE_NAME}). */
    service?: string;
  };

/** Options of {@link LocalCluster.start}. */
export interface LocalClusterOptions {
  /** One distinct IPv4 loopback address per node (at most {@link MAX_NODES}). */
  addresses: readonly string[];
  /** Static peers (`--peers`) or DNS (`--service` via a real dnsmasq). */
  discovery: DiscoveryOptions;
  /** Ports shared by every node (default {@link DEFAULT_NODE_PORTS}). */
  ports?: Partial<NodePorts>;
  /** Start every redis parked (`--replicaof 127.0.0.1 1`), as the manifests do (default true). */
  parked?: boolean;
  /** More hive flags, e.g. `["--log-level", "debug"]`. */
  hiveArgs?: readonly string[];
  /**
   * The heartbeat secret every hive gets (HIVE_SECRET); default a fresh {@link randomSecret}.
   * `null` runs the cluster without one (`--insecure-no-secret`), as only tests of that mode do.
   */
  secret?: string | null;
  /**
   * Words put before the hive's command, e.g. `["prlimit", "--nofile=256"]` to run it with a
   * lower descriptor limit (default none).
   */
  hiveCommandPrefix?: readonly string[];
  /**
   * Also serve each redis on a Unix socket in the cluster's state directory and pass it to the
   * hive as `--redis-socket`, as the Kubernetes manifests do (default false).
   */
  redisSocket?: boolean;
  /** Called with every line a hive writes (stdout and stderr), e.g. to print it. */
  onHiveLine?: (address: string, line: string) => void;
  /**
   * The `deno run` flags of every hive instead of the production ones of `deno task start`
   * (to measure a variant, e.g. other `--v8-flags`); default {@link productionDenoFlags}.
   */
  denoFlags?: readonly string[];
}

/** One hive process (`deno run <production flags> main.ts ...`). */
export class HiveProcess {
  readonly address: string;
  readonly pid: number;
  #child: Deno.ChildProcess;
  #status: Promise<Deno.CommandStatus>;
  #exit: Deno.CommandStatus | null = null;
  #lines: string[];
  #readers: Promise<void>;

  /** Use {@link HiveProcess.spawn}. */
  private constructor(
    address: string,
    child: Deno.ChildProcess,
    lines: string[],
    onLine: ((line: string) => void) | undefined,
  ) {
    this.address = address;
    this.#child = child;
    this.pid = child.pid;
    this.#lines = lines;
    this.#status = child.status.then((s) => {
      this.#exit = s;
      return s;
    });
    const keep = (line: string) => {
      lines.push(line);
      if (lines.length > HIVE_LOG_MAX_LINES) lines.splice(0, lines.length - HIVE_LOG_MAX_LINES);
      onLine?.(line);
    };
    this.#readers = Promise.all([
      readLines(child.stdout, keep),
      readLines(child.stderr, (l) => keep(`stderr: ${l}`)),
    ]).then(() => {});
  }

  /**
   * Spawns `deno run <denoFlags> main.ts <args>` in the project root and returns at once (see
   * {@link LocalNode.startHive} for the wait until it answers). Log lines go to `lines`.
   */
  static spawn(
    address: string,
    denoFlags: readonly string[],
    args: readonly string[],
    lines: string[],
    onLine?: (line: string) => void,
    launch: { env?: Record<string, string>; prefix?: readonly string[] } = {},
  ): HiveProcess {
    const command = [...(launch.prefix ?? []), Deno.execPath(), "run", ...denoFlags, MAIN_PATH];
    const child = new Deno.Command(command[0]!, {
      args: [...command.slice(1), ...args],
      cwd: PROJECT_ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1", ...launch.env },
    }).spawn();
    return new HiveProcess(address, child, lines, onLine);
  }

  /** True while the process has not exited. */
  get running(): boolean {
    return this.#exit === null;
  }

  /** The exit status, or null while running. */
  get exitStatus(): Deno.CommandStatus | null {
    return this.#exit;
  }

  /** The log lines kept so far (this process and earlier ones of the same node). */
  get lines(): readonly string[] {
    return this.#lines;
  }

  /**
   * Sends `signal` and waits until the process exited and its output was read. SIGTERM and
   * SIGINT escalate to SIGKILL after {@link HIVE_STOP_TIMEOUT_MS}. Idempotent.
   */
  async kill(signal: "SIGKILL" | "SIGTERM" | "SIGINT" = "SIGKILL"): Promise<Deno.CommandStatus> {
    if (this.#exit === null) {
      try {
        this.#child.kill(signal);
      } catch { /* exited meanwhile */ }
      const graceMs = signal === "SIGKILL" ? PROCESS_EXIT_TIMEOUT_MS : HIVE_STOP_TIMEOUT_MS;
      if (!await settlesWithin(this.#status, graceMs)) {
        if (signal === "SIGKILL") {
          throw new Error(`hive ${this.address} (pid ${this.pid}) did not exit after SIGKILL`);
        }
        try {
          this.#child.kill("SIGKILL");
        } catch { /* exited meanwhile */ }
        if (!await settlesWithin(this.#status, PROCESS_EXIT_TIMEOUT_MS)) {
          throw new Error(`hive ${this.address} (pid ${this.pid}) did not exit after SIGKILL`);
        }
      }
    }
    await this.#readers;
    return await this.#status;
  }

  /** Sends SIGKILL without waiting (for the exit handler). */
  killNow(): void {
    if (this.#exit !== null) return;
    try {
      this.#child.kill("SIGKILL");
    } catch { /* gone */ }
  }
}

/** One node: a redis-server and a hive on one loopback address. */
export class LocalNode {
  readonly address: string;
  readonly ports: Readonly<NodePorts>;
  /** The current redis process, or null while none runs. */
  redis: RedisProcess | null = null;
  /** The current hive process, or null while none was started. */
  hive: HiveProcess | null = null;
  /** Every line every hive process of this node wrote (bounded). */
  readonly hiveLines: string[] = [];
  /** The hive's `--state-file`. */
  readonly stateFile: string;
  /** Its redis's Unix socket (`--unixsocket` and the hive's `--redis-socket`), or null. */
  readonly redisSocket: string | null;
  #cluster: LocalCluster;
  #redisLogs: string[] = [];

  /** Use {@link LocalCluster.start} or {@link LocalCluster.addNode}. */
  constructor(cluster: LocalCluster, address: string, ports: NodePorts, stateDir: string) {
    this.#cluster = cluster;
    this.address = address;
    this.ports = ports;
    this.stateFile = `${stateDir}/state-${address}.json`;
    this.redisSocket = cluster.redisSocket ? `${stateDir}/redis-${address}.sock` : null;
  }

  /** True when both processes run. */
  get up(): boolean {
    return this.redisRunning && this.hiveRunning;
  }

  /** True while the redis process runs. */
  get redisRunning(): boolean {
    return this.redis?.running ?? false;
  }

  /** True while the hive process runs. */
  get hiveRunning(): boolean {
    return this.hive?.running ?? false;
  }

  /** Starts this node's redis (empty), parked or as a plain master; it must not run. */
  async startRedis(opts: { parked: boolean }): Promise<void> {
    if (this.redisRunning) throw new Error(`redis of ${this.address} already runs`);
    await this.#retireRedis();
    const socket = this.redisSocket;
    this.redis = await retryOnAddressInUse(() =>
      startRedis({
        host: this.address,
        port: this.ports.redis,
        parked: opts.parked,
        extraArgs: socket === null ? [] : ["--unixsocket", socket, "--unixsocketperm", "700"],
      })
    );
  }

  /** SIGKILLs this node's redis (no-op when none runs); its log is kept for {@link report}. */
  async killRedis(): Promise<void> {
    await this.redis?.kill("SIGKILL");
  }

  /**
   * SIGKILLs this node's redis and starts a new, empty one on the same address after
   * `delayMs` (default 0), parked or as a plain master. Returns the milliseconds from the kill
   * to the new process answering.
   */
  async restartRedis(opts: { parked: boolean; delayMs?: number }): Promise<number> {
    if (this.redis === null) throw new Error(`redis of ${this.address} was never started`);
    const t0 = performance.now();
    await this.redis.kill("SIGKILL");
    if ((opts.delayMs ?? 0) > 0) await sleep(opts.delayMs ?? 0);
    const redis = this.redis;
    await retryOnAddressInUse(() => redis.spawn(opts.parked));
    return performance.now() - t0;
  }

  /** Spawns this node's hive and waits until `/healthz` answers 200; it must not run. */
  async startHive(): Promise<void> {
    if (this.hiveRunning) throw new Error(`hive of ${this.address} already runs`);
    await retryOnAddressInUse(() => this.#spawnHive());
  }

  async #spawnHive(): Promise<void> {
    const firstLine = this.hiveLines.length;
    const hive = HiveProcess.spawn(
      this.address,
      this.#cluster.denoFlags,
      this.#cluster.hiveArgsFor(this),
      this.hiveLines,
      this.#cluster.onHiveLine === undefined
        ? undefined
        : (line) => this.#cluster.onHiveLine?.(this.address, line),
      {
        env: this.#cluster.secret === null ? {} : { HIVE_SECRET: this.#cluster.secret },
        prefix: this.#cluster.hiveCommandPrefix,
      },
    );
    this.hive = hive;
    const deadline = Date.now() + HIVE_START_TIMEOUT_MS;
    let problem: string | null = null;
    while (!await this.healthy()) {
      if (!hive.running) problem = `exited (${JSON.stringify(hive.exitStatus)})`;
      else if (Date.now() > deadline) problem = `no /healthz in ${HIVE_START_TIMEOUT_MS} ms`;
      if (problem !== null) {
        await hive.kill("SIGKILL");
        const lines = this.hiveLines.slice(firstLine).join("\n");
        throw new Error(`hive ${this.address} did not start: ${problem}; its output:\n${lines}`);
      }
      await sleep(50);
    }
  }

  /** Stops this node's hive with `signal` (default SIGKILL); its redis lives on. */
  async killHive(signal: "SIGKILL" | "SIGTERM" | "SIGINT" = "SIGKILL"): Promise<void> {
    await this.hive?.kill(signal);
  }

  /** Loses the whole node: SIGKILLs the hive and the redis at once (a pod lost). */
  async kill(): Promise<void> {
    // Both signals leave in the same tick (each kill() signals before its first await).
    await Promise.all([this.hive?.kill("SIGKILL"), this.redis?.kill("SIGKILL")]);
  }

  /** Starts a lost node again: an empty redis (parked unless told) and a hive. */
  async restart(opts: { parked?: boolean } = {}): Promise<void> {
    await this.kill();
    await this.startRedis({ parked: opts.parked ?? this.#cluster.parked });
    await this.startHive();
  }

  /** `GET /status`, parsed; throws when the hive does not answer. */
  async status(): Promise<HiveStatus> {
    const res = await fetch(`http://${this.address}:${this.ports.http}/status`, {
      signal: AbortSignal.timeout(STATUS_TIMEOUT_MS),
    });
    if (!res.ok) {
      await res.body?.cancel();
      throw new Error(`hive ${this.address} /status: HTTP ${res.status}`);
    }
    return await res.json() as HiveStatus;
  }

  /** True when `GET /healthz` answers 200 (false when it does not answer). */
  async healthy(): Promise<boolean> {
    try {
      const res = await fetch(`http://${this.address}:${this.ports.http}/healthz`, {
        signal: AbortSignal.timeout(STATUS_TIMEOUT_MS),
      });
      await res.body?.cancel();
      return res.ok;
    } catch {
      return false;
    }
  }

  /** One command to this node's redis, directly (not through the proxy). */
  redisCommand(...args: string[]): Promise<RespValue> {
    return respCommand(this.address, this.ports.redis, args, {
      timeoutMs: REDIS_COMMAND_TIMEOUT_MS,
    });
  }

  /** One command through this node's master proxy. */
  proxyCommand(...args: string[]): Promise<RespValue> {
    return respCommand(this.address, this.ports.proxy, args, {
      timeoutMs: REDIS_COMMAND_TIMEOUT_MS,
    });
  }

  /**
   * Writes every key (its value is the key itself) through this node's master proxy, one
   * acknowledged `SET` at a time on one connection; throws on the first failure.
   */
  async writeThroughProxy(keys: readonly string[]): Promise<void> {
    const conn = await RespConnection.open(this.address, this.ports.proxy);
    try {
      for (const key of keys) {
        const reply = await conn.command(["SET", key, key]);
        if (reply !== "OK") throw new Error(`SET ${key} through ${this.address}: ${reply}`);
      }
    } finally {
      conn.close();
    }
  }

  /** The keys of `keys` that this node's redis does not hold with their value (the key). */
  async missingKeys(keys: readonly string[]): Promise<string[]> {
    const missing: string[] = [];
    const conn = await RespConnection.open(this.address, this.ports.redis);
    try {
      for (let i = 0; i < keys.length; i += KEY_READ_BATCH) {
        const batch = keys.slice(i, i + KEY_READ_BATCH);
        const values = await conn.command(["MGET", ...batch]);
        if (!Array.isArray(values) || values.length !== batch.length) {
          throw new Error(`MGET on ${this.address}: unexpected reply`);
        }
        batch.forEach((key, j) => {
          if (values[j] !== key) missing.push(key);
        });
      }
    } finally {
      conn.close();
    }
    return missing;
  }

  /** `INFO <section>` of this node's redis, parsed. */
  async redisInfo(section = "replication"): Promise<Map<string, string>> {
    return parseInfo(String(await this.redisCommand("INFO", section)));
  }

  /** Recent hive log lines and redis log of this node, for failure reports. */
  async report(maxLines = 80): Promise<string> {
    const redisLog = [...this.#redisLogs, (await this.redis?.readLog()) ?? ""].join("\n");
    return [
      `==== node ${this.address}: hive ${
        this.hive === null
          ? "never started"
          : `pid ${this.hive.pid} ${this.hive.running ? "running" : "exited"}`
      }, redis ${this.redisRunning ? `pid ${this.redis?.pid}` : "down"}`,
      `---- hive log (last ${maxLines} lines)`,
      ...this.hiveLines.slice(-maxLines),
      `---- redis log (last ${maxLines} lines)`,
      ...redisLog.split("\n").filter((l) => l !== "").slice(-maxLines),
    ].join("\n");
  }

  /** Kills both processes and removes the redis directory. Idempotent. */
  async stop(): Promise<void> {
    const results = await Promise.allSettled([this.hive?.kill("SIGKILL"), this.#retireRedis()]);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed !== undefined) throw failed.reason;
  }

  /** Pids still alive (for the exit handler). */
  killNow(): void {
    this.hive?.killNow();
    if (this.redisRunning && this.redis !== null) {
      try {
        Deno.kill(this.redis.pid, "SIGKILL");
      } catch { /* gone */ }
    }
  }

  async #retireRedis(): Promise<void> {
    if (this.redis === null) return;
    const old = this.redis;
    this.redis = null;
    this.#redisLogs.push(await old.readLog());
    await old.stop();
  }
}

/** Roles and replication once settled, as {@link LocalCluster.waitForSettled} found them. */
export interface SettledCluster {
  /** The leader's address. */
  leader: string;
  /** Every other live node's address. */
  followers: string[];
  /** The master's `master_repl_offset` every replica reached. */
  offset: number;
  /** Each live node's `/status`. */
  statuses: Map<string, HiveStatus>;
}

/** Options of {@link LocalCluster.waitForSettled}. */
export interface SettleOptions {
  /** Bound of the wait (default {@link SETTLE_TIMEOUT_MS}). */
  timeoutMs?: number;
  /** The nodes that must take part (default: every node whose hive and redis run). */
  nodes?: readonly string[];
  /** Require every replica's offset to equal the master's (default true). */
  inSync?: boolean;
  /** Require this leader. */
  leader?: string;
  /** Require a leader other than this one. */
  notLeader?: string;
}

const live = new Set<LocalCluster>();
let exitHandlerInstalled = false;

/** A running local cluster. Stop it in a `finally` (or hold it with `await using`). */
export class LocalCluster {
  readonly nodes: LocalNode[] = [];
  readonly ports: Readonly<NodePorts>;
  readonly discovery: DiscoveryOptions;
  readonly parked: boolean;
  /** The production `deno run` flags, from deno.json's `start` task. */
  readonly denoFlags: readonly string[];
  readonly onHiveLine: ((address: string, line: string) => void) | undefined;
  /** Each redis also serves a Unix socket, passed to its hive (`--redis-socket`). */
  readonly redisSocket: boolean;
  /** The dnsmasq serving the headless name (DNS discovery only). */
  dns: Dnsmasq | null = null;
  /** The heartbeat secret of every hive (HIVE_SECRET), or null without one. */
  readonly secret: string | null;
  /** Words before each hive's command (see {@link LocalClusterOptions.hiveCommandPrefix}). */
  readonly hiveCommandPrefix: readonly string[];
  #extraArgs: readonly string[];
  #stateDir: string;
  #stopped: Promise<void> | null = null;

  private constructor(opts: LocalClusterOptions, denoFlags: string[], stateDir: string) {
    this.ports = { ...DEFAULT_NODE_PORTS, ...opts.ports };
    this.discovery = opts.discovery;
    this.parked = opts.parked ?? true;
    this.denoFlags = denoFlags;
    this.onHiveLine = opts.onHiveLine;
    this.redisSocket = opts.redisSocket ?? false;
    this.#extraArgs = opts.hiveArgs ?? [];
    this.#stateDir = stateDir;
    this.secret = opts.secret === undefined ? randomSecret() : opts.secret;
    this.hiveCommandPrefix = opts.hiveCommandPrefix ?? [];
  }

  /**
   * Starts dnsmasq (DNS discovery), then every redis, then every hive, and returns once every
   * hive answers `/healthz` (not yet settled: see {@link waitForSettled}). On any failure it
   * stops whatever it started and throws.
   */
  static async start(opts: LocalClusterOptions): Promise<LocalCluster> {
    checkAddresses(opts.addresses);
    if (opts.discovery.kind === "dns" && opts.addresses.includes(opts.discovery.listen)) {
      throw new TypeError(`dnsmasq address ${opts.discovery.listen} is also a node address`);
    }
    const denoFlags = opts.denoFlags === undefined
      ? await productionDenoFlags()
      : [...opts.denoFlags];
    const stateDir = await Deno.makeTempDir({ prefix: "redis-hive-cluster-" });
    const cluster = new LocalCluster(opts, denoFlags, stateDir);
    live.add(cluster);
    installExitHandler();
    try {
      const discovery = opts.discovery;
      if (discovery.kind === "dns") {
        cluster.dns = await retryOnAddressInUse(() =>
          startDnsmasq({
            listen: discovery.listen,
            port: discovery.port,
            records: { [cluster.serviceName]: [...opts.addresses] },
          })
        );
      }
      for (const address of opts.addresses) {
        cluster.nodes.push(new LocalNode(cluster, address, { ...cluster.ports }, stateDir));
      }
      await Promise.all(cluster.nodes.map((n) => n.startRedis({ parked: cluster.parked })));
      await Promise.all(cluster.nodes.map((n) => n.startHive()));
    } catch (e) {
      await cluster.stop().catch(() => {});
      throw e;
    }
    return cluster;
  }

  /**
   * Starts a cluster, runs `fn` with it and always stops it; when `fn` fails, the recent logs
   * of every node go to stderr before the error is rethrown.
   *
   * @example
   * ```ts
   * await LocalCluster.run({ addresses: ["127.0.3.11", "127.0.3.12"], discovery: { kind: "static" } },
   *   async (cluster) => console.log((await cluster.waitForSettled()).leader));
   * ```
   */
  static async run<T>(
    opts: LocalClusterOptions,
    fn: (cluster: LocalCluster) => Promise<T>,
  ): Promise<T> {
    const cluster = await LocalCluster.start(opts);
    try {
      return await fn(cluster);
    } catch (e) {
      console.error(await cluster.report().catch((r) => `(no report: ${r})`));
      throw e;
    } finally {
      await cluster.stop();
    }
  }

  /** The headless Service name (DNS discovery). */
  get serviceName(): string {
    return this.discovery.kind === "dns"
      ? this.discovery.service ?? DEFAULT_SERVICE_NAME
      : DEFAULT_SERVICE_NAME;
  }

  /** The hive flags of one node. */
  hiveArgsFor(node: LocalNode): string[] {
    const discovery = this.discovery.kind === "dns"
      ? [
        "--service",
        this.serviceName,
        "--dns-server",
        `${this.discovery.listen}:${this.discovery.port}`,
      ]
      : ["--peers", this.nodes.map((n) => n.address).join(",")];
    return [
      ...discovery,
      "--announce-ip",
      node.address,
      "--bind",
      node.address,
      "--election-port",
      String(node.ports.election),
      "--proxy-port",
      String(node.ports.proxy),
      "--http-port",
      String(node.ports.http),
      "--sentinel-port",
      String(node.ports.sentinel),
      "--redis-host",
      node.address,
      "--redis-port",
      String(node.ports.redis),
      "--state-file",
      node.stateFile,
      ...(node.redisSocket === null ? [] : ["--redis-socket", node.redisSocket]),
      "--log-format",
      "json",
      ...(this.secret === null ? ["--insecure-no-secret"] : []),
      ...this.#extraArgs,
    ];
  }

  /** The node at `address`; throws when there is none. */
  node(address: string): LocalNode {
    const node = this.nodes.find((n) => n.address === address);
    if (node === undefined) throw new Error(`no node ${address} in the cluster`);
    return node;
  }

  /**
   * Adds a node and starts it (its redis parked unless told otherwise): with DNS discovery, the
   * name gets its address first (as a new pod's endpoint); with static peers, its `--peers`
   * lists every node and the others hear it over UDP.
   */
  async addNode(address: string, opts: { parked?: boolean } = {}): Promise<LocalNode> {
    checkAddresses([...this.nodes.map((n) => n.address), address]);
    const node = new LocalNode(this, address, { ...this.ports }, this.#stateDir);
    this.nodes.push(node);
    if (this.dns !== null) await this.setDnsRecords(this.nodes.map((n) => n.address));
    await node.startRedis({ parked: opts.parked ?? this.parked });
    await node.startHive();
    return node;
  }

  /** Replaces the addresses the headless name resolves to (DNS discovery only). */
  async setDnsRecords(addresses: readonly string[]): Promise<void> {
    if (this.dns === null) throw new Error("setDnsRecords: the cluster uses static peers");
    await this.dns.setRecords(this.serviceName, addresses);
  }

  /** `/status` of every node whose hive runs (a hive that does not answer maps to its error). */
  async statuses(): Promise<Map<string, HiveStatus | Error>> {
    const running = this.nodes.filter((n) => n.hiveRunning);
    const results = await Promise.all(
      running.map((n) => n.status().catch((e) => e instanceof Error ? e : new Error(String(e)))),
    );
    return new Map(running.map((n, i) => [n.address, results[i] as HiveStatus | Error]));
  }

  /**
   * Checks once whether the cluster is settled; returns it, or a reason it is not. Settled:
   * every node taking part answers `/status`; exactly one is `leader` and every other a
   * `follower` of it; the leader's redis is a master and every other redis a replica of it with
   * its link up (and, with `inSync`, at the master's offset); every proxy forwards to the
   * leader's redis.
   */
  async checkSettled(opts: SettleOptions = {}): Promise<SettledCluster | string> {
    const addresses = opts.nodes ?? this.nodes.filter((n) => n.up).map((n) => n.address);
    if (addresses.length === 0) return "no node is up";
    const nodes = addresses.map((a) => this.node(a));
    const statuses = new Map<string, HiveStatus>();
    for (const n of nodes) {
      try {
        statuses.set(n.address, await n.status());
      } catch (e) {
        return `${n.address} /status: ${e instanceof Error ? e.message : e}`;
      }
    }
    const leaders = nodes.filter((n) => statuses.get(n.address)?.role === "leader");
    if (leaders.length !== 1) {
      return `leaders: [${leaders.map((n) => n.address).join(", ")}]; roles: ${
        rolesText(statuses)
      }`;
    }
    const leader = leaders[0] as LocalNode;
    if (opts.leader !== undefined && leader.address !== opts.leader) {
      return `leader is ${leader.address}, expected ${opts.leader}`;
    }
    if (opts.notLeader !== undefined && leader.address === opts.notLeader) {
      return `leader is still ${opts.notLeader}`;
    }
    for (const [address, s] of statuses) {
      if (address !== leader.address && (s.role !== "follower" || s.leader !== leader.address)) {
        return `${address} is ${s.role} of ${s.leader}; roles: ${rolesText(statuses)}`;
      }
      const target = s.proxy.target;
      if (target === null || target.host !== leader.address || target.port !== leader.ports.redis) {
        return `${address} proxy forwards to ${JSON.stringify(target)}`;
      }
    }
    const masterInfo = await leader.redisInfo();
    if (masterInfo.get("role") !== "master") {
      return `leader ${leader.address}'s redis is ${masterInfo.get("role")}`;
    }
    const offset = Number(masterInfo.get("master_repl_offset"));
    const followers = nodes.filter((n) => n !== leader);
    for (const f of followers) {
      const info = await f.redisInfo();
      const where = `${info.get("master_host")}:${info.get("master_port")}`;
      if (info.get("role") !== "slave" || where !== `${leader.address}:${leader.ports.redis}`) {
        return `${f.address}'s redis is ${info.get("role")} of ${where}`;
      }
      if (info.get("master_link_status") !== "up") {
        return `${f.address}'s redis link is ${info.get("master_link_status")}`;
      }
      const replicaOffset = Number(info.get("slave_repl_offset"));
      if ((opts.inSync ?? true) && replicaOffset !== offset) {
        return `${f.address}'s redis at offset ${replicaOffset}, master at ${offset}`;
      }
    }
    return { leader: leader.address, followers: followers.map((f) => f.address), offset, statuses };
  }

  /**
   * Waits (bounded) until {@link checkSettled} holds and returns it; the error names the last
   * reason it did not.
   */
  async waitForSettled(opts: SettleOptions = {}): Promise<SettledCluster> {
    const timeoutMs = opts.timeoutMs ?? SETTLE_TIMEOUT_MS;
    const deadline = Date.now() + timeoutMs;
    let reason = "";
    for (;;) {
      try {
        const result = await this.checkSettled(opts);
        if (typeof result !== "string") return result;
        reason = result;
      } catch (e) {
        reason = e instanceof Error ? e.message : String(e);
      }
      if (Date.now() > deadline) {
        throw new Error(`cluster not settled after ${timeoutMs} ms: ${reason}`);
      }
      await sleep(50);
    }
  }

  /** Every node's recent logs, for failure reports. */
  async report(maxLines = 80): Promise<string> {
    const parts = await Promise.all(this.nodes.map((n) => n.report(maxLines)));
    return parts.join("\n");
  }

  /** Kills every process (hives, redis, dnsmasq) and removes temporary files. Idempotent. */
  stop(): Promise<void> {
    this.#stopped ??= (async () => {
      const results = await Promise.allSettled([
        ...this.nodes.map((n) => n.stop()),
        this.dns?.stop(),
      ]);
      live.delete(this);
      await Deno.remove(this.#stateDir, { recursive: true }).catch(() => {});
      const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
      if (failed !== undefined) throw failed.reason;
    })();
    return this.#stopped;
  }

  /** Same as {@link stop}, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /** SIGKILLs every process at once, without waiting (for the exit handler). */
  killNow(): void {
    for (const n of this.nodes) n.killNow();
    if (this.dns !== null) {
      try {
        Deno.kill(this.dns.pid, "SIGKILL");
      } catch { /* gone */ }
    }
  }
}

/**
 * The production `deno run` flags: the words between `deno run` and `main.ts` in deno.json's
 * `start` task, so the cluster runs a node exactly as `deno task start` does.
 *
 * @example
 * ```ts
 * import { productionDenoFlags } from "./local_cluster.ts";
 * console.log(await productionDenoFlags()); // ["--allow-net", "--allow-env", ...]
 * ```
 */
export async function productionDenoFlags(denoJsonPath = DENO_JSON_PATH): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(denoJsonPath));
  const start = config?.tasks?.start;
  const task = typeof start === "string" ? start : start?.command;
  if (typeof task !== "string") throw new Error(`${denoJsonPath}: no "start" task`);
  const words = task.trim().split(/\s+/);
  const main = words.indexOf("main.ts");
  if (words[0] !== "deno" || words[1] !== "run" || main < 2) {
    throw new Error(`${denoJsonPath}: the start task is not "deno run ... main.ts": ${task}`);
  }
  const flags = words.slice(2, main);
  for (const flag of flags) {
    if (!flag.startsWith("-")) {
      throw new Error(`start task: unexpected word ${flag} before main.ts`);
    }
  }
  return flags;
}

const PROJECT_ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const MAIN_PATH = `${PROJECT_ROOT}/main.ts`;
const DENO_JSON_PATH = `${PROJECT_ROOT}/deno.json`;

function checkAddresses(addresses: readonly string[]): void {
  if (addresses.length === 0) throw new TypeError("a cluster needs at least one address");
  if (addresses.length > MAX_NODES) {
    throw new RangeError(`at most ${MAX_NODES} nodes, got ${addresses.length}`);
  }
  for (const a of addresses) {
    if (!/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(a)) {
      throw new TypeError(`node address ${a} is not an IPv4 loopback address`);
    }
  }
  if (new Set(addresses).size !== addresses.length) {
    throw new TypeError(`duplicate node address in ${addresses.join(",")}`);
  }
}

/** Runs `start` again (up to {@link ADDRESS_IN_USE_ATTEMPTS} times) while its port is taken. */
async function retryOnAddressInUse<T>(start: () => Promise<T>): Promise<T> {
  for (let attempt = 1;; attempt++) {
    try {
      return await start();
    } catch (e) {
      const text = e instanceof Error ? e.message : String(e);
      if (attempt >= ADDRESS_IN_USE_ATTEMPTS || !/address already in use|AddrInUse/i.test(text)) {
        throw e;
      }
      await sleep(ADDRESS_IN_USE_RETRY_MS);
    }
  }
}

function rolesText(statuses: Map<string, HiveStatus>): string {
  return [...statuses].map(([a, s]) => `${a}=${s.role}(${s.leader})`).join(" ");
}

async function readLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  let pending = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) onLine(line);
  }
  if (pending !== "") onLine(pending);
}

async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([p.then(() => true as const), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

function installExitHandler(): void {
  if (exitHandlerInstalled) return;
  exitHandlerInstalled = true;
  globalThis.addEventListener("unload", () => {
    for (const cluster of live) cluster.killNow();
  });
}
