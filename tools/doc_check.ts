/**
 * `deno task doc-check [paths...]` (default `lib`): type-checks every JSDoc `@example` block
 * (`deno check --doc`) and exits 1 on any error, except one kind: Deno injects into each
 * example an import of *every* export of the documented module, by absolute `file://` URL, and
 * with `noUnusedLocals` (deno.json) the unused ones are reported (TS6133/TS6192,
 * denoland/deno#26900). Those two codes are left out inside the examples' pseudo files (Deno
 * does not always print the import line, so the check cannot tell an injected import from an
 * example's own unused import: that one gap is accepted); every other error fails the check,
 * and so do those codes in the modules themselves.
 *
 * @example
 * ```sh
 * deno task doc-check
 * deno task doc-check lib/hive
 * ```
 */

/** The error codes the injected imports cause. */
const INJECTED_IMPORT_CODES = new Set(["TS6133", "TS6192"]);

/** One reported error: its code and its text (the lines up to the next error). */
interface CheckError {
  code: string;
  text: string;
}

/** Splits `deno check` output (colours stripped) into its errors. */
export function parseCheckErrors(output: string): CheckError[] {
  // deno-lint-ignore no-control-regex
  const plain = output.replace(/\x1b\[[0-9;]*m/g, "");
  const errors: CheckError[] = [];
  for (const block of plain.split(/\n(?=TS\d+ \[ERROR\])/)) {
    const code = /^(TS\d+) \[ERROR\]/m.exec(block)?.[1];
    if (code !== undefined) errors.push({ code, text: block.trim() });
  }
  return errors;
}

/** True for an "unused" error inside an example (`module.ts#12-18.ts`): see the module doc. */
export function isInjectedImportError(e: CheckError): boolean {
  return INJECTED_IMPORT_CODES.has(e.code) && /\.ts#\d+-\d+\.ts:\d+:\d+/.test(e.text);
}

if (import.meta.main) {
  const paths = Deno.args.length > 0 ? Deno.args : ["lib"];
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["check", "--doc", ...paths],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  const errors = parseCheckErrors(text);
  const real = errors.filter((e) => !isInjectedImportError(e));
  for (const e of real) console.error(e.text + "\n");
  const left = errors.length - real.length;
  if (real.length > 0 || (out.code !== 0 && errors.length === 0)) {
    if (errors.length === 0) console.error(text);
    console.error(`doc-check: ${real.length} errors in the examples of ${paths.join(" ")}`);
    Deno.exit(1);
  }
  console.log(
    `doc-check: the examples of ${paths.join(" ")} type-check ` +
      `(${left} unused injected imports left out, denoland/deno#26900)`,
  );
}
