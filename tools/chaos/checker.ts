/**
 * The lost-write checker's arithmetic, pure and unit-tested: windows of write unavailability,
 * time with two masters accepting writes, and why each lost acknowledged write was lost.
 *
 * - **Unavailability window**: a gap longer than {@link UNAVAILABLE_MIN_GAP_MS} between two
 *   consecutive acknowledgements of all clients together (or from the start to the first, or
 *   from the last to the end).
 * - **Split-brain time** (two masters accepting writes): the time during which two different
 *   redis processes each acknowledged writes, a process counting as accepting from its first to
 *   its last acknowledgement of a burst (acknowledgements at most {@link ACTIVE_BRIDGE_MS}
 *   apart). Every client write reaches a redis only through a proxy, and a redis acknowledges a
 *   write only while it is a master, so overlapping bursts mean two masters took writes.
 * - **Two masters by ROLE**: the time during which the prober saw two redis answer `master`,
 *   whether or not clients reached both (an upper bound, for the record).
 * - **Lost write causes**, checked in this order: `partition` (acknowledged by a redis whose pod
 *   was cut off by a partition, until the cluster settled again, or during split-brain time: the
 *   writes of the merge loser); `discarded` (the prober saw a live replica of that redis holding
 *   the write, i.e. with a processed offset at least the master's offset just after the
 *   acknowledgement, and it was lost anyway: a failover or resync threw away a surviving copy);
 *   `async-window` (acknowledged at most {@link ASYNC_LOSS_WINDOW_MS} before its redis was
 *   killed, or received at most {@link ACK_IN_FLIGHT_MS} after the kill was recorded, and never
 *   seen on a replica: asynchronous replication); `unexplained` (a safety
 *   violation, always).
 *
 * @example
 * ```ts
 * import { unavailabilityWindows } from "./checker.ts";
 * unavailabilityWindows([0, 10, 500, 510], 0, 510); // [{ startMs: 10, endMs: 500 }]
 * ```
 */

import type { ProbeSample, ServerId, WorkloadLog } from "./agent_protocol.ts";

/** A gap between acknowledgements longer than this is a window of unavailability. */
export const UNAVAILABLE_MIN_GAP_MS = 100;
/** Acknowledgements of one redis at most this far apart belong to one burst of acceptance. */
export const ACTIVE_BRIDGE_MS = 250;
/** A write acknowledged at most this long before its redis was killed may be lost (async). */
export const ASYNC_LOSS_WINDOW_MS = 1_000;
/**
 * An acknowledgement the client received up to this long after the harness recorded the kill
 * still left that redis before it died: the reply was in flight (through a proxy, two hops) while
 * the harness's kill command returned and it noted the crash.
 */
export const ACK_IN_FLIGHT_MS = 100;
/** A ROLE sample stands for at most this long when the next one is late or missing. */
export const MAX_SAMPLE_SPAN_MS = 200;

/** A time interval, epoch ms. */
export interface Interval {
  startMs: number;
  endMs: number;
}

/** Why an acknowledged write was lost. */
export type LossCause = "partition" | "discarded" | "async-window" | "unexplained";

/** Every cause, in report order. */
export const LOSS_CAUSES: readonly LossCause[] = [
  "partition",
  "discarded",
  "async-window",
  "unexplained",
];

/** What the harness did that may explain a loss. */
export interface LossContext {
  /** A redis process at `ip` was killed at `atMs` (alone or with its pod). */
  crashes: { ip: string; atMs: number }[];
  /** The pod at `ip` was cut off from the others (a partition) from `fromMs` to `toMs`. */
  cutOff: { ip: string; fromMs: number; toMs: number }[];
  /** Split-brain intervals. */
  splitBrain: Interval[];
  /** The prober's samples (offsets tell which replica held a write). */
  samples: readonly ProbeSample[];
}

/**
 * Total length of (possibly overlapping) intervals: their union's length.
 *
 * @example
 * ```ts
 * import { totalMs } from "./checker.ts";
 * totalMs([{ startMs: 0, endMs: 10 }, { startMs: 5, endMs: 15 }]); // 15
 * ```
 */
export function totalMs(intervals: readonly Interval[]): number {
  return mergeIntervals(intervals).reduce((n, i) => n + (i.endMs - i.startMs), 0);
}

/**
 * The union of intervals, sorted, touching ones merged.
 *
 * @example
 * ```ts
 * import { mergeIntervals } from "./checker.ts";
 * mergeIntervals([{ startMs: 5, endMs: 9 }, { startMs: 0, endMs: 5 }]); // [{ startMs: 0, endMs: 9 }]
 * ```
 */
export function mergeIntervals(intervals: readonly Interval[]): Interval[] {
  const sorted = [...intervals].sort((a, b) => a.startMs - b.startMs);
  const out: Interval[] = [];
  for (const i of sorted) {
    if (i.endMs < i.startMs) {
      throw new RangeError(`interval ends before it starts: ${JSON.stringify(i)}`);
    }
    const last = out[out.length - 1];
    if (last !== undefined && i.startMs <= last.endMs) last.endMs = Math.max(last.endMs, i.endMs);
    else out.push({ ...i });
  }
  return out;
}

/**
 * Where at least `k` of the groups overlap (each group is first merged into a union), as
 * intervals of positive length.
 *
 * @example
 * ```ts
 * import { coveredByAtLeast } from "./checker.ts";
 * coveredByAtLeast([[{ startMs: 0, endMs: 10 }], [{ startMs: 5, endMs: 20 }]], 2);
 * // [{ startMs: 5, endMs: 10 }]
 * ```
 */
export function coveredByAtLeast(groups: readonly (readonly Interval[])[], k: number): Interval[] {
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`k must be a positive integer, got ${k}`);
  const edges: [number, number][] = [];
  for (const group of groups) {
    for (const i of mergeIntervals(group)) {
      if (i.endMs > i.startMs) edges.push([i.startMs, +1], [i.endMs, -1]);
    }
  }
  // Ends before starts at the same instant: touching intervals do not overlap.
  edges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const out: Interval[] = [];
  let depth = 0;
  let openedAt = 0;
  for (const [at, delta] of edges) {
    const before = depth;
    depth += delta;
    if (before < k && depth >= k) openedAt = at;
    if (before >= k && depth < k && at > openedAt) out.push({ startMs: openedAt, endMs: at });
  }
  return mergeIntervals(out);
}

/**
 * Gaps longer than `minGapMs` in the sorted acknowledgement times, counting the span from
 * `fromMs` to the first and from the last to `toMs`; with no acknowledgement at all, the whole
 * span.
 *
 * @example
 * ```ts
 * import { unavailabilityWindows } from "./checker.ts";
 * unavailabilityWindows([50, 60], 0, 1000, 100); // [{ startMs: 60, endMs: 1000 }]
 * ```
 */
export function unavailabilityWindows(
  ackTimes: readonly number[],
  fromMs: number,
  toMs: number,
  minGapMs = UNAVAILABLE_MIN_GAP_MS,
): Interval[] {
  const points = [fromMs, ...ackTimes, toMs];
  const out: Interval[] = [];
  for (let i = 1; i < points.length; i++) {
    const a = points[i - 1] as number;
    const b = points[i] as number;
    if (b < a) throw new RangeError("acknowledgement times must be sorted and within the span");
    if (b - a > minGapMs) out.push({ startMs: a, endMs: b });
  }
  return out;
}

/**
 * Bursts of sorted times: consecutive times at most `bridgeMs` apart form one interval.
 *
 * @example
 * ```ts
 * import { bursts } from "./checker.ts";
 * bursts([0, 100, 1000], 250); // [{ startMs: 0, endMs: 100 }, { startMs: 1000, endMs: 1000 }]
 * ```
 */
export function bursts(times: readonly number[], bridgeMs = ACTIVE_BRIDGE_MS): Interval[] {
  const out: Interval[] = [];
  for (const t of times) {
    const last = out[out.length - 1];
    if (last !== undefined && t - last.endMs <= bridgeMs) last.endMs = t;
    else out.push({ startMs: t, endMs: t });
  }
  return out;
}

/**
 * The acknowledgement times of a workload, sorted.
 *
 * @example
 * ```ts
 * import { ackTimes } from "./checker.ts";
 * const times = ackTimes(workloadLog);
 * ```
 */
export function ackTimes(log: WorkloadLog): number[] {
  return log.acks.map((a) => a[2]).sort((a, b) => a - b);
}

/**
 * Split-brain intervals: where two different redis processes were both accepting writes.
 *
 * @example
 * ```ts
 * import { splitBrainIntervals } from "./checker.ts";
 * const intervals = splitBrainIntervals(workloadLog);
 * ```
 */
export function splitBrainIntervals(log: WorkloadLog, bridgeMs = ACTIVE_BRIDGE_MS): Interval[] {
  const byServer = new Map<number, number[]>();
  for (const [, , at, server] of log.acks) {
    const list = byServer.get(server) ?? [];
    list.push(at);
    byServer.set(server, list);
  }
  const groups = [...byServer.values()].map((times) =>
    bursts(times.sort((a, b) => a - b), bridgeMs)
  );
  return coveredByAtLeast(groups, 2);
}

/**
 * Where the prober saw at least two redis answer `ROLE` master at once.
 *
 * @example
 * ```ts
 * import { twoMastersByRole } from "./checker.ts";
 * const intervals = twoMastersByRole(samples);
 * ```
 */
export function twoMastersByRole(
  samples: readonly ProbeSample[],
  maxSpanMs = MAX_SAMPLE_SPAN_MS,
): Interval[] {
  const byIp = new Map<string, ProbeSample[]>();
  for (const s of samples) {
    const list = byIp.get(s.ip) ?? [];
    list.push(s);
    byIp.set(s.ip, list);
  }
  const groups: Interval[][] = [];
  for (const list of byIp.values()) {
    list.sort((a, b) => a.atMs - b.atMs);
    const masters: Interval[] = [];
    list.forEach((s, i) => {
      if (s.role !== "master") return;
      const next = list[i + 1]?.atMs ?? Infinity;
      masters.push({ startMs: s.atMs, endMs: Math.min(next, s.atMs + maxSpanMs) });
    });
    groups.push(masters);
  }
  return coveredByAtLeast(groups, 2);
}

/**
 * The replica that held the write `server` acknowledged at `atMs`, as far as the prober saw:
 * the master's offset in its first sample after the acknowledgement (same process) bounds the
 * write's position; a replica of that master whose processed offset reached it, sampled while
 * that process still was a master, held the write. Null when no sample shows one.
 *
 * @example
 * ```ts
 * import { replicaThatHeld } from "./checker.ts";
 * const holder = replicaThatHeld(1_000, { ip: "192.0.2.11", runId: "r1" }, samples);
 * ```
 */
export function replicaThatHeld(
  atMs: number,
  server: ServerId,
  samples: readonly ProbeSample[],
): string | null {
  let bound: number | null = null;
  let lastMasterMs = -Infinity;
  for (const s of samples) {
    if (s.ip !== server.ip || s.runId !== server.runId || s.role !== "master") continue;
    if (s.offset === null) continue;
    if (s.atMs >= atMs && bound === null) bound = s.offset;
    lastMasterMs = Math.max(lastMasterMs, s.atMs);
  }
  if (bound === null) return null;
  for (const s of samples) {
    if (
      s.role === "replica" && s.masterHost === server.ip && s.offset !== null &&
      s.offset >= bound && s.atMs >= atMs && s.atMs <= lastMasterMs + MAX_SAMPLE_SPAN_MS
    ) return s.ip;
  }
  return null;
}

/**
 * Why the write acknowledged at `atMs` by `server` was lost (see the module doc for the order).
 *
 * @example
 * ```ts
 * import { classifyLoss } from "./checker.ts";
 * const ctx = { crashes: [{ ip: "192.0.2.11", atMs: 1_000 }], cutOff: [], splitBrain: [], samples: [] };
 * classifyLoss(990, { ip: "192.0.2.11", runId: "r1" }, ctx); // "async-window"
 * ```
 */
export function classifyLoss(atMs: number, server: ServerId, ctx: LossContext): LossCause {
  for (const c of ctx.cutOff) {
    if (c.ip === server.ip && atMs >= c.fromMs && atMs <= c.toMs) return "partition";
  }
  for (const i of ctx.splitBrain) {
    if (atMs >= i.startMs - ACTIVE_BRIDGE_MS && atMs <= i.endMs + ACTIVE_BRIDGE_MS) {
      return "partition";
    }
  }
  if (replicaThatHeld(atMs, server, ctx.samples) !== null) return "discarded";
  for (const c of ctx.crashes) {
    const before = c.atMs - atMs; // negative: received after the kill was recorded
    if (c.ip === server.ip && before >= -ACK_IN_FLIGHT_MS && before <= ASYNC_LOSS_WINDOW_MS) {
      return "async-window";
    }
  }
  return "unexplained";
}

/**
 * The `q` quantile (nearest rank) of `values`; NaN when empty.
 *
 * @example
 * ```ts
 * import { quantile } from "./checker.ts";
 * quantile([3, 1, 2], 0.5); // 2
 * ```
 */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1] as number;
}
