/**
 * What the harness (in the host's namespace) and its client agent (in the bridge namespace,
 * the only place that reaches the pods) say to each other: one JSON request per line on the
 * agent's stdin, one JSON response per line on its stdout, matched by `id`.
 *
 * Times are epoch milliseconds with sub-millisecond precision ({@link epochNowMs}), comparable
 * between the two processes of the same machine.
 *
 * @example
 * ```ts
 * import type { AgentRequest } from "./agent_protocol.ts";
 * const req: AgentRequest = { op: "status", ip: "192.0.2.11" };
 * console.log(JSON.stringify({ id: 1, ...req }));
 * ```
 */

import type { HiveStatus } from "../../lib/http/hive_status.ts";

/** The headless Service name the cluster DNS answers. */
export const SERVICE_NAME = "redis-hive";

/**
 * The ports every pod uses: the product defaults (each pod has its own namespace); `sentinel`
 * is Redis Sentinel's own, used when the harness tests Sentinel instead of the hive.
 */
export const POD_PORTS = {
  redis: 6379,
  election: 7379,
  proxy: 6380,
  http: 8080,
  sentinel: 26379,
} as const;

/**
 * How the workload's clients find the master: `proxy`, through a pod's master proxy (the hive);
 * `sentinel`, as a sentinel-aware client asking a pod's Redis Sentinel (see workload.ts).
 */
export type ClientMode = "proxy" | "sentinel";

/** Longest wait the agent's `command` operation accepts (a slow script through the proxy). */
export const MAX_COMMAND_TIMEOUT_MS = 60_000;

/**
 * Epoch milliseconds with sub-millisecond precision.
 *
 * @example
 * ```ts
 * import { epochNowMs } from "./agent_protocol.ts";
 * const t = epochNowMs(); // e.g. 1767225600123.456
 * ```
 */
export function epochNowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** A redis as one `INFO` shows it, or why it could not be read. */
export type RedisView =
  | {
    up: true;
    role: "master" | "replica";
    runId: string;
    masterHost: string | null;
    linkUp: boolean;
    offset: number;
  }
  | { up: false; error: string };

/** The redis process that acknowledged a write: its pod address and `run_id`. */
export interface ServerId {
  ip: string;
  runId: string;
}

/** One acknowledged write: `[writer, n, ackedAtMs, serverIndex]`; its key is `prefix:writer:n`. */
export type AckRecord = [writer: number, n: number, atMs: number, server: number];

/** What the writers saw between `workload-start` and `workload-stop`. */
export interface WorkloadLog {
  prefix: string;
  writers: number;
  startedMs: number;
  stoppedMs: number;
  /** Redis processes that acknowledged writes, indexed by {@link AckRecord}'s `server`. */
  servers: ServerId[];
  acks: AckRecord[];
  /** Writes sent (acknowledged, failed, or in flight when stopped). */
  attempts: number;
  /** Failed writes and failed connections. */
  failures: number;
  /** The first failures, for the record. */
  failureSamples: { atMs: number; writer: number; error: string }[];
}

/** One observation of one redis by the prober (`ROLE`). */
export interface ProbeSample {
  atMs: number;
  ip: string;
  role: "master" | "replica" | "down";
  runId: string | null;
  /** A master's replication offset, or a replica's processed offset; null when down. */
  offset: number | null;
  /** A replica's master address; null otherwise. */
  masterHost: string | null;
}

/**
 * The key of write `n` of writer `w` in a workload with `prefix`.
 *
 * @example
 * ```ts
 * import { ackKey } from "./agent_protocol.ts";
 * ackKey("run1", 2, 7); // "run1:2:7"
 * ```
 */
export function ackKey(prefix: string, writer: number, n: number): string {
  return `${prefix}:${writer}:${n}`;
}

/** Every request, by operation. */
export type AgentRequest =
  /** The hive's `/status` at `ip` (null when unreachable). */
  | { op: "status"; ip: string }
  /** The hive's `/readyz` at `ip`: whether it answered 200, and its one-line reason. */
  | { op: "ready"; ip: string }
  /** `INFO` of the redis at `ip`. */
  | { op: "redis"; ip: string }
  /**
   * Any command to the redis at `ip` (tests use it to sabotage on purpose), through the
   * pod's master proxy (`via: "proxy"`), or to the pod's Redis Sentinel (`via: "sentinel"`), waiting at most `timeoutMs` (default the agent's
   * query timeout, at most {@link MAX_COMMAND_TIMEOUT_MS}) for the answer.
   */
  | {
    op: "command";
    ip: string;
    args: string[];
    via?: "redis" | "proxy" | "sentinel";
    timeoutMs?: number;
  }
  /** A records of `name` from the cluster DNS. */
  | { op: "resolve"; name: string }
  /** Which of `keys` the redis at `ip` lacks. */
  | { op: "missing"; ip: string; keys: string[] }
  /** The master Service's endpoints: the pods whose proxy port clients may use. */
  | { op: "endpoints"; ips: string[] }
  /**
   * Starts `writers` clients writing unique keys through the endpoints' proxy ports, or (mode
   * `sentinel`) to the master the endpoints' sentinels name.
   */
  | {
    op: "workload-start";
    prefix: string;
    writers: number;
    intervalMs: number;
    mode?: ClientMode;
  }
  /** Stops the clients and returns their log. */
  | { op: "workload-stop" }
  /** Starts probing the `ROLE` of the redis at every address of `ips`. */
  | { op: "probe-start"; ips: string[] }
  /** Changes the probed addresses. */
  | { op: "probe-targets"; ips: string[] }
  /** Stops probing and returns the samples. */
  | { op: "probe-stop" };

/** The result type of each operation. */
export interface AgentResults {
  status: HiveStatus | null;
  ready: { ready: boolean; reason: string };
  redis: RedisView;
  command: unknown;
  resolve: string[];
  missing: string[];
  endpoints: null;
  "workload-start": null;
  "workload-stop": WorkloadLog;
  "probe-start": null;
  "probe-targets": null;
  "probe-stop": ProbeSample[];
}

/** One response line. */
export type AgentResponse =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; error: string };
