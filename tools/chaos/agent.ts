/**
 * The client agent: the harness's hands inside the bridge namespace, the only place that
 * reaches the pods (the host's namespace has no route to 192.0.2.0/24, on purpose). It reads
 * {@link AgentRequest}s as JSON lines on stdin and answers each on stdout (see
 * `agent_protocol.ts`); it runs the client workload and the role prober, and reads `/status`,
 * redis `INFO`, DNS answers and keys for the checker. It exits when stdin closes, so it never
 * outlives the harness.
 *
 * @example
 * ```sh
 * ip netns exec rh-br deno run --allow-net tools/chaos/agent.ts rh-
 * # stdin:  {"id":1,"op":"redis","ip":"192.0.2.11"}
 * # stdout: {"id":1,"ok":true,"result":{"up":true,"role":"master",...}}
 * ```
 */

import { RespConnection } from "../../testing/resp_connection.ts";
import { parseInfo } from "../../lib/redis/redis_info.ts";
import type { HiveStatus } from "../../lib/http/hive_status.ts";
import {
  type AgentRequest,
  type AgentResponse,
  MAX_COMMAND_TIMEOUT_MS,
  POD_PORTS,
  type RedisView,
} from "./agent_protocol.ts";
import { bridgeIp, NETWORK_PLANS, useNetwork } from "./network.ts";
import { RoleProbe } from "./role_probe.ts";
import { Workload } from "./workload.ts";

/** Deadline of one `/status` request or one redis query. */
export const QUERY_TIMEOUT_MS = 1_000;
/** Keys per `MGET` when looking for missing keys. */
export const MGET_BATCH = 1_000;
/** Most keys one `missing` request may check. */
export const MAX_MISSING_KEYS = 2_000_000;
/** Longest request line accepted. */
export const MAX_REQUEST_CHARS = 64 * 1024 * 1024;

let workload: Workload | null = null;
let probe: RoleProbe | null = null;
let endpoints: string[] = [];

async function status(ip: string): Promise<HiveStatus | null> {
  try {
    const res = await fetch(`http://${ip}:${POD_PORTS.http}/status`, {
      signal: AbortSignal.timeout(QUERY_TIMEOUT_MS),
    });
    if (!res.ok) {
      await res.body?.cancel();
      return null;
    }
    return await res.json() as HiveStatus;
  } catch {
    return null;
  }
}

async function ready(ip: string): Promise<{ ready: boolean; reason: string }> {
  try {
    const res = await fetch(`http://${ip}:${POD_PORTS.http}/readyz`, {
      signal: AbortSignal.timeout(QUERY_TIMEOUT_MS),
    });
    return { ready: res.status === 200, reason: (await res.text()).trim() };
  } catch (e) {
    return { ready: false, reason: e instanceof Error ? e.message : String(e) };
  }
}

async function redis(ip: string): Promise<RedisView> {
  let conn: RespConnection | null = null;
  try {
    conn = await RespConnection.open(ip, POD_PORTS.redis, { timeoutMs: QUERY_TIMEOUT_MS });
    const [server, replication] = await conn.pipeline([["INFO", "server"], [
      "INFO",
      "replication",
    ]], QUERY_TIMEOUT_MS);
    if (typeof server !== "string" || typeof replication !== "string") {
      return { up: false, error: `INFO answered ${JSON.stringify([server, replication])}` };
    }
    const info = new Map([...parseInfo(server), ...parseInfo(replication)]);
    const role = info.get("role");
    return {
      up: true,
      role: role === "master" ? "master" : "replica",
      runId: info.get("run_id") ?? "",
      masterHost: info.get("master_host") ?? null,
      linkUp: info.get("master_link_status") === "up",
      offset: Number(info.get("master_repl_offset") ?? 0),
    };
  } catch (e) {
    return { up: false, error: e instanceof Error ? e.message : String(e) };
  } finally {
    conn?.close();
  }
}

async function missing(ip: string, keys: string[]): Promise<string[]> {
  if (keys.length > MAX_MISSING_KEYS) {
    throw new RangeError(`at most ${MAX_MISSING_KEYS} keys per check, got ${keys.length}`);
  }
  const conn = await RespConnection.open(ip, POD_PORTS.redis, { timeoutMs: QUERY_TIMEOUT_MS });
  try {
    const absent: string[] = [];
    for (let i = 0; i < keys.length; i += MGET_BATCH) {
      const batch = keys.slice(i, i + MGET_BATCH);
      const values = await conn.command(["MGET", ...batch], 10 * QUERY_TIMEOUT_MS);
      if (!Array.isArray(values) || values.length !== batch.length) {
        throw new Error(`MGET answered ${JSON.stringify(values).slice(0, 200)}`);
      }
      values.forEach((v, j) => {
        if (v === null) absent.push(batch[j] as string);
      });
    }
    return absent;
  } finally {
    conn.close();
  }
}

async function handle(req: AgentRequest): Promise<unknown> {
  switch (req.op) {
    case "status":
      return await status(req.ip);
    case "ready":
      return await ready(req.ip);
    case "redis":
      return await redis(req.ip);
    case "command": {
      const timeoutMs = req.timeoutMs ?? QUERY_TIMEOUT_MS;
      if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > MAX_COMMAND_TIMEOUT_MS) {
        throw new RangeError(`command timeoutMs must be 1..${MAX_COMMAND_TIMEOUT_MS}`);
      }
      const port = req.via === "proxy"
        ? POD_PORTS.proxy
        : req.via === "sentinel"
        ? POD_PORTS.sentinel
        : POD_PORTS.redis;
      const conn = await RespConnection.open(req.ip, port, { timeoutMs: QUERY_TIMEOUT_MS });
      try {
        return await conn.command(req.args, timeoutMs);
      } finally {
        conn.close();
      }
    }
    case "resolve":
      try {
        return (await Deno.resolveDns(req.name, "A", {
          nameServer: { ipAddr: bridgeIp(), port: 53 },
          signal: AbortSignal.timeout(QUERY_TIMEOUT_MS),
        })).sort();
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) return [];
        throw e;
      }
    case "missing":
      return await missing(req.ip, req.keys);
    case "endpoints":
      endpoints = [...req.ips];
      workload?.setEndpoints(endpoints);
      return null;
    case "workload-start":
      if (workload !== null) throw new Error("a workload is already running");
      workload = new Workload(req);
      workload.setEndpoints(endpoints);
      workload.start();
      return null;
    case "workload-stop": {
      if (workload === null) throw new Error("no workload is running");
      const log = await workload.stop();
      workload = null;
      return log;
    }
    case "probe-start":
      if (probe !== null) throw new Error("a probe is already running");
      probe = new RoleProbe();
      probe.setTargets(req.ips);
      return null;
    case "probe-targets":
      if (probe === null) throw new Error("no probe is running");
      probe.setTargets(req.ips);
      return null;
    case "probe-stop": {
      if (probe === null) throw new Error("no probe is running");
      const samples = await probe.stop();
      probe = null;
      return samples;
    }
  }
}

const encoder = new TextEncoder();
let writing: Promise<void> = Promise.resolve();
const stdout = Deno.stdout.writable.getWriter();

function respond(response: AgentResponse): void {
  const bytes = encoder.encode(JSON.stringify(response) + "\n");
  writing = writing.then(() => stdout.write(bytes));
}

async function serve(): Promise<void> {
  let pending = "";
  const inflight = new Set<Promise<void>>();
  for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    if (pending.length > MAX_REQUEST_CHARS) throw new Error("request line too long");
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) {
      if (line.trim() === "") continue;
      const { id, ...req } = JSON.parse(line) as { id: number } & AgentRequest;
      const job = handle(req as AgentRequest).then(
        (result) => respond({ id, ok: true, result: result ?? null }),
        (e) => respond({ id, ok: false, error: e instanceof Error ? e.message : String(e) }),
      );
      inflight.add(job);
      void job.finally(() => inflight.delete(job));
    }
  }
  // stdin closed: the harness is gone or done.
  await workload?.stop();
  await probe?.stop();
  await Promise.all(inflight);
  await writing;
}

if (import.meta.main) {
  // The harness names its network plan (its prefix) as the only argument.
  const chosen = NETWORK_PLANS.find((p) => p.prefix === Deno.args[0]);
  if (chosen === undefined) throw new Error(`unknown network plan prefix ${Deno.args[0]}`);
  useNetwork(chosen);
  await serve();
  Deno.exit(0);
}
