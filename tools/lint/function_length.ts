/**
 * A `deno lint` plugin (deno.json `lint.plugins`): rule `redis-hive/max-function-lines` reports
 * every function, method, getter or arrow function of the product (`lib/`, `sim/`, `main.ts`)
 * that spans more than {@link MAX_FUNCTION_LINES} lines, from the line its body's function starts
 * on to the line it ends on, blank lines and comments included (a nested function counts in its
 * own span and in its parent's). Split a long function into named steps. Tests, tools and
 * testing fixtures are not checked.
 *
 * It runs with every `deno lint`, so `deno task ok` enforces it; the AST is Deno's own (no
 * TypeScript compiler, no brace counting).
 *
 * @example
 * ```ts
 * // in a test (Deno.lint.runPlugin exists under `deno test` only):
 * import plugin from "./function_length.ts";
 * const long = `function f() {\n${"  f();\n".repeat(80)}}\n`;
 * const found = Deno.lint.runPlugin(plugin, "lib/x.ts", long);
 * console.log(found[0]?.message); // "f spans 82 lines (at most 70)"
 * ```
 */

/** Longest function allowed in the product, in lines. */
export const MAX_FUNCTION_LINES = 70;

/** The folders and files the rule checks, relative to the project root. */
export const CHECKED_PATHS: readonly string[] = ["lib/", "sim/", "main.ts"];

const PROJECT_ROOT = new URL("../../", import.meta.url).pathname;

/** True when `filename` (absolute, or relative to the project root) is product code. */
export function isChecked(filename: string): boolean {
  const rel = filename.startsWith(PROJECT_ROOT) ? filename.slice(PROJECT_ROOT.length) : filename;
  return CHECKED_PATHS.some((p) => p.endsWith("/") ? rel.startsWith(p) : rel === p);
}

/** 1-based line of a character offset in `text`. */
function lineAt(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

/** A function of any form. */
type FunctionNode =
  | Deno.lint.FunctionDeclaration
  | Deno.lint.FunctionExpression
  | Deno.lint.ArrowFunctionExpression;

/** The name a function is known by: its own, its variable's, its method's or property's. */
function functionName(node: FunctionNode): string {
  if (node.type !== "ArrowFunctionExpression" && node.id) return node.id.name;
  const parent = node.parent;
  if (parent?.type === "VariableDeclarator" && parent.id.type === "Identifier") {
    return parent.id.name;
  }
  if (parent?.type === "MethodDefinition" || parent?.type === "Property") {
    const key = parent.key;
    if (key.type === "Identifier") return key.name;
    if (key.type === "PrivateIdentifier") return `#${key.name}`;
    if (key.type === "Literal") return String(key.value);
  }
  return "(anonymous)";
}

/** The rule: one report per function longer than {@link MAX_FUNCTION_LINES}. */
const maxFunctionLines: Deno.lint.Rule = {
  create(ctx) {
    if (!isChecked(ctx.filename)) return {};
    const text = ctx.sourceCode.text;
    const check = (node: FunctionNode) => {
      const [start, end] = node.range;
      const lines = lineAt(text, end) - lineAt(text, start) + 1;
      if (lines <= MAX_FUNCTION_LINES) return;
      ctx.report({
        node,
        message: `${functionName(node)} spans ${lines} lines (at most ${MAX_FUNCTION_LINES})`,
        hint: "split it into named steps (functions or methods), one concept each",
      });
    };
    return {
      FunctionDeclaration: check,
      FunctionExpression: check,
      ArrowFunctionExpression: check,
    };
  },
};

/** The plugin: `redis-hive/max-function-lines`. */
const plugin: Deno.lint.Plugin = {
  name: "redis-hive",
  rules: { "max-function-lines": maxFunctionLines },
};

export default plugin;
