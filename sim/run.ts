/**
 * One seeded simulator run: a cold start, a chaos phase of random faults (loss, delay,
 * duplication, symmetric and one-way partitions, pod, hive and redis crashes, fast empty redis
 * restarts, clock skew, partial, empty and stale DNS answers) interleaved with calm periods,
 * then a heal, after which every node must agree on one leader within
 * {@link CONVERGENCE_BOUND_MS}. Every choice comes from the seed's {@link Rng}, so a seed replays
 * exactly.
 *
 * @example
 * ```ts
 * import { runSeed } from "./run.ts";
 * const r = runSeed(12345);
 * console.log(r.ok, r.nodes, r.convergenceMs);
 * ```
 */

import { Checker, type Violation } from "./checker.ts";
import { type SimNode, World } from "./world.ts";

/** After the heal, everyone must agree within this bound. */
export const CONVERGENCE_BOUND_MS = 30_000;
/** Largest clock skew injected, either way. */
export const MAX_CLOCK_SKEW_MS = 5_000;
/** Fastest redis restart simulated for a plain-master restart (see docs/election.md). */
export const FAST_RESTART_MIN_MS = 150;

/** Options of one run. */
export interface RunOptions {
  /** Fixed number of nodes (default: 3 to 9, and 25 in a few seeds). */
  nodes?: number;
  /** Length of the chaos phase (default: 10 to 30 s drawn from the seed). */
  chaosMs?: number;
  /** Checker validation only: run the hives without the run_id guard (see World). */
  withoutRunIdGuard?: boolean;
  /** Receives one line per fault, for `--verbose` replays. */
  trace?: (line: string) => void;
}

/** The outcome of one run. */
export interface RunResult {
  seed: number;
  ok: boolean;
  nodes: number;
  violations: Violation[];
  /** Time from the heal to agreement, or null if it never came. */
  convergenceMs: number | null;
  faults: number;
  knownLimitationWipes: number;
}

/** Runs one seed; see the module documentation. */
export function runSeed(seed: number, options: RunOptions = {}): RunResult {
  const probe = new World({ seed, nodes: 1 });
  const nodes = options.nodes ?? (probe.rng.chance(0.03) ? 25 : probe.rng.int(3, 9));
  const world = new World({ seed, nodes, withoutRunIdGuard: options.withoutRunIdGuard ?? false });
  const rng = world.rng;
  const checker = new Checker(world, {
    settleMs: 3 * world.failureMs,
    graceMs: 5 * world.failureMs + world.failureMs,
  });
  const trace = options.trace ?? (() => {});
  const log = (s: string) => trace(`${String(world.now).padStart(6)} ms  ${s}`);
  let faults = 0;

  coldStart(world, checker);

  const chaosMs = options.chaosMs ?? rng.int(10_000, 30_000);
  const chaosEnd = world.now + chaosMs;
  const leaderNode = (): SimNode | undefined => world.nodes.find((n) => n.hive?.role === "leader");
  const later = (ms: number, fn: () => void) =>
    world.queue.after(ms, () => {
      if (world.now < chaosEnd) {
        fn();
        checker.disturb();
      }
    });

  const chaos: ChaosContext = { world, rng, checker, log, later, leaderNode };
  while (world.now < chaosEnd) {
    faults++;
    const n = rng.pick(world.nodes);
    const kind = rng.int(0, 16);
    if (injectFault(chaos, n, kind)) continue; // a calm period ran
    checker.disturb();
    world.run(rng.int(50, 2500));
  }

  const { violations, convergenceMs } = healAndConverge(world, checker, log);
  return {
    seed,
    ok: violations.length === 0,
    nodes,
    violations,
    convergenceMs,
    faults,
    knownLimitationWipes: checker.knownLimitationWipes,
  };
}

/** Skews the clocks, draws how each redis restarts, and starts every node within 2 s. */
function coldStart(world: World, checker: Checker): void {
  const rng = world.rng;
  for (const n of world.nodes) {
    n.wallSkewMs = rng.int(-MAX_CLOCK_SKEW_MS, MAX_CLOCK_SKEW_MS);
    n.redisStartsParked = rng.chance(0.6);
    world.setDns(n, "full");
  }
  // Everyone within two seconds, in a random order.
  for (const n of world.nodes) {
    world.queue.at(rng.int(0, 2000), () => {
      world.startNode(n);
      checker.disturb();
    });
  }
  world.run(2000);
}

/**
 * Lets pending graceful stops finish (they end their pod within 500 ms), heals everything and
 * waits for agreement: the violations seen (with "no convergence" when agreement never came or
 * did not hold), and the time from the heal to agreement.
 */
function healAndConverge(
  world: World,
  checker: Checker,
  log: (line: string) => void,
): { violations: Violation[]; convergenceMs: number | null } {
  world.run(600);
  world.healPartitions();
  world.loss = 0;
  world.duplicate = 0;
  world.delayMs = { min: 0, max: 2 };
  for (const n of world.nodes) {
    world.setDns(n, "full");
    world.startNode(n);
  }
  checker.disturb();
  log("heal everything");
  const healedAt = world.now;
  let convergedAt: number | null = null;
  world.run(CONVERGENCE_BOUND_MS, () => checker.converged());
  if (checker.converged()) {
    convergedAt = world.now;
    // Agreement must also hold: let it run a little and check again.
    world.run(3 * world.failureMs);
    if (!checker.converged()) convergedAt = null;
  }
  const violations = [...checker.violations];
  if (convergedAt === null) {
    const roles = world.nodes.map((n) =>
      `${n.address}=${n.hive?.role ?? "down"}(${n.hive?.leader ?? "-"})`
    ).join(" ");
    violations.push({
      atMs: world.now,
      rule: "no convergence",
      detail: `not one agreed leader within ${CONVERGENCE_BOUND_MS} ms of the heal: ${roles}`,
    });
  }
  return { violations, convergenceMs: convergedAt === null ? null : convergedAt - healedAt };
}

/** What {@link injectFault} acts on: the world, its random source, the checker, the log. */
interface ChaosContext {
  world: World;
  rng: World["rng"];
  checker: Checker;
  log: (line: string) => void;
  /** Runs `fn` after `ms`, if the chaos phase has not ended by then. */
  later: (ms: number, fn: () => void) => void;
  leaderNode: () => SimNode | undefined;
}

/**
 * Injects the fault numbered `kind` (0..16, drawn by the caller) around node `n`; returns true
 * when it was a calm period, which runs the world itself.
 */
function injectFault(c: ChaosContext, n: SimNode, kind: number): boolean {
  if (kind <= 4) networkFault(c, n, kind);
  else if (kind <= 10) processFault(c, n, kind);
  else if (kind === 12 || kind === 13) {
    calmPeriod(c);
    return true;
  } else otherFault(c, n, kind);
  return false;
}

/** Faults 0..4: loss, delay and duplication, partitions both ways, heal. */
function networkFault(c: ChaosContext, n: SimNode, kind: number): void {
  const { world, rng, log } = c;
  switch (kind) {
    case 0:
      world.loss = rng.pick([0, 0.05, 0.1, 0.2, 0.3]);
      log(`loss ${world.loss}`);
      break;
    case 1:
      world.delayMs = { min: 0, max: rng.pick([2, 20, 100, 300]) };
      world.duplicate = rng.pick([0, 0.05, 0.2]);
      log(`delay up to ${world.delayMs.max} ms, duplicate ${world.duplicate}`);
      break;
    case 2: {
      const side = world.nodes.filter(() => rng.chance(0.5));
      for (const a of side) {
        for (const b of world.nodes) {
          if (!side.includes(b)) {
            world.block(a, b);
            world.block(b, a);
          }
        }
      }
      log(`partition {${side.map((x) => x.index).join(",")}} | rest`);
      break;
    }
    case 3: {
      const b = rng.pick(world.nodes);
      if (b !== n) {
        world.block(n, b);
        log(`one-way cut ${n.index} -> ${b.index}`);
      }
      break;
    }
    case 4:
      world.healPartitions();
      log("heal partitions");
      break;
  }
}

/** Faults 5..10: pod, hive and redis crashes (mostly the leader's), with their restarts. */
function processFault(c: ChaosContext, n: SimNode, kind: number): void {
  const { world, rng, log, later, leaderNode } = c;
  switch (kind) {
    case 5:
    case 6: {
      const victim = kind === 5 ? n : leaderNode() ?? n;
      if (victim.hive === null && victim.redis === null) break;
      world.crashNode(victim);
      log(`crash pod ${victim.index}`);
      later(rng.int(200, 5000), () => {
        world.startNode(victim);
        log(`pod ${victim.index} back`);
      });
      break;
    }
    case 7: {
      if (n.hive === null) break;
      world.crashHive(n);
      log(`crash hive ${n.index}`);
      later(rng.int(100, 3000), () => {
        if (n.hive === null) world.startHive(n);
        log(`hive ${n.index} back`);
      });
      break;
    }
    case 8:
    case 9:
    case 10: {
      // Redis crashes and restarts empty, faster than failure detection; mostly the leader's.
      const victim = kind === 8 ? n : leaderNode() ?? n;
      if (victim.redis === null) break;
      world.crashRedis(victim);
      const delay = rng.int(FAST_RESTART_MIN_MS, world.failureMs);
      log(`crash redis ${victim.index}, restart in ${delay} ms`);
      later(delay, () => {
        if (victim.redis === null) world.startRedis(victim, victim.redisStartsParked);
      });
      break;
    }
  }
}

/** Faults 11, 14..16: a DNS flap, a rolling update of the leader, hive stalls. */
function otherFault(c: ChaosContext, n: SimNode, kind: number): void {
  const { world, rng, log, later, leaderNode } = c;
  switch (kind) {
    case 11: {
      const mode = rng.pick(["partial", "empty", "stale"] as const);
      world.setDns(n, mode);
      log(`dns of ${n.index}: ${mode}`);
      later(rng.int(500, 8000), () => world.setDns(n, "full"));
      break;
    }
    case 15:
    case 16: {
      // A hive stalls (CPU starvation); for the leader, its redis restarts empty meanwhile, so
      // only the followers' own defences (link-loss parking, the run_id guard) protect them.
      const victim = kind === 15 ? leaderNode() ?? n : n;
      const stallMs = rng.int(200, 2000);
      world.stallHive(victim, stallMs);
      log(`stall hive ${victim.index} for ${stallMs} ms`);
      if (kind === 15 && victim.redis !== null) {
        world.crashRedis(victim);
        const delay = rng.int(FAST_RESTART_MIN_MS, world.failureMs);
        log(`  and crash its redis, restart in ${delay} ms`);
        later(delay, () => {
          if (victim.redis === null) world.startRedis(victim, victim.redisStartsParked);
        });
      }
      break;
    }
    case 14: {
      // A rolling update: the leader's pod is stopped gracefully (it hands over), then returns.
      const victim = leaderNode() ?? n;
      const to = world.gracefulStop(victim, rng.int(50, 500));
      log(`graceful stop of pod ${victim.index}${to === null ? "" : `, handing over to ${to}`}`);
      later(rng.int(1000, 4000), () => world.startNode(victim));
      break;
    }
  }
}

/** Faults 12, 13: a calm period (partitions healed, little loss, DNS right): the settled rules apply. */
function calmPeriod(c: ChaosContext): void {
  const { world, rng, checker, log } = c;
  world.healPartitions();
  world.loss = rng.pick([0, 0, 0.02, 0.05]);
  for (const m of world.nodes) world.setDns(m, "full");
  checker.disturb();
  const calmMs = checker.options.settleMs + rng.int(1000, 5000);
  log(`calm for ${calmMs} ms`);
  world.run(calmMs);
}
