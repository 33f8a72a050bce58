/**
 * The chaos suite's output: one line per run, and the summary table (markdown) with, per
 * scenario, the runs, the median and worst over runs of each run's longest window of write
 * unavailability (and how many windows there were), the acknowledged writes and those lost (by
 * cause), the split-brain time, and the verdict.
 *
 * @example
 * ```ts
 * import { summaryTable } from "./report.ts";
 * console.log(summaryTable(reports, ["leader-isolated"]));
 * ```
 */

import { LOSS_CAUSES, quantile, UNAVAILABLE_MIN_GAP_MS } from "./checker.ts";
import type { RunReport } from "./runner.ts";

function ms(value: number): string {
  if (Number.isNaN(value)) return "-";
  return value >= 10_000 ? `${(value / 1000).toFixed(1)} s` : `${Math.round(value)} ms`;
}

/**
 * True when the run broke a rule or failed.
 *
 * @example
 * ```ts
 * import { runFailed } from "./report.ts";
 * if (runFailed(report)) console.log("broken");
 * ```
 */
export function runFailed(r: RunReport): boolean {
  return r.violations.length > 0 || r.error !== null;
}

/**
 * One line for a run, and its violations and error below it.
 *
 * @example
 * ```ts
 * import { runLine } from "./report.ts";
 * console.log(runLine(report));
 * ```
 */
export function runLine(r: RunReport): string {
  const windows = r.windows.map((w) => ms(w.endMs - w.startMs));
  const causes = LOSS_CAUSES.filter((c) => r.lostByCause[c] > 0)
    .map((c) => `${c} ${r.lostByCause[c]}`);
  const lines = [
    `  ${r.scenario} #${r.run}: ${r.detail}`,
    `    unavailable: ${windows.length === 0 ? "never" : windows.join(", ")}; ` +
    `${r.acked} acked of ${r.attempts} sent (${r.failures} failed attempts); ` +
    `lost ${r.lost}${causes.length > 0 ? ` (${causes.join(", ")})` : ""}; ` +
    `split-brain ${ms(r.splitBrainMs)} (two masters by ROLE ${ms(r.twoMastersMs)}); ` +
    `converged ${r.convergedMs === null ? "never" : `in ${ms(r.convergedMs)}`}` +
    ` -> ${runFailed(r) ? "BROKEN" : "ok"}`,
  ];
  for (const v of r.violations) lines.push(`    VIOLATION: ${v}`);
  if (r.error !== null) lines.push(`    ERROR: ${r.error.split("\n").join("\n      ")}`);
  return lines.join("\n");
}

/**
 * The summary table (markdown), one row per scenario in `order`.
 *
 * @example
 * ```ts
 * import { summaryTable } from "./report.ts";
 * console.log(summaryTable(reports, ["master-pod-killed", "leader-isolated"]));
 * ```
 */
export function summaryTable(reports: readonly RunReport[], order: readonly string[]): string {
  const rows = [
    "| scenario | runs | unavailability per run (longest window): median | worst | windows > " +
    `${UNAVAILABLE_MIN_GAP_MS} ms | acked writes | acked writes lost | split-brain time: total | worst run | safety |`,
    "|---|---|---|---|---|---|---|---|---|---|",
  ];
  for (const name of order) {
    const mine = reports.filter((r) => r.scenario === name);
    if (mine.length === 0) continue;
    const longest = mine.map((r) => Math.max(0, ...r.windows.map((w) => w.endMs - w.startMs)));
    const windows = mine.reduce((n, r) => n + r.windows.length, 0);
    const lost = mine.reduce((n, r) => n + r.lost, 0);
    const causes = LOSS_CAUSES.map((c) =>
      [c, mine.reduce((n, r) => n + r.lostByCause[c], 0)] as const
    )
      .filter(([, n]) => n > 0).map(([c, n]) => `${c} ${n}`);
    const lostRuns = mine.filter((r) => r.lost > 0).length;
    const split = mine.map((r) => r.splitBrainMs);
    const broken = mine.filter(runFailed).length;
    rows.push(
      `| ${name} | ${mine.length} | ${ms(quantile(longest, 0.5))} | ${
        ms(Math.max(...longest))
      } | ${windows} | ${mine.reduce((n, r) => n + r.acked, 0)} | ${lost}${
        lost > 0 ? ` in ${lostRuns} run${lostRuns === 1 ? "" : "s"} (${causes.join(", ")})` : ""
      } | ${ms(split.reduce((a, b) => a + b, 0))} | ${ms(Math.max(...split))} | ${
        broken === 0 ? "kept" : `**BROKEN in ${broken} run${broken === 1 ? "" : "s"}**`
      } |`,
    );
  }
  return rows.join("\n");
}
