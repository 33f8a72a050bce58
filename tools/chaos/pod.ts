/**
 * One "pod": a network namespace with its own address, a `redis-server` started parked as the
 * Kubernetes manifests start it, and a hive run exactly as `deno task start` runs it (the
 * permission flags are read from deno.json) with the flags a pod gets: `--service`, the cluster
 * DNS, `--announce-ip` (POD_IP), a state file in the pod's scratch directory (the emptyDir) and
 * `--redis-host 127.0.0.1`. Every port is the product default, as each pod has its own network.
 *
 * @example
 * ```ts
 * import { Pod } from "./pod.ts";
 * const pod = await Pod.create(1, "/tmp/rh-chaos-x");
 * pod.startRedis();
 * pod.startHive();
 * await pod.stopGracefully(); // SIGTERM to the hive (a leader hands over), then redis
 * await pod.remove();
 * ```
 */

import { sharedSecretFile } from "../../testing/secret.ts";
import { productionDenoFlags } from "../../testing/local_cluster.ts";
import { SERVICE_NAME } from "./agent_protocol.ts";
import { createPodNetwork, type PodNetwork, removeNamespace } from "./network.ts";
import { bridgeIp } from "./network.ts";
import { NamespacedProcess } from "./process.ts";
import { podRedisBaseArgs } from "./pod_redis.ts";

/** Bound of a hive's graceful exit after SIGTERM (its handoff takes at most ~2.3 s). */
export const HIVE_STOP_TIMEOUT_MS = 15_000;
/** Bound of redis's exit after SIGTERM. */
export const REDIS_STOP_TIMEOUT_MS = 5_000;

const PROJECT_ROOT = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

/** What happened to a pod. */
export type PodState = "running" | "dead" | "removed";

/**
 * One pod.
 *
 * @example
 * ```ts
 * const pod = await Pod.create(4, sessionDir);
 * pod.startRedis();
 * pod.startHive();
 * ```
 */
export class Pod {
  redis: NamespacedProcess | null = null;
  hive: NamespacedProcess | null = null;
  #state: PodState = "running";

  private constructor(
    readonly net: PodNetwork,
    readonly dir: string,
    readonly denoFlags: readonly string[],
    /** The heartbeat secret file every pod of the session shares (`--secret-file`). */
    readonly secretFile: string,
  ) {}

  /** Creates pod number `n`'s network and scratch directory under `sessionDir`. */
  static async create(n: number, sessionDir: string): Promise<Pod> {
    const denoFlags = await productionDenoFlags(`${PROJECT_ROOT}/deno.json`);
    const dir = `${sessionDir}/pod${n}`;
    await Deno.mkdir(`${dir}/redis`, { recursive: true });
    const net = await createPodNetwork(n);
    return new Pod(net, dir, denoFlags, await sharedSecretFile(sessionDir));
  }

  /** The pod's address (POD_IP). */
  get ip(): string {
    return this.net.ip;
  }

  /** Its namespace. */
  get namespace(): string {
    return this.net.namespace;
  }

  /** Running, dead (killed, its network still there), or removed. */
  get state(): PodState {
    return this.#state;
  }

  /** The redis-server arguments: parked, no persistence, as `k8s/deployment.yaml`. */
  redisArgs(): string[] {
    return [
      ...podRedisBaseArgs(this.ip),
      "--replicaof",
      "127.0.0.1",
      "1",
      // As the manifests: a full sync's RDB file is deleted once loaded, so a restarted redis
      // comes back empty instead of loading a stale copy.
      "--dir",
      `${this.dir}/redis`,
      "--rdb-del-sync-files",
      "yes",
      // As the manifests: the hive (and its proxy while leading) use the Unix socket.
      "--unixsocket",
      this.redisSocket,
      "--unixsocketperm",
      "700",
    ];
  }

  /** Its redis's Unix socket (`--unixsocket`, the hive's `--redis-socket`). */
  get redisSocket(): string {
    return `${this.dir}/redis.sock`;
  }

  /** The hive's arguments after `main.ts`. */
  hiveArgs(): string[] {
    return [
      "--service",
      SERVICE_NAME,
      "--dns-server",
      `${bridgeIp()}:53`,
      "--announce-ip",
      this.ip,
      "--state-file",
      `${this.dir}/state.json`,
      "--redis-host",
      "127.0.0.1",
      "--redis-socket",
      this.redisSocket,
      "--secret-file",
      this.secretFile,
    ];
  }

  /** Starts redis-server (parked). */
  startRedis(): void {
    this.#checkRunning();
    if (this.redis?.running) throw new Error(`pod ${this.ip}: redis already runs`);
    this.redis = NamespacedProcess.spawn({
      namespace: this.namespace,
      program: "redis-server",
      args: this.redisArgs(),
      logPath: `${this.dir}/redis.log`,
    });
  }

  /** Starts the hive (`deno run <start task flags> main.ts ...`). */
  startHive(): void {
    this.#checkRunning();
    if (this.hive?.running) throw new Error(`pod ${this.ip}: hive already runs`);
    this.hive = NamespacedProcess.spawn({
      namespace: this.namespace,
      program: Deno.execPath(),
      args: ["run", ...this.denoFlags, "main.ts", ...this.hiveArgs()],
      logPath: `${this.dir}/hive.log`,
      cwd: PROJECT_ROOT,
      env: { NO_COLOR: "1" },
    });
  }

  /** SIGKILLs redis (the hive stays). */
  async killRedis(): Promise<void> {
    await this.redis?.kill();
  }

  /** SIGKILLs the hive and redis together: a lost pod. Its network stays until {@link remove}. */
  async kill(): Promise<void> {
    await Promise.all([this.hive?.kill(), this.redis?.kill()]);
    if (this.#state === "running") this.#state = "dead";
  }

  /**
   * Graceful stop, as Kubernetes deletes a pod: SIGTERM to the hive (a leader hands over) and,
   * once it exited, SIGTERM to redis. Resolves with whether the hive exited by itself in time.
   */
  async stopGracefully(): Promise<boolean> {
    const hiveInTime = (await this.hive?.stop("SIGTERM", HIVE_STOP_TIMEOUT_MS)) ?? true;
    await this.redis?.stop("SIGTERM", REDIS_STOP_TIMEOUT_MS);
    if (this.#state === "running") this.#state = "dead";
    return hiveInTime;
  }

  /** Kills what still runs and deletes the namespace (its veth with it). */
  async remove(): Promise<void> {
    if (this.#state === "removed") return;
    await this.kill();
    await removeNamespace(this.namespace);
    this.#state = "removed";
  }

  /** The last `lines` lines of the hive's log. */
  async hiveLogTail(lines: number): Promise<string> {
    const text = await Deno.readTextFile(`${this.dir}/hive.log`).catch(() => "");
    return text.split("\n").slice(-lines - 1).join("\n");
  }

  #checkRunning(): void {
    if (this.#state !== "running") throw new Error(`pod ${this.ip} is ${this.#state}`);
  }
}
