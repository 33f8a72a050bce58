/** lib/hive/events.ts: one table gives each election event its log line and history line. */

import assert from "node:assert/strict";
import { describeEvent, logElectionEvent } from "../../lib/hive/events.ts";

Deno.test("events: the history line of each kind", () => {
  assert.equal(
    describeEvent({
      kind: "role-changed",
      from: "candidate",
      to: "leader",
      leader: "10.0.0.1",
      reason: "won",
    }),
    "candidate -> leader (leader 10.0.0.1): won",
  );
  assert.equal(
    describeEvent({ kind: "elected", candidates: [], lineage: { bornMs: 1, bornBy: "10.0.0.1" } }),
    "elected over no rival",
  );
  assert.equal(
    describeEvent({ kind: "redis-restarted", oldRunId: "aaaaaaaaaaaa", newRunId: "bbbbbbbbbbbb" }),
    "local redis restarted (aaaaaaaa -> bbbbbbbb)",
  );
  assert.equal(
    describeEvent({ kind: "lineage-changed", lineage: null, reason: "wiped" }),
    "dataset lineage none: wiped",
  );
  assert.equal(
    describeEvent({ kind: "parked-on-link-loss", leader: "10.0.0.1" }),
    "link to 10.0.0.1 broke: parked",
  );
});

Deno.test("events: logged at the table's level with the event's fields", () => {
  const lines: [string, string, Record<string, unknown>][] = [];
  const log = {
    info: (m: string, p: Record<string, unknown>) => lines.push(["info", m, p]),
    warn: (m: string, p: Record<string, unknown>) => lines.push(["warn", m, p]),
  };
  logElectionEvent(log, { kind: "peer-refused", address: "10.0.0.9", reason: "max-peers" });
  logElectionEvent(log, { kind: "handoff", to: "10.0.0.2" });
  assert.deepEqual(lines, [
    ["warn", "peer {address} refused: {reason}", {
      kind: "peer-refused",
      address: "10.0.0.9",
      reason: "max-peers",
    }],
    ["info", "handing leadership over to {to}", { kind: "handoff", to: "10.0.0.2" }],
  ]);
});
