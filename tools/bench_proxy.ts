/**
 * Proxy benchmark (`deno task bench proxy`): `redis-benchmark -c 50 -t set,get` against one
 * redis-server directly, through a master proxy running in its own process
 * (tools/proxy_server.ts), once with the Deno engine ("hive") and once with the epoll engine
 * ("epoll", lib/proxy_epoll.ts) and, when `haproxy` is installed, through HAProxy in TCP mode with
 * its defaults. Rounds interleave the three (in a rotating order), plain and with `-P 16`; each
 * result is printed as a ratio of the direct run of the same round, median over rounds.
 * Then it measures the resident memory (VmRSS) of a fresh proxy process, idle and holding
 * 1000 idle proxied connections (HAProxy alongside for reference).
 *
 * Loopback addresses used: 127.0.1.40 (redis), .41 (hive proxy), .42 (HAProxy), .43 (the
 * memory measurement's proxies), .44 (hive proxy, epoll engine).
 *
 * @example
 * ```sh
 * deno task bench proxy                      # defaults: 5 rounds, about 2 minutes
 * deno task bench proxy --rounds 3 --requests 50000 --pipelined-requests 500000
 * ```
 */

import { parseArgs } from "node:util";

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

const REDIS = { host: "127.0.1.40", port: 16379 };
const HIVE = { host: "127.0.1.41", port: 16380 };
const HAPROXY = { host: "127.0.1.42", port: 16381 };
const MEMORY_HIVE = { host: "127.0.1.43", port: 16382 };
const MEMORY_HAPROXY = { host: "127.0.1.43", port: 16383 };
const EPOLL = { host: "127.0.1.44", port: 16384 };
const MEMORY_EPOLL = { host: "127.0.1.43", port: 16385 };

type Addr = { host: string; port: number };
type Contestant = "direct" | "hive" | "epoll" | "haproxy";
type Mode = "plain" | "pipelined";
/** rps of one redis-benchmark run, by test name (SET, GET). */
type RunResult = Map<string, number>;

const PROXY_SERVER = new URL("./proxy_server.ts", import.meta.url).pathname;
/** The epoll engine's worker loads its modules (lib/) from disk when run from source. */
const LIB_DIR = new URL("../lib/", import.meta.url).pathname;

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

async function sleep(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
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

function startHive(bind: Addr, engine: "deno" | "epoll" = "deno"): Child {
  const process = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      // The epoll engine calls libc (FFI) and loads its worker module from disk.
      ...(engine === "epoll" ? ["--allow-ffi", `--allow-read=${LIB_DIR}`] : []),
      PROXY_SERVER,
      "--engine",
      engine,
      "--bind",
      `${bind.host}:${bind.port}`,
      "--target",
      `${REDIS.host}:${REDIS.port}`,
    ], // deno-fmt-ignore
    stdin: "null",
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  return new Child(engine === "epoll" ? "hive proxy (epoll)" : "hive proxy", process);
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

async function startHaproxy(dir: string, bind: Addr, name: string): Promise<Child> {
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
    `  server redis ${REDIS.host}:${REDIS.port}`,
    "",
  ].join("\n");
  const path = `${dir}/${name}.cfg`;
  await Deno.writeTextFile(path, config);
  const process = new Deno.Command("haproxy", {
    args: ["-f", path, "-db"],
    stdin: "null",
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  return new Child("haproxy", process);
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

/** The median of a non-empty list. */
export function median(values: number[]): number {
  if (values.length === 0) throw new RangeError("median of nothing");
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? sorted[mid] as number
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
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

function fmtRatio(x: number | undefined): string {
  return x === undefined ? "-" : x.toFixed(2);
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
  const contestants: Contestant[] = withHaproxy
    ? ["direct", "hive", "epoll", "haproxy"]
    : ["direct", "hive", "epoll"];
  const addrOf: Record<Contestant, Addr> = {
    direct: REDIS,
    hive: HIVE,
    epoll: EPOLL,
    haproxy: HAPROXY,
  };

  const dir = await Deno.makeTempDir({ prefix: "redis-hive-bench-proxy-" });
  const children: Child[] = [];
  const startedAt = Date.now();
  // results[mode][contestant][test] = rps per round
  const results = new Map<string, number[]>();
  const key = (mode: Mode, who: Contestant, test: string) => `${mode}/${who}/${test}`;
  let memory: {
    hive: { idleKiB: number; loadedKiB: number };
    epoll?: typeof memory.hive;
    haproxy?: typeof memory.hive;
  };
  try {
    const redis = startRedis(dir);
    children.push(redis);
    await waitForPong(REDIS, redis);
    const hive = startHive(HIVE);
    children.push(hive);
    await waitForPong(HIVE, hive);
    const epoll = startHive(EPOLL, "epoll");
    children.push(epoll);
    await waitForPong(EPOLL, epoll);
    const pidOf: Partial<Record<Contestant, number>> = { hive: hive.pid, epoll: epoll.pid };
    if (withHaproxy) {
      const haproxy = await startHaproxy(dir, HAPROXY, "bench");
      children.push(haproxy);
      await waitForPong(HAPROXY, haproxy);
      pidOf.haproxy = haproxy.pid;
    }
    const clockTicksPerSecond = await clockTicks();

    for (let round = 0; round < rounds; round++) {
      for (const mode of ["plain", "pipelined"] as Mode[]) {
        const order = contestants.map((_, i) => contestants[(i + round) % contestants.length]!);
        const line: string[] = [];
        for (const who of order) {
          const pid = pidOf[who];
          const cpuBefore = pid === undefined ? undefined : await cpuTicks(pid);
          const run = await redisBenchmark(
            addrOf[who],
            requests[mode],
            mode === "plain" ? 1 : BENCH_PIPELINE,
          );
          if (pid !== undefined && cpuBefore !== undefined) {
            const cpuAfter = await cpuTicks(pid);
            const usPerTick = 1e6 / clockTicksPerSecond;
            const perRequest = (ticks: number) => (ticks * usPerTick) / (2 * requests[mode]);
            for (
              const [part, ticks] of [
                ["user", cpuAfter.user - cpuBefore.user],
                ["sys", cpuAfter.sys - cpuBefore.sys],
              ] as const
            ) {
              const k = key(mode, who, `cpu-${part}`);
              results.set(k, [...(results.get(k) ?? []), perRequest(ticks)]);
            }
          }
          for (const [test, rps] of run) {
            const k = key(mode, who, test);
            results.set(k, [...(results.get(k) ?? []), rps]);
          }
          line.push(`${who} SET ${run.get("SET")?.toFixed(0)} GET ${run.get("GET")?.toFixed(0)}`);
        }
        console.error(`round ${round + 1}/${rounds} ${mode}: ${line.join(", ")}`);
      }
    }

    console.error(`memory: ${idleConnections} idle proxied connections`);
    const memoryHive = startHive(MEMORY_HIVE);
    children.push(memoryHive);
    memory = { hive: await measureIdleMemory(memoryHive, MEMORY_HIVE, idleConnections) };
    const memoryEpoll = startHive(MEMORY_EPOLL, "epoll");
    children.push(memoryEpoll);
    memory.epoll = await measureIdleMemory(memoryEpoll, MEMORY_EPOLL, idleConnections);
    if (withHaproxy) {
      const memoryHaproxy = await startHaproxy(dir, MEMORY_HAPROXY, "memory");
      children.push(memoryHaproxy);
      memory.haproxy = await measureIdleMemory(memoryHaproxy, MEMORY_HAPROXY, idleConnections);
    }
  } finally {
    for (const child of children.reverse()) await child.stop().catch(() => {});
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }

  /** Per-round ratio who/base for one mode and test, median over rounds. */
  const ratio = (mode: Mode, who: Contestant, base: Contestant, test: string) => {
    const num = results.get(key(mode, who, test));
    const den = results.get(key(mode, base, test));
    if (!num || !den) return undefined;
    return median(num.map((v, i) => v / (den[i] as number)));
  };
  const out: string[] = [];
  out.push(
    `redis-benchmark -c ${BENCH_CLIENTS} -t set,get, ${rounds} interleaved rounds, ` +
      `${requests.plain} requests plain, ${requests.pipelined} with -P ${BENCH_PIPELINE}; ` +
      `ratios of direct, median over rounds (${((Date.now() - startedAt) / 1000).toFixed(0)} s)`,
    "",
    "| run | direct rps (median) | hive proxy / direct | epoll engine / direct | HAProxy / direct | hive / HAProxy | epoll / HAProxy |",
    "|---|---|---|---|---|---|---|",
  );
  for (const mode of ["plain", "pipelined"] as Mode[]) {
    for (const test of ["SET", "GET"]) {
      const direct = results.get(key(mode, "direct", test)) ?? [];
      const label = `${test}${mode === "pipelined" ? ` -P ${BENCH_PIPELINE}` : ""}`;
      out.push(
        `| ${label} | ${median(direct).toFixed(0)} | ${
          fmtRatio(ratio(mode, "hive", "direct", test))
        } | ${fmtRatio(ratio(mode, "epoll", "direct", test))} | ` +
          `${fmtRatio(ratio(mode, "haproxy", "direct", test))} | ` +
          `${fmtRatio(ratio(mode, "hive", "haproxy", test))} | ` +
          `${fmtRatio(ratio(mode, "epoll", "haproxy", test))} |`,
      );
    }
  }
  out.push(
    "",
    "CPU time of the proxy process per request (µs, user + system, median over rounds; SET and",
    "GET together): the measure least disturbed by other load on the machine.",
    "",
    "| run | hive proxy user | hive proxy sys | epoll engine user | epoll engine sys | HAProxy user | HAProxy sys |",
    "|---|---|---|---|---|---|---|",
  );
  const cpu = (mode: Mode, who: Contestant, part: string) => {
    const v = results.get(key(mode, who, `cpu-${part}`));
    return v === undefined ? "-" : median(v).toFixed(2);
  };
  for (const mode of ["plain", "pipelined"] as Mode[]) {
    out.push(
      `| ${mode === "plain" ? "plain" : `-P ${BENCH_PIPELINE}`} | ${cpu(mode, "hive", "user")} | ` +
        `${cpu(mode, "hive", "sys")} | ${cpu(mode, "epoll", "user")} | ${
          cpu(mode, "epoll", "sys")
        } | ${cpu(mode, "haproxy", "user")} | ${cpu(mode, "haproxy", "sys")} |`,
    );
  }
  const mib = (kib: number) => (kib / 1024).toFixed(1);
  out.push(
    "",
    `resident memory (VmRSS) with ${idleConnections} idle proxied connections:`,
    "",
    "| process | idle | with connections | per connection |",
    "|---|---|---|---|",
  );
  for (const [name, m] of Object.entries(memory)) {
    if (m === undefined) continue;
    const perConnKiB = (m.loadedKiB - m.idleKiB) / idleConnections;
    out.push(
      `| ${
        ({ hive: "hive proxy", epoll: "hive proxy (epoll engine)", haproxy: "HAProxy" })[name]
      } | ${mib(m.idleKiB)} MiB | ` +
        `${mib(m.loadedKiB)} MiB | ${perConnKiB.toFixed(1)} KiB |`,
    );
  }
  console.log(out.join("\n"));
}

if (import.meta.main) await main(Deno.args);
