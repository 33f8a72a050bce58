/**
 * Structured logging with LogTape: JSON lines (one object per line, for machines) or a pretty
 * one-line text (for terminals), written synchronously to stdout so that nothing is lost when
 * the process exits right after logging.
 *
 * Every logger lives under the {@link ROOT_CATEGORY} category; use {@link getLogger} with the
 * component's name. Properties passed to a log call become fields of the JSON object.
 *
 * @example
 * ```ts
 * import { getLogger, setupLogging } from "./log.ts";
 * setupLogging({ level: "info", format: "json" });
 * getLogger("election").info("leader is now {leader}", { leader: "127.0.0.11", term: 3 });
 * // {"time":"...","level":"info","category":"redis-hive.election",
 * //  "message":"leader is now 127.0.0.11","leader":"127.0.0.11","term":3}
 * ```
 */

import {
  configureSync,
  type FormattedValues,
  getAnsiColorFormatter,
  getLogger as getLogTapeLogger,
  getTextFormatter,
  type Logger,
  type LogRecord,
  resetSync,
  type TextFormatter,
} from "@logtape/logtape";
import type { LogFormat, LogLevel } from "./config.ts";

export type { Logger };

/** The root category of every redis-hive logger. */
export const ROOT_CATEGORY = "redis-hive";

/** Longest string value written in a log line; longer ones are cut and marked. */
export const MAX_LOG_STRING_CHARS = 2048;

/** Most array items or object keys written per value; the rest are summarized. */
export const MAX_LOG_COLLECTION_ITEMS = 64;

/** Deepest nesting written per value; deeper values are replaced by a marker. */
export const MAX_LOG_DEPTH = 6;

/** Fields of every JSON line; a property of the same name gets {@link CLASHING_PROPERTY_PREFIX}. */
export const JSON_LINE_FIELDS = ["time", "level", "category", "message"] as const;

/** Prefix given to a property whose name clashes with one of {@link JSON_LINE_FIELDS}. */
export const CLASHING_PROPERTY_PREFIX = "prop_";

/** How {@link setupLogging} writes and filters. */
export interface LoggingOptions {
  /** Lowest level written. */
  level: LogLevel;
  /** `json`: one JSON object per line; `pretty`: one human-readable line per record. */
  format: LogFormat;
  /** Pretty format only: colour the level and dim the timestamp (for terminals). Default false. */
  color?: boolean;
  /** Where formatted text goes (each call is whole lines). Default: synchronous stdout writes. */
  write?: (text: string) => void;
}

const encoder = new TextEncoder();

/** Writes `text` to stdout synchronously; a closed stdout drops it: logging never kills a hive. */
function writeStdout(text: string): void {
  let bytes = encoder.encode(text);
  try {
    while (bytes.length > 0) {
      const written = Deno.stdout.writeSync(bytes);
      bytes = bytes.subarray(written);
    }
  } catch {
    // stdout is gone (closed pipe): nowhere left to report it.
  }
}

/**
 * Configures LogTape for the whole process (replacing any earlier configuration): the
 * {@link ROOT_CATEGORY} loggers at `level` and above, and LogTape's own diagnostics at warning
 * and above, all to one sink.
 *
 * @example
 * ```ts
 * import { setupLogging } from "./log.ts";
 * setupLogging({ level: "debug", format: "pretty", color: Deno.stdout.isTerminal() });
 * ```
 */
export function setupLogging(options: LoggingOptions): void {
  const write = options.write ?? writeStdout;
  const formatter: TextFormatter = options.format === "json"
    ? formatJsonLine
    : prettyFormatter(options.color ?? false);
  configureSync({
    reset: true,
    sinks: { out: (record: LogRecord) => write(formatter(record)) },
    loggers: [
      { category: [ROOT_CATEGORY], sinks: ["out"], lowestLevel: options.level },
      { category: ["logtape", "meta"], sinks: ["out"], lowestLevel: "warning" },
    ],
  });
}

/**
 * Removes the logging configuration: loggers write nothing until {@link setupLogging} again.
 *
 * @example
 * ```ts
 * import { teardownLogging } from "./log.ts";
 * teardownLogging();
 * ```
 */
export function teardownLogging(): void {
  resetSync();
}

/**
 * The logger of one component, under {@link ROOT_CATEGORY}: `getLogger("proxy")` logs with
 * category `redis-hive.proxy`; `getLogger()` is the root logger.
 *
 * @example
 * ```ts
 * import { getLogger } from "./log.ts";
 * const log = getLogger(["redis", "controller"]);
 * log.warn("redis unreachable, retrying in {delayMs} ms", { delayMs: 400 });
 * ```
 */
export function getLogger(category: string | readonly string[] = []): Logger {
  const parts = typeof category === "string" ? [category] : [...category];
  return getLogTapeLogger([ROOT_CATEGORY, ...parts]);
}

/**
 * Formats one record as a JSON line: `time` (ISO 8601), `level`, `category` (dot-joined),
 * `message` (rendered), then each property as a field. Values that JSON cannot hold (bigint,
 * Error, Map, Set, cycles, NaN) are converted; sizes are bounded by the MAX_LOG_* limits.
 *
 * @example
 * ```ts
 * import { formatJsonLine } from "./log.ts";
 * const line = formatJsonLine({
 *   category: ["redis-hive"], level: "info", message: ["up"], rawMessage: "up",
 *   timestamp: 0, properties: { port: 7379 },
 * });
 * // {"time":"1970-01-01T00:00:00.000Z","level":"info","category":"redis-hive",
 * //  "message":"up","port":7379}\n
 * ```
 */
export function formatJsonLine(record: LogRecord): string {
  const line: Record<string, unknown> = {
    time: new Date(record.timestamp).toISOString(),
    level: record.level,
    category: record.category.join("."),
    message: renderMessage(record.message),
  };
  const reserved: readonly string[] = JSON_LINE_FIELDS;
  for (const [key, value] of Object.entries(record.properties)) {
    const name = reserved.includes(key) ? `${CLASHING_PROPERTY_PREFIX}${key}` : key;
    line[name] = toJsonValue(value, 0, []);
  }
  return JSON.stringify(line) + "\n";
}

/** The pretty formatter: `time LEVEL category: message key=value ...`. */
function prettyFormatter(color: boolean): TextFormatter {
  const options = {
    timestamp: "date-time-tz" as const,
    level: "ABBR" as const,
    category: ".",
    value: "bare" as const,
    format: (v: FormattedValues) =>
      `${v.timestamp ?? ""} ${v.level} ${v.category}: ${v.message}${
        renderExtraProperties(v.record)
      }`,
  };
  return color ? getAnsiColorFormatter(options) : getTextFormatter(options);
}

/** ` key=value` for each property the message template does not already show. */
function renderExtraProperties(record: LogRecord): string {
  const shown = new Set<string>();
  if (typeof record.rawMessage === "string") {
    for (const match of record.rawMessage.matchAll(/\{([^{}]+)\}/g)) {
      if (match[1] !== undefined) shown.add(match[1]);
    }
  }
  let text = "";
  for (const [key, value] of Object.entries(record.properties)) {
    if (shown.has(key)) continue;
    text += ` ${key}=${renderValueInline(value)}`;
  }
  return text;
}

/** A value inline: bare when it is a simple word (an address, an id), else as (escaped) JSON. */
function renderValueInline(value: unknown): string {
  if (typeof value === "string" && /^[A-Za-z0-9._:/@+\-[\]]+$/.test(value)) {
    return value.length > MAX_LOG_STRING_CHARS ? JSON.stringify(truncate(value)) : value;
  }
  if (typeof value === "bigint") return value.toString();
  return JSON.stringify(toJsonValue(value, 0, []));
}

/** The message: template parts as is; values bare when they are strings (or bigints), else JSON. */
function renderMessage(parts: readonly unknown[]): string {
  let text = "";
  parts.forEach((part, i) => {
    if (i % 2 === 0 || typeof part === "string") text += truncate(String(part));
    else {
      const safe = toJsonValue(part, 0, []);
      text += typeof safe === "string" ? safe : JSON.stringify(safe);
    }
  });
  return text;
}

function truncate(text: string): string {
  if (text.length <= MAX_LOG_STRING_CHARS) return text;
  return `${text.slice(0, MAX_LOG_STRING_CHARS)}...(${
    text.length - MAX_LOG_STRING_CHARS
  } more chars)`;
}

/** A JSON-safe, bounded copy of `value`. `ancestors` are the objects above it (cycle detection). */
function toJsonValue(value: unknown, depth: number, ancestors: readonly object[]): unknown {
  switch (typeof value) {
    case "string":
      return truncate(value);
    case "number":
      return Number.isFinite(value) ? value : String(value);
    case "boolean":
      return value;
    case "bigint":
      return value.toString();
    case "undefined":
      return null;
    case "symbol":
      return value.toString();
    case "function":
      return `[function ${value.name || "anonymous"}]`;
  }
  if (value === null) return null;
  const object = value as object;
  if (ancestors.includes(object)) return "[circular]";
  if (depth >= MAX_LOG_DEPTH) return "[too deep]";
  const below = [...ancestors, object];
  if (object instanceof Date) {
    return Number.isNaN(object.getTime()) ? "Invalid Date" : object.toISOString();
  }
  if (object instanceof Error) {
    const error: Record<string, unknown> = { name: object.name, message: truncate(object.message) };
    if (object.stack !== undefined) error["stack"] = truncate(object.stack);
    if (object.cause !== undefined) error["cause"] = toJsonValue(object.cause, depth + 1, below);
    return error;
  }
  if (ArrayBuffer.isView(object)) return `[${object.constructor.name} ${object.byteLength} bytes]`;
  if (object instanceof Map) {
    return toJsonValue(Object.fromEntries(object), depth, ancestors);
  }
  if (object instanceof Set) return toJsonValue([...object], depth, ancestors);
  if (Array.isArray(object)) {
    const items = object.slice(0, MAX_LOG_COLLECTION_ITEMS).map((item) =>
      toJsonValue(item, depth + 1, below)
    );
    if (object.length > MAX_LOG_COLLECTION_ITEMS) {
      items.push(`...(${object.length - MAX_LOG_COLLECTION_ITEMS} more items)`);
    }
    return items;
  }
  const entries = Object.entries(object);
  const result: Record<string, unknown> = {};
  for (const [key, item] of entries.slice(0, MAX_LOG_COLLECTION_ITEMS)) {
    result[key] = toJsonValue(item, depth + 1, below);
  }
  if (entries.length > MAX_LOG_COLLECTION_ITEMS) {
    result["..."] = `${entries.length - MAX_LOG_COLLECTION_ITEMS} more keys`;
  }
  return result;
}
