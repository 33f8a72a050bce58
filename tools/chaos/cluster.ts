/**
 * A chaos cluster: the bridge namespace with the cluster DNS and the client agent, and K pods
 * (see {@link Pod}). It keeps the DNS answer and the master Service's endpoints (the pods
 * clients may connect to) in step with the pods, and tells when the hive has settled: one
 * leader, every other pod following it, every redis replicating the leader's with its link up,
 * every proxy forwarding to the leader.
 *
 * @example
 * ```ts
 * import { ChaosCluster } from "./cluster.ts";
 * import { ChaosSession } from "./session.ts";
 * const session = await ChaosSession.open();
 * try {
 *   const cluster = await ChaosCluster.start(session, { pods: 3 });
 *   const { leader } = await cluster.waitSettled();
 *   await leader.kill();
 * } finally {
 *   await session.close();
 * }
 * ```
 */

import { sleep } from "../../testing/wait.ts";
import type { HiveStatus } from "../../lib/http/hive_status.ts";
import { AgentClient } from "./agent_client.ts";
import type { RedisView } from "./agent_protocol.ts";
import { ClusterDns } from "./cluster_dns.ts";
import { bridgeNamespace, createBridge, MAX_POD_NUMBER, removeNamespace } from "./network.ts";
import { Pod } from "./pod.ts";
import type { ChaosSession } from "./session.ts";
import type { LogFile, TestedCluster } from "./system.ts";

/** Default bound of {@link ChaosCluster.waitSettled}. */
export const SETTLE_TIMEOUT_MS = 30_000;
/** Bound of the wait for a new pod's redis and hive to answer. */
export const POD_START_TIMEOUT_MS = 30_000;
/** Pause between two looks at the cluster while waiting. */
export const POLL_INTERVAL_MS = 100;
/** Most pods at once. */
export const MAX_PODS = 9;

/** One look at one pod. */
export interface PodView {
  pod: Pod;
  status: HiveStatus | null;
  redis: RedisView;
}

/** A settled cluster. */
export interface Settled {
  leader: Pod;
  followers: Pod[];
  atMs: number;
}

/** Options of {@link ChaosCluster.start}. */
export interface ClusterOptions {
  /** Pods to start with. */
  pods: number;
}

/**
 * The running cluster.
 *
 * @example
 * ```ts
 * const cluster = await ChaosCluster.start(session, { pods: 3 });
 * const { leader } = await cluster.waitSettled();
 * ```
 */
export class ChaosCluster implements TestedCluster {
  readonly system = "hive";
  readonly clientMode = "proxy";
  readonly pods: Pod[] = [];
  /** Called whenever a pod is added or removed (the runner re-targets its prober). */
  onPodsChanged: (() => Promise<unknown>) | null = null;
  #nextNumber = 1;
  #endpoints: string[] = [];
  #closed = false;

  private constructor(
    readonly session: ChaosSession,
    readonly agent: AgentClient,
    readonly dns: ClusterDns,
  ) {}

  /** Builds the network, DNS and agent, starts `pods` pods and waits until they settled. */
  static async start(session: ChaosSession, opts: ClusterOptions): Promise<ChaosCluster> {
    if (!Number.isInteger(opts.pods) || opts.pods < 1 || opts.pods > MAX_PODS) {
      throw new RangeError(`pods must be 1..${MAX_PODS}, got ${opts.pods}`);
    }
    let agent: AgentClient | null = null;
    let dns: ClusterDns | null = null;
    try {
      await createBridge();
      agent = await AgentClient.start(`${session.dir}/agent.log`);
      const a = agent;
      dns = await ClusterDns.start(session.dir, (name) => a.call({ op: "resolve", name }));
    } catch (e) {
      await agent?.close();
      await removeNamespace(bridgeNamespace());
      throw e;
    }
    const cluster = new ChaosCluster(session, agent, dns);
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
    const pods: Pod[] = [];
    for (let i = 0; i < count; i++) pods.push(await this.#newPod());
    await this.dns.setAddresses(pods.map((p) => p.ip));
    for (const pod of pods) pod.startRedis();
    await Promise.all(pods.map((p) => this.#waitRedisUp(p)));
    for (const pod of pods) pod.startHive();
    await Promise.all(pods.map((p) => this.#waitHiveUp(p)));
    await this.setEndpoints(pods.map((p) => p.ip));
    await this.waitSettled();
  }

  /** Removes every pod, the DNS, the agent and the bridge namespace. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const pod of this.pods) await pod.remove().catch((e) => console.error(`chaos: ${e}`));
    await this.dns.stop();
    await this.agent.close();
    await removeNamespace(bridgeNamespace());
  }

  /** Pods whose processes run (not killed, not removed). */
  running(): Pod[] {
    return this.pods.filter((p) => p.state === "running");
  }

  /** The pod at `ip`. */
  pod(ip: string): Pod {
    const pod = this.pods.find((p) => p.ip === ip && p.state !== "removed");
    if (pod === undefined) throw new Error(`no pod at ${ip}`);
    return pod;
  }

  async #newPod(): Promise<Pod> {
    if (this.running().length >= MAX_PODS) throw new Error(`more than ${MAX_PODS} pods`);
    const n = this.#nextNumber++;
    if (n > MAX_POD_NUMBER) throw new Error(`out of pod addresses (${MAX_POD_NUMBER} used)`);
    const pod = await Pod.create(n, this.session.dir);
    this.pods.push(pod);
    return pod;
  }

  /**
   * Creates a new pod (a new address), starts it, adds it to the DNS answer, and waits until
   * its hive answers; the master Service lists it once `ready` resolves (see {@link waitSettled}).
   */
  async addPod(): Promise<Pod> {
    const pod = await this.#newPod();
    await this.onPodsChanged?.();
    pod.startRedis();
    await this.#waitRedisUp(pod);
    pod.startHive();
    await this.dns.setAddresses([...this.dns.addresses, pod.ip]);
    await this.#waitHiveUp(pod);
    return pod;
  }

  /** Removes a pod: its processes, its namespace, its DNS record and its endpoint. */
  async removePod(pod: Pod): Promise<void> {
    await this.setEndpoints(this.#endpoints.filter((ip) => ip !== pod.ip));
    await this.dns.setAddresses(this.dns.addresses.filter((ip) => ip !== pod.ip));
    await pod.remove();
    await this.onPodsChanged?.();
  }

  /** The master Service's endpoints (clients connect to these pods' proxy ports). */
  get endpoints(): readonly string[] {
    return this.#endpoints;
  }

  /** Replaces the master Service's endpoints. */
  async setEndpoints(ips: readonly string[]): Promise<void> {
    this.#endpoints = [...ips];
    await this.agent.call({ op: "endpoints", ips: this.#endpoints });
  }

  /**
   * Waits until the pod's `/readyz` answers 200, as Kubernetes waits for a new pod's readiness
   * before a rolling update removes an old one; throws with the last reason after `timeoutMs`.
   */
  async waitReady(pod: Pod, timeoutMs = SETTLE_TIMEOUT_MS): Promise<void> {
    let reason = "";
    await this.#waitFor(() => `/readyz of ${pod.ip} (last: ${reason})`, timeoutMs, async () => {
      const answer = await this.agent.call({ op: "ready", ip: pod.ip });
      reason = answer.reason;
      return answer.ready;
    });
  }

  async #waitRedisUp(pod: Pod): Promise<void> {
    await this.#waitFor(`redis of ${pod.ip} answers`, POD_START_TIMEOUT_MS, async () => {
      if (pod.redis !== null && !pod.redis.running) {
        throw new Error(`redis of ${pod.ip} exited: ${JSON.stringify(pod.redis.status)}`);
      }
      return (await this.agent.call({ op: "redis", ip: pod.ip })).up;
    });
  }

  async #waitHiveUp(pod: Pod): Promise<void> {
    await this.#waitFor(`hive of ${pod.ip} answers`, POD_START_TIMEOUT_MS, async () => {
      if (pod.hive !== null && !pod.hive.running) {
        throw new Error(
          `hive of ${pod.ip} exited: ${JSON.stringify(pod.hive.status)}\n${await pod
            .hiveLogTail(20)}`,
        );
      }
      return (await this.agent.call({ op: "status", ip: pod.ip })) !== null;
    });
  }

  async #waitFor(
    what: string | (() => string),
    timeoutMs: number,
    ok: () => Promise<boolean>,
  ): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await ok())) {
      if (Date.now() > deadline) {
        throw new Error(
          `timed out after ${timeoutMs} ms: ${typeof what === "string" ? what : what()}`,
        );
      }
      await sleep(POLL_INTERVAL_MS);
    }
  }

  /** One line per running pod (see {@link describeLook}). */
  async describe(): Promise<string> {
    return describeLook(await this.look());
  }

  /** Every pod's hive and redis log. */
  logFiles(): LogFile[] {
    return this.pods.flatMap((p) => [
      { label: `${p.ip}-hive.log`, path: `${p.dir}/hive.log`, digest: true },
      { label: `${p.ip}-redis.log`, path: `${p.dir}/redis.log`, digest: false },
    ]);
  }

  /** Looks at every running pod: its `/status` and its redis. */
  async look(pods: readonly Pod[] = this.running()): Promise<PodView[]> {
    return await Promise.all(pods.map(async (pod) => ({
      pod,
      status: await this.agent.call({ op: "status", ip: pod.ip }),
      redis: await this.agent.call({ op: "redis", ip: pod.ip }),
    })));
  }

  /**
   * Waits until the running pods settled (see the module doc) and returns the leader; throws
   * with the last look after `timeoutMs`. With `notLeader`, that pod may not be the leader.
   */
  async waitSettled(
    opts: { timeoutMs?: number; notLeader?: Pod } = {},
  ): Promise<Settled> {
    const timeoutMs = opts.timeoutMs ?? SETTLE_TIMEOUT_MS;
    const deadline = Date.now() + timeoutMs;
    let last: PodView[] = [];
    while (true) {
      last = await this.look();
      const leader = settledLeader(last);
      if (leader !== null && leader !== opts.notLeader) {
        return {
          leader,
          followers: last.map((v) => v.pod).filter((p) => p !== leader),
          atMs: Date.now(),
        };
      }
      if (Date.now() > deadline) {
        throw new SettleTimeout(timeoutMs, describeLook(last));
      }
      await sleep(POLL_INTERVAL_MS);
    }
  }

  /**
   * The pod whose hive leads with a master redis and whom every running pod's proxy forwards
   * to, or null (a quicker test than {@link waitSettled}: replicas may still be syncing).
   */
  async currentLeader(): Promise<Pod | null> {
    const look = await this.look();
    const leaders = look.filter((v) =>
      v.status?.role === "leader" && v.redis.up && v.redis.role === "master"
    );
    if (leaders.length !== 1) return null;
    const leader = (leaders[0] as PodView).pod;
    return look.every((v) => forwardsTo(v, leader)) ? leader : null;
  }
}

/** True when the pod's proxy forwards to `leader`'s redis (the leader's own: via loopback). */
function forwardsTo(v: PodView, leader: Pod): boolean {
  const host = v.status?.proxy.target?.host;
  return host === leader.ip || (v.pod === leader && host === "127.0.0.1");
}

/**
 * {@link ChaosCluster.waitSettled} gave up.
 *
 * @example
 * ```ts
 * try {
 *   await cluster.waitSettled({ timeoutMs: 5_000 });
 * } catch (e) {
 *   if (e instanceof SettleTimeout) console.log(e.look);
 * }
 * ```
 */
export class SettleTimeout extends Error {
  constructor(readonly timeoutMs: number, readonly look: string) {
    super(`not settled within ${timeoutMs} ms: ${look}`);
    this.name = "SettleTimeout";
  }
}

/**
 * The leader when the look shows a settled cluster, else null.
 *
 * @example
 * ```ts
 * import { settledLeader } from "./cluster.ts";
 * const leader = settledLeader(await cluster.look());
 * ```
 */
export function settledLeader(look: readonly PodView[]): Pod | null {
  const leaders = look.filter((v) => v.status?.role === "leader");
  if (leaders.length !== 1) return null;
  const leader = leaders[0] as PodView;
  if (!leader.redis.up || leader.redis.role !== "master") return null;
  for (const v of look) {
    if (v.status === null || !forwardsTo(v, leader.pod)) return null;
    if (v === leader) continue;
    if (v.status.role !== "follower" || v.status.leader !== leader.pod.ip) return null;
    if (!v.redis.up || v.redis.role !== "replica") return null;
    if (v.redis.masterHost !== leader.pod.ip || !v.redis.linkUp) return null;
  }
  return leader.pod;
}

/**
 * One line per pod: hive role and leader, redis role and link.
 *
 * @example
 * ```ts
 * import { describeLook } from "./cluster.ts";
 * console.log(describeLook(await cluster.look()));
 * ```
 */
export function describeLook(look: readonly PodView[]): string {
  return look.map((v) => {
    const hive = v.status === null
      ? "hive down"
      : `${v.status.role}(leader ${v.status.leader}, proxy ${
        v.status.proxy.target?.host ?? "held"
      })`;
    const redis = v.redis.up
      ? `${v.redis.role}${
        v.redis.role === "replica"
          ? ` of ${v.redis.masterHost} link ${v.redis.linkUp ? "up" : "down"}`
          : ""
      }`
      : "redis down";
    return `${v.pod.ip}: ${hive}, ${redis}`;
  }).join("; ");
}
