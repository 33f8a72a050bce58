/**
 * Runs the system commands the chaos harness needs (`ip`, `nft`, `kill`) and fails loudly with
 * the command line and its stderr when one fails.
 *
 * @example
 * ```ts
 * import { runCommand } from "./command.ts";
 * const namespaces = await runCommand("ip", ["netns", "list"]);
 * console.log(namespaces);
 * ```
 */

/** Most characters of a failed command's stderr quoted in its error. */
export const MAX_ERROR_OUTPUT_CHARS = 2_000;

/**
 * A command that exited non-zero.
 *
 * @example
 * ```ts
 * try {
 *   await runCommand("ip", ["netns", "del", "rh-none"]);
 * } catch (e) {
 *   if (e instanceof CommandError) console.log(e.code, e.stderr);
 * }
 * ```
 */
export class CommandError extends Error {
  constructor(
    readonly commandLine: string,
    readonly code: number,
    readonly stderr: string,
  ) {
    super(
      `\`${commandLine}\` exited ${code}: ${stderr.trim().slice(0, MAX_ERROR_OUTPUT_CHARS)}`,
    );
    this.name = "CommandError";
  }
}

const decoder = new TextDecoder();

function commandLine(program: string, args: readonly string[]): string {
  return [program, ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a}'`)).join(" ");
}

/**
 * Runs `program args` to completion and returns its stdout; `stdin` is written to its standard
 * input when given.
 *
 * @throws {CommandError} when it exits non-zero
 * @example
 * ```ts
 * import { runCommand } from "./command.ts";
 * await runCommand("nft", ["-f", "-"], { stdin: "flush ruleset\n" });
 * ```
 */
export async function runCommand(
  program: string,
  args: readonly string[],
  opts: { stdin?: string } = {},
): Promise<string> {
  const child = new Deno.Command(program, {
    args: [...args],
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (opts.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(opts.stdin));
    await writer.close();
  }
  const out = await child.output();
  if (!out.success) {
    throw new CommandError(commandLine(program, args), out.code, decoder.decode(out.stderr));
  }
  return decoder.decode(out.stdout);
}

/**
 * The synchronous form of {@link runCommand} for exit-time cleanup (an `unload` listener cannot
 * await). Returns null instead of throwing, since cleanup goes on regardless.
 *
 * @example
 * ```ts
 * import { runCommandSync } from "./command.ts";
 * runCommandSync("ip", ["netns", "del", "rh-p1"]);
 * ```
 */
export function runCommandSync(program: string, args: readonly string[]): string | null {
  try {
    const out = new Deno.Command(program, {
      args: [...args],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).outputSync();
    return out.success ? decoder.decode(out.stdout) : null;
  } catch {
    return null;
  }
}

/**
 * True when a process with this id exists (signal 0 semantics through `kill -0`).
 *
 * @example
 * ```ts
 * import { processAlive } from "./command.ts";
 * console.log(processAlive(Deno.pid)); // true
 * ```
 */
export function processAlive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // A zombie is dead for our purposes: field 3 (after the parenthesised name) is the state.
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}
