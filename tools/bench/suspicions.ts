/**
 * False-suspicion benchmark (`deno task bench suspicions`): what a shorter `--failure-ms` costs
 * under election-datagram loss. A healthy 3-node cluster runs in the deterministic simulator
 * (sim/world.ts: the real election state machine, a lossy UDP network) for `--hours` simulated
 * hours with `--loss` of every datagram dropped; nothing fails, so every time a follower gives
 * its leader up as silent is a false suspicion. Reported per heartbeat/failure pair: false
 * suspicions, elections, new leaders and role changes per hour.
 *
 * @example
 * ```sh
 * deno task bench suspicions                       # 20% loss, 1 simulated hour per pair
 * deno task bench suspicions --loss 0.3 --hours 4 --pairs 200:1000,150:500
 * ```
 */

import { parseArgs } from "node:util";
import { World } from "../../sim/world.ts";

/** The heartbeat/failure pairs measured by default: the defaults, and `--failure-ms 500`. */
export const DEFAULT_PAIRS = "200:1000,166:500,100:500";
/** Most simulated hours per pair. */
export const MAX_HOURS = 100;

/** One pair's result. */
export interface SuspicionResult {
  heartbeatMs: number;
  failureMs: number;
  hours: number;
  loss: number;
  falseSuspicionsPerHour: number;
  electionsPerHour: number;
  leaderChangesPerHour: number;
  /** Leaders elected (a node other than the healthy leader took over): what clients feel. */
  newLeadersPerHour: number;
}

/**
 * Runs one healthy 3-node cluster for `hours` simulated hours under `loss` and counts what it
 * did without any fault.
 *
 * @example
 * ```ts
 * measureSuspicions({ heartbeatMs: 200, failureMs: 1000, hours: 1, loss: 0.2, seed: 1 });
 * ```
 */
export function measureSuspicions(
  o: { heartbeatMs: number; failureMs: number; hours: number; loss: number; seed: number },
): SuspicionResult {
  const world = new World({
    seed: o.seed,
    nodes: 3,
    heartbeatMs: o.heartbeatMs,
    failureMs: o.failureMs,
  });
  for (const n of world.nodes) world.setDns(n, "full");
  world.startAll();
  world.run(10_000);
  let suspicions = 0;
  let elected = 0;
  world.hooks.onAction = (_node, a) => {
    if (a.type === "event" && a.event.kind === "elected") elected++;
    if (
      a.type === "event" && a.event.kind === "role-changed" && a.event.reason === "leader silent"
    ) {
      suspicions++;
    }
  };
  const stat = (k: "elections" | "leaderChanges") =>
    world.nodes.reduce((s, n) => s + (n.hive?.stats[k] ?? 0), 0);
  const elections0 = stat("elections");
  const changes0 = stat("leaderChanges");
  world.loss = o.loss;
  world.run(o.hours * 3_600_000);
  return {
    heartbeatMs: o.heartbeatMs,
    failureMs: o.failureMs,
    hours: o.hours,
    loss: o.loss,
    falseSuspicionsPerHour: suspicions / o.hours,
    electionsPerHour: (stat("elections") - elections0) / o.hours,
    leaderChangesPerHour: (stat("leaderChanges") - changes0) / o.hours,
    newLeadersPerHour: elected / o.hours,
  };
}

/** The CLI. */
export function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      hours: { type: "string", default: "1" },
      loss: { type: "string", default: "0.2" },
      pairs: { type: "string", default: DEFAULT_PAIRS },
      seed: { type: "string", default: "1" },
    },
    strict: true,
  });
  const hours = Number(values.hours);
  if (!(hours > 0 && hours <= MAX_HOURS)) throw new Error(`--hours: 0 < h <= ${MAX_HOURS}`);
  const loss = Number(values.loss);
  if (!(loss >= 0 && loss < 1)) throw new Error("--loss: a probability in [0, 1)");
  const seed = Number(values.seed);
  if (!Number.isInteger(seed)) throw new Error("--seed: an integer");
  const pairs = values.pairs.split(",").map((p) => {
    const [hb, fail] = p.split(":").map(Number);
    if (!Number.isInteger(hb) || !Number.isInteger(fail) || hb! <= 0 || fail! < 3 * hb!) {
      throw new Error(`--pairs: HEARTBEAT:FAILURE with FAILURE >= 3 x HEARTBEAT, got ${p}`);
    }
    return { heartbeatMs: hb!, failureMs: fail! };
  });
  console.log(
    `false suspicions under ${loss * 100}% datagram loss, 3 healthy nodes, ` +
      `${hours} simulated hour(s) per pair (deno task bench suspicions)`,
  );
  console.log(
    "| heartbeat | failure | false suspicions / h | elections / h | new leaders / h | " +
      "role changes / h |",
  );
  console.log("| --- | --- | --- | --- | --- | --- |");
  for (const p of pairs) {
    const r = measureSuspicions({ ...p, hours, loss, seed });
    console.log(
      `| ${r.heartbeatMs} ms | ${r.failureMs} ms | ${r.falseSuspicionsPerHour.toFixed(1)} | ` +
        `${r.electionsPerHour.toFixed(1)} | ${r.newLeadersPerHour.toFixed(1)} | ` +
        `${r.leaderChangesPerHour.toFixed(1)} |`,
    );
  }
  return Promise.resolve();
}
