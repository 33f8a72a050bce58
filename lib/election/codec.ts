/**
 * The heartbeat's wire format: one {@link Heartbeat} in one UDP datagram, optionally signed.
 *
 * Envelope (all offsets in bytes):
 *
 * | offset | size | content |
 * |---|---|---|
 * | 0 | 4 | magic, ASCII `RHIV` ({@link MAGIC}) |
 * | 4 | 1 | wire version ({@link HEARTBEAT_VERSION}) |
 * | 5 | 1 | flags: bit 0 = signed ({@link FLAG_SIGNED}); every other bit must be 0 |
 * | 6 | n | payload: the heartbeat as UTF-8 JSON, keys in a fixed order |
 * | 6+n | 32 | when signed: HMAC-SHA256 tag over bytes `0 .. 6+n` (magic, version, flags, payload) |
 *
 * Why JSON: a heartbeat is a few hundred bytes sent a few times per second per peer, so a binary
 * layout would save nothing that matters, while JSON is readable in a packet capture, needs no
 * dependency and no hand-written field offsets. Its looseness is removed by the strict decoder:
 * every field is checked for type and range, unknown keys are rejected, and the envelope's
 * version byte (not the payload) decides the format, so a future version can change everything
 * after byte 5.
 *
 * Secrets: a codec with a secret signs every datagram and drops every datagram that is not
 * signed with that secret (`unsigned`, `bad-signature`). A codec without a secret drops signed
 * datagrams (`unexpected-signature`) instead of ignoring the tag: a hive where only some nodes
 * have the secret is a misconfiguration, and it should be loud on both sides rather than
 * half-working. Tags are checked with `crypto.subtle.verify`, which compares in constant time.
 *
 * The decoder never throws: every input gives either a valid heartbeat or one reason from the
 * closed list {@link DROP_REASONS}, which the runtime counts.
 *
 * @example
 * ```ts
 * import { createCodec } from "./codec.ts";
 * import { HEARTBEAT_VERSION, UNKNOWN_REDIS } from "./heartbeat.ts";
 * const codec = await createCodec("s3cret");
 * const bytes = await codec.encode({
 *   version: HEARTBEAT_VERSION, from: "127.0.0.11", electionPort: 7379, redisPort: 6379,
 *   bootId: "4f2a9c0d1e7b3a55", seq: 1, sentMs: Date.now(), role: "starting", leader: null,
 *   electionStartMs: null, leaderSinceMs: null, groupSize: 0, handoffTo: null,
 *   redis: UNKNOWN_REDIS,
 * });
 * const result = await codec.decode(bytes);
 * if (result.ok) console.log(result.heartbeat.from); else console.log("dropped:", result.reason);
 * ```
 */

import { isIP } from "node:net";
import {
  type Heartbeat,
  HEARTBEAT_VERSION,
  type Lineage,
  type RedisReport,
  ROLES,
} from "./heartbeat.ts";
import {
  type EnvelopeFormat,
  importEnvelopeKey,
  openEnvelope,
  sealEnvelope,
} from "./signed_envelope.ts";

/**
 * The largest datagram the hive sends or accepts, in bytes. 1200 fits in any path MTU (IPv6's
 * minimum is 1280 including headers), so a heartbeat is never fragmented. The largest valid
 * heartbeat (every field at its limit, worst-case JSON escaping, signed) is 1036 bytes, so
 * encode's check only fires on a programmer error.
 */
export const MAX_DATAGRAM_BYTES = 1200;

/** The 4 bytes every heartbeat datagram starts with: ASCII `RHIV`. */
export const MAGIC: Uint8Array = new Uint8Array([0x52, 0x48, 0x49, 0x56]);

export { FLAG_SIGNED, HEADER_BYTES, TAG_BYTES } from "./signed_envelope.ts";

/** Longest accepted address string (`from`, `leader`, `lineage.bornBy`), zone id included. */
export const MAX_ADDRESS_CHARS = 64;

/** Longest accepted `bootId` (lowercase hex). */
export const MAX_BOOT_ID_CHARS = 64;

/** Longest accepted redis `runId` / `replId` (redis uses 40 hex characters). */
export const MAX_REDIS_ID_CHARS = 64;

/** Largest accepted `groupSize`: the most nodes a hive group is designed for. */
export const MAX_GROUP_SIZE = 1024;

/** Every reason a datagram can be dropped for; the runtime keeps one counter per reason. */
export const DROP_REASONS = [
  /** Longer than {@link MAX_DATAGRAM_BYTES}. */
  "oversized",
  /** Shorter than the header, or (signed) shorter than header plus tag. */
  "truncated",
  /** Does not start with {@link MAGIC}: not a hive datagram. */
  "bad-magic",
  /** Version byte is not {@link HEARTBEAT_VERSION}. */
  "wrong-version",
  /** Flag bits this version does not define are set. */
  "unknown-flags",
  /** The codec has a secret and the datagram is not signed. */
  "unsigned",
  /** The codec has no secret and the datagram is signed. */
  "unexpected-signature",
  /** The tag does not match (tampered, or signed with another secret). */
  "bad-signature",
  /** The payload is not UTF-8 JSON. */
  "malformed",
  /** The JSON is not a valid heartbeat (type, range, unknown or missing key). */
  "invalid-field",
] as const;

/** Why a datagram was dropped: one of {@link DROP_REASONS}. */
export type DropReason = (typeof DROP_REASONS)[number];

/** The outcome of decoding one datagram. */
export type DecodeResult =
  | { ok: true; heartbeat: Heartbeat }
  | { ok: false; reason: DropReason };

/** Encodes and decodes heartbeats, with or without a shared secret. */
export interface HeartbeatCodec {
  /** Whether datagrams are signed (and must be signed) with a secret. */
  readonly signed: boolean;
  /**
   * Encodes one heartbeat. Throws (programmer error) when the heartbeat is invalid or its
   * datagram would exceed {@link MAX_DATAGRAM_BYTES}.
   */
  encode(heartbeat: Heartbeat): Promise<Uint8Array>;
  /** Decodes one datagram. Never throws: a bad datagram gives a {@link DropReason}. */
  decode(bytes: Uint8Array): Promise<DecodeResult>;
}

/** The heartbeat's envelope (signed_envelope.ts). */
const HEARTBEAT_FORMAT: EnvelopeFormat = {
  magic: MAGIC,
  version: HEARTBEAT_VERSION,
  maxBytes: MAX_DATAGRAM_BYTES,
  name: { what: "heartbeat", limit: "MAX_DATAGRAM_BYTES" },
};

/**
 * Creates a codec. With a secret (used as its UTF-8 bytes, exactly as given: trim it first),
 * every datagram is signed and must be signed; with `null`, none is and none may be.
 *
 * @example
 * ```ts
 * const open = await createCodec(null);
 * const signedCodec = await createCodec("s3cret");
 * ```
 */
export async function createCodec(secret: string | null): Promise<HeartbeatCodec> {
  const key = await importEnvelopeKey(secret, "createCodec");
  return {
    signed: key !== null,
    encode: (heartbeat) => encodeHeartbeat(key, heartbeat),
    decode: (input) => decodeHeartbeat(key, input),
  };
}

/** A heartbeat as one datagram: header, JSON payload and, with `key`, the HMAC tag. */
async function encodeHeartbeat(key: CryptoKey | null, heartbeat: Heartbeat): Promise<Uint8Array> {
  const problem = heartbeatProblem(heartbeat);
  if (problem !== null) throw new Error(`encode: invalid heartbeat: ${problem}`);
  return await sealEnvelope(key, HEARTBEAT_FORMAT, canonical(heartbeat));
}

/** One datagram back to a heartbeat, or why it is dropped; with `key`, its tag must verify. */
async function decodeHeartbeat(key: CryptoKey | null, input: Uint8Array): Promise<DecodeResult> {
  const opened = await openEnvelope(key, HEARTBEAT_FORMAT, input);
  if (!opened.ok) return opened;
  if (heartbeatProblem(opened.value) !== null) return { ok: false, reason: "invalid-field" };
  return { ok: true, heartbeat: canonical(opened.value as Heartbeat) };
}

/** A fresh copy with exactly the heartbeat's keys, in the wire order. */
function canonical(hb: Heartbeat): Heartbeat {
  const r = hb.redis;
  const lineage: Lineage | null = r.lineage === null
    ? null
    : { bornMs: r.lineage.bornMs, bornBy: r.lineage.bornBy };
  const redis: RedisReport = {
    up: r.up,
    role: r.role,
    runId: r.runId,
    replId: r.replId,
    offset: r.offset,
    linkUp: r.linkUp,
    loading: r.loading,
    lineage,
  };
  return {
    version: hb.version,
    from: hb.from,
    electionPort: hb.electionPort,
    redisPort: hb.redisPort,
    bootId: hb.bootId,
    seq: hb.seq,
    sentMs: hb.sentMs,
    role: hb.role,
    leader: hb.leader,
    electionStartMs: hb.electionStartMs,
    leaderSinceMs: hb.leaderSinceMs,
    groupSize: hb.groupSize,
    handoffTo: hb.handoffTo,
    redis,
  };
}

const HEARTBEAT_KEYS = [
  "version",
  "from",
  "electionPort",
  "redisPort",
  "bootId",
  "seq",
  "sentMs",
  "role",
  "leader",
  "electionStartMs",
  "leaderSinceMs",
  "groupSize",
  "handoffTo",
  "redis",
];
const REDIS_KEYS = ["up", "role", "runId", "replId", "offset", "linkUp", "loading", "lineage"];
const LINEAGE_KEYS = ["bornMs", "bornBy"];
const REDIS_ROLES: readonly string[] = ["master", "replica", "unknown"];
const BOOT_ID_PATTERN = /^[0-9a-f]+$/;
/** Printable ASCII without space: what redis ids are made of. */
const REDIS_ID_PATTERN = /^[\x21-\x7e]+$/;

/**
 * Checks a value against every rule of the heartbeat's fields. Returns null when valid, else a
 * short description of the first problem (for encode's error; decode only counts it).
 *
 * @example
 * ```ts
 * heartbeatProblem({ version: 1 }); // "from: missing"
 * heartbeatProblem("hello"); // "not an object"
 * ```
 */
export function heartbeatProblem(value: unknown): string | null {
  if (!isPlainObject(value)) return "not an object";
  const keysProblem = exactKeys(value, HEARTBEAT_KEYS);
  if (keysProblem !== null) return keysProblem;
  const hb = value as Record<string, unknown>;
  if (hb.version !== HEARTBEAT_VERSION) return `version: must be ${HEARTBEAT_VERSION}`;
  if (!isAddress(hb.from)) return "from: must be an IPv4 or IPv6 address";
  if (!isPort(hb.electionPort)) return "electionPort: must be an integer 1..65535";
  if (!isPort(hb.redisPort)) return "redisPort: must be an integer 1..65535";
  if (
    typeof hb.bootId !== "string" || hb.bootId.length > MAX_BOOT_ID_CHARS ||
    !BOOT_ID_PATTERN.test(hb.bootId)
  ) {
    return `bootId: must be 1..${MAX_BOOT_ID_CHARS} lowercase hex characters`;
  }
  if (!isCount(hb.seq)) return "seq: must be a non-negative safe integer";
  if (!isCount(hb.sentMs)) return "sentMs: must be a non-negative safe integer";
  if (!(ROLES as readonly unknown[]).includes(hb.role)) return `role: must be one of ${ROLES}`;
  if (hb.leader !== null && !isAddress(hb.leader)) return "leader: must be an address or null";
  if (hb.electionStartMs !== null && !isCount(hb.electionStartMs)) {
    return "electionStartMs: must be a non-negative safe integer or null";
  }
  if (hb.leaderSinceMs !== null && !isCount(hb.leaderSinceMs)) {
    return "leaderSinceMs: must be a non-negative safe integer or null";
  }
  if (!isIntegerIn(hb.groupSize, 0, MAX_GROUP_SIZE)) {
    return `groupSize: must be an integer 0..${MAX_GROUP_SIZE}`;
  }
  if (hb.handoffTo !== null && !isAddress(hb.handoffTo)) {
    return "handoffTo: must be an address or null";
  }
  const redisProblem = redisReportProblem(hb.redis);
  return redisProblem === null ? null : `redis.${redisProblem}`;
}

function redisReportProblem(value: unknown): string | null {
  if (!isPlainObject(value)) return "not an object";
  const keysProblem = exactKeys(value, REDIS_KEYS);
  if (keysProblem !== null) return keysProblem;
  const r = value as Record<string, unknown>;
  if (typeof r.up !== "boolean") return "up: must be a boolean";
  if (!REDIS_ROLES.includes(r.role as string)) return `role: must be one of ${REDIS_ROLES}`;
  if (r.runId !== null && !isRedisId(r.runId)) return "runId: must be a redis id or null";
  if (r.replId !== null && !isRedisId(r.replId)) return "replId: must be a redis id or null";
  if (!isCount(r.offset)) return "offset: must be a non-negative safe integer";
  if (typeof r.linkUp !== "boolean") return "linkUp: must be a boolean";
  if (typeof r.loading !== "boolean") return "loading: must be a boolean";
  if (r.lineage === null) return null;
  if (!isPlainObject(r.lineage)) return "lineage: must be an object or null";
  const lineageKeysProblem = exactKeys(r.lineage, LINEAGE_KEYS);
  if (lineageKeysProblem !== null) return `lineage.${lineageKeysProblem}`;
  const l = r.lineage as Record<string, unknown>;
  if (!isCount(l.bornMs)) return "lineage.bornMs: must be a non-negative safe integer";
  if (!isAddress(l.bornBy)) return "lineage.bornBy: must be an address";
  return null;
}

function isPlainObject(value: unknown): value is object {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** Own enumerable keys are exactly `expected` (no missing, no unknown ones). */
function exactKeys(value: object, expected: readonly string[]): string | null {
  const keys = Object.keys(value);
  for (const key of keys) {
    if (!expected.includes(key)) return `unknown key ${JSON.stringify(key.slice(0, 40))}`;
  }
  for (const key of expected) {
    if (!Object.hasOwn(value, key)) return `${key}: missing`;
  }
  return null;
}

function isAddress(value: unknown): value is string {
  return typeof value === "string" && value.length <= MAX_ADDRESS_CHARS && isIP(value) !== 0;
}

function isIntegerIn(value: unknown, min: number, max: number): value is number {
  return Number.isInteger(value) && (value as number) >= min && (value as number) <= max;
}

function isPort(value: unknown): value is number {
  return isIntegerIn(value, 1, 65535);
}

/** A non-negative safe integer: sequence numbers, offsets, timestamps. */
function isCount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

function isRedisId(value: unknown): value is string {
  return typeof value === "string" && value.length <= MAX_REDIS_ID_CHARS &&
    REDIS_ID_PATTERN.test(value);
}
