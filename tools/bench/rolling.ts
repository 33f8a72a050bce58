/**
 * Rolling-restart benchmark (`deno task bench rolling`): a real 3-node hive (redis-server and
 * hive processes on 127.0.5.31..33, static peers, see {@link LocalCluster}) under a client that
 * writes unique keys continuously through a master proxy, while every pod is restarted one at a
 * time, `--restarts` times over, as a Kubernetes rolling update would: followers first, the
 * leader last. Restarting one pod:
 *
 * 1. the client moves its connection to the proxy of another pod (as the `-master` Service stops
 *    sending new connections to a terminating pod);
 * 2. SIGTERM to the hive and wait for it to exit (a leader hands over first: it pauses writes,
 *    waits for the most caught-up follower to have every write, hands over, waits for it to
 *    lead; see `Hive.shutdown`), then SIGTERM to its redis;
 * 3. a fresh, empty redis started parked (`--replicaof 127.0.0.1 1`) and a fresh hive on the
 *    same address;
 * 4. wait until every node's `/readyz` answers 200 and they agree on one leader (the new pod's
 *    redis has synced from the leader).
 *
 * It reports the longest write pause (the longest gap between two acknowledged writes) overall
 * and per restart of a leader and of a follower (median, p95, max), the handoff times the
 * leaders logged ("handoff done: X leads after N ms"), and the acknowledged writes lost: keys
 * acknowledged to the client but missing from the final master, checked with `EXISTS` in
 * batches. Targets (docs/benchmarks.md): at most 500 ms of write pause, 0 acknowledged writes lost.
 *
 * Options: `--restarts N` (default {@link DEFAULT_RESTARTS}), `--write-interval-ms N` (default
 * {@link DEFAULT_WRITE_INTERVAL_MS}), `--sync-check readyz|offsets` (what "back in sync" means
 * before the next pod is restarted: `/readyz`, as Kubernetes does, by default; `offsets` also
 * waits until every replica's offset reached the master's, see {@link SYNC_CHECKS}), and
 * `--log-dir DIR` (every hive log line, per node, for investigation).
 *
 * Loopback addresses: 127.0.5.31 to 127.0.5.33.
 *
 * @example
 * ```sh
 * deno task bench rolling                # 20 rolling restarts of 3 pods, a few minutes
 * deno task bench rolling --restarts 3 --log-dir /tmp/rolling-logs
 * ```
 */

import { parseArgs } from "node:util";
import { LocalCluster, type LocalNode } from "../../testing/local_cluster.ts";
import { sleep } from "../../testing/wait.ts";
import { RespConnection } from "../../testing/resp_connection.ts";
import { longestGapMs, quantile } from "./stats.ts";
import {
  type Ack,
  ContinuousWriter,
  DEFAULT_WRITE_INTERVAL_MS,
  MAX_WRITE_INTERVAL_MS,
} from "./writer.ts";

export { DEFAULT_WRITE_INTERVAL_MS, longestGapMs, MAX_WRITE_INTERVAL_MS, quantile };

/** Default rolling restarts (each restarts every pod once). */
export const DEFAULT_RESTARTS = 20;
/** Most rolling restarts per invocation. */
export const MAX_RESTARTS = 200;
/** Target: longest write pause of a rolling restart. */
export const TARGET_PAUSE_MS = 500;
/** Target: acknowledged writes lost. */
export const TARGET_LOST = 0;
/** How long the client writes before the first restart and after the last one. */
export const WRITE_MARGIN_MS = 1_000;
/** Bound of the wait for every node to be ready again after a restart. */
export const READY_TIMEOUT_MS = 60_000;
/** Interval between two readiness polls. */
export const READY_POLL_MS = 50;
/** Deadline of one `/readyz` or `/status` request of the bench. */
export const HTTP_TIMEOUT_MS = 2_000;
/** Most handoff log records kept. */
export const MAX_HANDOFF_RECORDS = 10_000;
/** Keys per `EXISTS` when checking for lost writes. */
export const EXISTS_BATCH = 1_000;
/** Deadline of one `EXISTS` batch. */
export const EXISTS_TIMEOUT_MS = 10_000;
/** The p95 is read as this quantile (nearest rank). */
const P95 = 0.95;

const ADDRESSES = ["127.0.5.31", "127.0.5.32", "127.0.5.33"] as const;

/** Options of one benchmark invocation. */
export interface RollingOptions {
  /** Rolling restarts (every pod once, followers first, the leader last). */
  restarts: number;
  /** Pause between two writes of the client. */
  writeIntervalMs: number;
  /** Directory to write every hive log line to (`hive-<address>.log`), or null. */
  logDir: string | null;
  /** What "back in sync" means before the next pod is restarted; see {@link SYNC_CHECKS}. */
  syncCheck: SyncCheck;
}

/**
 * How the bench decides that a restarted pod is back in sync: `readyz` (what Kubernetes uses:
 * every node's `/readyz` answers 200 and they agree on one leader), or `offsets` (that, and
 * every replica's `slave_repl_offset` has reached the master's `master_repl_offset` read just
 * before, i.e. it has really received every write).
 */
export const SYNC_CHECKS = ["readyz", "offsets"] as const;

/** One of {@link SYNC_CHECKS}. */
export type SyncCheck = typeof SYNC_CHECKS[number];

/**
 * The keys of `keys` that the redis at host:port does not hold, checked with `EXISTS` in
 * batches of {@link EXISTS_BATCH} (a batch that comes up short is checked key by key).
 *
 * @example
 * ```ts
 * import { missingKeys } from "./rolling.ts";
 * const lost = await missingKeys("127.0.5.31", 16379, ["k:1", "k:2"]);
 * ```
 */
export async function missingKeys(
  host: string,
  port: number,
  keys: readonly string[],
): Promise<string[]> {
  const missing: string[] = [];
  const conn = await RespConnection.open(host, port);
  try {
    for (let i = 0; i < keys.length; i += EXISTS_BATCH) {
      const batch = keys.slice(i, i + EXISTS_BATCH);
      const count = await conn.command(["EXISTS", ...batch], EXISTS_TIMEOUT_MS);
      if (typeof count !== "number") throw new Error(`EXISTS answered ${JSON.stringify(count)}`);
      if (count === batch.length) continue;
      const each = await conn.pipeline(batch.map((k) => ["EXISTS", k]), EXISTS_TIMEOUT_MS);
      batch.forEach((key, j) => {
        if (each[j] !== 1) missing.push(key);
      });
    }
  } finally {
    conn.close();
  }
  return missing;
}

/** One pod restart of a rolling restart. */
export interface PodRestart {
  /** 1-based rolling restart. */
  round: number;
  address: string;
  /** Whether the pod led when it got SIGTERM. */
  wasLeader: boolean;
  /** The leader once every node was ready again. */
  leaderAfter: string;
  /** From SIGTERM to the hive's exit. */
  hiveExitMs: number;
  /** The hive's exit code (0 for a clean exit; non-zero or a signal otherwise). */
  hiveExit: string;
  /** From SIGTERM to every node ready again. */
  totalMs: number;
  /** Longest gap between two acknowledged writes overlapping SIGTERM..ready. */
  pauseMs: number;
  /** Failed write attempts in that window. */
  failedWrites: number;
  /** What the leader logged about its handoff (message texts), when it led. */
  handoff: string[];
  /** `tookMs` of "handoff done", or null when not logged. */
  handoffTookMs: number | null;
  /** SIGTERM and every-node-ready times, ms since the run started. */
  startMs: number;
  endMs: number;
  /**
   * Acknowledged writes lost that were acknowledged after the previous restart ended and before
   * this one ended (filled in once the final master was checked).
   */
  lost: number;
}

/** A hive log record about a handoff, as captured from its stdout. */
interface HandoffRecord {
  address: string;
  atMs: number;
  message: string;
  fields: Record<string, unknown>;
}

async function httpGet(url: string): Promise<{ status: number; body: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(HTTP_TIMEOUT_MS) });
  return { status: res.status, body: await res.text() };
}

/**
 * Checks once that every node is ready (`/readyz` 200) and that they agree on one leader;
 * returns the leader, or the reason they are not.
 */
async function checkReady(
  cluster: LocalCluster,
  syncCheck: SyncCheck,
): Promise<{ leader: string } | string> {
  const leaders = new Set<string>();
  let leading: string | null = null;
  for (const node of cluster.nodes) {
    const base = `http://${node.address}:${node.ports.http}`;
    try {
      const ready = await httpGet(`${base}/readyz`);
      if (ready.status !== 200) return `${node.address} not ready: ${ready.body.trim()}`;
      const status = await node.status();
      if (status.leader === null) return `${node.address} knows no leader`;
      leaders.add(status.leader);
      if (status.role === "leader") leading = node.address;
    } catch (e) {
      return `${node.address}: ${e instanceof Error ? e.message : e}`;
    }
  }
  if (leaders.size !== 1 || leading === null || !leaders.has(leading)) {
    return `no agreed leader: ${[...leaders].join(", ")} (leading: ${leading})`;
  }
  if (syncCheck === "offsets") {
    const master = cluster.node(leading);
    try {
      const masterOffset = Number((await master.redisInfo()).get("master_repl_offset"));
      for (const node of cluster.nodes) {
        if (node === master) continue;
        const offset = Number((await node.redisInfo()).get("slave_repl_offset"));
        if (!(offset >= masterOffset)) {
          return `${node.address}'s redis at offset ${offset}, the master was at ${masterOffset}`;
        }
      }
    } catch (e) {
      return `offsets: ${e instanceof Error ? e.message : e}`;
    }
  }
  return { leader: leading };
}

async function waitReady(cluster: LocalCluster, syncCheck: SyncCheck): Promise<string> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let reason = "";
  for (;;) {
    const r = await checkReady(cluster, syncCheck);
    if (typeof r !== "string") return r.leader;
    reason = r;
    if (Date.now() > deadline) {
      throw new Error(`the hive was not ready after ${READY_TIMEOUT_MS} ms: ${reason}`);
    }
    await sleep(READY_POLL_MS);
  }
}

function exitText(status: Deno.CommandStatus): string {
  return status.signal === null ? `code ${status.code}` : `signal ${status.signal}`;
}

/** Restarts one pod as Kubernetes would, under the writer; returns what happened. */
async function restartPod(
  cluster: LocalCluster,
  node: LocalNode,
  writer: ContinuousWriter,
  round: number,
  handoffs: readonly HandoffRecord[],
  originMs: number,
  syncCheck: SyncCheck,
): Promise<PodRestart> {
  const wasLeader = (await node.status()).role === "leader";
  writer.avoid(node.address);
  const t0 = performance.now();
  const hive = node.hive;
  if (hive === null) throw new Error(`hive of ${node.address} never started`);
  const exit = await hive.kill("SIGTERM");
  const hiveExitMs = performance.now() - t0;
  await node.redis?.kill("SIGTERM");
  await node.startRedis({ parked: true });
  await node.startHive();
  const leaderAfter = await waitReady(cluster, syncCheck);
  const t1 = performance.now();
  writer.allow(node.address);
  const mine = handoffs.filter((h) => h.address === node.address && h.atMs >= t0 && h.atMs <= t1);
  const done = mine.find((h) => h.message.startsWith("handoff done"));
  return {
    round,
    address: node.address,
    wasLeader,
    leaderAfter,
    hiveExitMs,
    hiveExit: exitText(exit),
    totalMs: t1 - t0,
    pauseMs: longestGapMs(writer.acks, t0, t1),
    failedWrites: writer.log.failures.filter((f) => f.atMs >= t0 && f.atMs <= t1).length,
    handoff: mine.map((h) => h.message),
    handoffTookMs: typeof done?.fields.tookMs === "number" ? done.fields.tookMs : null,
    startMs: t0 - originMs,
    endMs: t1 - originMs,
    lost: 0,
  };
}

function formatMs(ms: number | null): string {
  return ms === null || Number.isNaN(ms) ? "-" : `${Math.round(ms)} ms`;
}

/** The result of a whole run. */
export interface RollingResult {
  restarts: PodRestart[];
  /** Longest gap between two acknowledged writes over the whole run. */
  longestPauseMs: number;
  acked: number;
  failedWrites: number;
  lost: number;
  /** Up to 20 lost keys, with when they were acknowledged (ms since the run started). */
  lostSample: { key: string; ackedAtMs: number }[];
}

/**
 * The summary table (markdown).
 *
 * @example
 * ```ts
 * import { summaryTable } from "./rolling.ts";
 * console.log(summaryTable({ restarts: [], longestPauseMs: 0, acked: 0, failedWrites: 0, lost: 0, lostSample: [] }));
 * ```
 */
export function summaryTable(r: RollingResult): string {
  const stats = (values: number[]) =>
    `${formatMs(quantile(values, 0.5))} | ${formatMs(quantile(values, P95))} | ${
      formatMs(values.length === 0 ? NaN : Math.max(...values))
    }`;
  const leaders = r.restarts.filter((p) => p.wasLeader);
  const followers = r.restarts.filter((p) => !p.wasLeader);
  const took = leaders.map((p) => p.handoffTookMs).filter((t): t is number => t !== null);
  const pauseOk = r.longestPauseMs <= TARGET_PAUSE_MS ? "met" : "MISSED";
  const lostOk = r.lost <= TARGET_LOST ? "met" : "MISSED";
  return [
    "| measure | count | median | p95 | max | target |",
    "|---|---|---|---|---|---|",
    `| write pause, restart of the leader | ${leaders.length} | ${
      stats(leaders.map((p) => p.pauseMs))
    } | at most ${TARGET_PAUSE_MS} ms |`,
    `| write pause, restart of a follower | ${followers.length} | ${
      stats(followers.map((p) => p.pauseMs))
    } | |`,
    `| handoff (leader's log: SIGTERM to successor leading) | ${took.length} | ${stats(took)} | |`,
    `| leader pod: SIGTERM to hive exit | ${leaders.length} | ${
      stats(leaders.map((p) => p.hiveExitMs))
    } | |`,
    `| pod: SIGTERM to every node ready again | ${r.restarts.length} | ${
      stats(r.restarts.map((p) => p.totalMs))
    } | |`,
    `| longest write pause overall | 1 | | | ${
      formatMs(r.longestPauseMs)
    } | at most ${TARGET_PAUSE_MS} ms: ${pauseOk} |`,
    `| acknowledged writes lost | ${r.acked} acked | | | ${r.lost} | ${TARGET_LOST}: ${lostOk} |`,
  ].join("\n");
}

function parseOptions(args: string[]): RollingOptions {
  const { values } = parseArgs({
    args,
    options: {
      restarts: { type: "string", default: String(DEFAULT_RESTARTS) },
      "write-interval-ms": { type: "string", default: String(DEFAULT_WRITE_INTERVAL_MS) },
      "log-dir": { type: "string" },
      "sync-check": { type: "string", default: "readyz" },
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
  return {
    restarts: integer("restarts", values.restarts, 1, MAX_RESTARTS),
    writeIntervalMs: integer(
      "write-interval-ms",
      values["write-interval-ms"],
      0,
      MAX_WRITE_INTERVAL_MS,
    ),
    logDir: values["log-dir"] ?? null,
    syncCheck: syncCheckOf(values["sync-check"]),
  };
}

function syncCheckOf(text: string): SyncCheck {
  const check = SYNC_CHECKS.find((c) => c === text);
  if (check === undefined) {
    throw new Error(`--sync-check: expected one of ${SYNC_CHECKS.join(", ")}, got ${text}`);
  }
  return check;
}

/** Captures the hive log records about handoffs (JSON lines) with their arrival time. */
function handoffCollector(into: HandoffRecord[]): (address: string, line: string) => void {
  return (address, line) => {
    if (!line.includes("handoff") && !line.includes("graceful shutdown")) return;
    let record: Record<string, unknown>;
    try {
      record = JSON.parse(line);
    } catch {
      return;
    }
    const message = typeof record.message === "string" ? record.message : "";
    if (into.length < MAX_HANDOFF_RECORDS) {
      into.push({ address, atMs: performance.now(), message, fields: record });
    }
  };
}

/**
 * Runs the rolling restarts on a fresh cluster; returns the figures.
 *
 * @example
 * ```ts
 * import { runRolling } from "./rolling.ts";
 * const result = await runRolling({
 *   restarts: 1,
 *   writeIntervalMs: 2,
 *   logDir: null,
 *   syncCheck: "readyz",
 * });
 * console.log(result.longestPauseMs, result.lost);
 * ```
 */
export async function runRolling(
  opts: RollingOptions,
  onRestart: (r: PodRestart) => void = () => {},
): Promise<RollingResult> {
  const handoffs: HandoffRecord[] = [];
  const collect = handoffCollector(handoffs);
  const logFiles = new Map<string, Deno.FsFile>();
  if (opts.logDir !== null) {
    await Deno.mkdir(opts.logDir, { recursive: true });
    for (const a of ADDRESSES) {
      logFiles.set(
        a,
        await Deno.open(`${opts.logDir}/hive-${a}.log`, {
          create: true,
          write: true,
          truncate: true,
        }),
      );
    }
  }
  const encoder = new TextEncoder();
  try {
    return await LocalCluster.run({
      addresses: ADDRESSES,
      discovery: { kind: "static" },
      parked: true,
      redisSocket: true, // as the manifests
      onHiveLine: (address, line) => {
        collect(address, line);
        logFiles.get(address)?.writeSync(encoder.encode(`${line}\n`));
      },
    }, async (cluster) => {
      await waitReady(cluster, opts.syncCheck);
      // The client moves off a pod before it is restarted, as the `-master` Service does.
      const writer = new ContinuousWriter({
        endpoints: ADDRESSES.map((host) => ({ host, port: cluster.ports.proxy })),
        prefix: `bench:rolling:${Date.now()}`,
        intervalMs: opts.writeIntervalMs,
      });
      const restarts: PodRestart[] = [];
      const originMs = performance.now();
      writer.start();
      let acks: Ack[];
      try {
        await sleep(WRITE_MARGIN_MS);
        for (let round = 1; round <= opts.restarts; round++) {
          const leader = await waitReady(cluster, opts.syncCheck);
          const order = [...ADDRESSES.filter((a) => a !== leader).sort(), leader];
          for (const address of order) {
            const r = await restartPod(
              cluster,
              cluster.node(address),
              writer,
              round,
              handoffs,
              originMs,
              opts.syncCheck,
            );
            restarts.push(r);
            onRestart(r);
          }
        }
        await sleep(WRITE_MARGIN_MS);
      } finally {
        acks = (await writer.stop()).acks;
      }
      const settled = await cluster.waitForSettled({ timeoutMs: READY_TIMEOUT_MS });
      const master = cluster.node(settled.leader);
      const lostKeys = await missingKeys(
        master.address,
        master.ports.redis,
        acks.map((a) => a.key),
      );
      const ackedAt = new Map(acks.map((a) => [a.key, a.atMs - originMs]));
      for (const key of lostKeys) {
        const at = ackedAt.get(key) ?? 0;
        const during = restarts.find((r) => r.endMs >= at);
        if (during !== undefined) during.lost++;
      }
      return {
        restarts,
        longestPauseMs: longestGapMs(acks),
        acked: acks.length,
        failedWrites: writer.log.failureCount,
        lost: lostKeys.length,
        lostSample: lostKeys.slice(0, 20).map((key) => ({ key, ackedAtMs: ackedAt.get(key) ?? 0 })),
      };
    });
  } finally {
    for (const f of logFiles.values()) f.close();
  }
}

/**
 * Runs the benchmark with the arguments after `bench rolling`; prints each pod restart, the
 * table and the command.
 *
 * @example
 * ```ts
 * import { main } from "./rolling.ts";
 * await main(["--restarts", "2"]);
 * ```
 */
export async function main(args: string[]): Promise<void> {
  let opts: RollingOptions;
  try {
    opts = parseOptions(args);
  } catch (e) {
    console.error(`bench rolling: ${e instanceof Error ? e.message : e}`);
    Deno.exit(2);
  }
  const command = `deno task bench rolling ${args.join(" ")}`.trim();
  console.log(
    `${command}: ${opts.restarts} rolling restarts of ${ADDRESSES.length} pods ` +
      `(followers first, the leader last), writes every ${opts.writeIntervalMs} ms, ` +
      `back in sync when: ${opts.syncCheck}`,
  );
  const result = await runRolling(opts, (r) => {
    console.log(
      `#${r.round} +${Math.round(r.startMs)} ms ${r.address} (${
        r.wasLeader ? "leader" : "follower"
      }): write pause ${formatMs(r.pauseMs)}, hive exited after ${
        formatMs(r.hiveExitMs)
      } (${r.hiveExit}), all ready after ${
        formatMs(r.totalMs)
      }, leader now ${r.leaderAfter}, ${r.failedWrites} failed attempts${
        r.wasLeader ? `; handoff: ${r.handoff.join(" / ") || "nothing logged"}` : ""
      }`,
    );
  });
  console.log();
  console.log(summaryTable(result));
  console.log();
  console.log(
    `${result.acked} writes acknowledged, ${result.failedWrites} failed attempts, ${result.lost} acknowledged writes lost`,
  );
  for (const r of result.restarts.filter((p) => p.lost > 0)) {
    console.log(
      `  ${r.lost} lost writes were acknowledged up to the end of restart #${r.round} of ${r.address} (${
        r.wasLeader ? "leader" : "follower"
      }, +${Math.round(r.startMs)}..${Math.round(r.endMs)} ms) and after the restart before it`,
    );
  }
  for (const l of result.lostSample) {
    console.log(`  lost ${l.key}, acknowledged at +${Math.round(l.ackedAtMs)} ms`);
  }
  console.log(
    `command: ${command} (write interval ${opts.writeIntervalMs} ms, sync check ${opts.syncCheck})`,
  );
}

if (import.meta.main) await main(Deno.args);
