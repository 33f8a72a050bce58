/**
 * Sentinel benchmark (`deno task bench sentinel`): what a sentinel-aware client gains from the
 * hive's Sentinel endpoint, on a real 3-node hive (testing/local_cluster.ts, each redis also on
 * its Unix socket as in the manifests).
 *
 * 1. Throughput, in interleaved rounds, each contestant a ratio of `direct` in the same round
 *    (median over rounds):
 *    - `direct`: to the master redis at the address the test knows;
 *    - `sentinel`: to the address a follower's Sentinel endpoint returns
 *      (`SENTINEL get-master-addr-by-name`), asked afresh each round;
 *    - `proxy (leader's pod)` and `proxy (other pod)`: through the hive's master proxy on the
 *      leader's pod (Unix-socket upstream) and on a follower's pod (one more TCP hop), the two
 *      kinds of pod the `redis-hive-master` Service spreads clients over.
 *    Each is measured with `redis-benchmark -c 50 -t set,get` and with a real client loop:
 *    ioredis SETs, 50 at a time on one connection (ioredis in sentinel mode for `sentinel`).
 * 2. Recovery after a master crash (the master redis SIGKILLed, then restarted parked between
 *    runs): each sentinel-aware client (ioredis, node-redis, redis-py, redis-cli; given only the
 *    Sentinel endpoints) writing beside a proxy client (one connection through a follower's
 *    proxy, reconnecting at once): the longest pause between two acknowledged writes of each,
 *    median over runs, and acknowledged writes lost.
 *
 * Progress to stderr, the markdown report to stdout. Loopback addresses 127.0.116.11 to .13.
 *
 * @example
 * ```sh
 * deno task bench sentinel                      # 3 rounds, 3 crash runs, about 2 minutes
 * deno task bench sentinel --rounds 1 --runs 1 --requests 20000 --loop-ops 5000
 * ```
 */

import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { LocalCluster } from "../../testing/local_cluster.ts";
import { RespConnection } from "../../testing/resp_connection.ts";
import {
  SENTINEL_CLIENTS,
  type SentinelClientName,
  type SentinelWriter,
  startSentinelWriter,
} from "../../testing/sentinel_clients.ts";
import { longestGapMs, median } from "./stats.ts";
import { ContinuousWriter } from "./writer.ts";

/** Default interleaved throughput rounds. */
export const DEFAULT_ROUNDS = 3;
/** Default master crashes. */
export const DEFAULT_RUNS = 3;
/** Default requests per redis-benchmark test. */
export const DEFAULT_REQUESTS = 50_000;
/** Default SETs per client-loop measurement. */
export const DEFAULT_LOOP_OPS = 20_000;
/** redis-benchmark parallel clients (`-c`), and SETs in flight in the client loop. */
export const BENCH_CLIENTS = 50;
/** Most rounds or runs accepted. */
export const MAX_REPEATS = 50;
/** Writing before the crash, and after the cluster settled again. */
export const WRITE_AROUND_FAULT_MS = 1_000;
/** Bound of the wait for the cluster to settle after a crash. */
export const RECOVERY_TIMEOUT_MS = 30_000;
/** Pause after each acknowledged write of the recovery writers. */
export const WRITE_INTERVAL_MS = 2;

const ADDRESSES = ["127.0.116.11", "127.0.116.12", "127.0.116.13"];
const MASTER_NAME = "mymaster";

/** The throughput contestants. */
export const CONTESTANTS = ["direct", "sentinel", "proxy-leader", "proxy-other"] as const;
/** One of {@link CONTESTANTS}. */
export type Contestant = typeof CONTESTANTS[number];

const LABELS: Record<Contestant, string> = {
  direct: "direct (the master's address, known)",
  sentinel: "sentinel (the address the endpoint returns)",
  "proxy-leader": "hive proxy on the leader's pod",
  "proxy-other": "hive proxy on another pod",
};

/** Options of one invocation. */
export interface SentinelBenchOptions {
  rounds: number;
  runs: number;
  requests: number;
  loopOps: number;
}

/**
 * Parses the command line.
 *
 * @example
 * ```ts
 * parseSentinelBenchArgs(["--rounds", "1"]).rounds; // 1
 * ```
 */
export function parseSentinelBenchArgs(args: string[]): SentinelBenchOptions {
  const { values } = parseArgs({
    args,
    options: {
      rounds: { type: "string" },
      runs: { type: "string" },
      requests: { type: "string" },
      "loop-ops": { type: "string" },
    },
    strict: true,
  });
  const int = (name: string, text: string | undefined, fallback: number, max: number) => {
    if (text === undefined) return fallback;
    const n = Number(text);
    if (!/^[0-9]+$/.test(text) || n < 1 || n > max) {
      throw new Error(`--${name}: expected an integer 1..${max}, got "${text}"`);
    }
    return n;
  };
  return {
    rounds: int("rounds", values.rounds, DEFAULT_ROUNDS, MAX_REPEATS),
    runs: int("runs", values.runs, DEFAULT_RUNS, MAX_REPEATS),
    requests: int("requests", values.requests, DEFAULT_REQUESTS, 10_000_000),
    loopOps: int("loop-ops", values["loop-ops"], DEFAULT_LOOP_OPS, 10_000_000),
  };
}

interface Endpoint {
  host: string;
  port: number;
}

function progress(line: string): void {
  console.error(`[bench sentinel] ${line}`);
}

/** Runs redis-benchmark once; requests per second by test (SET, GET). */
async function redisBenchmark(at: Endpoint, requests: number): Promise<Map<string, number>> {
  const args = [
    "-h",
    at.host,
    "-p",
    String(at.port),
    "-c",
    String(BENCH_CLIENTS),
    "-n",
    String(requests),
    "-t",
    "set,get",
    "-q",
    "--csv",
  ]; // deno-fmt-ignore
  const out = await new Deno.Command("redis-benchmark", { args, stdin: "null" }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) throw new Error(`redis-benchmark: ${new TextDecoder().decode(out.stderr)}`);
  const result = new Map<string, number>();
  for (const line of text.trim().split("\n").slice(1)) {
    const [test, rps] = line.split(",").map((f) => f.replaceAll('"', ""));
    if (test !== undefined && Number(rps) > 0) result.set(test, Number(rps));
  }
  if (!result.has("SET") || !result.has("GET")) throw new Error(`redis-benchmark: ${text}`);
  return result;
}

/** SETs per second of one ioredis connection keeping {@link BENCH_CLIENTS} SETs in flight. */
async function clientLoop(redis: Redis, ops: number, prefix: string): Promise<number> {
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < ops) {
      const i = next++;
      await redis.set(`${prefix}:${i}`, "x");
    }
  };
  await Promise.all(Array.from({ length: BENCH_CLIENTS }, worker));
  return ops / ((performance.now() - started) / 1000);
}

async function askMaster(sentinel: Endpoint): Promise<Endpoint> {
  const conn = await RespConnection.open(sentinel.host, sentinel.port);
  try {
    const answer = await conn.command(["SENTINEL", "get-master-addr-by-name", MASTER_NAME]);
    if (!Array.isArray(answer) || answer.length !== 2) {
      throw new Error(
        `no master from ${sentinel.host}:${sentinel.port}: ${JSON.stringify(answer)}`,
      );
    }
    return { host: String(answer[0]), port: Number(answer[1]) };
  } finally {
    conn.close();
  }
}

function ioredisFor(who: Contestant, at: Endpoint, sentinels: Endpoint[]): Redis {
  return who === "sentinel"
    ? new Redis({ sentinels, name: MASTER_NAME, lazyConnect: true })
    : new Redis({ host: at.host, port: at.port, lazyConnect: true });
}

type Samples = Map<string, number[]>;

function add(samples: Samples, key: string, value: number): void {
  const list = samples.get(key) ?? [];
  list.push(value);
  samples.set(key, list);
}

async function throughput(
  cluster: LocalCluster,
  opts: SentinelBenchOptions,
): Promise<string[]> {
  const settled = await cluster.waitForSettled();
  const leader = cluster.node(settled.leader);
  const other = cluster.node(settled.followers[0]!);
  const sentinels = ADDRESSES.map((host) => ({ host, port: cluster.ports.sentinel }));
  const samples: Samples = new Map();
  for (let round = 0; round < opts.rounds; round++) {
    const order = CONTESTANTS.map((_, i) => CONTESTANTS[(i + round) % CONTESTANTS.length]!);
    const rps = new Map<Contestant, Map<string, number>>();
    for (const who of order) {
      const at: Endpoint = who === "direct"
        ? { host: leader.address, port: leader.ports.redis }
        : who === "sentinel"
        ? await askMaster({ host: other.address, port: cluster.ports.sentinel })
        : who === "proxy-leader"
        ? { host: leader.address, port: leader.ports.proxy }
        : { host: other.address, port: other.ports.proxy };
      const bench = await redisBenchmark(at, opts.requests);
      const redis = ioredisFor(who, at, sentinels);
      await redis.connect();
      let loop: number;
      try {
        loop = await clientLoop(redis, opts.loopOps, `bench:sentinel:${round}:${who}`);
      } finally {
        redis.disconnect();
      }
      bench.set("ioredis SET", loop);
      rps.set(who, bench);
      progress(
        `round ${round + 1}/${opts.rounds} ${who} at ${at.host}:${at.port}: ` +
          [...bench].map(([t, v]) => `${t} ${Math.round(v)}/s`).join(", "),
      );
    }
    const direct = rps.get("direct")!;
    const proxy = rps.get("proxy-leader")!;
    const proxyOther = rps.get("proxy-other")!;
    for (const who of CONTESTANTS) {
      for (const [test, v] of rps.get(who)!) {
        add(samples, `${who}/${test}/direct`, v / direct.get(test)!);
        add(samples, `${who}/${test}/proxy`, v / proxy.get(test)!);
        add(samples, `${who}/${test}/proxy-other`, v / proxyOther.get(test)!);
        add(samples, `${who}/${test}/rps`, v);
      }
    }
  }
  const tests = ["SET", "GET", "ioredis SET"];
  const fmt = (key: string) => median(samples.get(key) ?? []).toFixed(2);
  const lines = [
    `| contestant | ${tests.map((t) => `${t} req/s`).join(" | ")} | ${
      tests.map((t) => `${t} / direct`).join(" | ")
    } | ${tests.map((t) => `${t} / proxy (leader's pod)`).join(" | ")} | ${
      tests.map((t) => `${t} / proxy (other pod)`).join(" | ")
    } |`,
    `|---|${tests.map(() => "---|").join("").repeat(4)}`,
  ];
  for (const who of CONTESTANTS) {
    lines.push(
      `| ${LABELS[who]} | ${
        tests.map((t) => Math.round(median(samples.get(`${who}/${t}/rps`) ?? [])))
          .join(" | ")
      } | ${tests.map((t) => fmt(`${who}/${t}/direct`)).join(" | ")} | ${
        tests.map((t) => fmt(`${who}/${t}/proxy`)).join(" | ")
      } | ${tests.map((t) => fmt(`${who}/${t}/proxy-other`)).join(" | ")} |`,
    );
  }
  return lines;
}

interface RecoveryRun {
  /** Longest pause between two acknowledged writes, by client. */
  pauseMs: Map<string, number>;
  lost: Map<string, number>;
  acked: Map<string, number>;
}

async function crashOnce(cluster: LocalCluster, run: number): Promise<RecoveryRun> {
  const before = await cluster.waitForSettled({ nodes: ADDRESSES });
  const leader = cluster.node(before.leader);
  const via = cluster.node(before.followers[0]!);
  const sentinels = ADDRESSES.map((host) => ({ host, port: cluster.ports.sentinel }));
  const stamp = Date.now();
  const writers: SentinelWriter[] = [];
  const proxyWriter = new ContinuousWriter({
    endpoints: [{ host: via.address, port: via.ports.proxy }],
    prefix: `bench:sentinel:crash:${run}:${stamp}:proxy`,
    intervalMs: WRITE_INTERVAL_MS,
  });
  const keys = new Map<string, string[]>();
  const result: RecoveryRun = { pauseMs: new Map(), lost: new Map(), acked: new Map() };
  try {
    for (const client of SENTINEL_CLIENTS) {
      writers.push(
        await startSentinelWriter(client, {
          sentinels,
          masterName: MASTER_NAME,
          prefix: `bench:sentinel:crash:${run}:${stamp}:${client}`,
          intervalMs: WRITE_INTERVAL_MS,
        }),
      );
    }
    proxyWriter.start();
    await new Promise((r) => setTimeout(r, WRITE_AROUND_FAULT_MS));
    await leader.killRedis();
    await cluster.waitForSettled({ notLeader: leader.address, timeoutMs: RECOVERY_TIMEOUT_MS });
    await new Promise((r) => setTimeout(r, WRITE_AROUND_FAULT_MS));
  } finally {
    // A writer that never recovered pauses until it is stopped: count that pause too.
    const proxyStopMs = performance.now();
    const proxyLog = await proxyWriter.stop();
    keys.set("proxy client", proxyLog.acks.map((a) => a.key));
    result.pauseMs.set("proxy client", pauseUntil(proxyLog.acks, proxyStopMs));
    for (const w of writers) {
      const stopMs = Date.now(); // the sentinel writers' acks are on the wall clock
      const acks = await w.stop();
      keys.set(w.client, acks.map((a) => a.key));
      result.pauseMs.set(w.client, pauseUntil(acks, stopMs));
    }
  }
  const after = await cluster.waitForSettled({ notLeader: leader.address });
  for (const [client, list] of keys) {
    result.acked.set(client, list.length);
    result.lost.set(client, (await cluster.node(after.leader).missingKeys(list)).length);
  }
  await leader.startRedis({ parked: true });
  return result;
}

/** The longest pause between two acknowledgements, or from the last one to `stopMs`. */
function pauseUntil(acks: readonly { atMs: number }[], stopMs: number): number {
  const last = acks.at(-1)?.atMs ?? stopMs;
  return Math.max(longestGapMs(acks), stopMs - last);
}

function recoveryTable(runs: RecoveryRun[]): string[] {
  const clients: string[] = [...SENTINEL_CLIENTS, "proxy client"];
  const lines = [
    "| client | how it finds the master | longest write pause, median | max | acked writes | acked writes lost |",
    "|---|---|---|---|---|---|",
  ];
  const how: Record<SentinelClientName | "proxy client", string> = {
    ioredis: "sentinel mode, `failoverDetector`",
    "node-redis": "`createSentinel`",
    "redis-py": "`Sentinel.master_for`",
    "redis-cli": "asks `get-master-addr-by-name` after a failed write",
    "proxy client": "none: one connection through a follower's proxy",
  };
  for (const c of clients) {
    const pauses = runs.map((r) => r.pauseMs.get(c) ?? NaN);
    const acked = runs.reduce((n, r) => n + (r.acked.get(c) ?? 0), 0);
    const lost = runs.reduce((n, r) => n + (r.lost.get(c) ?? 0), 0);
    lines.push(
      `| ${c} | ${how[c as keyof typeof how]} | ${Math.round(median(pauses))} ms | ${
        Math.round(Math.max(...pauses))
      } ms | ${acked} | ${lost} |`,
    );
  }
  return lines;
}

/**
 * Runs the benchmark and prints the report.
 *
 * @example
 * ```ts
 * await main(["--rounds", "1", "--runs", "1"]);
 * ```
 */
export async function main(args: string[]): Promise<void> {
  const opts = parseSentinelBenchArgs(args);
  const started = performance.now();
  await LocalCluster.run(
    { addresses: ADDRESSES, discovery: { kind: "static" }, redisSocket: true },
    async (cluster) => {
      progress(`throughput: ${opts.rounds} rounds`);
      const table = await throughput(cluster, opts);
      progress(`recovery: ${opts.runs} master crashes`);
      const runs: RecoveryRun[] = [];
      for (let run = 0; run < opts.runs; run++) {
        const r = await crashOnce(cluster, run);
        progress(
          `crash ${run + 1}/${opts.runs}: ` +
            [...r.pauseMs].map(([c, ms]) => `${c} ${Math.round(ms)} ms`).join(", "),
        );
        runs.push(r);
      }
      const seconds = Math.round((performance.now() - started) / 1000);
      console.log(
        [
          `## Sentinel endpoint (deno task bench sentinel ${args.join(" ")}; ${seconds} s)`,
          "",
          `Throughput: redis-benchmark -c ${BENCH_CLIENTS} -n ${opts.requests} -t set,get, and ` +
          `ioredis (${BENCH_CLIENTS} SETs in flight, ${opts.loopOps} SETs); median of ` +
          `${opts.rounds} interleaved rounds, each ratio within its round.`,
          "",
          ...table,
          "",
          `Recovery after the master redis is SIGKILLed (${opts.runs} runs; each client ` +
          `writes one key at a time, ${WRITE_INTERVAL_MS} ms apart):`,
          "",
          ...recoveryTable(runs),
        ].join("\n"),
      );
    },
  );
}
