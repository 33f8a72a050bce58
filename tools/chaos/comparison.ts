/**
 * Per-run figures of one system under one scenario, to compare systems (the README's
 * comparison with Redis Sentinel): acknowledged writes lost per run, split-brain time per run,
 * and each run's longest window of write unavailability, each as min / median / max over the
 * runs that completed (a run with a harness error measured nothing and is left out, counted).
 *
 * @example
 * ```ts
 * import { compareRuns, comparisonTable } from "./comparison.ts";
 * console.log(comparisonTable("sentinel", [compareRuns("leader-isolated", reports)]));
 * ```
 */

import { quantile } from "./checker.ts";
import type { RunReport } from "./runner.ts";

/** Min, median (nearest rank) and max of some values. */
export interface Spread {
  min: number;
  median: number;
  max: number;
}

/** One scenario's figures. */
export interface ScenarioFigures {
  scenario: string;
  /** Runs that measured something. */
  runs: number;
  /** Runs left out because the harness failed. */
  failedRuns: number;
  lostPerRun: Spread;
  splitBrainMs: Spread;
  longestUnavailableMs: Spread;
  /** Runs with some split-brain time. */
  splitBrainRuns: number;
  /** Acknowledged writes per second of each run (lost ones included): the workload's pace. */
  ackedPerSecond: Spread;
}

/**
 * The spread of `values`; NaN everywhere when empty.
 *
 * @example
 * ```ts
 * import { spread } from "./comparison.ts";
 * spread([3, 1, 2]); // { min: 1, median: 2, max: 3 }
 * ```
 */
export function spread(values: readonly number[]): Spread {
  if (values.length === 0) return { min: NaN, median: NaN, max: NaN };
  return { min: Math.min(...values), median: quantile(values, 0.5), max: Math.max(...values) };
}

/**
 * The figures of `scenario` among `reports`.
 *
 * @example
 * ```ts
 * import { compareRuns } from "./comparison.ts";
 * compareRuns("leader-isolated", reports).lostPerRun.median;
 * ```
 */
export function compareRuns(scenario: string, reports: readonly RunReport[]): ScenarioFigures {
  const mine = reports.filter((r) => r.scenario === scenario);
  const ok = mine.filter((r) => r.error === null);
  return {
    scenario,
    runs: ok.length,
    failedRuns: mine.length - ok.length,
    lostPerRun: spread(ok.map((r) => r.lost)),
    splitBrainMs: spread(ok.map((r) => r.splitBrainMs)),
    longestUnavailableMs: spread(
      ok.map((r) => Math.max(0, ...r.windows.map((w) => w.endMs - w.startMs))),
    ),
    splitBrainRuns: ok.filter((r) => r.splitBrainMs > 0).length,
    ackedPerSecond: spread(
      ok.filter((r) => r.workloadMs > 0).map((r) => r.acked / (r.workloadMs / 1000)),
    ),
  };
}

function show(s: Spread, unit: string): string {
  if (Number.isNaN(s.median)) return "-";
  const r = (v: number) => `${Math.round(v)}`;
  return `${r(s.min)} / ${r(s.median)} / ${r(s.max)}${unit}`;
}

/**
 * A markdown table of figures (min / median / max per run), one row per scenario.
 *
 * @example
 * ```ts
 * import { comparisonTable } from "./comparison.ts";
 * console.log(comparisonTable("hive", figures));
 * ```
 */
export function comparisonTable(system: string, figures: readonly ScenarioFigures[]): string {
  const rows = [
    `| system | scenario | runs | acked writes lost per run (min / median / max) | ` +
    "split-brain per run | runs with split-brain | longest unavailability per run | " +
    "acked writes per second |",
    "|---|---|---|---|---|---|---|---|",
  ];
  for (const f of figures) {
    rows.push(
      `| ${system} | ${f.scenario} | ${f.runs}${
        f.failedRuns > 0 ? ` (+${f.failedRuns} failed)` : ""
      } | ${show(f.lostPerRun, "")} | ${
        show(f.splitBrainMs, " ms")
      } | ${f.splitBrainRuns} of ${f.runs} | ${show(f.longestUnavailableMs, " ms")} | ${
        show(f.ackedPerSecond, "")
      } |`,
    );
  }
  return rows.join("\n");
}
