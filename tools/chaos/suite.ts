/**
 * Runs a list of scenarios, each on a fresh cluster of `pods` pods of the chosen system (the
 * hive by default, or Redis Sentinel: see system.ts), `runs` times, inside one
 * {@link ChaosSession} (which removes everything at the end, also on failure or Ctrl-C).
 *
 * @example
 * ```ts
 * import { runSuite } from "./suite.ts";
 * const result = await runSuite({ scenarios: ["leader-isolated"], runs: 1, pods: 3, seed: 42 });
 * console.log(result.broken);
 * ```
 */

import { ChaosCluster } from "./cluster.ts";
import { currentNetwork } from "./network.ts";
import { SentinelCluster } from "./sentinel_cluster.ts";
import { networkOf, type SystemName, type TestedCluster } from "./system.ts";
import { runLine } from "./report.ts";
import { runFailed } from "./report.ts";
import { emptyReport, type RunReport, runScenarioOnce } from "./runner.ts";
import { scenarioNamed } from "./scenarios.ts";
import { ChaosSession } from "./session.ts";

/** Most runs per scenario. */
export const MAX_RUNS = 50;
/** Log lines shown per pod (hive log, or sentinel log) for a run that broke a rule. */
export const LOG_LINES_ON_FAILURE = 40;

/** Options of {@link runSuite}. */
export interface SuiteOptions {
  scenarios: readonly string[];
  /** The system under test (default `hive`). */
  system?: SystemName;
  runs: number;
  pods: number;
  /** Seed of the scenarios' random choices (delays, victims). */
  seed: number;
  /**
   * Where to copy every log of every scenario (null: none; a scenario with a broken run then
   * prints a digest of the hive logs instead).
   */
  logsDir?: string | null;
  /** Progress output (default: stdout). */
  log?: (line: string) => void;
}

/** What the suite found. */
export interface SuiteResult {
  reports: RunReport[];
  /** True when any run broke a rule or failed. */
  broken: boolean;
}

/**
 * A small seeded generator (mulberry32): the same seed gives the same delays and choices.
 *
 * @example
 * ```ts
 * import { seededRandom } from "./suite.ts";
 * const random = seededRandom(42);
 * random(); // always the same first number for seed 42
 * ```
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Runs the suite; see the module doc.
 *
 * @example
 * ```ts
 * import { runSuite } from "./suite.ts";
 * const { broken } = await runSuite({ scenarios: ["master-pod-killed"], runs: 1, pods: 3, seed: 1 });
 * ```
 */
export async function runSuite(opts: SuiteOptions): Promise<SuiteResult> {
  const log = opts.log ?? ((line: string) => console.log(line));
  if (!Number.isInteger(opts.runs) || opts.runs < 1 || opts.runs > MAX_RUNS) {
    throw new RangeError(`runs must be 1..${MAX_RUNS}, got ${opts.runs}`);
  }
  const system = opts.system ?? "hive";
  if (currentNetwork() !== networkOf(system)) {
    throw new Error(`${system} needs the ${networkOf(system).prefix}* network plan (useNetwork)`);
  }
  const scenarios = opts.scenarios.map(scenarioNamed);
  for (const s of scenarios) {
    if (!s.systems.includes(system)) throw new Error(`${s.name} does not run on ${system}`);
  }
  const random = seededRandom(opts.seed);
  const reports: RunReport[] = [];
  const session = await ChaosSession.open({ log });
  try {
    for (const scenario of scenarios) {
      if (session.closed) break; // interrupted
      log(`${scenario.name}: ${scenario.about}`);
      const started = Date.now();
      let cluster: TestedCluster;
      try {
        cluster = system === "hive"
          ? await ChaosCluster.start(session, { pods: opts.pods })
          : await SentinelCluster.start(session, {
            pods: opts.pods,
            minReplicas: system === "sentinel-min-replicas",
          });
      } catch (e) {
        if (session.closed) break;
        const error = `cannot start the cluster: ${e instanceof Error ? e.message : e}`;
        log(`  ERROR: ${error}`);
        reports.push(emptyReport(scenario.name, 1, error));
        continue;
      }
      const mine: RunReport[] = [];
      try {
        for (let run = 1; run <= opts.runs && !session.closed; run++) {
          const report = await runScenarioOnce(cluster, scenario, run, random, log);
          if (session.closed) break; // interrupted: the run's failures mean nothing
          mine.push(report);
          log(runLine(report));
          if (report.error !== null) break; // the cluster may be unusable: next scenario
        }
        const keep = opts.logsDir !== undefined && opts.logsDir !== null;
        if (keep || mine.some(runFailed)) {
          await keepLogs(session, cluster, scenario.name, opts, log);
        }
      } finally {
        await cluster.close();
      }
      reports.push(...mine);
      log(`  (${((Date.now() - started) / 1000).toFixed(1)} s)`);
    }
  } finally {
    await session.close();
  }
  return { reports, broken: reports.some(runFailed) };
}

async function keepLogs(
  session: ChaosSession,
  cluster: TestedCluster,
  scenario: string,
  opts: SuiteOptions,
  log: (line: string) => void,
): Promise<void> {
  if (opts.logsDir !== undefined && opts.logsDir !== null) {
    const dest = `${opts.logsDir}/${scenario}`;
    await Deno.mkdir(dest, { recursive: true });
    for (const file of cluster.logFiles()) {
      await Deno.copyFile(file.path, `${dest}/${file.label}`).catch(() => {});
    }
    await Deno.copyFile(`${session.dir}/agent.log`, `${dest}/agent.log`).catch(() => {});
    log(`  logs of ${scenario} copied to ${dest}`);
    return;
  }
  for (const file of cluster.logFiles().filter((f) => f.digest)) {
    const text = await Deno.readTextFile(file.path).catch(() => "");
    const tail = text.split("\n").slice(-LOG_LINES_ON_FAILURE - 1).join("\n");
    log(`  --- last lines of ${file.label} ---`);
    for (const line of tail.split("\n")) if (line !== "") log(`  ${digest(line)}`);
  }
  log("  (pass --logs-dir DIR to keep every log)");
}

/** A JSON log line as `time level message`, other lines as they are. */
function digest(line: string): string {
  try {
    const rec = JSON.parse(line) as Record<string, unknown>;
    const time = String(rec["time"] ?? "").replace(/^.*T/, "");
    return `${time} ${rec["level"]} ${rec["message"]}`;
  } catch {
    return line;
  }
}
