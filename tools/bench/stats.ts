/**
 * Small statistics shared by the benchmarks: the longest gap between acknowledged writes, a
 * nearest-rank quantile, the median.
 *
 * @example
 * ```ts
 * import { longestGapMs, median, quantile } from "./stats.ts";
 * longestGapMs([{ atMs: 0 }, { atMs: 5 }, { atMs: 30 }]); // 25
 * quantile([1, 2, 3, 4], 0.95); // 4
 * median([1, 2, 3, 4]); // 2.5
 * ```
 */

/**
 * The longest gap between two consecutive acknowledgements that overlaps `[fromMs, toMs]`
 * (the whole log when no window is given); 0 with fewer than two acknowledgements.
 *
 * @example
 * ```ts
 * import { longestGapMs } from "./stats.ts";
 * longestGapMs([{ key: "a", atMs: 0 }, { key: "b", atMs: 300 }, { key: "c", atMs: 310 }]); // 300
 * ```
 */
export function longestGapMs(
  acks: readonly { atMs: number }[],
  fromMs = -Infinity,
  toMs = Infinity,
): number {
  let longest = 0;
  for (let i = 1; i < acks.length; i++) {
    const a = acks[i - 1]!.atMs;
    const b = acks[i]!.atMs;
    if (b < a) throw new Error("longestGapMs: acknowledgements out of order");
    if (b >= fromMs && a <= toMs) longest = Math.max(longest, b - a);
  }
  return longest;
}

/**
 * The `q` quantile (nearest rank) of `values`; NaN when empty.
 *
 * @example
 * ```ts
 * import { quantile } from "./stats.ts";
 * quantile([1, 2, 3, 4], 0.5); // 2
 * ```
 */
export function quantile(values: readonly number[], q: number): number {
  if (!(q > 0 && q <= 1)) throw new RangeError(`quantile: q must be in (0, 1], got ${q}`);
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1] as number;
}

/** The median (mean of the two middle values for an even count); NaN when empty. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? sorted[mid] as number
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}
