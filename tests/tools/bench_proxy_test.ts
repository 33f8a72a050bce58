/**
 * The parts of `deno task bench proxy` (tools/bench/proxy.ts) that turn samples into its report:
 * the per-round ratio then median, and the generic tables ("-" for a contestant that did not
 * run). The benchmark itself runs redis-benchmark for minutes, so it is run by hand, not here.
 * No network.
 */

import assert from "node:assert/strict";
import {
  addSample,
  BENCH_PIPELINE,
  type BenchResults,
  CONTESTANT_LABELS,
  cpuTable,
  markdownTable,
  median,
  medianRatio,
  PROXY_CONTESTANTS,
  ratioTable,
  resultKey,
} from "../../tools/bench/proxy.ts";

/** Splits a markdown table row into its trimmed cells. */
function cells(line: string): string[] {
  return line.split("|").slice(1, -1).map((c) => c.trim());
}

/** The row of a table whose first cell is `first`. */
function row(lines: string[], first: string): string[] {
  const found = lines.map(cells).find((c) => c[0] === first);
  assert.ok(found, `no row ${first} in\n${lines.join("\n")}`);
  return found;
}

Deno.test("median: odd, even, unsorted; nothing throws", () => {
  assert.equal(median([5, 1, 3]), 3);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.throws(() => median([]), RangeError);
});

Deno.test("medianRatio: ratio per round, then median (not the ratio of the medians)", () => {
  // Ratios per round 1, 0.5, 3 -> median 1; medians 20 / 30 would give 0.67.
  assert.equal(medianRatio([10, 20, 90], [10, 40, 30]), 1);
  assert.equal(medianRatio([10], undefined), undefined);
  assert.equal(medianRatio(undefined, [10]), undefined);
  assert.throws(() => medianRatio([1, 2], [1]), /2 samples against 1/);
  assert.throws(() => medianRatio([], []), /0 samples/);
});

Deno.test("addSample: one series per mode, contestant and metric, in round order", () => {
  const results: BenchResults = new Map();
  addSample(results, "plain", "hive", "SET", 1);
  addSample(results, "plain", "hive", "SET", 2);
  addSample(results, "pipelined", "hive", "SET", 3);
  assert.deepEqual(results.get(resultKey("plain", "hive", "SET")), [1, 2]);
  assert.deepEqual(results.get(resultKey("pipelined", "hive", "SET")), [3]);
  assert.equal(results.get(resultKey("plain", "epoll", "SET")), undefined);
  assert.throws(() => addSample(results, "plain", "hive", "GET", NaN), RangeError);
});

Deno.test("markdownTable: header, separator, rows; a short row throws", () => {
  assert.deepEqual(markdownTable(["a", "b"], [["1", "2"]]), [
    "| a | b |",
    "|---|---|",
    "| 1 | 2 |",
  ]);
  assert.throws(() => markdownTable(["a", "b"], [["1"]]), /1 cells under 2/);
});

Deno.test("ratioTable: base rps row, per-round ratios, '-' for a contestant that did not run", () => {
  const results: BenchResults = new Map();
  const rounds: [number, number, number][] = [[100, 50, 80], [200, 180, 100], [300, 150, 240]];
  for (const [direct, hive, haproxy] of rounds) {
    for (const mode of ["plain", "pipelined"] as const) {
      for (const test of ["SET", "GET"] as const) {
        const scale = (mode === "pipelined" ? 10 : 1) * (test === "GET" ? 2 : 1);
        addSample(results, mode, "direct", test, direct * scale);
        addSample(results, mode, "hive", test, hive * scale);
        addSample(results, mode, "haproxy", test, haproxy * scale);
      }
    }
  }
  const lines = ratioTable(results, PROXY_CONTESTANTS, "direct", { baseRps: true });
  assert.deepEqual(cells(lines[0]!), [
    "",
    "SET",
    "GET",
    `SET -P ${BENCH_PIPELINE}`,
    `GET -P ${BENCH_PIPELINE}`,
  ]);
  assert.deepEqual(row(lines, "direct rps (median)"), [
    "direct rps (median)",
    "200",
    "400",
    "2000",
    "4000",
  ]);
  // hive / direct per round: 0.5, 0.9, 0.5 -> 0.5 (ratio of medians: 150 / 200 = 0.75).
  const hive = `${CONTESTANT_LABELS.hive} / direct`;
  assert.deepEqual(row(lines, hive), [hive, "0.50", "0.50", "0.50", "0.50"]);
  const haproxy = `${CONTESTANT_LABELS.haproxy} / direct`;
  assert.deepEqual(row(lines, haproxy), [haproxy, "0.80", "0.80", "0.80", "0.80"]);
  const epollUnix = `${CONTESTANT_LABELS["epoll-unix"]} / direct`;
  assert.deepEqual(row(lines, epollUnix), [epollUnix, "-", "-", "-", "-"]);
  assert.equal(lines.length, 2 + 1 + PROXY_CONTESTANTS.length);

  // Against HAProxy: hive / haproxy per round 0.625, 1.8, 0.625 -> 0.63; no base rps row.
  const vsHaproxy = ratioTable(results, ["hive", "haproxy-unix"], "haproxy");
  assert.equal(vsHaproxy.length, 2 + 2);
  assert.deepEqual(row(vsHaproxy, "hive (deno engine) / HAProxy").slice(1), [
    "0.63",
    "0.63",
    "0.63",
    "0.63",
  ]);
  assert.deepEqual(row(vsHaproxy, "HAProxy (Unix socket upstream) / HAProxy").slice(1), [
    "-",
    "-",
    "-",
    "-",
  ]);
  // No base at all: every ratio is "-".
  const noBase = ratioTable(results, ["hive"], "haproxy-unix", { baseRps: true });
  assert.deepEqual(cells(noBase[2]!).slice(1), ["-", "-", "-", "-"]);
});

Deno.test("cpuTable: median µs per request, user and system per mode, '-' when not run", () => {
  const results: BenchResults = new Map();
  for (const [user, sys] of [[3, 9], [1, 5], [2, 7]]) {
    addSample(results, "plain", "epoll", "cpu-user", user!);
    addSample(results, "plain", "epoll", "cpu-sys", sys!);
    addSample(results, "pipelined", "epoll", "cpu-user", user! / 10);
  }
  const lines = cpuTable(results, ["epoll", "haproxy"]);
  assert.deepEqual(cells(lines[0]!), [
    "proxy process",
    "plain user",
    "plain sys",
    `-P ${BENCH_PIPELINE} user`,
    `-P ${BENCH_PIPELINE} sys`,
  ]);
  assert.deepEqual(row(lines, "hive (epoll engine)"), [
    "hive (epoll engine)",
    "2.00",
    "7.00",
    "0.20",
    "-",
  ]);
  assert.deepEqual(row(lines, "HAProxy"), ["HAProxy", "-", "-", "-", "-"]);
});

Deno.test("bench proxy: the whole hives are contestants, compared with direct and HAProxy", async () => {
  const { WHOLE_HIVES, HAPROXY_COMPARED } = await import("../../tools/bench/proxy.ts");
  assert.deepEqual([...WHOLE_HIVES], ["whole-hive", "whole-hive-unix"]);
  for (const who of WHOLE_HIVES) {
    assert.ok(PROXY_CONTESTANTS.includes(who), `${who} runs`);
    assert.ok(HAPROXY_COMPARED.includes(who), `${who} is compared with HAProxy`);
    assert.match(CONTESTANT_LABELS[who], /^whole hive \(deno task start/);
  }
});
