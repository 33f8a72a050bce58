import assert from "node:assert/strict";
import {
  MAX_STATE_FILE_BYTES,
  parseState,
  readStateFile,
  writeStateFile,
} from "../../lib/hive/state_file.ts";

Deno.test("state file: written atomically, read back; missing, oversized or malformed reads as nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hive-state-" });
  try {
    const path = `${dir}/state.json`;
    assert.equal(await readStateFile(path), null, "missing");
    const state = {
      runId: "a".repeat(40),
      lineage: { bornMs: 1_700_000_000_000, bornBy: "10.0.0.1" },
    };
    await writeStateFile(path, state);
    assert.deepEqual(await readStateFile(path), state);
    await writeStateFile(path, { runId: "b", lineage: null });
    assert.deepEqual(await readStateFile(path), { runId: "b", lineage: null });
    assert.deepEqual(
      [...Deno.readDirSync(dir)].map((e) => e.name),
      ["state.json"],
      "no temp file left",
    );
    await Deno.writeTextFile(path, " ".repeat(MAX_STATE_FILE_BYTES + 1));
    assert.equal(await readStateFile(path), null, "oversized");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  for (
    const bad of [
      "not json",
      "null",
      "[]",
      '{"runId": ""}',
      '{"runId": "x"}',
      '{"runId": "x", "lineage": {"bornMs": -1, "bornBy": "a"}}',
      '{"runId": "x", "lineage": {"bornMs": 1.5, "bornBy": "a"}}',
      '{"runId": "x", "lineage": {"bornMs": 1, "bornBy": ""}}',
      '{"runId": "x", "lineage": 7}',
    ]
  ) assert.equal(parseState(bad), null, bad);
});
