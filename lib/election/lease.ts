/**
 * The lease datagrams behind the fence (`fence.ts`): a leader's **probe**, sent to every peer
 * every `leaseProbeMs` (25 ms at the defaults), and a follower's **echo** of it, sent at once to
 * the leader it follows. Both are signed exactly like heartbeats (HMAC-SHA256 with the same
 * secret) and use their own envelope, so the heartbeat's wire format is untouched:
 *
 * | offset | size | content |
 * |---|---|---|
 * | 0 | 4 | magic, ASCII `RHLS` ({@link LEASE_MAGIC}) |
 * | 4 | 1 | wire version ({@link LEASE_VERSION}) |
 * | 5 | 1 | flags: bit 0 = signed; every other bit must be 0 |
 * | 6 | n | payload: the message as UTF-8 JSON, exact keys |
 * | 6+n | 32 | when signed: HMAC-SHA256 tag over bytes `0 .. 6+n` |
 *
 * Replays gain nothing: an echo only ever returns the leader's own send time, which the leader
 * counts for `leaseMs` from that time, so replaying it later counts for nothing; a probe carries
 * the leader's boot id and a sequence number the receiver requires to increase.
 *
 * @example
 * ```ts
 * import { createLeaseCodec } from "./lease.ts";
 * const codec = await createLeaseCodec("s3cret");
 * const bytes = await codec.encode({
 *   kind: "probe", from: "127.0.0.11", bootId: "4f2a9c0d1e7b3a55", seq: 1, sentMono: 1234,
 *   fenced: true,
 * });
 * const r = await codec.decode(bytes);
 * if (r.ok) console.log(r.message.kind); // "probe"
 * ```
 */

import { isIP } from "node:net";
import type { DropReason } from "./codec.ts";
import {
  type EnvelopeFormat,
  importEnvelopeKey,
  openEnvelope,
  sealEnvelope,
} from "./signed_envelope.ts";

/** The 4 bytes every lease datagram starts with: ASCII `RHLS`. */
export const LEASE_MAGIC: Uint8Array = new Uint8Array([0x52, 0x48, 0x4c, 0x53]);
/** Lease wire version. */
export const LEASE_VERSION = 1;
/** Largest lease datagram accepted, in bytes (a signed one is about 200). */
export const MAX_LEASE_BYTES = 512;

const MAX_ADDRESS_CHARS = 64;
const MAX_BOOT_ID_CHARS = 64;
const BOOT_ID_PATTERN = /^[0-9a-f]+$/;

/** A leader's probe: "I lead; echo this send time if you follow me". */
export interface LeaseProbe {
  kind: "probe";
  /** The leader's announced address. */
  from: string;
  /** The leader's boot id. */
  bootId: string;
  /** Increases with every probe of this boot. */
  seq: number;
  /** The leader's monotonic clock when it sent the probe (only the leader interprets it). */
  sentMono: number;
  /** The leader is fenced now (followers leave a leader fenced for `failureMs`). */
  fenced: boolean;
}

/** A follower's echo of one probe. */
export interface LeaseEcho {
  kind: "echo";
  /** The follower's announced address. */
  from: string;
  /** The follower's boot id. */
  bootId: string;
  /** The leader echoed. */
  to: string;
  /** The leader's boot id, from the probe. */
  leaderBoot: string;
  /** The probe's `sentMono`, unchanged. */
  sentMono: number;
}

/** One lease datagram's content. */
export type LeaseMessage = LeaseProbe | LeaseEcho;

/** The outcome of decoding one lease datagram. */
export type LeaseDecodeResult =
  | { ok: true; message: LeaseMessage }
  | { ok: false; reason: DropReason };

/** Encodes and decodes lease datagrams. */
export interface LeaseCodec {
  encode(message: LeaseMessage): Promise<Uint8Array>;
  /** Never throws: a bad datagram gives a drop reason (the heartbeat codec's list). */
  decode(bytes: Uint8Array): Promise<LeaseDecodeResult>;
}

/** True when a datagram starts with {@link LEASE_MAGIC} (route it to the lease codec). */
export function isLeaseDatagram(bytes: Uint8Array): boolean {
  if (bytes.length < LEASE_MAGIC.length) return false;
  for (let i = 0; i < LEASE_MAGIC.length; i++) if (bytes[i] !== LEASE_MAGIC[i]) return false;
  return true;
}

/** The lease's envelope (signed_envelope.ts): the heartbeat's layout with its own magic. */
const LEASE_FORMAT: EnvelopeFormat = {
  magic: LEASE_MAGIC,
  version: LEASE_VERSION,
  maxBytes: MAX_LEASE_BYTES,
  name: { what: "lease", limit: "MAX_LEASE_BYTES" },
};

/**
 * Creates a lease codec; with a secret every datagram is signed and must be, as with
 * `createCodec` for heartbeats (the same secret).
 */
export async function createLeaseCodec(secret: string | null): Promise<LeaseCodec> {
  const key = await importEnvelopeKey(secret, "createLeaseCodec");
  return {
    async encode(message: LeaseMessage): Promise<Uint8Array> {
      const problem = leaseProblem(message);
      if (problem !== null) throw new Error(`encode: invalid lease message: ${problem}`);
      return await sealEnvelope(key, LEASE_FORMAT, canonical(message));
    },
    async decode(input: Uint8Array): Promise<LeaseDecodeResult> {
      const opened = await openEnvelope(key, LEASE_FORMAT, input);
      if (!opened.ok) return opened;
      if (leaseProblem(opened.value) !== null) return { ok: false, reason: "invalid-field" };
      return { ok: true, message: canonical(opened.value as LeaseMessage) };
    },
  };
}

function canonical(m: LeaseMessage): LeaseMessage {
  return m.kind === "probe"
    ? {
      kind: "probe",
      from: m.from,
      bootId: m.bootId,
      seq: m.seq,
      sentMono: m.sentMono,
      fenced: m.fenced,
    }
    : {
      kind: "echo",
      from: m.from,
      bootId: m.bootId,
      to: m.to,
      leaderBoot: m.leaderBoot,
      sentMono: m.sentMono,
    };
}

const PROBE_KEYS = ["kind", "from", "bootId", "seq", "sentMono", "fenced"];
const ECHO_KEYS = ["kind", "from", "bootId", "to", "leaderBoot", "sentMono"];

/**
 * Checks a value against every rule of a lease message; null when valid, else the first
 * problem in words.
 *
 * @example
 * ```ts
 * leaseProblem({ kind: "probe" }); // "keys: must be exactly kind, from, bootId, seq, sentMono, fenced"
 * ```
 */
export function leaseProblem(value: unknown): string | null {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return "not an object";
  const v = value as Record<string, unknown>;
  const expected = v.kind === "probe" ? PROBE_KEYS : v.kind === "echo" ? ECHO_KEYS : null;
  if (expected === null) return 'kind: must be "probe" or "echo"';
  const keys = Object.keys(v);
  if (keys.length !== expected.length || !expected.every((k) => Object.hasOwn(v, k))) {
    return `keys: must be exactly ${expected.join(", ")}`;
  }
  if (!isAddress(v.from)) return "from: must be an IPv4 or IPv6 address";
  if (!isBootId(v.bootId)) return "bootId: must be lowercase hex";
  if (!(Number.isFinite(v.sentMono) && (v.sentMono as number) >= 0)) {
    return "sentMono: must be a non-negative number";
  }
  if (v.kind === "probe") {
    if (!(Number.isSafeInteger(v.seq) && (v.seq as number) >= 0)) return "seq: must be a count";
    if (typeof v.fenced !== "boolean") return "fenced: must be a boolean";
    return null;
  }
  if (!isAddress(v.to)) return "to: must be an IPv4 or IPv6 address";
  if (!isBootId(v.leaderBoot)) return "leaderBoot: must be lowercase hex";
  return null;
}

function isAddress(value: unknown): value is string {
  return typeof value === "string" && value.length <= MAX_ADDRESS_CHARS && isIP(value) !== 0;
}

function isBootId(value: unknown): value is string {
  return typeof value === "string" && value.length > 0 && value.length <= MAX_BOOT_ID_CHARS &&
    BOOT_ID_PATTERN.test(value);
}
