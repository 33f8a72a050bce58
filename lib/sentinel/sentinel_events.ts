/**
 * The Sentinel events the endpoint publishes when the announced master changes, in Sentinel's
 * exact message formats, as a pure function of the previous and the new master.
 *
 * - The master is lost (no confirmed master any more): `+sdown` and `+odown`
 *   (`master <name> <ip> <port>`, `+odown` adding ` #quorum 1/1`).
 * - A different master is confirmed: `+failover-end` (`master <name> <old-ip> <old-port>`)
 *   then `+switch-master` (`<name> <old-ip> <old-port> <new-ip> <new-port>`), the order
 *   Sentinel publishes them in. The old address is the last master announced.
 * - The same master comes back: `-odown` then `-sdown`.
 * - The first master this endpoint ever confirms: nothing (Sentinel has no event for it; a
 *   client that asked meanwhile got a null answer and retries by itself).
 *
 * @example
 * ```ts
 * import { masterChangeEvents } from "./sentinel_events.ts";
 * const a = { ip: "10.0.0.1", port: 6379, runId: "" };
 * const b = { ip: "10.0.0.2", port: 6379, runId: "" };
 * masterChangeEvents("mymaster", { announced: a, lastKnown: a }, b);
 * // [{ channel: "+failover-end", message: "master mymaster 10.0.0.1 6379" },
 * //  { channel: "+switch-master", message: "mymaster 10.0.0.1 6379 10.0.0.2 6379" }]
 * ```
 */

import type { SentinelMaster } from "./sentinel_view.ts";

/** One message to publish. */
export interface SentinelEvent {
  channel: string;
  message: string;
}

/** What the endpoint last announced. */
export interface AnnouncedMaster {
  /** The master announced now, or null while there is none. */
  announced: SentinelMaster | null;
  /** The last master ever announced (kept while `announced` is null), or null. */
  lastKnown: SentinelMaster | null;
}

/** True when both name the same redis (address and port). */
export function sameAddress(a: SentinelMaster | null, b: SentinelMaster | null): boolean {
  if (a === null || b === null) return a === b;
  return a.ip === b.ip && a.port === b.port;
}

/**
 * The events to publish when the master goes from `state` to `next`.
 *
 * @example
 * ```ts
 * import { masterChangeEvents } from "./sentinel_events.ts";
 * const a = { ip: "10.0.0.1", port: 6379, runId: "" };
 * masterChangeEvents("mymaster", { announced: a, lastKnown: a }, null);
 * // +sdown and +odown "master mymaster 10.0.0.1 6379"
 * ```
 */
export function masterChangeEvents(
  name: string,
  state: AnnouncedMaster,
  next: SentinelMaster | null,
): SentinelEvent[] {
  if (sameAddress(state.announced, next)) return [];
  if (next === null) {
    const old = state.announced!;
    const instance = `master ${name} ${old.ip} ${old.port}`;
    return [
      { channel: "+sdown", message: instance },
      { channel: "+odown", message: `${instance} #quorum 1/1` },
    ];
  }
  const old = state.lastKnown;
  if (old === null) return [];
  if (sameAddress(old, next)) {
    const instance = `master ${name} ${old.ip} ${old.port}`;
    return [
      { channel: "-odown", message: instance },
      { channel: "-sdown", message: instance },
    ];
  }
  return [
    { channel: "+failover-end", message: `master ${name} ${old.ip} ${old.port}` },
    {
      channel: "+switch-master",
      message: `${name} ${old.ip} ${old.port} ${next.ip} ${next.port}`,
    },
  ];
}

/**
 * Redis's glob match for PSUBSCRIBE patterns: `*`, `?`, `[abc]`, `[^a]`, `[a-z]`, `\x`.
 *
 * @example
 * ```ts
 * import { globMatch } from "./sentinel_events.ts";
 * globMatch("[-+]sdown", "+sdown"); // true
 * globMatch("*", "+switch-master"); // true
 * ```
 */
export function globMatch(pattern: string, text: string): boolean {
  return matchFrom(pattern, 0, text, 0);
}

function matchFrom(p: string, pi: number, s: string, si: number): boolean {
  while (pi < p.length) {
    const c = p[pi]!;
    if (c === "*") {
      while (p[pi + 1] === "*") pi++;
      if (pi + 1 === p.length) return true;
      for (let k = si; k <= s.length; k++) {
        if (matchFrom(p, pi + 1, s, k)) return true;
      }
      return false;
    }
    if (si >= s.length) return false;
    if (c === "?") {
      pi++;
      si++;
      continue;
    }
    if (c === "[") {
      let i = pi + 1;
      const not = p[i] === "^";
      if (not) i++;
      let matched = false;
      while (i < p.length && p[i] !== "]") {
        if (p[i] === "\\" && i + 1 < p.length) {
          if (p[i + 1] === s[si]) matched = true;
          i += 2;
        } else if (p[i + 1] === "-" && i + 2 < p.length && p[i + 2] !== "]") {
          let lo = p[i]!, hi = p[i + 2]!;
          if (lo > hi) [lo, hi] = [hi, lo];
          if (s[si]! >= lo && s[si]! <= hi) matched = true;
          i += 3;
        } else {
          if (p[i] === s[si]) matched = true;
          i++;
        }
      }
      if (not) matched = !matched;
      if (!matched) return false;
      pi = i + 1;
      si++;
      continue;
    }
    if (c === "\\" && pi + 1 < p.length) {
      if (p[pi + 1] !== s[si]) return false;
      pi += 2;
      si++;
      continue;
    }
    if (c !== s[si]) return false;
    pi++;
    si++;
  }
  return si === s.length;
}
