/**
 * The role prober, run by the agent: asks every pod's redis `ROLE` every
 * {@link PROBE_INTERVAL_MS} on a persistent connection (its `run_id` read once per connection)
 * and keeps every answer, so the checker can tell when two redis processes were masters at once.
 *
 * @example
 * ```ts
 * import { RoleProbe } from "./role_probe.ts";
 * const probe = new RoleProbe();
 * probe.setTargets(["192.0.2.11", "192.0.2.12"]);
 * const samples = await probe.stop();
 * ```
 */

import { RespConnection } from "../../testing/resp_connection.ts";
import { parseInfo } from "../../lib/redis/redis_info.ts";
import { epochNowMs, POD_PORTS, type ProbeSample } from "./agent_protocol.ts";
import type { RespValue } from "../../testing/resp_connection.ts";

/** Interval between two probes of one redis. */
export const PROBE_INTERVAL_MS = 50;
/** Deadline of a connect or a `ROLE`. */
export const PROBE_TIMEOUT_MS = 300;
/** Most samples kept (a guard against a runaway run; the rest are dropped and counted). */
export const MAX_PROBE_SAMPLES = 500_000;
/** Most probed addresses. */
export const MAX_PROBE_TARGETS = 32;

/**
 * Probes a changing set of redis servers until stopped.
 *
 * @example
 * ```ts
 * const probe = new RoleProbe();
 * probe.setTargets(["192.0.2.11"]);
 * const samples = await probe.stop();
 * ```
 */
export class RoleProbe {
  readonly samples: ProbeSample[] = [];
  dropped = 0;
  readonly #loops = new Map<string, Promise<void>>();
  readonly #conns = new Map<string, RespConnection>();
  #targets = new Set<string>();
  #stopped = false;

  /** Probes exactly `ips` from now on (new ones start, removed ones stop). */
  setTargets(ips: readonly string[]): void {
    if (ips.length > MAX_PROBE_TARGETS) {
      throw new RangeError(`at most ${MAX_PROBE_TARGETS} probe targets, got ${ips.length}`);
    }
    this.#targets = new Set(ips);
    for (const ip of ips) {
      if (!this.#loops.has(ip)) {
        this.#loops.set(ip, this.#loop(ip).finally(() => this.#loops.delete(ip)));
      }
    }
    for (const [ip, conn] of this.#conns) if (!this.#targets.has(ip)) conn.close();
  }

  /** Stops every probe and returns the samples. */
  async stop(): Promise<ProbeSample[]> {
    this.#stopped = true;
    for (const c of this.#conns.values()) c.close();
    await Promise.all(this.#loops.values());
    return this.samples;
  }

  #record(sample: ProbeSample): void {
    if (this.samples.length >= MAX_PROBE_SAMPLES) this.dropped++;
    else this.samples.push(sample);
  }

  async #loop(ip: string): Promise<void> {
    let conn: RespConnection | null = null;
    let runId: string | null = null;
    while (!this.#stopped && this.#targets.has(ip)) {
      const started = performance.now();
      try {
        if (conn === null || conn.closed) {
          conn = await RespConnection.open(ip, POD_PORTS.redis, { timeoutMs: PROBE_TIMEOUT_MS });
          this.#conns.set(ip, conn);
          const info = await conn.command(["INFO", "server"], PROBE_TIMEOUT_MS);
          runId = typeof info === "string" ? parseInfo(info).get("run_id") ?? null : null;
        }
        const role = await conn.command(["ROLE"], PROBE_TIMEOUT_MS);
        this.#record({ atMs: epochNowMs(), ip, runId, ...parseRole(role) });
      } catch {
        conn?.close();
        conn = null;
        runId = null;
        if (!this.#stopped) {
          this.#record({
            atMs: epochNowMs(),
            ip,
            role: "down",
            runId: null,
            offset: null,
            masterHost: null,
          });
        }
      }
      const wait = PROBE_INTERVAL_MS - (performance.now() - started);
      if (wait > 0 && !this.#stopped) await new Promise((r) => setTimeout(r, wait));
    }
    conn?.close();
    this.#conns.delete(ip);
  }
}

/**
 * The role, offset and master of a `ROLE` reply: `["master", offset, replicas]` or
 * `["slave", host, port, state, offset]`.
 *
 * @throws {Error} on any other reply
 * @example
 * ```ts
 * import { parseRole } from "./role_probe.ts";
 * parseRole(["slave", "192.0.2.11", 6379, "connected", 42]);
 * // { role: "replica", offset: 42, masterHost: "192.0.2.11" }
 * ```
 */
export function parseRole(
  reply: RespValue,
): Pick<ProbeSample, "role" | "offset" | "masterHost"> {
  if (Array.isArray(reply) && reply[0] === "master" && typeof reply[1] === "number") {
    return { role: "master", offset: reply[1], masterHost: null };
  }
  if (
    Array.isArray(reply) && reply[0] === "slave" && typeof reply[1] === "string" &&
    typeof reply[4] === "number"
  ) {
    return { role: "replica", offset: reply[4], masterHost: reply[1] };
  }
  throw new Error(`unexpected ROLE reply ${JSON.stringify(reply).slice(0, 200)}`);
}
