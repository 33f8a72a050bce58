/**
 * The heartbeat envelope checked synchronously, before anything is allocated for a datagram:
 * size, magic, version, flags and the HMAC-SHA256 tag (lib/election/hmac_sha256.ts, which
 * allocates nothing per datagram, in the calling thread). The
 * UDP receive loop (lib/net/udp_ffi.ts) runs it on every datagram in its fixed receive buffer, so junk and badly signed datagrams cost a few microseconds and no memory, and only
 * datagrams that pass it reach the runtime, where lib/election/codec.ts decodes them fully (and
 * checks the tag again).
 *
 * It gives the same reason the codec would for every envelope fault (a property test holds the
 * two equal), and null for a datagram whose envelope is right (its payload is still to be
 * parsed). The write fence's lease datagrams (lib/election/lease.ts: magic `RHLS`, the same
 * layout and the same secret) are checked the same way against their own version and size
 * limit, so a lease reaches the runtime only when its tag is right too.
 *
 * @example
 * ```ts
 * import { createEnvelopeFilter } from "./envelope_filter.ts";
 * const filter = createEnvelopeFilter("s3cret");
 * filter(new TextEncoder().encode("GET / HTTP/1.1")); // "bad-magic"
 * ```
 */

import { HmacSha256 } from "./hmac_sha256.ts";
import {
  type DropReason,
  FLAG_SIGNED,
  HEADER_BYTES,
  MAGIC,
  MAX_DATAGRAM_BYTES,
  TAG_BYTES,
} from "./codec.ts";
import { HEARTBEAT_VERSION } from "./heartbeat.ts";
import { isLeaseDatagram, LEASE_VERSION, MAX_LEASE_BYTES } from "./lease.ts";

/** Checks one datagram's envelope: null when it may be a heartbeat, else why it is not. */
export type EnvelopeFilter = (bytes: Uint8Array) => DropReason | null;

/**
 * A filter for `secret` (its UTF-8 bytes, as the codec uses them), or for no secret (`null`:
 * signed datagrams are refused, as the codec does).
 *
 * @example
 * ```ts
 * const open = createEnvelopeFilter(null);
 * ```
 */
export function createEnvelopeFilter(secret: string | null): EnvelopeFilter {
  if (secret !== null && secret.length === 0) {
    throw new Error("createEnvelopeFilter: the secret is empty; pass null for no secret");
  }
  const hmac = secret === null ? null : new HmacSha256(new TextEncoder().encode(secret));
  return (input: Uint8Array): DropReason | null => {
    // A lease datagram has the heartbeat's layout (4-byte magic, version, flags, payload, tag).
    const lease = isLeaseDatagram(input);
    if (input.length > (lease ? MAX_LEASE_BYTES : MAX_DATAGRAM_BYTES)) return "oversized";
    for (let i = 0; !lease && i < MAGIC.length && i < input.length; i++) {
      if (input[i] !== MAGIC[i]) return "bad-magic";
    }
    if (input.length < HEADER_BYTES) return "truncated";
    if (input[MAGIC.length] !== (lease ? LEASE_VERSION : HEARTBEAT_VERSION)) return "wrong-version";
    const flags = input[MAGIC.length + 1] ?? 0;
    if ((flags & ~FLAG_SIGNED) !== 0) return "unknown-flags";
    const isSigned = (flags & FLAG_SIGNED) !== 0;
    if (hmac === null) return isSigned ? "unexpected-signature" : null;
    if (!isSigned) return "unsigned";
    if (input.length < HEADER_BYTES + TAG_BYTES) return "truncated";
    const payloadEnd = input.length - TAG_BYTES;
    return hmac.verify(input.subarray(0, payloadEnd), input.subarray(payloadEnd))
      ? null
      : "bad-signature";
  };
}
