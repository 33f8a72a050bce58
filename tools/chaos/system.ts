/**
 * The systems `deno task chaos` can put under its faults, and what the runner and the scenarios
 * need of a cluster of any of them: the hive (tools/chaos/cluster.ts), or Redis Sentinel with
 * and without `min-replicas-to-write` (tools/chaos/sentinel_cluster.ts), measured by the same
 * workload, prober and checker so their figures compare.
 *
 * @example
 * ```ts
 * import { networkOf, SYSTEMS } from "./system.ts";
 * console.log(SYSTEMS, networkOf("sentinel").prefix); // [...] "rs-"
 * ```
 */

import type { AgentClient } from "./agent_client.ts";
import type { ClientMode } from "./agent_protocol.ts";
import { HIVE_NETWORK, type NetworkPlan, SENTINEL_NETWORK } from "./network.ts";

/** A system the harness can test. */
export type SystemName = "hive" | "sentinel" | "sentinel-min-replicas";

/** Every system, the default first. */
export const SYSTEMS: readonly SystemName[] = ["hive", "sentinel", "sentinel-min-replicas"];

/** What happened to a pod. */
export type PodState = "running" | "dead" | "removed";

/** A pod of any system. */
export interface TestedPod {
  /** Its address. */
  readonly ip: string;
  /** Its network namespace. */
  readonly namespace: string;
  /** Running, dead (killed, its network still there), or removed. */
  readonly state: PodState;
}

/** A settled cluster: one master everyone follows. */
export interface TestedSettled {
  leader: TestedPod;
  followers: TestedPod[];
  atMs: number;
}

/** A log file worth keeping. */
export interface LogFile {
  /** e.g. `198.51.100.11-sentinel.log`. */
  label: string;
  path: string;
  /** Shown (its tail) when a run broke a rule and no `--logs-dir` was given. */
  digest: boolean;
}

/** A running cluster of any system. */
export interface TestedCluster {
  readonly system: SystemName;
  /** How the workload's clients find the master. */
  readonly clientMode: ClientMode;
  readonly agent: AgentClient;
  readonly pods: readonly TestedPod[];
  /** Called whenever a pod is added or removed (the runner re-targets its prober). */
  onPodsChanged: (() => Promise<unknown>) | null;
  /** Pods whose processes run. */
  running(): TestedPod[];
  /** The pods clients may connect to. */
  readonly endpoints: readonly string[];
  setEndpoints(ips: readonly string[]): Promise<void>;
  /** Waits until one master leads and every other redis replicates it (see each system). */
  waitSettled(opts?: { timeoutMs?: number; notLeader?: TestedPod }): Promise<TestedSettled>;
  /** The pod leading now, as far as a quick look tells, or null. */
  currentLeader(): Promise<TestedPod | null>;
  /** One line per pod, for error reports. */
  describe(): Promise<string>;
  logFiles(): LogFile[];
  close(): Promise<void>;
}

/**
 * The network plan a system's pods use (the hive's `rh-*`, Sentinel's `rs-*`).
 *
 * @example
 * ```ts
 * import { networkOf } from "./system.ts";
 * networkOf("hive").subnet; // "192.0.2"
 * ```
 */
export function networkOf(system: SystemName): NetworkPlan {
  return system === "hive" ? HIVE_NETWORK : SENTINEL_NETWORK;
}
