/**
 * Memory benchmark (`deno task bench memory`): the resident memory of every hive of a real
 * cluster in service. It starts N nodes (3 by default) as `deno task dev` does (a real
 * redis-server and a hive per loopback address, the production `deno run` flags of
 * `deno task start`, static peers, each redis's Unix socket given as `--redis-socket`), waits
 * until the hive settled, then:
 *
 * 1. **idle**: `--idle-seconds` (30) later, reads every hive's memory;
 * 2. **load**: runs `redis-benchmark -c 20 -t set,get` through every node's proxy port at once
 *    (followers forward to the leader) for `--load-seconds` (20), reading every hive's memory
 *    each second, and keeps the largest;
 * 3. **after**: `--after-seconds` (15) after the load stopped, reads it once more.
 *
 * Each reading is `/proc/<pid>/status` and `smaps_rollup` (VmRSS, its anonymous and file-backed
 * parts, Pss, threads; tools/bench/proc_memory.ts) and the hive's own `/status` `process`
 * section (the main isolate's V8 heap). The markdown report goes to stdout, progress to stderr.
 *
 * Addresses: 127.0.15.11 onwards (`--base-ip`), the cluster fixture's ports (redis 16379, proxy
 * 16380, election 17379, http 18080).
 *
 * @example
 * ```sh
 * deno task bench memory                                   # 3 nodes, about 2 minutes
 * deno task bench memory --idle-seconds 10 --load-seconds 5 --after-seconds 5
 * deno task bench memory --v8-flags none                   # without the start task's --v8-flags
 * deno task bench memory --hive-args="--proxy-workers 1"  # a variant (= before a value with -)
 * ```
 */

import { parseArgs } from "node:util";
import { LocalCluster, type LocalNode } from "../../testing/local_cluster.ts";
import { sleep } from "../../testing/wait.ts";
import { productionDenoFlags } from "../../testing/local_cluster.ts";
import { mib, type ProcMemory, readCpuTicks, readProcMemory } from "./proc_memory.ts";
import { markdownTable } from "./proxy.ts";

/** Nodes started without `--nodes`. */
export const DEFAULT_MEMORY_NODES = 3;
/** Seconds in service, settled and idle, before the first reading. */
export const DEFAULT_IDLE_SECONDS = 30;
/** Seconds of redis-benchmark load through every proxy. */
export const DEFAULT_LOAD_SECONDS = 20;
/** Seconds after the load before the last reading. */
export const DEFAULT_AFTER_SECONDS = 15;
/** The first node's address without `--base-ip` (issue 15's loopback range). */
export const DEFAULT_MEMORY_BASE_IP = "127.0.15.11";
/** redis-benchmark clients per proxy during the load. */
export const LOAD_CLIENTS = 20;
/** The target the issue sets: a cluster member's resident memory in service, at most. */
export const RSS_TARGET_MIB = 100;

/** One hive's memory at one moment. */
export interface HiveMemoryReading {
  proc: ProcMemory;
  /** The main isolate's V8 heap (`/status` `process.heapTotalBytes`), or null. */
  heapTotalBytes: number | null;
}

/**
 * `--v8-flags` of the production flags replaced by `v8Flags` (`"none"`: dropped; null: kept).
 *
 * @example
 * ```ts
 * withV8Flags(["--allow-net", "--v8-flags=--max-semi-space-size=1"], "none"); // ["--allow-net"]
 * withV8Flags(["--allow-net"], "--max-semi-space-size=2");
 * // ["--allow-net", "--v8-flags=--max-semi-space-size=2"]
 * ```
 */
export function withV8Flags(flags: readonly string[], v8Flags: string | null): string[] {
  if (v8Flags === null) return [...flags];
  const rest = flags.filter((f) => !f.startsWith("--v8-flags"));
  return v8Flags === "none" ? rest : [...rest, `--v8-flags=${v8Flags}`];
}

/** The addresses of `nodes` nodes from `baseIp` on (127.0.15.11, .12, ...). */
export function nodeAddresses(baseIp: string, nodes: number): string[] {
  const m = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(baseIp);
  if (m === null) throw new Error(`--base-ip: an IPv4 loopback address, got ${baseIp}`);
  const last = Number(m[3]);
  if (last + nodes - 1 > 254) throw new Error(`--base-ip ${baseIp}: no room for ${nodes} nodes`);
  return Array.from({ length: nodes }, (_, i) => `127.${m[1]}.${m[2]}.${last + i}`);
}

async function reading(node: LocalNode): Promise<HiveMemoryReading> {
  const pid = node.hive?.pid;
  if (pid === undefined) throw new Error(`no hive process on ${node.address}`);
  const proc = await readProcMemory(pid);
  const status = await node.status().catch(() => null);
  return { proc, heapTotalBytes: status?.process?.heapTotalBytes ?? null };
}

function startLoad(node: LocalNode): Deno.ChildProcess {
  return new Deno.Command("redis-benchmark", {
    args: [
      "-h",
      node.address,
      "-p",
      String(node.ports.proxy),
      "-c",
      String(LOAD_CLIENTS),
      "-n",
      "100000000",
      "-t",
      "set,get",
      "-q",
    ], // deno-fmt-ignore
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
}

/** Runs the benchmark and prints the markdown report on stdout (progress on stderr). */
export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      nodes: { type: "string", default: String(DEFAULT_MEMORY_NODES) },
      "idle-seconds": { type: "string", default: String(DEFAULT_IDLE_SECONDS) },
      "load-seconds": { type: "string", default: String(DEFAULT_LOAD_SECONDS) },
      "after-seconds": { type: "string", default: String(DEFAULT_AFTER_SECONDS) },
      "base-ip": { type: "string", default: DEFAULT_MEMORY_BASE_IP },
      "v8-flags": { type: "string" },
      "hive-args": { type: "string", default: "" },
    },
    strict: true,
  });
  const count = (flag: string, text: string, min: number, max: number): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new Error(`--${flag}: an integer in ${min}..${max}, got ${text}`);
    }
    return n;
  };
  const nodes = count("nodes", values.nodes, 1, 9);
  const idleSeconds = count("idle-seconds", values["idle-seconds"], 0, 3600);
  const loadSeconds = count("load-seconds", values["load-seconds"], 0, 3600);
  const afterSeconds = count("after-seconds", values["after-seconds"], 0, 3600);
  const addresses = nodeAddresses(values["base-ip"], nodes);
  const denoFlags = withV8Flags(await productionDenoFlags(), values["v8-flags"] ?? null);
  const hiveArgs = values["hive-args"].split(/\s+/).filter((w) => w !== "");

  const idle = new Map<string, HiveMemoryReading>();
  const peak = new Map<string, HiveMemoryReading>();
  const after = new Map<string, HiveMemoryReading>();
  const roles = new Map<string, string>();
  const redisRss = new Map<string, number>();
  const idleCpu = new Map<string, number>();
  const loadCpu = new Map<string, number>();
  const ticksPerSecond = 100; // CLK_TCK on Linux
  /** CPUs used on average (1 = one CPU busy) from `from.at` to `to` (ms). */
  const cpuShare = (from: { at: number }, ticks: number, to = performance.now()) =>
    ticks / ticksPerSecond / ((to - from.at) / 1000);
  const startedAt = Date.now();
  await LocalCluster.run({
    addresses,
    discovery: { kind: "static" },
    redisSocket: true,
    hiveArgs,
    denoFlags,
  }, async (cluster) => {
    const settled = await cluster.waitForSettled();
    for (const [address, s] of settled.statuses) roles.set(address, s.role);
    console.error(`settled: leader ${settled.leader}; idle ${idleSeconds} s`);
    const ticks = async () =>
      await Promise.all(cluster.nodes.map((n) => readCpuTicks(n.hive!.pid)));
    const idleFrom = { at: performance.now(), ticks: await ticks() };
    await sleep(idleSeconds * 1000);
    for (const node of cluster.nodes) idle.set(node.address, await reading(node));
    const loadFrom = { at: performance.now(), ticks: await ticks() };
    cluster.nodes.forEach((n, i) =>
      idleCpu.set(n.address, cpuShare(idleFrom, loadFrom.ticks[i]! - idleFrom.ticks[i]!))
    );

    console.error(`load: redis-benchmark through every proxy for ${loadSeconds} s`);
    const loads = cluster.nodes.map(startLoad);
    try {
      const until = Date.now() + loadSeconds * 1000;
      while (Date.now() < until) {
        await sleep(1000);
        for (const node of cluster.nodes) {
          const r = await reading(node);
          const before = peak.get(node.address);
          if (before === undefined || r.proc.rssKiB > before.proc.rssKiB) peak.set(node.address, r);
        }
      }
      const loadTo = { at: performance.now(), ticks: await ticks() };
      cluster.nodes.forEach((n, i) =>
        loadCpu.set(n.address, cpuShare(loadFrom, loadTo.ticks[i]! - loadFrom.ticks[i]!, loadTo.at))
      );
    } finally {
      for (const load of loads) {
        try {
          load.kill("SIGTERM");
        } catch { /* gone */ }
        await load.status;
      }
    }
    console.error(`after: ${afterSeconds} s`);
    await sleep(afterSeconds * 1000);
    for (const node of cluster.nodes) {
      after.set(node.address, await reading(node));
      const pid = node.redis?.pid;
      if (pid !== undefined) redisRss.set(node.address, (await readProcMemory(pid)).rssKiB);
    }
  });

  const heap = (r: HiveMemoryReading | undefined) =>
    r?.heapTotalBytes == null ? "-" : (r.heapTotalBytes / 2 ** 20).toFixed(1);
  const rows = addresses.map((a) => {
    const i = idle.get(a)!;
    const p = peak.get(a);
    const f = after.get(a)!;
    return [
      `${a} (${roles.get(a) ?? "?"})`,
      mib(i.proc.rssKiB),
      p === undefined ? "-" : mib(p.proc.rssKiB),
      mib(f.proc.rssKiB),
      `${mib(f.proc.anonKiB)} / ${mib(f.proc.fileKiB)}`,
      f.proc.pssKiB === null ? "-" : mib(f.proc.pssKiB),
      heap(f),
      mib(f.proc.hwmKiB),
      String(f.proc.threads),
      `${((idleCpu.get(a) ?? 0) * 1000).toFixed(0)}m / ${
        ((loadCpu.get(a) ?? 0) * 1000).toFixed(0)
      }m`,
      redisRss.has(a) ? mib(redisRss.get(a)!) : "-",
    ];
  });
  const worst = Math.max(
    ...[...idle.values(), ...peak.values(), ...after.values()].map((r) => r.proc.rssKiB),
  );
  console.log([
    `${nodes} hives in service (deno run ${denoFlags.join(" ")} main.ts` +
    `${hiveArgs.length === 0 ? "" : ` ${hiveArgs.join(" ")}`}); idle ${idleSeconds} s after ` +
    `settling, then ${loadSeconds} s of redis-benchmark -c ${LOAD_CLIENTS} through every ` +
    `proxy, then ${afterSeconds} s (${((Date.now() - startedAt) / 1000).toFixed(0)} s)`,
    "",
    "Resident memory (MiB) of each hive process:",
    "",
    ...markdownTable(
      [
        "hive",
        "idle",
        "load (max)",
        "after",
        "anon / file (after)",
        "Pss (after)",
        "V8 heap, main (after)",
        "peak since start (VmHWM)",
        "threads",
        "CPU idle / load",
        "its redis",
      ],
      rows,
    ),
    "",
    `Largest VmRSS in service: ${mib(worst)} MiB (target: at most ${RSS_TARGET_MIB} MiB). CPU in`,
    "millicores (1000m: one CPU busy), averaged over the idle and the load phase; the load",
    "phase's redis-benchmark clients run on the same machine, so it is bounded by what they leave.",
  ].join("\n"));
}

if (import.meta.main) await main(Deno.args);
