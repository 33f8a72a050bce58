/**
 * How each election event reads, in one table: its log level, its structured log message (with
 * `{placeholders}` for LogTape) and its one line of history (as `/status` keeps it). Adding an
 * event kind to the election fails type-checking here until it has its row.
 *
 * @example
 * ```ts
 * import { describeEvent, EVENT_TEXT } from "./events.ts";
 * describeEvent({ kind: "handoff", to: "10.0.0.2" }); // "handing leadership over to 10.0.0.2"
 * EVENT_TEXT["handoff"].level; // "info"
 * ```
 */

import type { ElectionEvent } from "../election/election.ts";

/** One event kind's texts. */
export interface EventText<E extends ElectionEvent> {
  /** The log level of its line. */
  level: "info" | "warn";
  /** The structured log message; `{name}` takes the event's field. */
  log: string;
  /** Its line in the history. */
  history: (e: E) => string;
}

/** Every election event kind's texts. */
export const EVENT_TEXT: {
  [K in ElectionEvent["kind"]]: EventText<Extract<ElectionEvent, { kind: K }>>;
} = {
  "role-changed": {
    level: "info",
    log: "role {from} -> {to}, leader {leader}: {reason}",
    history: (e) =>
      `${e.from} -> ${e.to}${e.leader === null ? "" : ` (leader ${e.leader})`}: ${e.reason}`,
  },
  "election-started": {
    level: "info",
    log: "election started: {reason}",
    history: (e) => `election started: ${e.reason}`,
  },
  "elected": {
    level: "info",
    log: "elected leader over candidates {candidates}",
    history: (e) =>
      `elected over ${e.candidates.length === 0 ? "no rival" : e.candidates.join(", ")}`,
  },
  "redis-restarted": {
    level: "warn",
    log: "local redis restarted ({oldRunId} -> {newRunId}): parked",
    history: (e) =>
      `local redis restarted (${e.oldRunId.slice(0, 8)} -> ${e.newRunId.slice(0, 8)})`,
  },
  "lineage-changed": {
    level: "info",
    log: "dataset lineage now {lineage}: {reason}",
    history: (e) =>
      `dataset lineage ${
        e.lineage === null ? "none" : `${e.lineage.bornBy}@${e.lineage.bornMs}`
      }: ${e.reason}`,
  },
  "parked-on-link-loss": {
    level: "warn",
    log: "replication link to {leader} broke: redis parked until the leader speaks",
    history: (e) => `link to ${e.leader} broke: parked`,
  },
  "handoff": {
    level: "info",
    log: "handing leadership over to {to}",
    history: (e) => `handing leadership over to ${e.to}`,
  },
  "crash-handoff": {
    level: "warn",
    log: "{reason}: handing over to the most caught-up of {candidates}",
    history: (e) => `${e.reason}: handing over to one of ${e.candidates.join(", ")}`,
  },
  "crash-handoff-abandoned": {
    level: "warn",
    log: "crash handoff abandoned: {reason}; the followers elect",
    history: (e) => `crash handoff abandoned: ${e.reason}`,
  },
  "peer-refused": {
    level: "warn",
    log: "peer {address} refused: {reason}",
    history: (e) => `peer ${e.address} refused (${e.reason})`,
  },
  "fenced": {
    level: "warn",
    log: "fenced: writes refused: {reason}",
    history: (e) => `fenced: writes refused (${e.reason})`,
  },
  "unfenced": {
    level: "info",
    log: "fence lifted: {reason}",
    history: (e) => `fence lifted (${e.reason})`,
  },
  "peer-evicted": {
    level: "warn",
    log: "peer {address} (only heard) gave its place to listed peer {forListed}",
    history: (e) => `peer ${e.address} (only heard) gave its place to listed peer ${e.forListed}`,
  },
};

/**
 * One line for an election event, as kept in the history.
 *
 * @example
 * ```ts
 * describeEvent({ kind: "peer-refused", address: "10.0.0.9", reason: "max-peers" });
 * // "peer 10.0.0.9 refused (max-peers)"
 * ```
 */
export function describeEvent(e: ElectionEvent): string {
  const text = EVENT_TEXT[e.kind] as EventText<ElectionEvent>;
  return text.history(e);
}

/**
 * Logs an election event at its level with its message and fields.
 *
 * @example
 * ```ts
 * import { getLogger } from "./log.ts";
 * logElectionEvent(getLogger("hive"), { kind: "handoff", to: "10.0.0.2" });
 * ```
 */
export function logElectionEvent(
  log: {
    info(message: string, props: Record<string, unknown>): void;
    warn(message: string, props: Record<string, unknown>): void;
  },
  e: ElectionEvent,
): void {
  const text = EVENT_TEXT[e.kind];
  log[text.level](text.log, { ...e });
}
