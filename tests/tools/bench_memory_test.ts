/**
 * The pure parts of `deno task bench memory` (tools/bench/memory.ts) and of its /proc reader
 * (tools/bench/proc_memory.ts). The benchmark itself runs a cluster for minutes: run by hand.
 */

import assert from "node:assert/strict";
import { nodeAddresses, withV8Flags } from "../../tools/bench/memory.ts";
import { mib, parseProcMemory, procField, readProcMemory } from "../../tools/bench/proc_memory.ts";

const STATUS = [
  "Name:\tdeno",
  "VmHWM:\t  121400 kB",
  "VmRSS:\t   94052 kB",
  "RssAnon:\t   44000 kB",
  "RssFile:\t   50052 kB",
  "Threads:\t6",
  "",
].join("\n");

Deno.test("proc memory: fields of /proc/<pid>/status and smaps_rollup", () => {
  assert.equal(procField(STATUS, "VmRSS"), 94052);
  assert.equal(procField(STATUS, "Threads"), 6);
  assert.equal(procField(STATUS, "VmSwap"), undefined);
  assert.deepEqual(parseProcMemory(STATUS, "Rss:  94052 kB\nPss:  55400 kB\n"), {
    rssKiB: 94052,
    hwmKiB: 121400,
    anonKiB: 44000,
    fileKiB: 50052,
    pssKiB: 55400,
    threads: 6,
  });
  assert.equal(parseProcMemory(STATUS, null).pssKiB, null);
  assert.throws(() => parseProcMemory("VmRSS:\t1 kB\n", null), /no VmHWM/);
  assert.equal(mib(94822), "92.6");
});

Deno.test("proc memory: this process, for real", async () => {
  const m = await readProcMemory(Deno.pid);
  assert.ok(m.rssKiB > 0 && m.hwmKiB >= m.rssKiB && m.threads >= 1);
  assert.equal(m.anonKiB + m.fileKiB <= m.rssKiB, true);
});

Deno.test("bench memory: --v8-flags replaced, dropped or kept; node addresses", () => {
  const start = ["--allow-net", "--v8-flags=--max-semi-space-size=1"];
  assert.deepEqual(withV8Flags(start, null), start);
  assert.deepEqual(withV8Flags(start, "none"), ["--allow-net"]);
  assert.deepEqual(withV8Flags(start, "--max-semi-space-size=4"), [
    "--allow-net",
    "--v8-flags=--max-semi-space-size=4",
  ]);
  assert.deepEqual(nodeAddresses("127.0.15.11", 3), ["127.0.15.11", "127.0.15.12", "127.0.15.13"]);
  assert.throws(() => nodeAddresses("10.0.0.1", 3), /loopback/);
  assert.throws(() => nodeAddresses("127.0.15.253", 3), /no room/);
});

Deno.test("proc stat: utime + stime, also after a command name with spaces", async () => {
  const { cpuTicksOfStat } = await import("../../tools/bench/proc_memory.ts");
  assert.equal(cpuTicksOfStat("42 (deno) S 1 2 3 4 5 6 7 8 9 10 150 25 0 0"), 175);
  assert.equal(cpuTicksOfStat("42 (a b) c) S 1 2 3 4 5 6 7 8 9 10 7 3 0 0"), 10);
  assert.throws(() => cpuTicksOfStat("42 (deno) S 1 2"), /utime/);
});
