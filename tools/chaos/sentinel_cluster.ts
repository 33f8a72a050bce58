/**
 * A Redis Sentinel cluster for the chaos harness (`deno task chaos --system sentinel` or
 * `sentinel-min-replicas`): the bridge namespace with the client agent, and K pods (see
 * {@link SentinelPod}), the first pod's redis the initial master. It is settled when every
 * sentinel names the same master and knows the other sentinels and replicas, with no failover
 * in progress and nothing down, that redis answers ROLE master, and every other redis
 * replicates it with its link up ({@link sentinelSettledMaster}).
 *
 * No cluster DNS: Sentinel clients are given the sentinels' addresses (the endpoints).
 *
 * @example
 * ```ts
 * import { SentinelCluster } from "./sentinel_cluster.ts";
 * import { ChaosSession } from "./session.ts";
 * const session = await ChaosSession.open();
 * try {
 *   const cluster = await SentinelCluster.start(session, { pods: 3, minReplicas: false });
 *   const { leader } = await cluster.waitSettled();
 * } finally {
 *   await session.close();
 * }
 * ```
 */

import { sleep } from "../../testing/wait.ts";
import type { RespValue } from "../../testing/resp_connection.ts";
import { AgentClient } from "./agent_client.ts";
import type { RedisView } from "./agent_protocol.ts";
import { SettleTimeout } from "./cluster.ts";
import { bridgeNamespace, createBridge, MAX_POD_NUMBER, removeNamespace } from "./network.ts";
import { SENTINEL_MASTER_NAME } from "./sentinel_config.ts";
import { SentinelPod } from "./sentinel_pod.ts";
import { parseSentinelMaster, type SentinelMasterState } from "./sentinel_reply.ts";
import type { ChaosSession } from "./session.ts";
import type { LogFile, SystemName, TestedCluster, TestedPod, TestedSettled } from "./system.ts";

/** Default bound of {@link SentinelCluster.waitSettled}. */
export const SENTINEL_SETTLE_TIMEOUT_MS = 30_000;
/** Bound of the wait for a new pod's redis to answer. */
export const SENTINEL_POD_START_TIMEOUT_MS = 30_000;
/** Pause between two looks at the cluster while waiting. */
export const SENTINEL_POLL_INTERVAL_MS = 100;
/** Most pods. */
export const MAX_SENTINEL_PODS = 7;
/** Sentinel flags that mean the master is not settled. */
const UNSETTLED_FLAGS = ["s_down", "o_down", "failover_in_progress", "disconnected"];

/** One look at one pod: its redis, and its sentinel's view of the master (null: no answer). */
export interface SentinelView {
  ip: string;
  redis: RedisView;
  sentinel: SentinelMasterState | null;
}

/**
 * The master's address when the look shows a settled cluster (see the module doc), else null.
 *
 * @example
 * ```ts
 * import { sentinelSettledMaster } from "./sentinel_cluster.ts";
 * const master = sentinelSettledMaster(views); // "198.51.100.11" or null
 * ```
 */
export function sentinelSettledMaster(views: readonly SentinelView[]): string | null {
  const n = views.length;
  const first = views[0]?.sentinel;
  if (first === undefined || first === null) return null;
  const master = first.ip;
  for (const v of views) {
    const s = v.sentinel;
    if (s === null || s.ip !== master) return null;
    if (s.flags.some((f) => UNSETTLED_FLAGS.includes(f))) return null;
    if (s.otherSentinels < n - 1 || s.replicas < n - 1) return null;
    if (!v.redis.up) return null;
    if (v.ip === master) {
      if (v.redis.role !== "master") return null;
    } else if (v.redis.role !== "replica" || v.redis.masterHost !== master || !v.redis.linkUp) {
      return null;
    }
  }
  return views.some((v) => v.ip === master) ? master : null;
}

/**
 * One line per pod: its redis's role and link, and whom its sentinel names master.
 *
 * @example
 * ```ts
 * import { describeSentinelLook } from "./sentinel_cluster.ts";
 * console.log(describeSentinelLook(views));
 * ```
 */
export function describeSentinelLook(views: readonly SentinelView[]): string {
  return views.map((v) => {
    const redis = !v.redis.up
      ? "redis down"
      : v.redis.role === "master"
      ? "master"
      : `replica of ${v.redis.masterHost} link ${v.redis.linkUp ? "up" : "down"}`;
    const s = v.sentinel;
    const sentinel = s === null
      ? "sentinel down"
      : `sentinel: master ${s.ip} [${s.flags.join(",")}] epoch ${s.configEpoch}, ` +
        `${s.replicas} replicas, ${s.otherSentinels} other sentinels`;
    return `${v.ip}: ${redis}, ${sentinel}`;
  }).join("; ");
}

/**
 * The running cluster.
 *
 * @example
 * ```ts
 * const cluster = await SentinelCluster.start(session, { pods: 3, minReplicas: true });
 * await cluster.waitSettled();
 * ```
 */
export class SentinelCluster implements TestedCluster {
  readonly clientMode = "sentinel";
  readonly pods: SentinelPod[] = [];
  onPodsChanged: (() => Promise<unknown>) | null = null;
  #endpoints: string[] = [];
  #closed = false;

  private constructor(
    readonly session: ChaosSession,
    readonly agent: AgentClient,
    readonly minReplicas: boolean,
  ) {}

  /** Which system this is. */
  get system(): SystemName {
    return this.minReplicas ? "sentinel-min-replicas" : "sentinel";
  }

  /** Builds the network and agent, starts `pods` pods and waits until they settled. */
  static async start(
    session: ChaosSession,
    opts: { pods: number; minReplicas: boolean },
  ): Promise<SentinelCluster> {
    if (!Number.isInteger(opts.pods) || opts.pods < 2 || opts.pods > MAX_SENTINEL_PODS) {
      throw new RangeError(`pods must be 2..${MAX_SENTINEL_PODS}, got ${opts.pods}`);
    }
    if (opts.pods > MAX_POD_NUMBER) throw new RangeError("more pods than addresses");
    let agent: AgentClient;
    try {
      await createBridge();
      agent = await AgentClient.start(`${session.dir}/agent.log`);
    } catch (e) {
      await removeNamespace(bridgeNamespace());
      throw e;
    }
    const cluster = new SentinelCluster(session, agent, opts.minReplicas);
    session.onClose(() => cluster.close());
    try {
      await cluster.#startPods(opts.pods);
    } catch (e) {
      await cluster.close();
      throw e;
    }
    return cluster;
  }

  async #startPods(count: number): Promise<void> {
    for (let n = 1; n <= count; n++) this.pods.push(await SentinelPod.create(n, this.session.dir));
    const masterIp = (this.pods[0] as SentinelPod).ip;
    for (const pod of this.pods) pod.startRedis({ masterIp, minReplicas: this.minReplicas });
    await Promise.all(this.pods.map((p) => this.#waitRedisUp(p)));
    for (const pod of this.pods) await pod.startSentinel(masterIp);
    await this.setEndpoints(this.pods.map((p) => p.ip));
    await this.waitSettled();
  }

  async #waitRedisUp(pod: SentinelPod): Promise<void> {
    const deadline = Date.now() + SENTINEL_POD_START_TIMEOUT_MS;
    while (!(await this.agent.call({ op: "redis", ip: pod.ip })).up) {
      if (pod.redis !== null && !pod.redis.running) {
        throw new Error(`redis of ${pod.ip} exited: ${JSON.stringify(pod.redis.status)}`);
      }
      if (Date.now() > deadline) throw new Error(`redis of ${pod.ip} did not answer`);
      await sleep(SENTINEL_POLL_INTERVAL_MS);
    }
  }

  /** Removes every pod, the agent and the bridge namespace. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const pod of this.pods) await pod.remove().catch((e) => console.error(`chaos: ${e}`));
    await this.agent.close();
    await removeNamespace(bridgeNamespace());
  }

  /** Pods whose processes run. */
  running(): SentinelPod[] {
    return this.pods.filter((p) => p.state === "running");
  }

  /** The pods whose sentinels clients ask. */
  get endpoints(): readonly string[] {
    return this.#endpoints;
  }

  /** Replaces the endpoints. */
  async setEndpoints(ips: readonly string[]): Promise<void> {
    this.#endpoints = [...ips];
    await this.agent.call({ op: "endpoints", ips: this.#endpoints });
  }

  /** Looks at every running pod: its redis and its sentinel. */
  async look(): Promise<SentinelView[]> {
    return await Promise.all(
      this.running().map(async (pod) => ({
        ip: pod.ip,
        redis: await this.agent.call({ op: "redis", ip: pod.ip }),
        sentinel: await this.agent.call({
          op: "command",
          ip: pod.ip,
          via: "sentinel",
          args: ["SENTINEL", "master", SENTINEL_MASTER_NAME],
        }).then((r) => parseSentinelMaster(r as RespValue), () => null),
      })),
    );
  }

  /** Waits until settled (see the module doc); `notLeader` may not be the master. */
  async waitSettled(
    opts: { timeoutMs?: number; notLeader?: TestedPod } = {},
  ): Promise<TestedSettled> {
    const timeoutMs = opts.timeoutMs ?? SENTINEL_SETTLE_TIMEOUT_MS;
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const views = await this.look();
      const master = sentinelSettledMaster(views);
      const leader = this.running().find((p) => p.ip === master);
      if (leader !== undefined && leader !== opts.notLeader) {
        return {
          leader,
          followers: this.running().filter((p) => p !== leader),
          atMs: Date.now(),
        };
      }
      if (Date.now() > deadline) throw new SettleTimeout(timeoutMs, describeSentinelLook(views));
      await sleep(SENTINEL_POLL_INTERVAL_MS);
    }
  }

  /** The pod every answering sentinel names master, if its redis is master; else null. */
  async currentLeader(): Promise<TestedPod | null> {
    const views = await this.look();
    const named = new Set(views.flatMap((v) => v.sentinel === null ? [] : [v.sentinel.ip]));
    if (named.size !== 1) return null;
    const [ip] = named;
    const view = views.find((v) => v.ip === ip);
    if (view === undefined || !view.redis.up || view.redis.role !== "master") return null;
    return this.running().find((p) => p.ip === ip) ?? null;
  }

  /** One line per pod. */
  async describe(): Promise<string> {
    return describeSentinelLook(await this.look());
  }

  /** Every pod's redis and sentinel log. */
  logFiles(): LogFile[] {
    return this.pods.flatMap((p) => [
      { label: `${p.ip}-sentinel.log`, path: `${p.dir}/sentinel.log`, digest: true },
      { label: `${p.ip}-redis.log`, path: `${p.dir}/redis.log`, digest: false },
    ]);
  }
}
