/** lib/http/process_metrics.ts: the process's memory, from a fake source and for real. */

import assert from "node:assert/strict";
import { readProcessMemory } from "../../lib/http/process_metrics.ts";

Deno.test("process memory: fields from the source, empty heap spaces left out", () => {
  const m = readProcessMemory({
    memoryUsage: () => ({ rss: 90e6, heapTotal: 12e6, heapUsed: 10e6, external: 5e6 }),
    heapSpaces: () => [
      { space_name: "new_space", physical_space_size: 1e6, space_used_size: 5e5 },
      { space_name: "shared_space", physical_space_size: 0, space_used_size: 0 },
      { space_name: "old_space", physical_space_size: 8e6, space_used_size: 7e6 },
    ],
  });
  assert.deepEqual(m, {
    rssBytes: 90e6,
    heapTotalBytes: 12e6,
    heapUsedBytes: 10e6,
    externalBytes: 5e6,
    heapSpaces: [
      { name: "new_space", physicalBytes: 1e6, usedBytes: 5e5 },
      { name: "old_space", physicalBytes: 8e6, usedBytes: 7e6 },
    ],
  });
});

Deno.test("process memory: this process, for real", () => {
  const m = readProcessMemory();
  assert.ok(m.rssBytes > m.heapUsedBytes, "resident memory holds the heap");
  assert.ok(m.heapTotalBytes >= m.heapUsedBytes);
  assert.ok(m.heapSpaces.some((s) => s.name === "old_space" && s.physicalBytes > 0));
});
