/**
 * The envelope every election datagram travels in, heartbeats (`codec.ts`, magic `RHIV`) and the
 * fence's leases (`lease.ts`, magic `RHLS`) alike: one layout, one secret, one set of drop
 * reasons, written once here. `lib/election/envelope_filter.ts` checks the same envelope
 * synchronously in the UDP receive loop and must give the same reasons.
 *
 * | offset | size | content |
 * |---|---|---|
 * | 0 | 4 | magic ({@link EnvelopeFormat.magic}) |
 * | 4 | 1 | wire version ({@link EnvelopeFormat.version}) |
 * | 5 | 1 | flags: bit 0 = signed ({@link FLAG_SIGNED}); every other bit must be 0 |
 * | 6 | n | payload: the message as UTF-8 JSON |
 * | 6+n | 32 | when signed: HMAC-SHA256 tag over bytes `0 .. 6+n` |
 *
 * @example
 * ```ts
 * import { importEnvelopeKey, openEnvelope, sealEnvelope } from "./signed_envelope.ts";
 * const format = {
 *   magic: new Uint8Array([0x52, 0x48, 0x4c, 0x53]),
 *   version: 1,
 *   maxBytes: 512,
 *   name: { what: "lease", limit: "MAX_LEASE_BYTES" },
 * };
 * const key = await importEnvelopeKey("s3cret", "example");
 * const bytes = await sealEnvelope(key, format, { hello: "hive" });
 * const opened = await openEnvelope(key, format, bytes);
 * if (opened.ok) console.log(opened.value); // { hello: "hive" }
 * ```
 */

import type { DropReason } from "./codec.ts";

/** Length of every envelope's magic, in bytes. */
export const MAGIC_BYTES = 4;
/** Bytes before the payload: magic, version, flags. */
export const HEADER_BYTES = MAGIC_BYTES + 2;
/** Flags bit 0: the datagram ends with an HMAC-SHA256 tag. */
export const FLAG_SIGNED = 0x01;
/** Length of the HMAC-SHA256 tag, in bytes. */
export const TAG_BYTES = 32;

/** What tells one kind of datagram from another: its magic, its version and its size limit. */
export interface EnvelopeFormat {
  /** The first {@link MAGIC_BYTES} bytes. */
  magic: Uint8Array;
  /** The version byte. */
  version: number;
  /** Largest datagram accepted or sent, in bytes. */
  maxBytes: number;
  /** What the datagram carries, and its size limit's name (for the encode error). */
  name: { what: string; limit: string };
}

/** The outcome of opening one envelope: its parsed JSON payload, or why it is dropped. */
export type OpenedEnvelope =
  | { ok: true; value: unknown }
  | { ok: false; reason: DropReason };

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * The HMAC key of `secret` (its UTF-8 bytes, exactly as given: trim it first), or null without a
 * secret. An empty secret is refused, naming `who`.
 */
export async function importEnvelopeKey(
  secret: string | null,
  who: string,
): Promise<CryptoKey | null> {
  if (secret !== null && secret.length === 0) {
    throw new Error(`${who}: the secret is empty; pass null for no secret`);
  }
  return secret === null ? null : await crypto.subtle.importKey(
    "raw",
    utf8Encoder.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign", "verify"],
  );
}

/**
 * `value` as a datagram: header, `JSON.stringify(value)` and, with `key`, the HMAC tag. Throws
 * (a programmer error) when it would exceed {@link EnvelopeFormat.maxBytes}.
 */
export async function sealEnvelope(
  key: CryptoKey | null,
  format: EnvelopeFormat,
  value: unknown,
): Promise<Uint8Array> {
  const payload = utf8Encoder.encode(JSON.stringify(value));
  const total = HEADER_BYTES + payload.length + (key === null ? 0 : TAG_BYTES);
  if (total > format.maxBytes) {
    throw new Error(
      `encode: ${format.name.what} datagram is ${total} bytes, over ${format.name.limit} ` +
        `(${format.maxBytes})`,
    );
  }
  const out = new Uint8Array(total);
  out.set(format.magic, 0);
  out[MAGIC_BYTES] = format.version;
  out[MAGIC_BYTES + 1] = key === null ? 0 : FLAG_SIGNED;
  out.set(payload, HEADER_BYTES);
  if (key !== null) {
    const signedEnd = HEADER_BYTES + payload.length;
    const tag = await crypto.subtle.sign("HMAC", key, out.subarray(0, signedEnd));
    out.set(new Uint8Array(tag), signedEnd);
  }
  return out;
}

/**
 * One datagram's payload, parsed, or why it is dropped: size, magic, version, flags, the tag
 * (with `key` it must be signed and verify; without, it must not be signed) and UTF-8 JSON.
 * Never throws.
 */
export async function openEnvelope(
  key: CryptoKey | null,
  format: EnvelopeFormat,
  input: Uint8Array,
): Promise<OpenedEnvelope> {
  if (input.length > format.maxBytes) return drop("oversized");
  for (let i = 0; i < MAGIC_BYTES && i < input.length; i++) {
    if (input[i] !== format.magic[i]) return drop("bad-magic");
  }
  if (input.length < HEADER_BYTES) return drop("truncated");
  if (input[MAGIC_BYTES] !== format.version) return drop("wrong-version");
  const flags = input[MAGIC_BYTES + 1] ?? 0;
  if ((flags & ~FLAG_SIGNED) !== 0) return drop("unknown-flags");
  const isSigned = (flags & FLAG_SIGNED) !== 0;
  // Header and payload. When signed, a copy: the bytes verified are then the bytes parsed,
  // even if the caller reuses its buffer while verify awaits.
  let envelope: Uint8Array = input;
  if (key === null) {
    if (isSigned) return drop("unexpected-signature");
  } else {
    if (!isSigned) return drop("unsigned");
    if (input.length < HEADER_BYTES + TAG_BYTES) return drop("truncated");
    const payloadEnd = input.length - TAG_BYTES;
    const copy = new Uint8Array(input.subarray(0, payloadEnd));
    const tag = new Uint8Array(input.subarray(payloadEnd));
    if (!(await crypto.subtle.verify("HMAC", key, tag, copy))) return drop("bad-signature");
    envelope = copy;
  }
  try {
    return { ok: true, value: JSON.parse(utf8Decoder.decode(envelope.subarray(HEADER_BYTES))) };
  } catch {
    return drop("malformed");
  }
}

function drop(reason: DropReason): OpenedEnvelope {
  return { ok: false, reason };
}
