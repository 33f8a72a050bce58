/**
 * The fault scenarios of `deno task chaos`, each with the safety rules a run must keep. A
 * scenario's `inject` runs while the clients write; it does its fault and heals it (the runner
 * then requires the cluster to converge and checks every acknowledged write).
 *
 * Which losses a scenario accepts follows what the hive promises (docs/reliability.md):
 * asynchronous replication loses the writes a killed master acknowledged but had not yet sent
 * (`async-window`), and a partition loses the writes the merge loser accepted (`partition`);
 * an `unexplained` loss is always a violation, and so is any loss where the product promises
 * none (an empty restart, a rolling restart).
 *
 * @example
 * ```ts
 * import { SCENARIOS } from "./scenarios.ts";
 * console.log(SCENARIOS.map((s) => s.name));
 * ```
 */

import { epochNowMs, POD_PORTS } from "./agent_protocol.ts";
import type { LossCause } from "./checker.ts";
import { ChaosCluster, type Settled } from "./cluster.ts";
import { sleep } from "../../testing/wait.ts";
import { setFirewall } from "./firewall.ts";
import { Pod } from "./pod.ts";
import { WRITERS } from "./runner.ts";
import type { SystemName, TestedCluster, TestedPod, TestedSettled } from "./system.ts";
import { spinScript } from "../../testing/busy_script.ts";

/** How long a partition lasts: several failure timeouts (1 s), so the majority elects. */
export const PARTITION_MS = 3_000;
/** How long the election port loses datagrams in the loss scenario. */
export const LOSS_MS = 8_000;
/**
 * Acknowledged writes a partition may lose per run, with the fence (docs/election.md): the
 * writes of about 200 ms through the cut-off pod at the suite's workload, 6% of the 450 lost
 * before the fence.
 */
export const MAX_PARTITION_LOSS = 30;
/**
 * Longest write pause per run under election-port loss: one heartbeat (a false fence holds
 * writes for a lease probe or two).
 */
export const MAX_LOSS_PAUSE_MS = 200;
/** How long two lost pods stay in the DNS answer before Kubernetes deletes them. */
export const LOST_PODS_DELETE_MS = 3_000;
/** Share of election datagrams dropped in the loss scenario. */
export const LOSS_PERCENT = 20;
/** Empty restarts of the master redis in one run of that scenario. */
export const EMPTY_RESTARTS_PER_RUN = 5;
/** An empty redis comes back within this range after the kill: faster than failure detection. */
export const EMPTY_RESTART_DELAY_MS = { min: 20, max: 200 } as const;
/** The busy-master scenario's Lua script runs this long (under the 5 s hang timeout). */
export const BUSY_SCRIPT_MS = 2_000;
/** Members of the set the busy-master scenario deletes with one `DEL` (about a second). */
export const BIG_SET_MEMBERS = 1_000_000;
/** Members added per script while building that set. */
const BIG_SET_CHUNK = 100_000;
/** Deadline of one command through the proxy while redis is busy. */
const BUSY_COMMAND_TIMEOUT_MS = 30_000;

/** Leader changes counted by every running hive (`/status` election.leaderChanges), summed. */
async function leaderChanges(cluster: ChaosCluster): Promise<number> {
  let sum = 0;
  for (const v of await cluster.look()) sum += v.status?.election.leaderChanges ?? 0;
  return sum;
}

/** The rules one run must keep. */
export interface SafetyRules {
  /** Causes of lost acknowledged writes this scenario accepts ("unexplained" never is). */
  acceptedLoss: readonly Exclude<LossCause, "unexplained">[];
  /** At most this many acknowledged writes lost in one run (null: no cap beyond the causes). */
  maxLost: number | null;
  /** At most this much split-brain time in one run (null: measured, not limited). */
  maxSplitBrainMs: number | null;
  /** At most this long a window of write unavailability in one run (absent: not limited). */
  maxUnavailableMs?: number;
}

/** What a scenario can do to the cluster, and what it must record. */
export interface ScenarioContext {
  cluster: TestedCluster;
  /** 1-based run number. */
  run: number;
  /** Seeded random numbers in [0, 1). */
  random: () => number;
  /** The settled cluster before the fault. */
  before: TestedSettled;
  /** Records that a redis process was killed (call it once the process is gone). */
  crashed(pod: TestedPod): void;
  /** Records that `pod` is cut off from the others from now until the cluster settles again. */
  cutOff(pod: TestedPod): void;
  /** Logs a step. */
  note(text: string): void;
  /** Records a broken rule the scenario checks itself (e.g. a leader change it forbids). */
  violation(text: string): void;
}

/** One scenario. */
export interface Scenario {
  name: string;
  about: string;
  /** The systems it can run on (`hive` only when it needs the hive's pods or `/status`). */
  systems: readonly SystemName[];
  rules: SafetyRules;
  /** Injects the fault, heals it, and returns what it did in one line. */
  inject(ctx: ScenarioContext): Promise<string>;
}

const NO_SPLIT_BRAIN = 0;
const HIVE_ONLY: readonly SystemName[] = ["hive"];
const EVERY_SYSTEM: readonly SystemName[] = ["hive", "sentinel", "sentinel-min-replicas"];

/** The hive's cluster and settled pods of a scenario that only runs on the hive. */
function hiveOnly(ctx: ScenarioContext): { cluster: ChaosCluster; before: Settled } {
  const { cluster, before } = ctx;
  if (!(cluster instanceof ChaosCluster) || !(before.leader instanceof Pod)) {
    throw new Error(`this scenario runs on the hive only, not on ${cluster.system}`);
  }
  return { cluster, before: before as Settled };
}

function others(cluster: TestedCluster, pod: TestedPod): string[] {
  return cluster.running().filter((p) => p !== pod).map((p) => p.ip);
}

/** Every scenario, in the order `deno task chaos` runs them. */
export const SCENARIOS: readonly Scenario[] = [
  {
    name: "master-pod-killed",
    systems: HIVE_ONLY,
    about: "the leader's pod is SIGKILLed (hive and redis); a replacement pod with a new " +
      "address joins after the failover, as a ReplicaSet would",
    rules: { acceptedLoss: ["async-window"], maxLost: null, maxSplitBrainMs: NO_SPLIT_BRAIN },
    async inject(ctx) {
      const { cluster, before } = hiveOnly(ctx);
      const victim = before.leader;
      await victim.kill();
      ctx.crashed(victim);
      // The Service stops sending clients to it; the DNS still lists it (endpoint lag).
      await cluster.setEndpoints(cluster.endpoints.filter((ip) => ip !== victim.ip));
      const after = await cluster.waitSettled({ notLeader: victim });
      ctx.note(`${after.leader.ip} leads; replacing the lost pod`);
      await cluster.removePod(victim);
      const fresh = await cluster.addPod();
      return `killed leader pod ${victim.ip}; ${after.leader.ip} took over; new pod ${fresh.ip}`;
    },
  },
  {
    name: "master-redis-restarted-empty",
    systems: HIVE_ONLY,
    about: `the master redis is SIGKILLed and restarted empty (parked) within ` +
      `${EMPTY_RESTART_DELAY_MS.min}-${EMPTY_RESTART_DELAY_MS.max} ms, faster than failure ` +
      `detection, ${EMPTY_RESTARTS_PER_RUN} times in a row`,
    // A SIGKILL can always lose the writes a redis acknowledged and had not yet sent to its
    // replicas (asynchronous replication): at most one per writer per kill, since each writer
    // waits for its acknowledgement. Anything else (a wipe, a discarded copy) breaks the run.
    rules: {
      acceptedLoss: ["async-window"],
      maxLost: EMPTY_RESTARTS_PER_RUN * WRITERS,
      maxSplitBrainMs: NO_SPLIT_BRAIN,
    },
    async inject(ctx) {
      const { cluster, before } = hiveOnly(ctx);
      const steps: string[] = [];
      for (let i = 0; i < EMPTY_RESTARTS_PER_RUN; i++) {
        const { leader } = i === 0 ? before : await cluster.waitSettled();
        const span = EMPTY_RESTART_DELAY_MS.max - EMPTY_RESTART_DELAY_MS.min;
        const delayMs = EMPTY_RESTART_DELAY_MS.min + Math.floor(ctx.random() * span);
        await leader.killRedis();
        ctx.crashed(leader);
        await sleep(delayMs);
        leader.startRedis();
        steps.push(`${leader.ip}+${delayMs}ms`);
      }
      return `restarted the master redis empty: ${steps.join(", ")}`;
    },
  },
  {
    name: "busy-master",
    systems: HIVE_ONLY,
    about: `the master redis is busy, not dead, through a follower's proxy: a ` +
      `${BUSY_SCRIPT_MS / 1000} s Lua script, CLIENT KILL TYPE normal SKIPME yes, CLIENT PAUSE ` +
      `1000 ALL, a DEL of a ${BIG_SET_MEMBERS}-member set; no leader change allowed`,
    rules: { acceptedLoss: [], maxLost: 0, maxSplitBrainMs: NO_SPLIT_BRAIN },
    async inject(ctx) {
      const { cluster, before } = hiveOnly(ctx);
      const leader = before.leader;
      const via = before.followers[0] ?? leader;
      const proxy = (args: string[]) =>
        cluster.agent.call(
          { op: "command", ip: via.ip, args, via: "proxy", timeoutMs: BUSY_COMMAND_TIMEOUT_MS },
          BUSY_COMMAND_TIMEOUT_MS + 5_000,
        );
      const steps: [string, () => Promise<unknown>][] = [
        ["script", () => proxy(spinScript(BUSY_SCRIPT_MS))],
        ["client-kill", () => proxy(["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"])],
        ["client-pause", async () => {
          await proxy(["CLIENT", "PAUSE", "1000", "ALL"]);
          await sleep(1_100);
        }],
        ["big-del", async () => {
          for (let from = 0; from < BIG_SET_MEMBERS; from += BIG_SET_CHUNK) {
            await proxy([
              "EVAL",
              "for j = tonumber(ARGV[1]), tonumber(ARGV[2]), 5000 do local t = {}; " +
              "for k = j, j + 4999 do t[#t + 1] = k end; redis.call('SADD', KEYS[1], unpack(t)) " +
              "end; return 1",
              "1",
              "chaos-big",
              String(from),
              String(from + BIG_SET_CHUNK - 1),
            ]);
          }
          await cluster.waitSettled();
          return await proxy(["DEL", "chaos-big"]);
        }],
      ];
      const done: string[] = [];
      for (const [name, step] of steps) {
        const changesBefore = await leaderChanges(cluster);
        const answer = await step();
        const after = await cluster.waitSettled();
        const changes = (await leaderChanges(cluster)) - changesBefore;
        if (after.leader !== leader || changes !== 0) {
          ctx.violation(
            `${name}: the leader changed (${leader.ip} -> ${after.leader.ip}, ${changes} ` +
              `leader changes counted by the hives): a busy master was taken for a dead one`,
          );
        }
        done.push(`${name} (${JSON.stringify(answer)})`);
        ctx.note(`${name} done, leader ${after.leader.ip}`);
      }
      return `through ${via.ip}'s proxy: ${done.join(", ")}; leader ${leader.ip} kept`;
    },
  },
  {
    name: "leader-isolated",
    systems: EVERY_SYSTEM,
    about: `the leader is cut off from every other pod (symmetric partition, ` +
      `${PARTITION_MS / 1000} s; clients still reach every pod), then healed`,
    rules: {
      acceptedLoss: ["async-window", "partition"],
      maxLost: MAX_PARTITION_LOSS,
      maxSplitBrainMs: NO_SPLIT_BRAIN,
    },
    async inject(ctx) {
      const { cluster } = ctx;
      const leader = ctx.before.leader;
      const peers = others(cluster, leader);
      ctx.cutOff(leader);
      await setFirewall(leader.namespace, [
        { kind: "drop-from", addresses: peers },
        { kind: "drop-to", addresses: peers },
      ]);
      await sleep(PARTITION_MS);
      await setFirewall(leader.namespace, []);
      return `isolated leader ${leader.ip} from ${peers.join(", ")} for ${PARTITION_MS} ms`;
    },
  },
  {
    name: "one-way-partition",
    systems: EVERY_SYSTEM,
    about: `odd runs: the leader's packets to the others are dropped (it hears them, they do ` +
      `not hear it); even runs: the other way round; ${PARTITION_MS / 1000} s, then healed`,
    rules: {
      acceptedLoss: ["async-window", "partition"],
      maxLost: MAX_PARTITION_LOSS,
      maxSplitBrainMs: NO_SPLIT_BRAIN,
    },
    async inject(ctx) {
      const { cluster } = ctx;
      const leader = ctx.before.leader;
      const peers = others(cluster, leader);
      const mute = ctx.run % 2 === 1;
      ctx.cutOff(leader);
      await setFirewall(leader.namespace, [
        mute ? { kind: "drop-to", addresses: peers } : { kind: "drop-from", addresses: peers },
      ]);
      await sleep(PARTITION_MS);
      await setFirewall(leader.namespace, []);
      return `leader ${leader.ip} ${mute ? "unheard by" : "deaf to"} ${peers.join(", ")} ` +
        `for ${PARTITION_MS} ms`;
    },
  },
  {
    name: "follower-isolated",
    systems: EVERY_SYSTEM,
    about: `one follower is cut off from every other pod (symmetric partition, ` +
      `${PARTITION_MS / 1000} s; clients still reach every pod): it elects itself, fenced, ` +
      `and acknowledges nothing`,
    rules: { acceptedLoss: [], maxLost: 0, maxSplitBrainMs: NO_SPLIT_BRAIN },
    async inject(ctx) {
      const { cluster } = ctx;
      const lone = ctx.before.followers[ctx.run % ctx.before.followers.length];
      if (lone === undefined) throw new Error("follower-isolated needs a follower");
      const peers = others(cluster, lone);
      ctx.cutOff(lone);
      await setFirewall(lone.namespace, [
        { kind: "drop-from", addresses: peers },
        { kind: "drop-to", addresses: peers },
      ]);
      await sleep(PARTITION_MS);
      await setFirewall(lone.namespace, []);
      return `isolated follower ${lone.ip} from ${peers.join(", ")} for ${PARTITION_MS} ms`;
    },
  },
  {
    name: "two-pods-lost",
    systems: HIVE_ONLY,
    about: `two of the pods are SIGKILLed at once (odd runs the leader and a follower, even ` +
      `runs two followers); the Service drops them at once, the DNS after ` +
      `${LOST_PODS_DELETE_MS / 1000} s (Kubernetes deletes them), then two new pods join. The ` +
      `survivor cannot hear a majority: writes are refused until the DNS drops the lost pods`,
    rules: { acceptedLoss: ["async-window"], maxLost: null, maxSplitBrainMs: NO_SPLIT_BRAIN },
    async inject(ctx) {
      const { cluster, before } = hiveOnly(ctx);
      const followers = before.followers;
      if (followers.length < 2) throw new Error("two-pods-lost needs two followers");
      const victims = ctx.run % 2 === 1
        ? [before.leader, followers[0]!]
        : [followers[0]!, followers[1]!];
      await Promise.all(victims.map((v) => v.kill()));
      for (const v of victims) ctx.crashed(v);
      await cluster.setEndpoints(
        cluster.endpoints.filter((ip) => !victims.some((v) => v.ip === ip)),
      );
      await sleep(LOST_PODS_DELETE_MS);
      for (const v of victims) await cluster.removePod(v);
      ctx.note("lost pods deleted from the DNS; adding two new pods");
      const fresh = [await cluster.addPod(), await cluster.addPod()];
      return `killed ${victims.map((v) => v.ip).join(", ")} (${
        victims.includes(before.leader) ? "leader and a follower" : "two followers"
      }); new pods ${fresh.map((p) => p.ip).join(", ")}`;
    },
  },
  {
    name: "rolling-restart",
    systems: HIVE_ONLY,
    about: "every pod replaced in turn, as a Deployment rolling update with maxSurge 1 and " +
      "maxUnavailable 0: a new pod (new address) becomes ready (/readyz), then an old one gets " +
      "SIGTERM (the hive hands over if it leads), then its redis",
    rules: { acceptedLoss: [], maxLost: 0, maxSplitBrainMs: NO_SPLIT_BRAIN },
    async inject(ctx) {
      const { cluster } = hiveOnly(ctx);
      const old = [...cluster.running()];
      const steps: string[] = [];
      for (const pod of old) {
        const fresh = await cluster.addPod();
        await cluster.waitSettled();
        await cluster.waitReady(fresh); // maxUnavailable 0: the new pod is ready first
        await cluster.setEndpoints([
          ...cluster.endpoints.filter((ip) => ip !== pod.ip),
          fresh.ip,
        ]);
        const leading = (await cluster.currentLeader()) === pod;
        ctx.note(`stopping ${pod.ip}${leading ? " (the leader)" : ""}`);
        await cluster.dns.setAddresses(cluster.dns.addresses.filter((ip) => ip !== pod.ip));
        const inTime = await pod.stopGracefully();
        await cluster.removePod(pod);
        steps.push(
          `${pod.ip}${leading ? "*" : ""}->${fresh.ip}${inTime ? "" : " (hive SIGKILLed)"}`,
        );
        await cluster.waitSettled();
      }
      return `replaced ${steps.join(", ")} (* = was leading)`;
    },
  },
  {
    name: "pod-new-address",
    systems: HIVE_ONLY,
    about: "odd runs the leader's pod, even runs a follower's, is SIGKILLed and deleted; it " +
      "returns at once as a new pod with a new address, and the DNS answer changes with it",
    rules: { acceptedLoss: ["async-window"], maxLost: null, maxSplitBrainMs: NO_SPLIT_BRAIN },
    async inject(ctx) {
      const { cluster, before } = hiveOnly(ctx);
      const victim = ctx.run % 2 === 1 ? before.leader : before.followers[0];
      if (victim === undefined) throw new Error("pod-new-address needs at least two pods");
      const wasLeader = victim === before.leader;
      await victim.kill();
      ctx.crashed(victim);
      await cluster.removePod(victim);
      const fresh = await cluster.addPod();
      return `${wasLeader ? "leader" : "follower"} ${victim.ip} came back as ${fresh.ip}`;
    },
  },
  {
    name: "election-loss-20",
    systems: HIVE_ONLY,
    about: `${LOSS_PERCENT}% of the datagrams to the election port (UDP ${POD_PORTS.election}) ` +
      `dropped at random in every pod for ${LOSS_MS / 1000} s`,
    rules: {
      acceptedLoss: [],
      maxLost: 0,
      maxSplitBrainMs: NO_SPLIT_BRAIN,
      maxUnavailableMs: MAX_LOSS_PAUSE_MS,
    },
    async inject(ctx) {
      const { cluster, before } = hiveOnly(ctx);
      const pods = cluster.running();
      const leader = before.leader;
      for (const pod of pods) {
        await setFirewall(pod.namespace, [
          { kind: "loss", udpPort: POD_PORTS.election, percent: LOSS_PERCENT },
        ]);
      }
      const startedMs = epochNowMs();
      await sleep(LOSS_MS);
      for (const pod of pods) await setFirewall(pod.namespace, []);
      const now = await cluster.currentLeader();
      return `${LOSS_PERCENT}% election loss on ${pods.length} pods for ` +
        `${Math.round(epochNowMs() - startedMs)} ms; leader ${leader.ip} -> ${
          now?.ip ?? "none yet"
        }`;
    },
  },
];

/**
 * The scenario called `name`.
 *
 * @throws {Error} naming the known scenarios when there is none
 * @example
 * ```ts
 * import { scenarioNamed } from "./scenarios.ts";
 * scenarioNamed("leader-isolated").rules.maxLost; // null
 * ```
 */
export function scenarioNamed(name: string): Scenario {
  const s = SCENARIOS.find((s) => s.name === name);
  if (s === undefined) {
    throw new Error(
      `unknown scenario "${name}" (known: ${SCENARIOS.map((s) => s.name).join(", ")})`,
    );
  }
  return s;
}
