/**
 * The redis-server arguments every chaos pod shares, the hive's pods and the Sentinel pods alike,
 * so the two systems are measured on the same redis: its port on the pod address and loopback, no
 * persistence (as the manifests run it), diskless syncs without delay, and the pod address
 * announced to its master.
 *
 * @example
 * ```ts
 * import { podRedisBaseArgs } from "./pod_redis.ts";
 * const args = [...podRedisBaseArgs("192.0.2.11"), "--dir", "/tmp/pod1/redis"];
 * ```
 */

import { POD_PORTS } from "./agent_protocol.ts";

/** The shared arguments for a redis on the pod at `ip` (see the module documentation). */
export function podRedisBaseArgs(ip: string): string[] {
  return [
    "--port",
    String(POD_PORTS.redis),
    "--bind",
    ip,
    "127.0.0.1",
    "--protected-mode",
    "no",
    "--save",
    "",
    "--appendonly",
    "no",
    "--repl-diskless-sync-delay",
    "0",
    "--replica-announce-ip",
    ip,
  ];
}
