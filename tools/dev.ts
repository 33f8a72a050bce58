/**
 * `deno task dev`: a local hive on this machine, in one command. It starts N nodes (3 by
 * default), each a real `redis-server` and a real hive process on its own loopback address
 * (127.0.0.11, .12, .13, ...) with the product's default ports, so `curl 127.0.0.11:8080/status`
 * answers, exactly as pods would. Every redis starts parked (`--replicaof 127.0.0.1 1`, no
 * persistence, `--bind-source-addr`/`--replica-announce-ip` its own address), as the manifests
 * start it; the hives find each other through static `--peers` and keep a `--state-file` in a
 * temporary directory. Each redis also serves a Unix socket in that directory, given to its hive
 * as `--redis-socket`, as the Kubernetes manifests do: the hive talks to its own redis through
 * it, and so does the leader's proxy (followers' proxies reach the leader over TCP). Built on
 * {@link LocalCluster}.
 *
 * It prints the endpoints and the process ids, then polls every node's `/status` every
 * {@link STATUS_POLL_MS} ms and prints one line per role or leader change, and one line each
 * time the whole hive agrees on a new leader (`leader: <ip> ...`). Ctrl-C (SIGINT) or SIGTERM
 * stops every process it started (none is left behind) and exits 0. Without `redis-server` on
 * the PATH it says how to install it and exits {@link EXIT_MISSING_REDIS}.
 *
 * @example
 * ```sh
 * deno task dev                         # 3 nodes on 127.0.0.11..13
 * deno task dev --nodes 5 --logs        # 5 nodes, hive logs on stdout too
 * deno task dev --base-ip 127.0.5.11    # another address range (used by the tests)
 * ```
 */

import { parseArgs } from "node:util";
import type { HiveStatus } from "../lib/http/hive_status.ts";
import { LocalCluster, type NodePorts } from "../testing/local_cluster.ts";
import { sleep } from "../testing/wait.ts";

/** Nodes started without `--nodes`. */
export const DEFAULT_DEV_NODES = 3;
/** Fewest nodes `--nodes` accepts (a hive of one has nobody to fail over to). */
export const MIN_DEV_NODES = 2;
/** Most nodes `--nodes` accepts (127.0.0.11 to 127.0.0.19 by default). */
export const MAX_DEV_NODES = 9;
/** Address of the first node without `--base-ip`; the others follow it (.12, .13, ...). */
export const DEFAULT_BASE_IP = "127.0.0.11";
/** Interval between two polls of every node's `/status`. */
export const STATUS_POLL_MS = 200;
/** The product's default ports, which every dev node uses on its own address. */
export const DEV_PORTS: Readonly<NodePorts> = {
  redis: 6379,
  election: 7379,
  proxy: 6380,
  http: 8080,
};
/** Exit status when `redis-server` is not on the PATH. */
export const EXIT_MISSING_REDIS = 3;
/** Exit status on a bad flag. */
export const EXIT_USAGE = 2;
/** Exit status when the hive could not start. */
export const EXIT_START_FAILED = 1;

/** What to install when `redis-server` is missing, printed as is. */
export const REDIS_MISSING_MESSAGE = [
  "dev: redis-server was not found on the PATH; the local hive runs real redis-server processes.",
  "Install it, then run `deno task dev` again:",
  "  Debian/Ubuntu:  sudo apt-get install redis-server",
  "  Fedora/RHEL:    sudo dnf install redis",
  "  macOS:          brew install redis",
  "(and Deno itself, if needed: npm install -g deno@2.9.6)",
].join("\n");

/** The usage text of `--help`. */
export const DEV_HELP = `usage: deno task dev [--nodes N] [--base-ip IP] [--logs]

Starts a local redis-hive of N nodes, each a real redis-server and a hive on its own loopback
address with the default ports (redis ${DEV_PORTS.redis}, proxy ${DEV_PORTS.proxy}, election ${DEV_PORTS.election}/udp, http ${DEV_PORTS.http}),
prints the endpoints and every role change, and stops everything on Ctrl-C.

options:
  --nodes N       nodes to start, ${MIN_DEV_NODES}..${MAX_DEV_NODES} (default ${DEFAULT_DEV_NODES})
  --base-ip IP    address of the first node, an IPv4 loopback address; the others follow it
                  (default ${DEFAULT_BASE_IP}: nodes on 127.0.0.11, 127.0.0.12, ...)
  --logs          also print every hive log line, prefixed with its node's address
  -h, --help      this text

needs redis-server on the PATH (Debian: apt-get install redis-server).`;

/** The parsed command line. */
export interface DevOptions {
  nodes: number;
  baseIp: string;
  logs: boolean;
}

/** Bad input on the command line. */
export class DevUsageError extends Error {
  override name = "DevUsageError";
}

/**
 * Parses `deno task dev` arguments; returns `"help"` for `--help`. Throws a
 * {@link DevUsageError} naming the flag on bad input.
 *
 * @example
 * ```ts
 * import { parseDevArgs } from "./dev.ts";
 * parseDevArgs(["--nodes", "5"]); // { nodes: 5, baseIp: "127.0.0.11", logs: false }
 * ```
 */
export function parseDevArgs(args: readonly string[]): DevOptions | "help" {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...args],
      options: {
        nodes: { type: "string" },
        "base-ip": { type: "string" },
        logs: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    throw new DevUsageError(e instanceof Error ? e.message : String(e));
  }
  if (values.help === true) return "help";
  const nodesText = values.nodes ?? String(DEFAULT_DEV_NODES);
  const nodes = Number(nodesText);
  if (!/^\d+$/.test(nodesText) || nodes < MIN_DEV_NODES || nodes > MAX_DEV_NODES) {
    throw new DevUsageError(
      `--nodes: expected an integer ${MIN_DEV_NODES}..${MAX_DEV_NODES}, got ${
        JSON.stringify(nodesText)
      }`,
    );
  }
  const baseIp = values["base-ip"] ?? DEFAULT_BASE_IP;
  devAddresses(baseIp, nodes); // validates
  return { nodes, baseIp, logs: values.logs === true };
}

/**
 * The node addresses: `baseIp` and the next `count - 1` addresses (last octet + 1 each).
 * Throws a {@link DevUsageError} when `baseIp` is not an IPv4 loopback address or the range
 * would pass .254.
 *
 * @example
 * ```ts
 * import { devAddresses } from "./dev.ts";
 * devAddresses("127.0.0.11", 3); // ["127.0.0.11", "127.0.0.12", "127.0.0.13"]
 * ```
 */
export function devAddresses(baseIp: string, count: number): string[] {
  const m = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(baseIp);
  const octets = m === null ? [] : m.slice(1).map(Number);
  if (m === null || octets.some((o) => o > 255)) {
    throw new DevUsageError(
      `--base-ip: expected an IPv4 loopback address such as 127.0.0.11, got ${
        JSON.stringify(baseIp)
      }`,
    );
  }
  const [b, c, d] = octets as [number, number, number];
  if (d < 1 || d + count - 1 > 254) {
    throw new DevUsageError(
      `--base-ip: ${count} nodes from ${baseIp} would go past 127.${b}.${c}.254`,
    );
  }
  return Array.from({ length: count }, (_, i) => `127.${b}.${c}.${d + i}`);
}

/**
 * The full path of executable `name` on `path` (a PATH value), or null when none is found.
 *
 * @example
 * ```ts
 * import { findExecutable } from "./dev.ts";
 * findExecutable("redis-server", Deno.env.get("PATH") ?? ""); // "/usr/bin/redis-server"
 * ```
 */
export function findExecutable(name: string, path: string): string | null {
  for (const dir of path.split(":")) {
    if (dir === "") continue;
    const candidate = `${dir}/${name}`;
    try {
      const info = Deno.statSync(candidate);
      if (info.isFile && info.mode !== null && (info.mode & 0o111) !== 0) return candidate;
    } catch { /* not there */ }
  }
  return null;
}

/**
 * The endpoint lines printed at start: the master through every node's proxy, each redis
 * directly (the replicas, for reads), each status page.
 *
 * @example
 * ```ts
 * import { DEV_PORTS, formatEndpoints } from "./dev.ts";
 * console.log(formatEndpoints(["127.0.0.11", "127.0.0.12"], DEV_PORTS));
 * ```
 */
export function formatEndpoints(addresses: readonly string[], ports: Readonly<NodePorts>): string {
  const lines = ["endpoints:", "  master (through the proxy on every node, any one will do):"];
  for (const a of addresses) lines.push(`    redis-cli -h ${a} -p ${ports.proxy}`);
  lines.push("  redis directly (the replicas, for reads; the leader's is the master):");
  for (const a of addresses) lines.push(`    redis-cli -h ${a} -p ${ports.redis}`);
  lines.push("  status page and JSON:");
  for (const a of addresses) {
    lines.push(`    http://${a}:${ports.http}/    (curl ${a}:${ports.http}/status)`);
  }
  return lines.join("\n");
}

/** What one poll learnt about one node: its role and leader, or why it did not answer. */
export type NodeView = { role: HiveStatus["role"]; leader: string | null } | { error: string };

/**
 * Turns successive polls of every node's `/status` into change lines: one per node whose role
 * or leader changed (or that stopped or started answering), and `leader: <ip> ...` when every
 * answering node agrees on a leader that differs from the last one announced.
 *
 * @example
 * ```ts
 * import { RoleWatcher } from "./dev.ts";
 * const watcher = new RoleWatcher(["127.0.0.11", "127.0.0.12"], 6379);
 * watcher.update(new Map([
 *   ["127.0.0.11", { role: "leader", leader: "127.0.0.11" }],
 *   ["127.0.0.12", { role: "follower", leader: "127.0.0.11" }],
 * ])); // ["127.0.0.11 starting -> leader (leader 127.0.0.11)", ..., "leader: 127.0.0.11 ..."]
 * ```
 */
export class RoleWatcher {
  #last = new Map<string, string>();
  #leader: string | null = null;

  constructor(readonly addresses: readonly string[], readonly redisPort: number) {
    if (addresses.length === 0) throw new TypeError("RoleWatcher: no addresses");
  }

  /** The leader last announced, or null. */
  get leader(): string | null {
    return this.#leader;
  }

  /** Feeds one poll of every node; returns the lines to print (maybe none). */
  update(views: ReadonlyMap<string, NodeView>): string[] {
    const lines: string[] = [];
    for (const address of this.addresses) {
      const view = views.get(address);
      if (view === undefined) throw new Error(`RoleWatcher: no view of ${address}`);
      const text = "error" in view
        ? "not answering"
        : `${view.role}${view.leader === null ? "" : ` (leader ${view.leader})`}`;
      const before = this.#last.get(address) ?? "starting";
      if (text !== before) {
        lines.push(
          "error" in view
            ? `${address} not answering: ${view.error}`
            : `${address} ${before} -> ${text}`,
        );
        this.#last.set(address, text);
      }
    }
    const answering = [...views.values()].filter((v): v is Exclude<NodeView, { error: string }> =>
      !("error" in v)
    );
    const leaders = answering.filter((v) => v.role === "leader");
    const agreed = leaders.length === 1 &&
        answering.every((v) => v.leader === leaders[0]?.leader)
      ? leaders[0]?.leader ?? null
      : null;
    if (agreed !== null && agreed !== this.#leader) {
      this.#leader = agreed;
      const replicas = this.addresses.filter((a) => a !== agreed);
      lines.push(
        `leader: ${agreed} (master redis ${agreed}:${this.redisPort} behind every proxy; replicas ${
          replicas.map((a) => `${a}:${this.redisPort}`).join(", ")
        })`,
      );
    }
    return lines;
  }
}

/**
 * Runs `deno task dev` with `args` until SIGINT or SIGTERM; resolves to the exit status.
 *
 * @example
 * ```ts
 * import { main } from "./dev.ts";
 * Deno.exit(await main(["--nodes", "3"]));
 * ```
 */
export async function main(args: readonly string[]): Promise<number> {
  let opts: DevOptions | "help";
  try {
    opts = parseDevArgs(args);
  } catch (e) {
    if (!(e instanceof DevUsageError)) throw e;
    console.error(`dev: ${e.message}\n\n${DEV_HELP}`);
    return EXIT_USAGE;
  }
  if (opts === "help") {
    console.log(DEV_HELP);
    return 0;
  }
  const redisServer = findExecutable("redis-server", Deno.env.get("PATH") ?? "");
  if (redisServer === null) {
    console.error(REDIS_MISSING_MESSAGE);
    return EXIT_MISSING_REDIS;
  }
  const addresses = devAddresses(opts.baseIp, opts.nodes);
  const stamp = () => new Date().toISOString().slice(11, 23);

  // Signals from here on stop everything; one that arrives during the start lets the start
  // finish (or fail) and then stops what it started.
  let stopSignal: Deno.Signal | null = null;
  let wake: () => void = () => {};
  const stopped = new Promise<void>((resolve) => wake = resolve);
  const onSignal = (signal: Deno.Signal) => () => {
    if (stopSignal !== null) return;
    stopSignal = signal;
    console.log(`${stamp()} ${signal}: stopping every process`);
    wake();
  };
  const handlers = [["SIGINT", onSignal("SIGINT")], ["SIGTERM", onSignal("SIGTERM")]] as const;
  for (const [signal, handler] of handlers) Deno.addSignalListener(signal, handler);
  try {
    console.log(
      `redis-hive dev: ${opts.nodes} nodes on ${
        addresses.join(", ")
      } (redis-server: ${redisServer})`,
    );
    let cluster: LocalCluster;
    try {
      cluster = await LocalCluster.start({
        addresses,
        discovery: { kind: "static" },
        ports: DEV_PORTS,
        parked: true,
        redisSocket: true,
        hiveArgs: opts.logs ? ["--log-format", "pretty"] : [],
        onHiveLine: opts.logs ? (address, line) => console.log(`[${address}] ${line}`) : undefined,
      });
    } catch (e) {
      if (stopSignal !== null) return 0; // a node stopped by the same Ctrl-C: nothing is left
      console.error(`dev: the hive did not start: ${e instanceof Error ? e.message : e}`);
      return EXIT_START_FAILED;
    }
    try {
      for (const node of cluster.nodes) {
        console.log(
          `node ${node.address}: redis pid ${node.redis?.pid}, hive pid ${node.hive?.pid}`,
        );
      }
      console.log(formatEndpoints(addresses, DEV_PORTS));
      console.log(`state files and redis directories are temporary; Ctrl-C stops everything.`);
      console.log("role changes:");
      const watcher = new RoleWatcher(addresses, DEV_PORTS.redis);
      const exited = new Set<string>();
      while (stopSignal === null) {
        const views = new Map<string, NodeView>();
        await Promise.all(cluster.nodes.map(async (node) => {
          try {
            const s = await node.status();
            views.set(node.address, { role: s.role, leader: s.leader });
          } catch (e) {
            views.set(node.address, { error: e instanceof Error ? e.message : String(e) });
          }
        }));
        for (const line of watcher.update(views)) console.log(`${stamp()} ${line}`);
        for (const node of cluster.nodes) {
          if (!node.hiveRunning && !exited.has(node.address)) {
            exited.add(node.address);
            console.log(
              `${stamp()} hive ${node.address} exited: ${JSON.stringify(node.hive?.exitStatus)}`,
            );
          }
        }
        await Promise.race([sleep(STATUS_POLL_MS), stopped]);
      }
    } finally {
      await cluster.stop();
      console.log(`${stamp()} stopped: every redis-server and hive process has exited`);
    }
    return 0;
  } finally {
    for (const [signal, handler] of handlers) Deno.removeSignalListener(signal, handler);
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
