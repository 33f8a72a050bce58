/**
 * Failover benchmark (`deno task bench failover`): a real 3-node cluster (redis-server and hive
 * processes, DNS discovery through dnsmasq, see {@link LocalCluster}) and a client that writes
 * unique keys continuously through a FOLLOWER's proxy port, one connection that reconnects on
 * error. Each fault is repeated `--runs` times on the same cluster, re-settled between runs:
 *
 * - `redis-crash`: the master redis is SIGKILLed and not restarted (restarted parked afterwards
 *   so the next run has 3 nodes again);
 * - `empty-restart`: the master redis is SIGKILLed and a new, empty one started parked after
 *   `--restart-delay-ms` (answering within 300 ms of the kill);
 * - `node-loss`: the leader's hive and redis are SIGKILLed together (a lost pod); the node comes
 *   back as a fresh pod afterwards.
 *
 * Per fault it reports the median and p95 write unavailability (the longest gap between two
 * acknowledged writes of the run, the fault being in the middle) and the acknowledged writes
 * lost (acknowledged keys missing from the final master once replication settled). Targets
 * (README, docs/benchmarks.md): under 1 s median for a redis crash, under 2 s for a lost node, 0 writes lost to
 * an empty restart.
 *
 * Loopback addresses: 127.0.3.80 (dnsmasq), 127.0.3.81 to 127.0.3.83 (nodes).
 *
 * @example
 * ```sh
 * deno task bench failover                 # 5 runs of each fault, about 2 minutes
 * deno task bench failover --runs 10 --faults redis-crash,node-loss
 * ```
 */

import { parseArgs } from "node:util";
import { LocalCluster, type LocalNode } from "../../testing/local_cluster.ts";
import { sleep } from "../../testing/wait.ts";
import { longestGapMs, median, quantile } from "./stats.ts";
import {
  ContinuousWriter,
  DEFAULT_WRITE_INTERVAL_MS,
  MAX_WRITE_INTERVAL_MS,
  type WriteLog,
} from "./writer.ts";

export { DEFAULT_WRITE_INTERVAL_MS, longestGapMs, MAX_WRITE_INTERVAL_MS, median, quantile };

/** Default runs per fault. */
export const DEFAULT_RUNS = 5;
/** Most runs per fault. */
export const MAX_RUNS = 100;
/** Default pause between killing the master redis and starting the empty one. */
export const DEFAULT_RESTART_DELAY_MS = 100;
/** How long the client writes before the fault. */
export const WRITE_BEFORE_FAULT_MS = 1_000;
/** How long the client keeps writing once the cluster settled after the fault. */
export const WRITE_AFTER_RECOVERY_MS = 1_000;
/** Bound of the wait for the cluster to settle after a fault (a run past it fails). */
export const RECOVERY_TIMEOUT_MS = 30_000;
/** The p95 target is read as this quantile. */
const P95 = 0.95;

const DNS = { kind: "dns", listen: "127.0.3.80", port: 15380 } as const;
const ADDRESSES = ["127.0.3.81", "127.0.3.82", "127.0.3.83"];

/** One fault the benchmark injects on the leader, and how the node is healed afterwards. */
interface Fault {
  about: string;
  /** Median unavailability target in ms, or null. */
  targetMedianMs: number | null;
  /** Writes-lost target, or null. */
  targetLost: number | null;
  /** Injects the fault; resolves to the kill-to-answering time of a restarted redis, or null. */
  inject(leader: LocalNode, opts: BenchOptions): Promise<number | null>;
  heal(leader: LocalNode): Promise<void>;
}

/** The faults by name. */
export const FAULTS: Record<string, Fault> = {
  "redis-crash": {
    about: "master redis SIGKILLed, not restarted",
    targetMedianMs: 1_000,
    targetLost: null,
    inject: async (leader) => {
      await leader.killRedis();
      return null;
    },
    heal: (leader) => leader.startRedis({ parked: true }),
  },
  "empty-restart": {
    about: "master redis SIGKILLed, restarted empty and parked",
    targetMedianMs: null,
    targetLost: 0,
    inject: (leader, opts) => leader.restartRedis({ parked: true, delayMs: opts.restartDelayMs }),
    heal: async () => {},
  },
  "empty-restart-plain": {
    about: "master redis SIGKILLed, restarted empty as a plain master",
    targetMedianMs: null,
    targetLost: 0,
    inject: (leader, opts) => leader.restartRedis({ parked: false, delayMs: opts.restartDelayMs }),
    heal: async () => {},
  },
  "node-loss": {
    about: "leader's hive and redis SIGKILLed together",
    targetMedianMs: 2_000,
    targetLost: null,
    inject: async (leader) => {
      await leader.kill();
      return null;
    },
    heal: (leader) => leader.restart({ parked: true }),
  },
};

/** Options of one benchmark invocation. */
export interface BenchOptions {
  runs: number;
  faults: string[];
  writeIntervalMs: number;
  restartDelayMs: number;
}

/** The result of one run. */
export interface RunResult {
  fault: string;
  oldLeader: string;
  newLeader: string;
  /** Longest gap between two acknowledged writes. */
  unavailableMs: number;
  acked: number;
  failed: number;
  lost: number;
  /** For a restart: milliseconds from the kill to the new redis answering. */
  restartMs: number | null;
}

async function runOnce(
  cluster: LocalCluster,
  faultName: string,
  run: number,
  opts: BenchOptions,
): Promise<RunResult> {
  const fault = FAULTS[faultName];
  if (fault === undefined) throw new Error(`unknown fault ${faultName}`);
  const before = await cluster.waitForSettled({ nodes: ADDRESSES });
  const leader = cluster.node(before.leader);
  const via = cluster.node(before.followers[0] as string);
  const writer = new ContinuousWriter({
    endpoints: [{ host: via.address, port: via.ports.proxy }],
    prefix: `bench:${faultName}:${run}:${Date.now()}`,
    intervalMs: opts.writeIntervalMs,
  });
  writer.start();
  let log: WriteLog;
  let after;
  let restartMs: number | null;
  try {
    await sleep(WRITE_BEFORE_FAULT_MS);
    restartMs = await fault.inject(leader, opts);
    after = await cluster.waitForSettled({
      notLeader: leader.address,
      timeoutMs: RECOVERY_TIMEOUT_MS,
    });
    await sleep(WRITE_AFTER_RECOVERY_MS);
  } finally {
    log = await writer.stop();
  }
  // Every acknowledged write that survived is on the master once replicas caught up.
  const settled = await cluster.waitForSettled({ leader: after.leader });
  const lost = await cluster.node(settled.leader).missingKeys(log.acks.map((a) => a.key));
  const result: RunResult = {
    fault: faultName,
    oldLeader: leader.address,
    newLeader: settled.leader,
    unavailableMs: longestGapMs(log.acks),
    acked: log.acks.length,
    failed: log.failureCount,
    lost: lost.length,
    restartMs,
  };
  await fault.heal(leader);
  return result;
}

function formatMs(ms: number): string {
  return Number.isNaN(ms) ? "-" : `${Math.round(ms)} ms`;
}

/** The summary table (markdown), one row per fault. */
export function summaryTable(results: readonly RunResult[], faults: readonly string[]): string {
  const rows = [
    "| fault | runs | unavailable, median | p95 | max | acked writes | acked writes lost | target |",
    "|---|---|---|---|---|---|---|---|",
  ];
  for (const name of faults) {
    const fault = FAULTS[name];
    const mine = results.filter((r) => r.fault === name);
    if (fault === undefined || mine.length === 0) continue;
    const gaps = mine.map((r) => r.unavailableMs);
    const lost = mine.reduce((n, r) => n + r.lost, 0);
    const lostRuns = mine.filter((r) => r.lost > 0).length;
    const target = [
      fault.targetMedianMs === null ? null : `median < ${fault.targetMedianMs / 1000} s`,
      fault.targetLost === null ? null : `${fault.targetLost} lost`,
    ].filter((t) => t !== null).join(", ");
    rows.push(
      `| ${name} (${fault.about}) | ${mine.length} | ${formatMs(median(gaps))} | ${
        formatMs(quantile(gaps, P95))
      } | ${formatMs(Math.max(...gaps))} | ${mine.reduce((n, r) => n + r.acked, 0)} | ${lost}${
        lostRuns > 0 ? ` (in ${lostRuns} runs)` : ""
      } | ${target} |`,
    );
  }
  return rows.join("\n");
}

function parseOptions(args: string[]): BenchOptions {
  const { values } = parseArgs({
    args,
    options: {
      runs: { type: "string", default: String(DEFAULT_RUNS) },
      faults: { type: "string", default: Object.keys(FAULTS).join(",") },
      "write-interval-ms": { type: "string", default: String(DEFAULT_WRITE_INTERVAL_MS) },
      "restart-delay-ms": { type: "string", default: String(DEFAULT_RESTART_DELAY_MS) },
    },
    strict: true,
    allowPositionals: false,
  });
  const integer = (flag: string, text: string, min: number, max: number) => {
    const n = Number(text);
    if (!/^\d+$/.test(text) || n < min || n > max) {
      throw new Error(`--${flag}: expected an integer ${min}..${max}, got ${JSON.stringify(text)}`);
    }
    return n;
  };
  const faults = values.faults.split(",").map((f) => f.trim()).filter((f) => f !== "");
  for (const f of faults) {
    if (FAULTS[f] === undefined) {
      throw new Error(`--faults: unknown fault ${f} (known: ${Object.keys(FAULTS).join(", ")})`);
    }
  }
  if (faults.length === 0) throw new Error("--faults: name at least one fault");
  return {
    runs: integer("runs", values.runs, 1, MAX_RUNS),
    faults,
    writeIntervalMs: integer(
      "write-interval-ms",
      values["write-interval-ms"],
      0,
      MAX_WRITE_INTERVAL_MS,
    ),
    restartDelayMs: integer("restart-delay-ms", values["restart-delay-ms"], 0, 250),
  };
}

/**
 * Runs the benchmark with the arguments after `bench failover`; prints each run and the table.
 *
 * @example
 * ```ts
 * import { main } from "./failover.ts";
 * await main(["--runs", "1", "--faults", "redis-crash"]);
 * ```
 */
export async function main(args: string[]): Promise<void> {
  let opts: BenchOptions;
  try {
    opts = parseOptions(args);
  } catch (e) {
    console.error(`bench failover: ${e instanceof Error ? e.message : e}`);
    Deno.exit(2);
  }
  const command = `deno task bench failover ${args.join(" ")}`.trim();
  console.log(`${command}: ${opts.runs} runs of ${opts.faults.join(", ")}`);
  const results: RunResult[] = [];
  // As the manifests: each hive reaches its redis (and its proxy, while leading) by Unix socket.
  const clusterOptions = { addresses: ADDRESSES, discovery: DNS, redisSocket: true };
  await LocalCluster.run(clusterOptions, async (cluster) => {
    for (const fault of opts.faults) {
      for (let run = 1; run <= opts.runs; run++) {
        const r = await runOnce(cluster, fault, run, opts);
        results.push(r);
        console.log(
          `${fault} #${run}: leader ${r.oldLeader} -> ${r.newLeader}, unavailable ${
            formatMs(r.unavailableMs)
          }, ${r.acked} acked, ${r.failed} failed attempts, ${r.lost} acked writes lost${
            r.restartMs === null
              ? ""
              : `, empty redis answering ${formatMs(r.restartMs)} after the kill`
          }`,
        );
      }
    }
  });
  console.log();
  console.log(summaryTable(results, opts.faults));
  console.log();
  console.log(
    `command: ${command} (write interval ${opts.writeIntervalMs} ms, restart delay ${opts.restartDelayMs} ms)`,
  );
}

if (import.meta.main) await main(Deno.args);
