/** tools/doc_check.ts: only the unused imports Deno injects into examples are left out. */

import assert from "node:assert/strict";
import { isInjectedImportError, parseCheckErrors } from "../../tools/doc_check.ts";

const OUTPUT = [
  "Check lib/x.ts",
  "TS6133 [ERROR]: 'A' is declared but its value is never read.",
  "    at file:///r/lib/x.ts#10-15.ts:1:10",
  "",
  "TS2304 [ERROR]: Cannot find name 'hive'.",
  "    at file:///r/lib/x.ts#20-25.ts:3:5",
  "",
  "TS6133 [ERROR]: 'b' is declared but its value is never read.",
  "    at file:///r/lib/x.ts:40:7",
].join("\n");

Deno.test("doc-check: unused imports in examples are left out, nothing else", () => {
  const errors = parseCheckErrors(OUTPUT);
  assert.deepEqual(errors.map((e) => e.code), ["TS6133", "TS2304", "TS6133"]);
  assert.deepEqual(errors.map(isInjectedImportError), [true, false, false]);
});
