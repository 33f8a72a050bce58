/**
 * One pod of the Redis Sentinel cluster the harness can test instead of the hive: a network
 * namespace (see network.ts, Sentinel's `rs-*` plan) running one redis-server and one
 * `redis-server --sentinel`, configured by sentinel_config.ts.
 *
 * @example
 * ```ts
 * import { SentinelPod } from "./sentinel_pod.ts";
 * const pod = await SentinelPod.create(1, "/tmp/rs-chaos-x");
 * pod.startRedis({ masterIp: pod.ip, minReplicas: false });
 * await pod.startSentinel(pod.ip);
 * await pod.remove();
 * ```
 */

import { createPodNetwork, type PodNetwork, removeNamespace } from "./network.ts";
import { NamespacedProcess } from "./process.ts";
import { sentinelConf, sentinelRedisArgs } from "./sentinel_config.ts";
import type { PodState, TestedPod } from "./system.ts";

/**
 * One pod.
 *
 * @example
 * ```ts
 * const pod = await SentinelPod.create(2, sessionDir);
 * pod.startRedis({ masterIp: "198.51.100.11", minReplicas: true });
 * ```
 */
export class SentinelPod implements TestedPod {
  redis: NamespacedProcess | null = null;
  sentinel: NamespacedProcess | null = null;
  #state: PodState = "running";

  private constructor(readonly net: PodNetwork, readonly dir: string) {}

  /** Creates pod number `n`'s network and scratch directory under `sessionDir`. */
  static async create(n: number, sessionDir: string): Promise<SentinelPod> {
    const dir = `${sessionDir}/pod${n}`;
    await Deno.mkdir(`${dir}/redis`, { recursive: true });
    return new SentinelPod(await createPodNetwork(n), dir);
  }

  /** The pod's address. */
  get ip(): string {
    return this.net.ip;
  }

  /** Its namespace. */
  get namespace(): string {
    return this.net.namespace;
  }

  /** Running, dead, or removed. */
  get state(): PodState {
    return this.#state;
  }

  /** Starts redis-server, as master when `masterIp` is this pod's, else as its replica. */
  startRedis(opts: { masterIp: string; minReplicas: boolean }): void {
    this.#checkRunning();
    if (this.redis?.running) throw new Error(`pod ${this.ip}: redis already runs`);
    this.redis = NamespacedProcess.spawn({
      namespace: this.namespace,
      program: "redis-server",
      args: sentinelRedisArgs({ ip: this.ip, dir: `${this.dir}/redis`, ...opts }),
      logPath: `${this.dir}/redis.log`,
    });
  }

  /** Writes the sentinel's config (it rewrites it) and starts `redis-server CONF --sentinel`. */
  async startSentinel(masterIp: string): Promise<void> {
    this.#checkRunning();
    if (this.sentinel?.running) throw new Error(`pod ${this.ip}: sentinel already runs`);
    const conf = `${this.dir}/sentinel.conf`;
    await Deno.writeTextFile(conf, sentinelConf({ ip: this.ip, dir: this.dir, masterIp }));
    this.sentinel = NamespacedProcess.spawn({
      namespace: this.namespace,
      program: "redis-server",
      args: [conf, "--sentinel"],
      logPath: `${this.dir}/sentinel.log`,
    });
  }

  /** SIGKILLs redis and the sentinel: a lost pod. Its network stays until {@link remove}. */
  async kill(): Promise<void> {
    await Promise.all([this.sentinel?.kill(), this.redis?.kill()]);
    if (this.#state === "running") this.#state = "dead";
  }

  /** Kills what still runs and deletes the namespace. */
  async remove(): Promise<void> {
    if (this.#state === "removed") return;
    await this.kill();
    await removeNamespace(this.namespace);
    this.#state = "removed";
  }

  #checkRunning(): void {
    if (this.#state !== "running") throw new Error(`pod ${this.ip} is ${this.#state}`);
  }
}
