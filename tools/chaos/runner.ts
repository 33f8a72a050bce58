/**
 * Runs one scenario once on a settled cluster and checks it: clients write for
 * {@link BASELINE_MS}, the scenario injects and heals its fault, the cluster must converge
 * within {@link CONVERGE_TIMEOUT_MS}, clients write for {@link AFTER_MS} more, then every
 * acknowledged write is looked up on the final master, and the run's safety rules are applied.
 *
 * @example
 * ```ts
 * import { runScenarioOnce } from "./runner.ts";
 * import { scenarioNamed } from "./scenarios.ts";
 * const report = await runScenarioOnce(cluster, scenarioNamed("leader-isolated"), 1, Math.random);
 * console.log(report.violations);
 * ```
 */

import { sleep } from "../../testing/wait.ts";
import { ackKey, epochNowMs, type WorkloadLog } from "./agent_protocol.ts";
import {
  classifyLoss,
  type Interval,
  LOSS_CAUSES,
  type LossCause,
  type LossContext,
  replicaThatHeld,
  splitBrainIntervals,
  totalMs,
  twoMastersByRole,
  unavailabilityWindows,
} from "./checker.ts";
import { SettleTimeout } from "./cluster.ts";
import type { TestedCluster } from "./system.ts";
import type { Scenario, ScenarioContext } from "./scenarios.ts";

/** How long clients write before the fault. */
export const BASELINE_MS = 1_000;
/** How long clients write once the cluster converged. */
export const AFTER_MS = 1_000;
/** Bound of the convergence after the fault was healed (a run past it breaks a rule). */
export const CONVERGE_TIMEOUT_MS = 30_000;
/** Clients writing at once. */
export const WRITERS = 3;
/** Pause between two writes of one client. */
export const WRITE_INTERVAL_MS = 5;
/** Lost writes listed by name in a report, per cause (the counts are exact). */
export const MAX_LOST_SAMPLES_PER_CAUSE = 3;

/** What one run measured and which rules it broke. */
export interface RunReport {
  scenario: string;
  run: number;
  /** What the scenario did, in one line. */
  detail: string;
  /** Steps noted by the scenario, with their time since the fault started. */
  notes: string[];
  acked: number;
  /** How long the clients wrote (workload start to stop). */
  workloadMs: number;
  attempts: number;
  failures: number;
  /** Windows of write unavailability: gaps between acknowledged writes that survived. */
  windows: Interval[];
  lost: number;
  lostByCause: Record<LossCause, number>;
  lostSamples: string[];
  /** Time with two masters accepting writes. */
  splitBrainMs: number;
  /** Time with two redis answering ROLE master (clients or not). */
  twoMastersMs: number;
  /** From the end of the fault (healed) to a settled cluster; null when it did not settle. */
  convergedMs: number | null;
  /** Broken safety rules; empty when the run kept them all. */
  violations: string[];
  /** A harness failure (not a verdict on the hive), or null. */
  error: string | null;
}

/**
 * A report with nothing measured yet (or, with `error`, of a run that could not run).
 *
 * @example
 * ```ts
 * const r = emptyReport("master-pod-killed", 1, "cluster did not settle");
 * ```
 */
export function emptyReport(scenario: string, run: number, error: string | null = null): RunReport {
  return {
    scenario,
    run,
    detail: "",
    notes: [],
    acked: 0,
    workloadMs: 0,
    attempts: 0,
    failures: 0,
    windows: [],
    lost: 0,
    lostByCause: { partition: 0, discarded: 0, "async-window": 0, unexplained: 0 },
    lostSamples: [],
    splitBrainMs: 0,
    twoMastersMs: 0,
    convergedMs: null,
    violations: [],
    error,
  };
}

/**
 * Runs `scenario` once. A harness failure is reported in `error` (and the cluster may be
 * unusable afterwards); a broken rule in `violations`.
 *
 * @example
 * ```ts
 * import { runScenarioOnce } from "./runner.ts";
 * const report = await runScenarioOnce(cluster, scenario, 1, Math.random, console.log);
 * ```
 */
export async function runScenarioOnce(
  cluster: TestedCluster,
  scenario: Scenario,
  run: number,
  random: () => number,
  log: (line: string) => void = () => {},
): Promise<RunReport> {
  const report = emptyReport(scenario.name, run);
  const crashes: LossContext["crashes"] = [];
  const cutOff: LossContext["cutOff"] = [];
  const agent = cluster.agent;
  let workload: WorkloadLog | null = null;
  let probing = false;
  let faultStartMs = 0;
  try {
    const before = await cluster.waitSettled();
    await cluster.setEndpoints(cluster.running().map((p) => p.ip));
    const present = () => cluster.pods.filter((p) => p.state !== "removed").map((p) => p.ip);
    await agent.call({ op: "probe-start", ips: present() });
    probing = true;
    cluster.onPodsChanged = () => agent.call({ op: "probe-targets", ips: present() });
    const prefix = `${scenario.name}.${run}.${Date.now()}`;
    await agent.call({
      op: "workload-start",
      prefix,
      writers: WRITERS,
      intervalMs: WRITE_INTERVAL_MS,
      mode: cluster.clientMode,
    });
    await sleep(BASELINE_MS);
    faultStartMs = epochNowMs();
    const ctx: ScenarioContext = {
      cluster,
      run,
      random,
      before,
      crashed: (pod) => crashes.push({ ip: pod.ip, atMs: epochNowMs() }),
      cutOff: (pod) => cutOff.push({ ip: pod.ip, fromMs: epochNowMs(), toMs: Infinity }),
      violation: (text) => report.violations.push(text),
      note: (text) => {
        const line = `+${Math.round(epochNowMs() - faultStartMs)} ms ${text}`;
        report.notes.push(line);
        log(`    ${line}`);
      },
    };
    report.detail = await scenario.inject(ctx);
    const healedMs = epochNowMs();
    let leaderIp: string | null = null;
    try {
      const settled = await cluster.waitSettled({ timeoutMs: CONVERGE_TIMEOUT_MS });
      report.convergedMs = epochNowMs() - healedMs;
      leaderIp = settled.leader.ip;
    } catch (e) {
      if (!(e instanceof SettleTimeout)) throw e;
      report.violations.push(
        `no single leader with every redis replicating it within ${CONVERGE_TIMEOUT_MS} ms ` +
          `after the fault: ${e.look}`,
      );
      leaderIp = (await cluster.currentLeader())?.ip ?? null;
    }
    for (const c of cutOff) if (c.toMs === Infinity) c.toMs = epochNowMs();
    await cluster.setEndpoints(cluster.running().map((p) => p.ip));
    await sleep(AFTER_MS);
    workload = await agent.call({ op: "workload-stop" });
    const samples = await agent.call({ op: "probe-stop" });
    probing = false;
    cluster.onPodsChanged = null;

    report.acked = workload.acks.length;
    report.workloadMs = workload.stoppedMs - workload.startedMs;
    report.attempts = workload.attempts;
    report.failures = workload.failures;
    const split = splitBrainIntervals(workload);
    report.splitBrainMs = totalMs(split);
    report.twoMastersMs = totalMs(twoMastersByRole(samples));
    if (!workload.acks.some((a) => a[2] < faultStartMs)) {
      throw new Error("no write was acknowledged before the fault: the workload is broken");
    }

    let missing = new Set<string>();
    if (leaderIp === null) {
      report.violations.push("no master to check the acknowledged writes against");
    } else {
      const keys = workload.acks.map(([w, n]) => ackKey(workload!.prefix, w, n));
      missing = new Set(await agent.call({ op: "missing", ip: leaderIp, keys }, 120_000));
      const ctx: LossContext = { crashes, cutOff, splitBrain: split, samples };
      for (const [w, n, atMs, server] of workload.acks) {
        const key = ackKey(workload.prefix, w, n);
        if (!missing.has(key)) continue;
        const id = workload.servers[server];
        if (id === undefined) throw new Error(`ack of ${key} names unknown server ${server}`);
        const cause = classifyLoss(atMs, id, ctx);
        report.lost++;
        report.lostByCause[cause]++;
        if (report.lostByCause[cause] <= MAX_LOST_SAMPLES_PER_CAUSE) {
          const holder = cause === "discarded" ? replicaThatHeld(atMs, id, samples) : null;
          report.lostSamples.push(
            `${key} acked by ${id.ip} (run_id ${id.runId.slice(0, 8)}) at ` +
              `+${Math.round(atMs - faultStartMs)} ms: ${cause}` +
              (holder === null ? "" : ` (replica ${holder} had it)`),
          );
        }
      }
    }
    // A write acknowledged and then lost was not available: windows count durable writes only.
    const durable = workload.acks
      .filter(([w, n]) => !missing.has(ackKey(workload!.prefix, w, n)))
      .map((a) => a[2])
      .sort((a, b) => a - b);
    report.windows = unavailabilityWindows(durable, workload.startedMs, workload.stoppedMs);
    applyRules(scenario, report);
  } catch (e) {
    report.error = e instanceof Error ? (e.stack ?? e.message) : String(e);
    try {
      report.error += `\ncluster: ${await cluster.describe()}`;
    } catch { /* the agent is gone too */ }
  } finally {
    cluster.onPodsChanged = null;
    if (workload === null) await agent.call({ op: "workload-stop" }).catch(() => {});
    if (probing) await agent.call({ op: "probe-stop" }).catch(() => {});
  }
  return report;
}

function applyRules(scenario: Scenario, report: RunReport): void {
  const { rules } = scenario;
  for (const cause of LOSS_CAUSES) {
    const n = report.lostByCause[cause];
    if (n === 0) continue;
    if (cause === "unexplained" || !rules.acceptedLoss.includes(cause)) {
      const examples = report.lostSamples.filter((l) => l.includes(`: ${cause}`));
      report.violations.push(
        `${n} acknowledged writes lost (${cause}), a loss this scenario does not accept` +
          (examples.length > 0 ? `, e.g. ${examples.join("; ")}` : ""),
      );
    }
  }
  if (rules.maxLost !== null && report.lost > rules.maxLost) {
    report.violations.push(
      `${report.lost} acknowledged writes lost, at most ${rules.maxLost} allowed`,
    );
  }
  const longestMs = Math.max(0, ...report.windows.map((w) => w.endMs - w.startMs));
  if (rules.maxUnavailableMs !== undefined && longestMs > rules.maxUnavailableMs) {
    report.violations.push(
      `writes unavailable for ${Math.round(longestMs)} ms at once ` +
        `(at most ${rules.maxUnavailableMs} ms allowed)`,
    );
  }
  if (rules.maxSplitBrainMs !== null && report.splitBrainMs > rules.maxSplitBrainMs) {
    report.violations.push(
      `two masters accepted writes for ${Math.round(report.splitBrainMs)} ms ` +
        `(at most ${rules.maxSplitBrainMs} ms allowed)`,
    );
  }
}
