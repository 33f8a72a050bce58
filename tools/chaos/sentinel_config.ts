/**
 * What the chaos harness runs when it tests Redis Sentinel instead of the hive (`deno task chaos
 * --system sentinel|sentinel-min-replicas`): the redis-server arguments and the sentinel.conf of
 * one pod, pure so they are unit-tested. Every pod runs one redis-server and one
 * `redis-server --sentinel`, as a 3-node Sentinel deployment with one of each per machine.
 *
 * The settings a production user would choose for a 3 s partition to be failed over inside the
 * cut (docs/reliability.md, "Redis Sentinel under the same faults"):
 *
 * - `down-after-milliseconds` {@link SENTINEL_DOWN_AFTER_MS}: the hive's failure timeout (1 s),
 *   so both detect a silent master equally fast;
 * - quorum {@link SENTINEL_QUORUM} of 3 (a majority: only the two sentinels that still hear each
 *   other can fail over; the cut-off one can neither reach the quorum nor win the vote);
 * - `failover-timeout` {@link SENTINEL_FAILOVER_TIMEOUT_MS}: long enough for a promotion on this
 *   loaded 2-core machine (a replica is promoted in about 1 s: INFO is polled every second), far
 *   below the default 180 s. It also sets how long Sentinel waits after the partition heals before
 *   it turns a stale master back into a replica (`sentinelRefreshInstanceInfo`), so it is a cost
 *   too, counted by the measurement;
 * - `parallel-syncs 1` (the default).
 *
 * The `min-replicas` variant adds `min-replicas-to-write 1` and `min-replicas-max-lag 1` to
 * every redis (a promoted replica must keep it): a master whose replicas have not acknowledged
 * for more than a second refuses writes with `-NOREPLICAS`. Persistence is off, as the hive's
 * pods run redis.
 *
 * @example
 * ```ts
 * import { sentinelConf, sentinelRedisArgs } from "./sentinel_config.ts";
 * const args = sentinelRedisArgs({ ip: "198.51.100.12", dir: "/tmp/x", masterIp: "198.51.100.11", minReplicas: true });
 * const conf = sentinelConf({ ip: "198.51.100.12", dir: "/tmp/x", masterIp: "198.51.100.11" });
 * ```
 */

import { isIP } from "node:net";
import { POD_PORTS } from "./agent_protocol.ts";
import { podRedisBaseArgs } from "./pod_redis.ts";

/** The master's name in every sentinel. */
export const SENTINEL_MASTER_NAME = "hive";
/** Sentinels that must agree the master is down before a failover (of 3). */
export const SENTINEL_QUORUM = 2;
/** A master silent this long is subjectively down (the hive's failure timeout). */
export const SENTINEL_DOWN_AFTER_MS = 1_000;
/** Sentinel's failover timeout (see the module doc for what else it sets). */
export const SENTINEL_FAILOVER_TIMEOUT_MS = 3_000;
/** `min-replicas-to-write` of the min-replicas variant. */
export const MIN_REPLICAS_TO_WRITE = 1;
/** `min-replicas-max-lag` (seconds) of the min-replicas variant. */
export const MIN_REPLICAS_MAX_LAG_S = 1;

/** One pod's redis or sentinel. */
export interface SentinelPodConfig {
  /** The pod's address. */
  ip: string;
  /** The pod's scratch directory (redis's `dir`, sentinel's config file). */
  dir: string;
  /** The address of the master every pod starts with (the first pod's). */
  masterIp: string;
}

function checkConfig(c: SentinelPodConfig): void {
  for (const [what, ip] of [["ip", c.ip], ["masterIp", c.masterIp]] as const) {
    if (isIP(ip) !== 4) throw new TypeError(`${what}: "${ip}" is not an IPv4 address`);
  }
  if (!c.dir.startsWith("/") || /\s/.test(c.dir)) {
    throw new TypeError(`dir: "${c.dir}" must be an absolute path without spaces`);
  }
}

/**
 * The redis-server arguments of one pod: the master's pod starts as master, the others as its
 * replicas; no persistence; `min-replicas-*` when `minReplicas`.
 *
 * @throws {TypeError} on an address that is not IPv4 or a directory that is not absolute
 * @example
 * ```ts
 * import { sentinelRedisArgs } from "./sentinel_config.ts";
 * sentinelRedisArgs({ ip: "198.51.100.11", dir: "/tmp/p1", masterIp: "198.51.100.11", minReplicas: false });
 * ```
 */
export function sentinelRedisArgs(c: SentinelPodConfig & { minReplicas: boolean }): string[] {
  checkConfig(c);
  const args = [...podRedisBaseArgs(c.ip), "--dir", c.dir];
  if (c.ip !== c.masterIp) args.push("--replicaof", c.masterIp, String(POD_PORTS.redis));
  if (c.minReplicas) {
    args.push(
      "--min-replicas-to-write",
      String(MIN_REPLICAS_TO_WRITE),
      "--min-replicas-max-lag",
      String(MIN_REPLICAS_MAX_LAG_S),
    );
  }
  return args;
}

/**
 * The sentinel.conf of one pod (Sentinel rewrites it, so it is written to a file of its own).
 *
 * @throws {TypeError} on an address that is not IPv4 or a directory that is not absolute
 * @example
 * ```ts
 * import { sentinelConf } from "./sentinel_config.ts";
 * console.log(sentinelConf({ ip: "198.51.100.12", dir: "/tmp/p2", masterIp: "198.51.100.11" }));
 * ```
 */
export function sentinelConf(c: SentinelPodConfig): string {
  checkConfig(c);
  const name = SENTINEL_MASTER_NAME;
  return [
    `port ${POD_PORTS.sentinel}`,
    `bind ${c.ip} 127.0.0.1`,
    "protected-mode no",
    `dir ${c.dir}`,
    `sentinel announce-ip ${c.ip}`,
    `sentinel monitor ${name} ${c.masterIp} ${POD_PORTS.redis} ${SENTINEL_QUORUM}`,
    `sentinel down-after-milliseconds ${name} ${SENTINEL_DOWN_AFTER_MS}`,
    `sentinel failover-timeout ${name} ${SENTINEL_FAILOVER_TIMEOUT_MS}`,
    `sentinel parallel-syncs ${name} 1`,
    "",
  ].join("\n");
}
