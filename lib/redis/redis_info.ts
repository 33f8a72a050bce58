/**
 * A small pure parser for the text of redis's `INFO` command, and the mapping from the
 * `server`, `replication` and `persistence` sections to a {@link RedisObservation}.
 *
 * @example
 * ```ts
 * import { observationFromInfo, parseInfo } from "./redis_info.ts";
 * const info = parseInfo("# Replication\r\nrole:master\r\nmaster_repl_offset:42\r\n");
 * console.log(info.get("role")); // "master"
 * const obs = observationFromInfo(info);
 * console.log(obs.role, obs.offset); // "master" 42
 * ```
 */

import type { RedisObservation } from "./redis_state.ts";

/** The longest INFO text {@link parseInfo} accepts, in characters (redis 7's full INFO is ~6 KB). */
export const MAX_INFO_TEXT_CHARS = 1_000_000;

/**
 * Parses INFO text (`key:value` lines, `# Section` headers, CRLF or LF line ends) into a map.
 * Section headers and blank lines are skipped; only the first `:` splits key from value, so
 * values may hold colons. A later duplicate key wins.
 *
 * @throws {TypeError} when the text is longer than {@link MAX_INFO_TEXT_CHARS} or a non-empty,
 *   non-header line has no `:`.
 * @example
 * ```ts
 * parseInfo("# Server\nrun_id:abc\n").get("run_id"); // "abc"
 * ```
 */
export function parseInfo(text: string): Map<string, string> {
  if (text.length > MAX_INFO_TEXT_CHARS) {
    throw new TypeError(`INFO text too long: ${text.length} > ${MAX_INFO_TEXT_CHARS} characters`);
  }
  const fields = new Map<string, string>();
  for (const rawLine of text.split("\n")) {
    const line = rawLine.endsWith("\r") ? rawLine.slice(0, -1) : rawLine;
    if (line === "" || line.startsWith("#")) continue;
    const colon = line.indexOf(":");
    if (colon <= 0) throw new TypeError(`INFO line without "key:": ${JSON.stringify(line)}`);
    fields.set(line.slice(0, colon), line.slice(colon + 1));
  }
  return fields;
}

/** Reads an integer field; absent or malformed gives `fallback`. */
function intField(info: Map<string, string>, key: string, fallback: number): number {
  const raw = info.get(key);
  if (raw === undefined || !/^-?\d+$/.test(raw)) return fallback;
  return Number(raw);
}

/**
 * Builds the observation of a redis that answered INFO, from the parsed fields of its
 * `server`, `replication` and `persistence` sections (merged in one map, or several maps).
 *
 * - `role:slave` (and `role:replica`) map to `"replica"`; any other role but `master` to
 *   `"unknown"`.
 * - `masterHost`/`masterPort`/`linkUp` are only read for a replica.
 * - `loading` is `loading:1` or `master_sync_in_progress:1`.
 *
 * @example
 * ```ts
 * const obs = observationFromInfo(parseInfo("run_id:r1\nrole:slave\nmaster_host:10.0.0.1\n" +
 *   "master_port:6379\nmaster_link_status:up\nmaster_repl_offset:7\n"));
 * console.log(obs.masterHost, obs.linkUp); // "10.0.0.1" true
 * ```
 */
export function observationFromInfo(...sections: Map<string, string>[]): RedisObservation {
  const info = new Map<string, string>();
  for (const section of sections) for (const [k, v] of section) info.set(k, v);
  const rawRole = info.get("role");
  const role = rawRole === "master"
    ? "master"
    : rawRole === "slave" || rawRole === "replica"
    ? "replica"
    : "unknown";
  const isReplica = role === "replica";
  const masterPort = intField(info, "master_port", -1);
  return {
    up: true,
    runId: info.get("run_id") ?? null,
    role,
    masterHost: isReplica ? info.get("master_host") ?? null : null,
    masterPort: isReplica && masterPort >= 0 ? masterPort : null,
    linkUp: isReplica && info.get("master_link_status") === "up",
    loading: info.get("loading") === "1" || info.get("master_sync_in_progress") === "1",
    replId: info.get("master_replid") ?? null,
    offset: intField(info, "master_repl_offset", 0),
  };
}
