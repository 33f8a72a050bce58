/**
 * The `deno lint` plugin that bounds function length in the product (tools/lint/function_length.ts),
 * run on sources of known shape with `Deno.lint.runPlugin`.
 */

import assert from "node:assert/strict";
import plugin, { MAX_FUNCTION_LINES } from "../../tools/lint/function_length.ts";

/** A function declaration spanning `lines` lines in all. */
function declaration(name: string, lines: number): string {
  return `function ${name}() {\n${"  void 0;\n".repeat(lines - 2)}}\n`;
}

/** The messages the plugin reports for `source` as file `path`. */
function reports(path: string, source: string): string[] {
  return Deno.lint.runPlugin(plugin, path, source).map((d) => d.message);
}

Deno.test("function length: a product function of the limit passes, one line more is reported", () => {
  assert.deepEqual(reports("lib/x.ts", declaration("fits", MAX_FUNCTION_LINES)), []);
  assert.deepEqual(reports("lib/x.ts", declaration("long", MAX_FUNCTION_LINES + 1)), [
    `long spans ${MAX_FUNCTION_LINES + 1} lines (at most ${MAX_FUNCTION_LINES})`,
  ]);
});

Deno.test("function length: methods, private methods, arrows and function expressions are named", () => {
  const body = "    void 0;\n".repeat(MAX_FUNCTION_LINES);
  const source = [
    `class C {\n  m() {\n${body}  }\n  #p() {\n${body}  }\n}`,
    `const arrow = () => {\n${body}};`,
    `const obj = { prop: function () {\n${body}} };`,
  ].join("\n");
  assert.deepEqual(reports("sim/y.ts", source).sort(), [
    `#p spans ${MAX_FUNCTION_LINES + 2} lines (at most ${MAX_FUNCTION_LINES})`,
    `arrow spans ${MAX_FUNCTION_LINES + 2} lines (at most ${MAX_FUNCTION_LINES})`,
    `m spans ${MAX_FUNCTION_LINES + 2} lines (at most ${MAX_FUNCTION_LINES})`,
    `prop spans ${MAX_FUNCTION_LINES + 2} lines (at most ${MAX_FUNCTION_LINES})`,
  ]);
});

Deno.test("function length: only lib/, sim/ and main.ts are checked", () => {
  const long = declaration("long", MAX_FUNCTION_LINES + 10);
  assert.equal(reports("main.ts", long).length, 1);
  assert.deepEqual(reports("tests/x_test.ts", long), []);
  assert.deepEqual(reports("tools/x.ts", long), []);
  assert.deepEqual(reports("testing/x.ts", long), []);
  assert.deepEqual(reports("library/x.ts", long), [], "lib/ is a folder, not a prefix");
});
