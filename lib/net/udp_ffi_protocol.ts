/**
 * The receive loop's sizes and the decoding of a sender's socket address (lib/net/udp_ffi.ts).
 *
 * @example
 * ```ts
 * import { RECV_BUFFER_BYTES } from "./udp_ffi_protocol.ts";
 * const buf = new Uint8Array(RECV_BUFFER_BYTES);
 * ```
 */

import { AF_INET } from "../proxy/epoll/libc.ts";
import { normalizeAddress } from "./udp_transport.ts";

/** How long one `poll` of the receive loop waits before it looks at the stop flag. */
export const RECV_TIMEOUT_MS = 100;

/** Largest datagram received whole (the UDP maximum); larger are truncated and dropped. */
export const RECV_BUFFER_BYTES = 65_536;

/**
 * The sender of a `struct sockaddr_in`/`sockaddr_in6`, as peers announce themselves.
 *
 * @example
 * ```ts
 * senderOf(new Uint8Array([2, 0, 0x1c, 0xcb, 127, 0, 0, 11, 0, 0, 0, 0, 0, 0, 0, 0]));
 * // { host: "127.0.0.11", port: 7371 }
 * ```
 */
export function senderOf(addr: Uint8Array): { host: string; port: number } {
  const view = new DataView(addr.buffer, addr.byteOffset, addr.byteLength);
  const family = view.getUint16(0, true);
  const port = view.getUint16(2, false);
  if (family === AF_INET) return { host: addr.subarray(4, 8).join("."), port };
  const ip6 = addr.subarray(8, 24);
  if (ip6.subarray(0, 10).every((b) => b === 0) && ip6[10] === 0xff && ip6[11] === 0xff) {
    return { host: ip6.subarray(12, 16).join("."), port }; // IPv4-mapped: the IPv4 address
  }
  const groups: string[] = [];
  for (let i = 0; i < 8; i++) groups.push(view.getUint16(8 + 2 * i, false).toString(16));
  let host = groups.join(":");
  try {
    host = new URL(`http://[${host}]/`).hostname.slice(1, -1);
  } catch { /* keep the long form */ }
  return { host: normalizeAddress(host), port };
}
