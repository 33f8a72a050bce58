/**
 * The hive's state file (`--state-file`): which redis process (`run_id`) holds which dataset
 * lineage. A hive that restarts while its redis lives on reads it back, so it still knows its
 * redis holds the dataset. On Kubernetes the file lives on an emptyDir volume: it survives a
 * container restart and is gone with the pod, exactly when the redis is gone too.
 *
 * Written atomically (a temporary file, then a rename). A missing, unreadable or malformed file
 * reads as "nothing known" (logged by the caller), never as an error that stops the hive.
 *
 * @example
 * ```ts
 * import { readStateFile, writeStateFile } from "./state_file.ts";
 * await writeStateFile("/tmp/hive.json", { runId: "abc", lineage: null });
 * console.log(await readStateFile("/tmp/hive.json")); // { runId: "abc", lineage: null }
 * ```
 */

import type { PersistedState } from "../election/election.ts";

/** Largest state file read, in bytes; a larger one reads as nothing known. */
export const MAX_STATE_FILE_BYTES = 4096;

/** Parses the file's text, or null when it is not a valid state. */
export function parseState(text: string): PersistedState | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof v !== "object" || v === null) return null;
  const o = v as Record<string, unknown>;
  if (typeof o.runId !== "string" || o.runId.length === 0 || o.runId.length > 64) return null;
  if (o.lineage === null) return { runId: o.runId, lineage: null };
  if (typeof o.lineage !== "object" || o.lineage === null) return null;
  const l = o.lineage as Record<string, unknown>;
  if (typeof l.bornMs !== "number" || !Number.isSafeInteger(l.bornMs) || l.bornMs < 0) return null;
  if (typeof l.bornBy !== "string" || l.bornBy.length === 0 || l.bornBy.length > 64) return null;
  return { runId: o.runId, lineage: { bornMs: l.bornMs, bornBy: l.bornBy } };
}

/** Reads the state file; null when it is missing, too large or not a valid state. */
export async function readStateFile(path: string): Promise<PersistedState | null> {
  try {
    const info = await Deno.stat(path);
    if (info.size > MAX_STATE_FILE_BYTES) return null;
    return parseState(await Deno.readTextFile(path));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/** Writes the state file atomically (temporary file in the same directory, then rename). */
export async function writeStateFile(path: string, state: PersistedState): Promise<void> {
  const tmp = `${path}.tmp`;
  await Deno.writeTextFile(tmp, JSON.stringify(state) + "\n");
  await Deno.rename(tmp, path);
}
