/**
 * IP addresses, written once: their canonical text (what node ids, peer sets and the election's
 * tie-break compare), and `host:port` as logs and errors print it.
 *
 * One rule for IPv6 zone ids (`fe80::1%eth0`): refused everywhere. A node's id is its address
 * as peers see it, and a zone names one host's local interface, so an address with a zone is
 * never a valid id; DNS answers (A/AAAA) never carry one. `--peers`, `--announce-ip`, DNS
 * answers and the interface list of self-address detection all go through {@link canonicalIp}.
 *
 * @example
 * ```ts
 * import { canonicalIp, formatHostPort } from "./address.ts";
 * canonicalIp("FD00:0:0::1"); // "fd00::1"
 * canonicalIp("fe80::1%eth0"); // null
 * formatHostPort("fd00::1", 6379); // "[fd00::1]:6379"
 * ```
 */

import { isIP } from "node:net";

/**
 * The canonical text of an IP address (IPv4 as is, IPv6 lower-case and compressed), or null
 * when `text` is not one, or carries a zone id (see the module documentation).
 *
 * @example
 * ```ts
 * canonicalIp("10.0.0.1"); // "10.0.0.1"
 * canonicalIp("not an ip"); // null
 * ```
 */
export function canonicalIp(text: string): string | null {
  if (typeof text !== "string") return null;
  const family = isIP(text);
  if (family === 4) return text;
  if (family !== 6 || text.includes("%")) return null;
  return new URL(`http://[${text}]/`).hostname.slice(1, -1);
}

/**
 * Canonicalizes ({@link canonicalIp}), sorts and de-duplicates addresses. The order is plain
 * code-unit order (the order of the election's "alphabetically first IP" tie-break), so every
 * node sees the same list. Throws a TypeError naming any non-address.
 *
 * @example
 * ```ts
 * normalizeAddresses(["10.0.0.2", "10.0.0.1", "10.0.0.2", "FD00::1"]);
 * // ["10.0.0.1", "10.0.0.2", "fd00::1"]
 * ```
 */
export function normalizeAddresses(addresses: Iterable<string>): string[] {
  const canonical = new Set<string>();
  const bad: string[] = [];
  for (const address of addresses) {
    const text = canonicalIp(address);
    if (text === null) bad.push(String(address));
    else canonical.add(text);
  }
  if (bad.length > 0) throw new TypeError(`not IP addresses: ${bad.join(", ")}`);
  return [...canonical].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * `host:port`, with an IPv6 host in brackets (`[fd00::1]:6379`), as logs, errors and URLs
 * print an endpoint.
 *
 * @example
 * ```ts
 * formatHostPort("127.0.0.1", 6379); // "127.0.0.1:6379"
 * ```
 */
export function formatHostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}
