/** The events published on a change of master, in Sentinel's formats, and PSUBSCRIBE globs. */

import assert from "node:assert/strict";
import { globMatch, masterChangeEvents } from "../../lib/sentinel/sentinel_events.ts";

const A = { ip: "10.0.0.1", port: 6379, runId: "a" };
const B = { ip: "10.0.0.2", port: 6379, runId: "b" };

Deno.test("sentinel events: lost, switched, back, first, unchanged", () => {
  assert.deepEqual(masterChangeEvents("mymaster", { announced: A, lastKnown: A }, null), [
    { channel: "+sdown", message: "master mymaster 10.0.0.1 6379" },
    { channel: "+odown", message: "master mymaster 10.0.0.1 6379 #quorum 1/1" },
  ]);
  assert.deepEqual(masterChangeEvents("mymaster", { announced: null, lastKnown: A }, B), [
    { channel: "+failover-end", message: "master mymaster 10.0.0.1 6379" },
    { channel: "+switch-master", message: "mymaster 10.0.0.1 6379 10.0.0.2 6379" },
  ]);
  assert.deepEqual(
    masterChangeEvents("m", { announced: A, lastKnown: A }, B).map((e) => e.channel),
    ["+failover-end", "+switch-master"],
    "a direct switch (no gap) is a switch too",
  );
  assert.deepEqual(masterChangeEvents("mymaster", { announced: null, lastKnown: A }, A), [
    { channel: "-odown", message: "master mymaster 10.0.0.1 6379" },
    { channel: "-sdown", message: "master mymaster 10.0.0.1 6379" },
  ]);
  assert.deepEqual(masterChangeEvents("mymaster", { announced: null, lastKnown: null }, A), []);
  assert.deepEqual(
    masterChangeEvents("mymaster", { announced: A, lastKnown: A }, { ...A, runId: "new" }),
    [],
  );
  assert.deepEqual(
    masterChangeEvents("mymaster", { announced: A, lastKnown: A }, { ...A, port: 6380 })
      .map((e) => e.message),
    ["master mymaster 10.0.0.1 6379", "mymaster 10.0.0.1 6379 10.0.0.1 6380"],
  );
});

Deno.test("sentinel events: glob patterns as redis matches them", () => {
  const yes: [string, string][] = [
    ["*", "+switch-master"],
    ["[-+]sdown", "+sdown"],
    ["[-+]sdown", "-sdown"],
    ["+switch-*", "+switch-master"],
    ["?sdown", "+sdown"],
    ["[a-z]x", "qx"],
    ["[^a]x", "bx"],
    ["\\*", "*"],
    ["a**b", "ab"],
  ];
  const no: [string, string][] = [
    ["[-+]sdown", "+odown"],
    ["switch-master", "+switch-master"],
    ["[^a]x", "ax"],
    ["?", ""],
    ["a*b", "ac"],
  ];
  for (const [p, s] of yes) assert.ok(globMatch(p, s), `${p} ~ ${s}`);
  for (const [p, s] of no) assert.ok(!globMatch(p, s), `${p} !~ ${s}`);
});
