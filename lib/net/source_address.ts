/**
 * The UDP source check: a heartbeat is heard only from the address it claims to come from.
 *
 * The signature proves that a holder of the secret wrote the datagram, not who sent it: a
 * captured datagram re-sent from elsewhere still verifies. The hive replies to, replicates from
 * and forwards clients to the heartbeat's `from`, so a datagram whose UDP source is another
 * address is dropped (counted as `source-mismatch`) before the election sees it. Together with
 * the signature this means only an address that holds the secret, or that can forge its source
 * address on the pod network (which the replay guard then limits, see docs/security.md), can
 * speak for `from`. The source port is not checked: network plugins that rewrite source ports
 * exist, and the port adds nothing once the address is bound to the signed `from`.
 *
 * @example
 * ```ts
 * import { sourceMatches } from "./source_address.ts";
 * sourceMatches("10.0.0.7", "10.0.0.7"); // true
 * sourceMatches("fd00::7", "fd00:0:0::7"); // true (one address, two spellings)
 * sourceMatches("10.0.0.7", "10.0.0.66"); // false
 * ```
 */

import { isIP } from "node:net";

/** The drop reason counted when {@link sourceMatches} is false. */
export const SOURCE_MISMATCH = "source-mismatch";

/**
 * True when the UDP source address `source` is the address `claimed` (a heartbeat's `from`):
 * equal as IP addresses, whatever their spelling (IPv6 zero compression and case, an
 * IPv4-mapped IPv6 source for an IPv4 claim).
 *
 * @example
 * ```ts
 * sourceMatches("127.0.0.11", "::ffff:127.0.0.11"); // true
 * ```
 */
export function sourceMatches(claimed: string, source: string): boolean {
  const a = canonicalAddress(claimed);
  const b = canonicalAddress(source);
  return a !== null && a === b;
}

/** One spelling per address; null when `text` is not an IP literal. */
function canonicalAddress(text: string): string | null {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(text);
  const address = mapped?.[1] ?? text;
  const family = isIP(address);
  if (family === 4) return address;
  if (family !== 6) return null;
  const zone = address.indexOf("%");
  const bare = zone < 0 ? address : address.slice(0, zone);
  try {
    const host = new URL(`http://[${bare}]/`).hostname;
    return host.slice(1, -1) + (zone < 0 ? "" : address.slice(zone));
  } catch {
    return null;
  }
}
