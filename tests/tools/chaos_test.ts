/**
 * The fault harness (`deno task chaos`): its checker's arithmetic everywhere, and, when this
 * runs as root with `ip netns` available, a short subset of the real thing: pods in network
 * namespaces, a killed master pod, an isolated leader, a rolling restart, a sabotage the checker
 * must catch, and the removal of everything after a crash and after Ctrl-C. (The repeated empty
 * restarts are left to `deno task chaos`: about one run in ten loses acknowledged writes, a hive
 * bug described in docs/reliability.md; this subset holds only scenarios that pass.)
 * Without root or `ip netns`, the namespace tests are registered as ignored with a name that
 * says why, and a warning is printed: they never pass silently.
 */

import { sleep } from "../../testing/wait.ts";
import assert from "node:assert/strict";
import {
  classifyLoss,
  coveredByAtLeast,
  mergeIntervals,
  replicaThatHeld,
  splitBrainIntervals,
  totalMs,
  twoMastersByRole,
  unavailabilityWindows,
} from "../../tools/chaos/checker.ts";
import type { ProbeSample, WorkloadLog } from "../../tools/chaos/agent_protocol.ts";
import { firewallScript } from "../../tools/chaos/firewall.ts";
import { parseRole } from "../../tools/chaos/role_probe.ts";
import { summaryTable } from "../../tools/chaos/report.ts";
import type { RunReport } from "../../tools/chaos/runner.ts";
import { seededRandom } from "../../tools/chaos/suite.ts";
import { parseChaosArgs } from "../../tools/chaos.ts";

// ---------------------------------------------------------------- the checker (no root needed)

Deno.test("chaos checker: unavailability windows are the gaps longer than the threshold", () => {
  assert.deepEqual(unavailabilityWindows([10, 20, 500, 510], 0, 520, 100), [
    { startMs: 20, endMs: 500 },
  ]);
  // The edges count: nothing acknowledged for a long time after the start or before the end.
  assert.deepEqual(unavailabilityWindows([300], 0, 1000, 100), [
    { startMs: 0, endMs: 300 },
    { startMs: 300, endMs: 1000 },
  ]);
  assert.deepEqual(unavailabilityWindows([], 0, 50, 100), []);
  assert.deepEqual(unavailabilityWindows([], 0, 500, 100), [{ startMs: 0, endMs: 500 }]);
  assert.throws(() => unavailabilityWindows([30, 10], 0, 50, 100), /sorted/);
});

Deno.test("chaos checker: overlap of at least k groups, touching is not overlapping", () => {
  const a = [{ startMs: 0, endMs: 10 }, { startMs: 20, endMs: 30 }];
  const b = [{ startMs: 5, endMs: 25 }];
  assert.deepEqual(coveredByAtLeast([a, b], 2), [
    { startMs: 5, endMs: 10 },
    { startMs: 20, endMs: 25 },
  ]);
  assert.deepEqual(
    coveredByAtLeast([[{ startMs: 0, endMs: 10 }], [{ startMs: 10, endMs: 20 }]], 2),
    [],
  );
  assert.deepEqual(coveredByAtLeast([a, b], 1), [{ startMs: 0, endMs: 30 }]);
  assert.equal(totalMs(mergeIntervals([{ startMs: 0, endMs: 10 }, { startMs: 5, endMs: 15 }])), 15);
  assert.throws(() => coveredByAtLeast([a], 0), /positive/);
});

function workload(acks: WorkloadLog["acks"], servers = 2): WorkloadLog {
  return {
    prefix: "t",
    writers: 2,
    startedMs: 0,
    stoppedMs: 10_000,
    servers: Array.from(
      { length: servers },
      (_, i) => ({ ip: `192.0.2.${11 + i}`, runId: `r${i}` }),
    ),
    acks,
    attempts: acks.length,
    failures: 0,
    failureSamples: [],
  };
}

Deno.test("chaos checker: split-brain is two redis acknowledging in overlapping bursts", () => {
  // Server 0 acknowledges from 0 to 1000 ms, server 1 from 600 ms on: 400 ms of split-brain.
  const acks: WorkloadLog["acks"] = [];
  for (let t = 0; t <= 1000; t += 50) acks.push([0, t, t, 0]);
  for (let t = 600; t <= 2000; t += 50) acks.push([1, t, t, 1]);
  assert.equal(totalMs(splitBrainIntervals(workload(acks))), 400);
  // A clean failover (the old master's last write before the new one's first) is no split-brain.
  const failover: WorkloadLog["acks"] = [];
  for (let t = 0; t <= 1000; t += 50) failover.push([0, t, t, 0]);
  for (let t = 1100; t <= 2000; t += 50) failover.push([0, t, t, 1]);
  assert.equal(totalMs(splitBrainIntervals(workload(failover))), 0);
});

function sample(
  atMs: number,
  ip: string,
  role: ProbeSample["role"],
  runId: string,
  offset: number,
  masterHost: string | null = null,
): ProbeSample {
  return { atMs, ip, role, runId, offset, masterHost };
}

Deno.test("chaos checker: two masters by ROLE counts overlapping master samples", () => {
  const samples: ProbeSample[] = [];
  for (let t = 0; t < 1000; t += 50) {
    samples.push(sample(t, "192.0.2.11", "master", "a", t));
    samples.push(sample(t, "192.0.2.12", t >= 500 ? "master" : "replica", "b", t));
  }
  // From 500 to the last sample (950) plus the last sample's span, capped at 200 ms.
  assert.equal(totalMs(twoMastersByRole(samples)), 650);
  assert.equal(totalMs(twoMastersByRole(samples.filter((s) => s.ip === "192.0.2.11"))), 0);
});

Deno.test("chaos checker: a lost write is explained by a crash just after it or a partition", () => {
  const server = { ip: "192.0.2.11", runId: "r" };
  const none = { crashes: [], cutOff: [], splitBrain: [], samples: [] };
  assert.equal(classifyLoss(100, server, none), "unexplained");
  const crash = { ...none, crashes: [{ ip: "192.0.2.11", atMs: 600 }] };
  assert.equal(classifyLoss(100, server, crash), "async-window");
  // An ack received just after the kill was recorded was in flight: the same window.
  assert.equal(classifyLoss(650, server, crash), "async-window");
  assert.equal(classifyLoss(750, server, crash), "unexplained"); // well after the crash
  assert.equal(classifyLoss(100, { ...server, ip: "192.0.2.12" }, crash), "unexplained");
  assert.equal(classifyLoss(-5_000, server, crash), "unexplained"); // long before the crash
  const cut = { ...none, cutOff: [{ ip: "192.0.2.11", fromMs: 50, toMs: 200 }] };
  assert.equal(classifyLoss(100, server, cut), "partition");
  assert.equal(classifyLoss(300, server, cut), "unexplained");
  const split = { ...none, splitBrain: [{ startMs: 1000, endMs: 2000 }] };
  assert.equal(classifyLoss(1500, server, split), "partition");
});

Deno.test("chaos checker: a write a live replica held, then lost, was discarded", () => {
  const server = { ip: "192.0.2.11", runId: "m" };
  // The master is at offset 500 just after the write (t = 100); replica .12 reaches 500, .13 not.
  const samples = [
    sample(90, "192.0.2.11", "master", "m", 480),
    sample(120, "192.0.2.11", "master", "m", 500),
    sample(170, "192.0.2.11", "master", "m", 520),
    sample(130, "192.0.2.13", "replica", "x", 450, "192.0.2.11"),
    sample(140, "192.0.2.12", "replica", "y", 490, "192.0.2.11"),
    sample(160, "192.0.2.12", "replica", "y", 505, "192.0.2.11"),
  ];
  assert.equal(replicaThatHeld(100, server, samples), "192.0.2.12");
  const ctx = { crashes: [{ ip: "192.0.2.11", atMs: 200 }], cutOff: [], splitBrain: [], samples };
  assert.equal(classifyLoss(100, server, ctx), "discarded"); // not merely asynchronous
  // Without the replica reaching the master's offset, the crash explains it.
  const behind = samples.filter((x) => x.ip !== "192.0.2.12");
  assert.equal(replicaThatHeld(100, server, behind), null);
  assert.equal(classifyLoss(100, server, { ...ctx, samples: behind }), "async-window");
  // Another process at the same address does not count as the master that acknowledged.
  assert.equal(replicaThatHeld(100, { ...server, runId: "other" }, samples), null);
});

Deno.test("chaos probe: ROLE replies of a master and of a replica", () => {
  assert.deepEqual(parseRole(["master", 3129659, [["192.0.2.12", "6379", "3129242"]]]), {
    role: "master",
    offset: 3129659,
    masterHost: null,
  });
  assert.deepEqual(parseRole(["slave", "192.0.2.11", 6379, "connected", 3167038]), {
    role: "replica",
    offset: 3167038,
    masterHost: "192.0.2.11",
  });
  assert.throws(() => parseRole(["sentinel", []]), /unexpected ROLE reply/);
});

Deno.test("chaos firewall: partition and loss rules as one nft transaction", () => {
  const script = firewallScript([
    { kind: "drop-from", addresses: ["192.0.2.12", "192.0.2.13"] },
    { kind: "drop-to", addresses: ["192.0.2.12"] },
    { kind: "loss", udpPort: 7379, percent: 20 },
  ]);
  assert.match(script, /ip saddr \{ 192\.0\.2\.12, 192\.0\.2\.13 \} drop/);
  assert.match(script, /ip daddr \{ 192\.0\.2\.12 \} drop/);
  assert.match(script, /udp dport 7379 numgen random mod 100 < 20 drop/);
  assert.doesNotMatch(firewallScript([]), /chain/); // healed: the table is only deleted
  assert.throws(() => firewallScript([{ kind: "drop-from", addresses: ["10.0.0.300"] }]), /IPv4/);
  assert.throws(() => firewallScript([{ kind: "loss", udpPort: 7379, percent: 0 }]), /percent/);
});

Deno.test("chaos: the seeded random choices repeat; bad flags name the flag", () => {
  const a = seededRandom(7);
  const b = seededRandom(7);
  const first = [a(), a(), a()];
  assert.deepEqual([b(), b(), b()], first);
  assert.ok(first.every((x) => x >= 0 && x < 1));
  assert.notDeepEqual([seededRandom(8)()], [first[0]]);
  assert.throws(() => parseChaosArgs(["--runs", "0"]), /--runs/);
  assert.throws(
    () => parseChaosArgs(["--scenarios", "nope"]),
    /--scenarios: unknown scenario nope/,
  );
  assert.equal(parseChaosArgs(["--seed", "5"]).seed, 5);
});

Deno.test("chaos report: a broken run marks its scenario BROKEN in the table", () => {
  const base: RunReport = {
    scenario: "leader-isolated",
    run: 1,
    detail: "",
    notes: [],
    acked: 100,
    workloadMs: 1_000,
    attempts: 100,
    failures: 0,
    windows: [{ startMs: 0, endMs: 1500 }],
    lost: 0,
    lostByCause: { partition: 0, discarded: 0, "async-window": 0, unexplained: 0 },
    lostSamples: [],
    splitBrainMs: 0,
    twoMastersMs: 0,
    convergedMs: 100,
    violations: [],
    error: null,
  };
  const ok = summaryTable([base], ["leader-isolated"]);
  assert.match(ok, /\| leader-isolated \| 1 \| 1500 ms \| 1500 ms \| 1 \| 100 \| 0 \|.*\| kept \|/);
  const broken = summaryTable([{ ...base, violations: ["x"] }], ["leader-isolated"]);
  assert.match(broken, /BROKEN in 1 run/);
});

// ------------------------------------------------------- the real harness (root + ip netns)

const { whyNoNamespaces, listNamespaces } = await import("../../tools/chaos/network.ts");
const unavailable = await whyNoNamespaces();

if (unavailable !== null) {
  console.warn(
    `\n!!! chaos_test: the fault-injection subset CANNOT RUN here: ${unavailable}.\n` +
      "!!! It needs root and `ip netns` (plus nft, redis-server, dnsmasq). Its tests are " +
      "reported as ignored, NOT passed.\n",
  );
  Deno.test({
    name: `chaos subset: SKIPPED: needs root and ip netns (${unavailable})`,
    ignore: true,
    fn() {},
  });
} else {
  registerNamespaceTests();
}

function registerNamespaceTests(): void {
  Deno.test({
    name: "chaos subset: a killed master pod, an isolated leader and a rolling restart keep the " +
      "rules; a sabotage is caught; nothing is left behind",
    async fn(t) {
      const { ChaosSession } = await import("../../tools/chaos/session.ts");
      const { ChaosCluster } = await import("../../tools/chaos/cluster.ts");
      const { runScenarioOnce } = await import("../../tools/chaos/runner.ts");
      const { scenarioNamed } = await import("../../tools/chaos/scenarios.ts");
      const { liveProcesses } = await import("../../tools/chaos/process.ts");
      const { runLine } = await import("../../tools/chaos/report.ts");
      const lines: string[] = [];
      const session = await ChaosSession.open({ log: (l) => lines.push(l) });
      const dir = session.dir;
      try {
        const cluster = await ChaosCluster.start(session, { pods: 3 });
        const random = seededRandom(1);
        for (const name of ["master-pod-killed", "leader-isolated", "rolling-restart"]) {
          await t.step(name, async () => {
            const report = await runScenarioOnce(cluster, scenarioNamed(name), 1, random);
            console.log(runLine(report));
            assert.equal(report.error, null, report.error ?? "");
            assert.deepEqual(report.violations, []);
            assert.ok(report.acked > 0, "the clients wrote");
            assert.notEqual(report.convergedMs, null);
          });
        }
        await t.step("the checker catches a wiped dataset", async () => {
          const sabotage = {
            name: "sabotage-flushall",
            systems: ["hive"] as const,
            about: "FLUSHALL on the master: every write so far is lost, for no reason it accepts",
            rules: { acceptedLoss: [], maxLost: null, maxSplitBrainMs: 0 },
            async inject() {
              const leader = await cluster.currentLeader();
              assert.ok(leader !== null);
              await cluster.agent.call({ op: "command", ip: leader.ip, args: ["FLUSHALL"] });
              return `FLUSHALL on ${leader.ip}`;
            },
          };
          const report = await runScenarioOnce(cluster, sabotage, 1, random);
          console.log(runLine(report));
          assert.equal(report.error, null, report.error ?? "");
          // FLUSHALL reaches the replicas too: the writes they held were discarded.
          const wiped = report.lostByCause.discarded + report.lostByCause.unexplained;
          assert.ok(wiped > 0, "the wiped writes are found lost");
          assert.ok(
            report.violations.some((v) => /(discarded|unexplained)\), a loss/.test(v)),
            report.violations.join("\n"),
          );
        });
      } finally {
        await session.close();
      }
      assert.deepEqual(await listNamespaces(), []);
      assert.equal(liveProcesses.size, 0);
      await assert.rejects(Deno.stat(dir), Deno.errors.NotFound);
    },
  });

  Deno.test({
    name: "chaos: a crashed run's leftovers are removed by the next; Ctrl-C removes everything",
    async fn() {
      const { ChaosSession, LOCK_PATH } = await import("../../tools/chaos/session.ts");
      const { namespacePids } = await import("../../tools/chaos/network.ts");
      const { processAlive } = await import("../../tools/chaos/command.ts");
      const chaos = new URL("../../tools/chaos.ts", import.meta.url).pathname;
      const startChild = () =>
        new Deno.Command(Deno.execPath(), {
          args: ["run", "--allow-all", chaos, "--scenarios", "leader-isolated", "--runs", "1"],
          stdout: "piped",
          stderr: "piped",
        }).spawn();
      /** Waits until the child's third pod runs its redis and hive. */
      const podsRunning = async (child: Deno.ChildProcess) => {
        const deadline = Date.now() + 60_000;
        while ((await namespacePids("rh-p3")).length < 2) {
          assert.ok(Date.now() < deadline, "the child chaos run started its pods");
          await sleep(100);
        }
        return child;
      };

      // A run killed outright leaves namespaces and processes behind...
      const crashed = await podsRunning(startChild());
      crashed.kill("SIGKILL");
      await crashed.output();
      const left = await listNamespaces();
      assert.ok(left.includes("rh-p1") && left.includes("rh-br"), `leftovers: ${left}`);
      const leftPids = await namespacePids("rh-p1");
      assert.ok(leftPids.length > 0);
      // ... which the next session removes before it starts.
      const session = await ChaosSession.open({ log: () => {} });
      try {
        assert.ok(session.removedLeftovers.some((r) => r === "namespace rh-p1"));
        assert.deepEqual(await listNamespaces(), []);
      } finally {
        await session.close();
      }

      // Ctrl-C: the run removes everything itself and exits 130.
      const interrupted = await podsRunning(startChild());
      interrupted.kill("SIGINT");
      const out = await interrupted.output();
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 130, stderr);
      assert.match(stderr, /SIGINT: removing every namespace and process/);
      assert.deepEqual(await listNamespaces(), []);
      await assert.rejects(Deno.stat(LOCK_PATH), Deno.errors.NotFound);
      // (Killed leftovers reparented to a PID 1 that does not reap stay zombies: dead all the same.)
      assert.deepEqual(leftPids.filter(processAlive), []);
    },
  });
}
