/**
 * Readers of Redis Sentinel's replies, pure and unit-tested: the master's address
 * (`SENTINEL get-master-addr-by-name`) and the state a sentinel keeps of its master
 * (`SENTINEL master`, a flat list of field names and values).
 *
 * @example
 * ```ts
 * import { parseMasterAddr } from "./sentinel_reply.ts";
 * parseMasterAddr(["198.51.100.11", "6379"]); // { ip: "198.51.100.11", port: 6379 }
 * ```
 */

import { isIP } from "node:net";
import type { RespValue } from "../../testing/resp_connection.ts";

/** A master's address as Sentinel gives it. */
export interface MasterAddr {
  ip: string;
  port: number;
}

/** What one sentinel knows of its master. */
export interface SentinelMasterState {
  /** The master's address. */
  ip: string;
  /** Flags such as `master`, `s_down`, `o_down`, `failover_in_progress`. */
  flags: string[];
  /** Replicas it knows. */
  replicas: number;
  /** Other sentinels it knows. */
  otherSentinels: number;
  /** Its configuration epoch (bumped by every failover). */
  configEpoch: number;
}

/**
 * The address of a `SENTINEL get-master-addr-by-name` reply; null for the nil reply (an unknown
 * master name).
 *
 * @throws {Error} on any other reply
 * @example
 * ```ts
 * import { parseMasterAddr } from "./sentinel_reply.ts";
 * parseMasterAddr(null); // null
 * ```
 */
export function parseMasterAddr(reply: RespValue): MasterAddr | null {
  if (reply === null) return null;
  if (Array.isArray(reply) && reply.length === 2) {
    const [ip, port] = reply;
    if (
      typeof ip === "string" && isIP(ip) === 4 && typeof port === "string" && /^\d+$/.test(port)
    ) {
      const n = Number(port);
      if (n >= 1 && n <= 65_535) return { ip, port: n };
    }
  }
  throw new Error(
    `unexpected get-master-addr-by-name reply ${JSON.stringify(reply).slice(0, 200)}`,
  );
}

/**
 * The state in a `SENTINEL master <name>` reply (field, value, field, value...).
 *
 * @throws {Error} on a reply that is not such a list or lacks a field
 * @example
 * ```ts
 * import { parseSentinelMaster } from "./sentinel_reply.ts";
 * parseSentinelMaster(["ip", "198.51.100.11", "flags", "master", "num-slaves", "2",
 *   "num-other-sentinels", "2", "config-epoch", "0"]).replicas; // 2
 * ```
 */
export function parseSentinelMaster(reply: RespValue): SentinelMasterState {
  if (!Array.isArray(reply) || reply.length % 2 !== 0) {
    throw new Error(`unexpected SENTINEL master reply ${JSON.stringify(reply).slice(0, 200)}`);
  }
  const fields = new Map<string, string>();
  for (let i = 0; i < reply.length; i += 2) {
    const [k, v] = [reply[i], reply[i + 1]];
    if (typeof k === "string" && typeof v === "string") fields.set(k, v);
  }
  const field = (name: string) => {
    const v = fields.get(name);
    if (v === undefined) throw new Error(`SENTINEL master reply lacks ${name}`);
    return v;
  };
  const count = (name: string) => {
    const v = field(name);
    if (!/^\d+$/.test(v)) throw new Error(`SENTINEL master reply: ${name} is "${v}"`);
    return Number(v);
  };
  return {
    ip: field("ip"),
    flags: field("flags").split(","),
    replicas: count("num-slaves"),
    otherSentinels: count("num-other-sentinels"),
    configEpoch: count("config-epoch"),
  };
}
