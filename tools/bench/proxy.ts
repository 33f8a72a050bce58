/**
 * Proxy benchmark (`deno task bench proxy`): `redis-benchmark -c 50 -t set,get` against one
 * redis-server, directly and through proxies that each run in their own process:
 *
 * - `direct`: TCP straight to redis (the base of every ratio);
 * - `hive`: a master proxy (tools/bench/proxy_server.ts) with the Deno engine, TCP upstream;
 * - `epoll`: the same with the epoll engine (lib/proxy/epoll/epoll_proxy.ts), TCP upstream;
 * - `epoll-unix`: the epoll engine forwarding to redis's Unix socket (`--target-socket`), as the
 *   leader's hive does in a pod (the socket file in a volume shared with the redis container);
 * - `haproxy`: HAProxy in TCP mode with its defaults, TCP upstream (the issue's target);
 * - `haproxy-unix`: the same HAProxy forwarding to redis's Unix socket.
 *
 * The HAProxy contestants run only when `haproxy` is installed (and not with `--no-haproxy`).
 * Rounds interleave the contestants (in a rotating order), plain and with `-P 16`; each result is
 * a ratio of the direct run of the same round (or of the HAProxy run), median over rounds. The
 * CPU time of each proxy process per request is measured around each of its runs. Then it
 * measures the resident memory (VmRSS) of a fresh proxy process (both engines), idle and holding
 * 1000 idle proxied connections (HAProxy alongside for reference). Progress goes to stderr, the
 * markdown report to stdout.
 *
 * Redis listens on TCP and on `<temp dir>/redis.sock`. Loopback addresses used: 127.0.1.40:16379
 * (redis), 127.0.1.41:16380 (hive), .42:16381 (HAProxy), .43:16382/16383/16385 (the memory
 * measurement's proxies), .44:16384 (epoll), .45:16386 (epoll-unix), .46:16387 (haproxy-unix).
 *
 * @example
 * ```sh
 * deno task bench proxy                      # defaults: 5 rounds, about 3 minutes
 * deno task bench proxy --rounds 3 --requests 50000 --pipelined-requests 500000
 * deno task bench proxy --rounds 1 --requests 5000 --pipelined-requests 20000 --idle-connections 50
 * deno task bench proxy --no-haproxy         # the hive contestants only
 * ```
 */

import { sleep } from "../../testing/wait.ts";
import { parseArgs } from "node:util";
import { median as statsMedian } from "./stats.ts";

/** Default number of interleaved rounds. */
export const DEFAULT_ROUNDS = 5;
/** Default requests per redis-benchmark test, unpipelined. */
export const DEFAULT_REQUESTS = 60_000;
/** Default requests per redis-benchmark test with `-P 16`. */
export const DEFAULT_PIPELINED_REQUESTS = 600_000;
/** redis-benchmark parallel clients (`-c`). */
export const BENCH_CLIENTS = 50;
/** Pipeline depth of the pipelined runs (`-P`). */
export const BENCH_PIPELINE = 16;
/** Idle proxied connections held for the memory measurement. */
export const DEFAULT_IDLE_CONNECTIONS = 1000;
/** How long to wait for a started process to accept connections. */
export const START_TIMEOUT_MS = 10_000;

/**
 * A way the benchmark client reaches redis: `direct`, or through one proxy process (see the
 * module doc).
 *
 * @example
 * ```ts
 * const who: ContestantId = "epoll-unix";
 * ```
 */
export type ContestantId =
  | "direct"
  | "hive"
  | "epoll"
  | "epoll-unix"
  | "haproxy"
  | "haproxy-unix";

/**
 * The proxy contestants (all but `direct`), in the order the report lists them.
 *
 * @example
 * ```ts
 * PROXY_CONTESTANTS.includes("haproxy"); // true
 * ```
 */
export const PROXY_CONTESTANTS: readonly ContestantId[] = [
  "hive",
  "epoll",
  "epoll-unix",
  "haproxy",
  "haproxy-unix",
];

/**
 * Every contestant: `direct`, then the proxies.
 *
 * @example
 * ```ts
 * CONTESTANTS[0]; // "direct"
 * ```
 */
export const CONTESTANTS: readonly ContestantId[] = ["direct", ...PROXY_CONTESTANTS];

/**
 * The contestants the report compares with the TCP HAProxy (the issue's target).
 *
 * @example
 * ```ts
 * HAPROXY_COMPARED.includes("haproxy-unix"); // true
 * ```
 */
export const HAPROXY_COMPARED: readonly ContestantId[] = [
  "hive",
  "epoll",
  "epoll-unix",
  "haproxy-unix",
];

/**
 * How the report names each contestant.
 *
 * @example
 * ```ts
 * CONTESTANT_LABELS.epoll; // "hive (epoll engine)"
 * ```
 */
export const CONTESTANT_LABELS: Readonly<Record<ContestantId, string>> = {
  direct: "direct",
  hive: "hive (deno engine)",
  epoll: "hive (epoll engine)",
  "epoll-unix": "hive (epoll, Unix socket upstream)",
  haproxy: "HAProxy",
  "haproxy-unix": "HAProxy (Unix socket upstream)",
};

/**
 * A redis-benchmark mode: unpipelined, or with `-P BENCH_PIPELINE`.
 *
 * @example
 * ```ts
 * const mode: Mode = "pipelined";
 * ```
 */
export type Mode = "plain" | "pipelined";

/**
 * The modes, in the order they run and are reported.
 *
 * @example
 * ```ts
 * MODES.length; // 2
 * ```
 */
export const MODES: readonly Mode[] = ["plain", "pipelined"];

/**
 * The redis-benchmark tests (`-t set,get`), named as in its CSV output.
 *
 * @example
 * ```ts
 * BENCH_TESTS[0]; // "SET"
 * ```
 */
export const BENCH_TESTS = ["SET", "GET"] as const;

/**
 * What one sample measures: requests per second of a test, or the proxy process's CPU time per
 * request (µs) in user or system mode.
 *
 * @example
 * ```ts
 * const metric: Metric = "cpu-sys";
 * ```
 */
export type Metric = (typeof BENCH_TESTS)[number] | "cpu-user" | "cpu-sys";

/**
 * Samples, one per round, by `resultKey(mode, contestant, metric)`.
 *
 * @example
 * ```ts
 * const results: BenchResults = new Map();
 * addSample(results, "plain", "direct", "SET", 80_000);
 * ```
 */
export type BenchResults = Map<string, number[]>;

/**
 * The key of one series of samples in `BenchResults`.
 *
 * @example
 * ```ts
 * resultKey("plain", "hive", "GET"); // "plain/hive/GET"
 * ```
 */
export function resultKey(mode: Mode, who: ContestantId, metric: Metric): string {
  return `${mode}/${who}/${metric}`;
}

/**
 * Appends the sample of the current round to its series.
 *
 * @example
 * ```ts
 * const results: BenchResults = new Map();
 * addSample(results, "pipelined", "epoll", "cpu-user", 1.5);
 * ```
 */
export function addSample(
  results: BenchResults,
  mode: Mode,
  who: ContestantId,
  metric: Metric,
  value: number,
): void {
  if (!Number.isFinite(value)) throw new RangeError(`sample ${who} ${metric}: ${value}`);
  const k = resultKey(mode, who, metric);
  const series = results.get(k);
  if (series === undefined) results.set(k, [value]);
  else series.push(value);
}

/**
 * The median of a non-empty list.
 *
 * @example
 * ```ts
 * median([3, 1, 2, 10]); // 2.5
 * ```
 */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError("median of nothing");
  return statsMedian(values);
}

/**
 * The ratio of two series taken round by round, then the median over rounds (so a round that
 * was slow for everyone cancels out); `undefined` when either series is missing. The series
 * must have one sample per round each.
 *
 * @example
 * ```ts
 * medianRatio([10, 20, 90], [10, 40, 30]); // 1 (the ratio of the medians would be 0.67)
 * medianRatio([10], undefined); // undefined
 * ```
 */
export function medianRatio(
  num: readonly number[] | undefined,
  den: readonly number[] | undefined,
): number | undefined {
  if (num === undefined || den === undefined) return undefined;
  if (num.length !== den.length || num.length === 0) {
    throw new Error(`medianRatio: ${num.length} samples against ${den.length}`);
  }
  return median(num.map((v, i) => v / (den[i] as number)));
}

/**
 * Lines of a markdown table; every row must have one cell per header cell.
 *
 * @example
 * ```ts
 * markdownTable(["a", "b"], [["1", "2"]]); // ["| a | b |", "|---|---|", "| 1 | 2 |"]
 * ```
 */
export function markdownTable(header: readonly string[], rows: readonly string[][]): string[] {
  const line = (cells: readonly string[]) => `| ${cells.join(" | ")} |`;
  for (const row of rows) {
    if (row.length !== header.length) {
      throw new Error(`markdownTable: a row of ${row.length} cells under ${header.length}`);
    }
  }
  return [line(header), `|${header.map(() => "---|").join("")}`, ...rows.map(line)];
}

/** The columns of the rps tables: every mode and test, e.g. `SET`, `GET -P 16`. */
function runColumns(): { mode: Mode; test: (typeof BENCH_TESTS)[number]; label: string }[] {
  return MODES.flatMap((mode) =>
    BENCH_TESTS.map((test) => ({
      mode,
      test,
      label: `${test}${mode === "pipelined" ? ` -P ${BENCH_PIPELINE}` : ""}`,
    }))
  );
}

function fmtRatio(x: number | undefined): string {
  return x === undefined ? "-" : x.toFixed(2);
}

/**
 * Lines of a markdown table of throughput ratios: one row `<label> / <base label>` per
 * contestant in `whos`, one column per mode and test, each the per-round ratio to `base`,
 * median over rounds (`medianRatio`), "-" for a contestant (or base) that did not run. With
 * `baseRps`, a first row holds the base's own rps, median over rounds.
 *
 * @example
 * ```ts
 * const results: BenchResults = new Map();
 * addSample(results, "plain", "direct", "SET", 100);
 * ratioTable(results, ["hive"], "direct", { baseRps: true });
 * ```
 */
export function ratioTable(
  results: BenchResults,
  whos: readonly ContestantId[],
  base: ContestantId,
  opts: { baseRps?: boolean } = {},
): string[] {
  const columns = runColumns();
  const rows: string[][] = [];
  if (opts.baseRps) {
    rows.push([
      `${CONTESTANT_LABELS[base]} rps (median)`,
      ...columns.map(({ mode, test }) => {
        const series = results.get(resultKey(mode, base, test));
        return series === undefined ? "-" : median(series).toFixed(0);
      }),
    ]);
  }
  for (const who of whos) {
    rows.push([
      `${CONTESTANT_LABELS[who]} / ${CONTESTANT_LABELS[base]}`,
      ...columns.map(({ mode, test }) =>
        fmtRatio(medianRatio(
          results.get(resultKey(mode, who, test)),
          results.get(resultKey(mode, base, test)),
        ))
      ),
    ]);
  }
  return markdownTable(["", ...columns.map((c) => c.label)], rows);
}

/**
 * Lines of a markdown table of CPU time per request (µs, median over rounds): one row per
 * contestant in `whos`, user and system time per mode; "-" for one that did not run.
 *
 * @example
 * ```ts
 * const results: BenchResults = new Map();
 * addSample(results, "plain", "hive", "cpu-user", 3.2);
 * cpuTable(results, ["hive", "epoll"]);
 * ```
 */
export function cpuTable(results: BenchResults, whos: readonly ContestantId[]): string[] {
  const parts = ["cpu-user", "cpu-sys"] as const;
  const modeLabel = (mode: Mode) => mode === "plain" ? "plain" : `-P ${BENCH_PIPELINE}`;
  const header = [
    "proxy process",
    ...MODES.flatMap((mode) => parts.map((p) => `${modeLabel(mode)} ${p.slice(4)}`)),
  ];
  const rows = whos.map((who) => [
    CONTESTANT_LABELS[who],
    ...MODES.flatMap((mode) =>
      parts.map((part) => {
        const series = results.get(resultKey(mode, who, part));
        return series === undefined ? "-" : median(series).toFixed(2);
      })
    ),
  ]);
  return markdownTable(header, rows);
}

const REDIS = { host: "127.0.1.40", port: 16379 };
const HIVE = { host: "127.0.1.41", port: 16380 };
const HAPROXY = { host: "127.0.1.42", port: 16381 };
const MEMORY_HIVE = { host: "127.0.1.43", port: 16382 };
const MEMORY_HAPROXY = { host: "127.0.1.43", port: 16383 };
const EPOLL = { host: "127.0.1.44", port: 16384 };
const MEMORY_EPOLL = { host: "127.0.1.43", port: 16385 };
const EPOLL_UNIX = { host: "127.0.1.45", port: 16386 };
const HAPROXY_UNIX = { host: "127.0.1.46", port: 16387 };
/** The socket file redis listens on, in the run's temp dir. */
const REDIS_SOCKET_NAME = "redis.sock";

/** Where the benchmark client connects for each contestant. */
const ADDRESS_OF: Readonly<Record<ContestantId, Addr>> = {
  direct: REDIS,
  hive: HIVE,
  epoll: EPOLL,
  "epoll-unix": EPOLL_UNIX,
  haproxy: HAPROXY,
  "haproxy-unix": HAPROXY_UNIX,
};

type Addr = { host: string; port: number };
/** Where a proxy forwards to: redis over TCP, or its Unix socket. */
type Upstream = Addr | { path: string };
/** rps of one redis-benchmark run, by test name (SET, GET). */
type RunResult = Map<string, number>;

const PROXY_SERVER = new URL("./proxy_server.ts", import.meta.url).pathname;
/** The epoll engine's worker loads its modules (lib/) from disk when run from source. */
const LIB_DIR = new URL("../../lib/", import.meta.url).pathname;

/** A child process this benchmark started; stopped in `finally`. */
class Child {
  constructor(readonly name: string, readonly process: Deno.ChildProcess) {}

  get pid(): number {
    return this.process.pid;
  }

  async stop(): Promise<void> {
    try {
      this.process.kill("SIGTERM");
    } catch { /* already gone */ }
    const timer = setTimeout(() => {
      try {
        this.process.kill("SIGKILL");
      } catch { /* already gone */ }
    }, 3000);
    try {
      await this.process.status;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Waits until `addr` answers a RESP PING with +PONG (directly or through a proxy). */
async function waitForPong(addr: Addr, child: Child): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  let exited = false;
  child.process.status.then(() => exited = true);
  for (;;) {
    if (exited) throw new Error(`${child.name} exited at start`);
    try {
      const conn = await Deno.connect({ hostname: addr.host, port: addr.port });
      try {
        await conn.write(new TextEncoder().encode("PING\r\n"));
        const buf = new Uint8Array(16);
        const n = await conn.read(buf);
        if (n !== null && new TextDecoder().decode(buf.subarray(0, n)).startsWith("+PONG")) return;
      } finally {
        conn.close();
      }
    } catch { /* not up yet */ }
    if (Date.now() > deadline) throw new Error(`${child.name} did not answer on ${addr.port}`);
    await sleep(50);
  }
}

function startRedis(dir: string): Child {
  const process = new Deno.Command("redis-server", {
    args: [
      "--bind",
      REDIS.host,
      "--port",
      String(REDIS.port),
      "--unixsocket",
      `${dir}/${REDIS_SOCKET_NAME}`,
      "--unixsocketperm",
      "700",
      "--save",
      "",
      "--appendonly",
      "no",
      "--protected-mode",
      "no",
      "--dir",
      dir,
      "--logfile",
      `${dir}/redis.log`,
    ], // deno-fmt-ignore
    stdin: "null",
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  return new Child("redis-server", process);
}

function startHive(name: string, bind: Addr, engine: "deno" | "epoll", upstream: Upstream): Child {
  const process = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      // The epoll engine calls libc (FFI, also to connect to a Unix socket) and loads its worker
      // module from disk; the Deno engine needs read and write permission on a socket path.
      ...(engine === "epoll" ? ["--allow-ffi", `--allow-read=${LIB_DIR}`] : []),
      ...(engine === "deno" && "path" in upstream
        ? [`--allow-read=${upstream.path}`, `--allow-write=${upstream.path}`]
        : []),
      PROXY_SERVER,
      "--engine",
      engine,
      "--bind",
      `${bind.host}:${bind.port}`,
      ...("path" in upstream
        ? ["--target-socket", upstream.path]
        : ["--target", `${upstream.host}:${upstream.port}`]),
    ], // deno-fmt-ignore
    stdin: "null",
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  return new Child(name, process);
}

async function haproxyInstalled(): Promise<boolean> {
  try {
    const { success } = await new Deno.Command("haproxy", { args: ["-v"], stdout: "null" })
      .output();
    return success;
  } catch {
    return false;
  }
}

async function startHaproxy(
  dir: string,
  name: string,
  bind: Addr,
  upstream: Upstream,
): Promise<Child> {
  const config = [
    "global",
    "  maxconn 4000",
    "defaults",
    "  mode tcp",
    "  timeout connect 5s",
    "  timeout client 1h",
    "  timeout server 1h",
    "listen redis",
    `  bind ${bind.host}:${bind.port}`,
    // An address starting with "/" is a Unix socket to HAProxy.
    `  server redis ${"path" in upstream ? upstream.path : `${upstream.host}:${upstream.port}`}`,
    "",
  ].join("\n");
  const path = `${dir}/haproxy-${name}.cfg`;
  await Deno.writeTextFile(path, config);
  const process = new Deno.Command("haproxy", {
    args: ["-f", path, "-db"],
    stdin: "null",
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  return new Child(`haproxy (${name})`, process);
}

/** Runs redis-benchmark once; rps by test (SET, GET). */
async function redisBenchmark(addr: Addr, requests: number, pipeline: number): Promise<RunResult> {
  const args = [
    "-h",
    addr.host,
    "-p",
    String(addr.port),
    "-c",
    String(BENCH_CLIENTS),
    "-n",
    String(requests),
    "-t",
    "set,get",
    "-q",
    "--csv",
  ]; // deno-fmt-ignore
  if (pipeline > 1) args.push("-P", String(pipeline));
  const out = await new Deno.Command("redis-benchmark", { args, stdin: "null" }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(`redis-benchmark failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  const result: RunResult = new Map();
  for (const line of text.trim().split("\n").slice(1)) {
    const [test, rps] = line.split(",").map((f) => f.replaceAll('"', ""));
    if (test !== undefined && rps !== undefined && Number(rps) > 0) result.set(test, Number(rps));
  }
  if (!result.has("SET") || !result.has("GET")) {
    throw new Error(`unexpected redis-benchmark output:\n${text}`);
  }
  return result;
}

/** User and system CPU time of a process (all threads), in clock ticks (/proc/<pid>/stat). */
async function cpuTicks(pid: number): Promise<{ user: number; sys: number }> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { user: Number(fields[11]), sys: Number(fields[12]) };
}

/** Clock ticks per second (`getconf CLK_TCK`), 100 when getconf is missing. */
async function clockTicks(): Promise<number> {
  try {
    const out = await new Deno.Command("getconf", { args: ["CLK_TCK"], stderr: "null" }).output();
    const n = Number(new TextDecoder().decode(out.stdout).trim());
    return Number.isInteger(n) && n > 0 ? n : 100;
  } catch {
    return 100;
  }
}

/** VmRSS of a process, in KiB. */
async function rssKiB(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (!m) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]);
}

/** Opens `count` connections through `addr`, each proven proxied by a PING, and keeps them. */
async function openIdle(addr: Addr, count: number): Promise<Deno.Conn[]> {
  const conns: Deno.Conn[] = [];
  const ping = new TextEncoder().encode("PING\r\n");
  const buf = new Uint8Array(16);
  try {
    for (let i = 0; i < count; i++) {
      const conn = await Deno.connect({ hostname: addr.host, port: addr.port });
      conns.push(conn);
      await conn.write(ping);
      const n = await conn.read(buf);
      if (n === null) throw new Error(`connection ${i} through ${addr.port} closed`);
    }
  } catch (e) {
    for (const c of conns) c.close();
    throw e;
  }
  return conns;
}

async function measureIdleMemory(
  child: Child,
  addr: Addr,
  count: number,
): Promise<{ idleKiB: number; loadedKiB: number }> {
  await waitForPong(addr, child);
  await sleep(500);
  const idleKiB = await rssKiB(child.pid);
  const conns = await openIdle(addr, count);
  try {
    await sleep(1000);
    return { idleKiB, loadedKiB: await rssKiB(child.pid) };
  } finally {
    for (const c of conns) c.close();
  }
}

/** Starts the proxy process of one contestant (not `direct`). */
async function startContestant(who: ContestantId, dir: string): Promise<Child> {
  const socket = { path: `${dir}/${REDIS_SOCKET_NAME}` };
  const name = CONTESTANT_LABELS[who];
  switch (who) {
    case "direct":
      throw new Error("direct has no proxy process");
    case "hive":
      return startHive(name, HIVE, "deno", REDIS);
    case "epoll":
      return startHive(name, EPOLL, "epoll", REDIS);
    case "epoll-unix":
      return startHive(name, EPOLL_UNIX, "epoll", socket);
    case "haproxy":
      return await startHaproxy(dir, who, HAPROXY, REDIS);
    case "haproxy-unix":
      return await startHaproxy(dir, who, HAPROXY_UNIX, socket);
  }
}

/** Runs the benchmark and prints a markdown report on stdout (progress on stderr). */
export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      rounds: { type: "string", default: String(DEFAULT_ROUNDS) },
      requests: { type: "string", default: String(DEFAULT_REQUESTS) },
      "pipelined-requests": { type: "string", default: String(DEFAULT_PIPELINED_REQUESTS) },
      "idle-connections": { type: "string", default: String(DEFAULT_IDLE_CONNECTIONS) },
      "no-haproxy": { type: "boolean", default: false },
    },
    strict: true,
  });
  const positive = (flag: string, text: string) => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < 1) {
      throw new Error(`--${flag}: a positive integer, got ${text}`);
    }
    return n;
  };
  const rounds = positive("rounds", values.rounds);
  const requests: Record<Mode, number> = {
    plain: positive("requests", values.requests),
    pipelined: positive("pipelined-requests", values["pipelined-requests"]),
  };
  const idleConnections = positive("idle-connections", values["idle-connections"]);
  const withHaproxy = !values["no-haproxy"] && await haproxyInstalled();
  const contestants = CONTESTANTS.filter((who) => withHaproxy || !who.startsWith("haproxy"));

  const dir = await Deno.makeTempDir({ prefix: "redis-hive-bench-proxy-" });
  const children: Child[] = [];
  const startedAt = Date.now();
  const results: BenchResults = new Map();
  const memory: { label: string; idleKiB: number; loadedKiB: number }[] = [];
  try {
    const redis = startRedis(dir);
    children.push(redis);
    await waitForPong(REDIS, redis);
    const pidOf = new Map<ContestantId, number>();
    for (const who of contestants) {
      if (who === "direct") continue;
      const child = await startContestant(who, dir);
      children.push(child);
      await waitForPong(ADDRESS_OF[who], child);
      pidOf.set(who, child.pid);
    }
    const usPerTick = 1e6 / await clockTicks();

    for (let round = 0; round < rounds; round++) {
      for (const mode of MODES) {
        const order = contestants.map((_, i) => contestants[(i + round) % contestants.length]!);
        const line: string[] = [];
        for (const who of order) {
          const pid = pidOf.get(who);
          const cpuBefore = pid === undefined ? undefined : await cpuTicks(pid);
          const run = await redisBenchmark(
            ADDRESS_OF[who],
            requests[mode],
            mode === "plain" ? 1 : BENCH_PIPELINE,
          );
          if (pid !== undefined && cpuBefore !== undefined) {
            const cpuAfter = await cpuTicks(pid);
            // SET and GET together: BENCH_TESTS.length runs of requests[mode] each.
            const perRequest = (ticks: number) =>
              (ticks * usPerTick) / (BENCH_TESTS.length * requests[mode]);
            addSample(results, mode, who, "cpu-user", perRequest(cpuAfter.user - cpuBefore.user));
            addSample(results, mode, who, "cpu-sys", perRequest(cpuAfter.sys - cpuBefore.sys));
          }
          for (const test of BENCH_TESTS) {
            addSample(results, mode, who, test, run.get(test) as number);
          }
          line.push(`${who} SET ${run.get("SET")?.toFixed(0)} GET ${run.get("GET")?.toFixed(0)}`);
        }
        console.error(`round ${round + 1}/${rounds} ${mode}: ${line.join(", ")}`);
      }
    }

    console.error(`memory: ${idleConnections} idle proxied connections`);
    const memoryRuns: [ContestantId, Addr, () => Promise<Child>][] = [
      [
        "hive",
        MEMORY_HIVE,
        () => Promise.resolve(startHive("memory hive", MEMORY_HIVE, "deno", REDIS)),
      ],
      [
        "epoll",
        MEMORY_EPOLL,
        () => Promise.resolve(startHive("memory epoll", MEMORY_EPOLL, "epoll", REDIS)),
      ],
    ];
    if (withHaproxy) {
      memoryRuns.push([
        "haproxy",
        MEMORY_HAPROXY,
        () => startHaproxy(dir, "memory", MEMORY_HAPROXY, REDIS),
      ]);
    }
    for (const [who, addr, start] of memoryRuns) {
      const child = await start();
      children.push(child);
      const m = await measureIdleMemory(child, addr, idleConnections);
      memory.push({ label: CONTESTANT_LABELS[who], ...m });
    }
  } finally {
    for (const child of children.reverse()) await child.stop().catch(() => {});
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }

  const mib = (kib: number) => `${(kib / 1024).toFixed(1)} MiB`;
  console.log([
    `redis-benchmark -c ${BENCH_CLIENTS} -t set,get, ${rounds} interleaved rounds, ` +
    `${requests.plain} requests plain, ${requests.pipelined} with -P ${BENCH_PIPELINE}; ` +
    `per-round ratios, median over rounds (${((Date.now() - startedAt) / 1000).toFixed(0)} s)`,
    "",
    "Throughput as a ratio of direct:",
    "",
    ...ratioTable(results, PROXY_CONTESTANTS, "direct", { baseRps: true }),
    "",
    "Throughput as a ratio of HAProxy (TCP upstream), the target:",
    "",
    ...ratioTable(results, HAPROXY_COMPARED, "haproxy"),
    "",
    "CPU time of the proxy process per request (µs, user and system, median over rounds; SET and",
    "GET together): the measure least disturbed by other load on the machine.",
    "",
    ...cpuTable(results, PROXY_CONTESTANTS),
    "",
    `Resident memory (VmRSS) with ${idleConnections} idle proxied connections:`,
    "",
    ...markdownTable(
      ["process", "idle", "with connections", "per connection"],
      memory.map((m) => [
        m.label,
        mib(m.idleKiB),
        mib(m.loadedKiB),
        `${((m.loadedKiB - m.idleKiB) / idleConnections).toFixed(1)} KiB`,
      ]),
    ),
  ].join("\n"));
}

if (import.meta.main) await main(Deno.args);
