/**
 * `deno task chaos`: proves the hive under faults. Every scenario runs on a fresh cluster of
 * pods, each a Linux network namespace on a bridge that lives in a namespace of its own
 * (addresses from 192.0.2.0/24, never routed to the host's network), with a real redis-server
 * and a hive run with the production flags, a dnsmasq answering the headless Service name,
 * clients writing unique keys through the pods' proxies, and a checker of every acknowledged
 * write. It prints one line per run and a table, and exits non-zero when a safety rule broke.
 *
 * Needs root, `ip netns`, `nft`, `redis-server` and `dnsmasq`. Everything it creates (`rh-*`
 * namespaces, veths, processes, `/tmp/rh-chaos-*`) is removed at the end, also after a failure
 * or Ctrl-C, and at the start when an earlier run crashed.
 *
 * `--system sentinel` or `--system sentinel-min-replicas` puts real Redis Sentinel (3 redis-server
 * and 3 sentinels, one of each per pod, `rs-*` namespaces on 198.51.100.0/24) under the scenarios
 * that make sense for it (the partitions), with the same workload, prober, checker and rules,
 * for the comparison in README and docs/reliability.md; its clients are sentinel-aware (see
 * tools/chaos/workload.ts) and the rules are the hive's, so a Sentinel run that breaks them is
 * reported BROKEN like a hive run would be.
 *
 * Exit status: 0 when every rule held, 1 when one broke (or a run failed), 2 on a bad flag or
 * a machine that cannot run it, 130 when interrupted.
 *
 * @example
 * ```sh
 * deno task chaos                                  # every scenario, 3 runs each
 * deno task chaos --scenarios leader-isolated --runs 5 --seed 7
 * deno task chaos --system sentinel-min-replicas --scenarios leader-isolated --runs 20
 * ```
 */

import { parseArgs } from "node:util";
import { useNetwork, whyNoNamespaces } from "./chaos/network.ts";
import { compareRuns, comparisonTable } from "./chaos/comparison.ts";
import { summaryTable } from "./chaos/report.ts";
import { networkOf, type SystemName, SYSTEMS } from "./chaos/system.ts";
import { SCENARIOS } from "./chaos/scenarios.ts";
import { interruption } from "./chaos/session.ts";
import { MAX_RUNS, runSuite, type SuiteOptions } from "./chaos/suite.ts";

/** Default runs per scenario. */
export const DEFAULT_RUNS = 3;
/** Default pods per cluster. */
export const DEFAULT_PODS = 3;
/** Most pods per cluster. */
export const MAX_PODS = 7;

/**
 * Parses the flags; throws with a message naming the bad flag.
 *
 * @example
 * ```ts
 * import { parseChaosArgs } from "./chaos.ts";
 * parseChaosArgs(["--runs", "5"]).runs; // 5
 * ```
 */
export function parseChaosArgs(args: string[]): SuiteOptions {
  const { values } = parseArgs({
    args,
    options: {
      runs: { type: "string", default: String(DEFAULT_RUNS) },
      system: { type: "string", default: "hive" },
      scenarios: { type: "string" },
      pods: { type: "string", default: String(DEFAULT_PODS) },
      seed: { type: "string" },
      "logs-dir": { type: "string" },
    },
    strict: true,
    allowPositionals: false,
  });
  const integer = (flag: string, text: string, min: number, max: number) => {
    if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) {
      throw new Error(`--${flag}: expected an integer ${min}..${max}, got ${JSON.stringify(text)}`);
    }
    return Number(text);
  };
  const system = values.system as SystemName;
  if (!SYSTEMS.includes(system)) {
    throw new Error(`--system: expected one of ${SYSTEMS.join(", ")}, got ${values.system}`);
  }
  const runnable = SCENARIOS.filter((s) => s.systems.includes(system)).map((s) => s.name);
  const scenarios = (values.scenarios ?? runnable.join(",")).split(",").map((s) => s.trim())
    .filter((s) => s !== "");
  const known = SCENARIOS.map((s) => s.name);
  for (const s of scenarios) {
    if (!known.includes(s)) {
      throw new Error(`--scenarios: unknown scenario ${s} (known: ${known.join(", ")})`);
    }
    if (!runnable.includes(s)) {
      throw new Error(
        `--scenarios: ${s} does not run on ${system} (on ${system}: ${runnable.join(", ")})`,
      );
    }
  }
  if (scenarios.length === 0) throw new Error("--scenarios: name at least one scenario");
  return {
    scenarios,
    system,
    runs: integer("runs", values.runs, 1, MAX_RUNS),
    pods: integer("pods", values.pods, 3, MAX_PODS),
    seed: values.seed === undefined
      ? Math.floor(Math.random() * 2 ** 31)
      : integer("seed", values.seed, 0, 2 ** 31),
    logsDir: values["logs-dir"] ?? null,
  };
}

/**
 * Runs the suite with the given arguments; returns the exit status.
 *
 * @example
 * ```ts
 * import { main } from "./chaos.ts";
 * Deno.exit(await main(["--scenarios", "leader-isolated", "--runs", "1"]));
 * ```
 */
export async function main(args: string[]): Promise<number> {
  let opts: SuiteOptions;
  try {
    opts = parseChaosArgs(args);
  } catch (e) {
    console.error(`chaos: ${e instanceof Error ? e.message : e}`);
    return 2;
  }
  const system = opts.system ?? "hive";
  useNetwork(networkOf(system));
  const reason = await whyNoNamespaces();
  if (reason !== null) {
    console.error(`chaos: this machine cannot run the fault suite: ${reason}`);
    return 2;
  }
  const command =
    `deno task chaos${
      system === "hive" ? "" : ` --system ${system}`
    } --runs ${opts.runs} --pods ${opts.pods} --seed ${opts.seed}` +
    (args.includes("--scenarios") ? ` --scenarios ${opts.scenarios.join(",")}` : "");
  console.log(`${command}`);
  console.log(`${new Date().toISOString()}, ${navigator.hardwareConcurrency} cores\n`);
  const started = Date.now();
  const result = await runSuite(opts);
  if (interruption() !== null) await new Promise(() => {}); // its signal handler exits
  console.log();
  console.log(summaryTable(result.reports, opts.scenarios));
  console.log();
  console.log(
    comparisonTable(system, opts.scenarios.map((s) => compareRuns(s, result.reports))),
  );
  console.log();
  console.log(
    `${result.reports.length} runs in ${((Date.now() - started) / 1000).toFixed(0)} s; ` +
      (result.broken
        ? "SAFETY RULES BROKEN (see VIOLATION / ERROR lines above)"
        : "every safety rule held"),
  );
  return result.broken ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
