/**
 * Self-address detection: which of the resolved peer addresses is this node's own.
 *
 * Without `--announce-ip`/`POD_IP`, a hive finds its announce address by matching the addresses
 * its Service name resolves to against the addresses of its own network interfaces. Exactly one
 * match is required: none (this pod is not (yet) in the answer, or it sits behind NAT) and
 * several (ambiguous) both fail with a message that says to set the address explicitly.
 *
 * @example
 * ```ts
 * import { detectSelfAddress } from "./self_address.ts";
 * const self = detectSelfAddress(["10.0.0.11", "10.0.0.12"], [{ address: "10.0.0.12" }]);
 * console.log(self); // "10.0.0.12"
 * ```
 */

import { canonicalIp } from "./address.ts";

/** The part of `Deno.NetworkInterfaceInfo` detection needs. */
export interface InterfaceAddress {
  /** The interface address (IPv4 or IPv6; one with a zone suffix is never this node's id). */
  address: string;
}

/**
 * Detection failed: no candidate, or more than one, is a local address.
 *
 * @example
 * ```ts
 * import { detectSelfAddress, SelfAddressError } from "./self_address.ts";
 * try {
 *   detectSelfAddress(["10.0.0.11"], []);
 * } catch (e) {
 *   console.log(e instanceof SelfAddressError, (e as SelfAddressError).matches); // true []
 * }
 * ```
 */
export class SelfAddressError extends Error {
  /** Always `"SelfAddressError"`. */
  override name = "SelfAddressError";
  /** The candidates that matched a local interface (empty when none did). */
  readonly matches: readonly string[];

  /** Builds the error with its message and the matching candidates. */
  constructor(message: string, matches: readonly string[]) {
    super(message);
    this.matches = matches;
  }
}

/**
 * The one candidate address that belongs to a local interface, as given in `candidates`.
 * Throws {@link SelfAddressError} when none or several do, and a TypeError for a candidate that
 * is not an IP address.
 *
 * @param candidates the resolved peer addresses (this node's own is expected among them)
 * @param interfaces the local interface addresses; `Deno.networkInterfaces()` by default
 *   (needs `--allow-sys`)
 *
 * @example
 * ```ts
 * import { detectSelfAddress } from "./self_address.ts";
 * detectSelfAddress(["fd00::11", "fd00::12"], [{ address: "127.0.0.1" }, { address: "FD00::11" }]);
 * // "fd00::11"
 * ```
 */
export function detectSelfAddress(
  candidates: readonly string[],
  interfaces: readonly InterfaceAddress[] = Deno.networkInterfaces(),
): string {
  const local = new Set<string>();
  for (const { address } of interfaces) {
    const canonical = canonicalIp(address);
    if (canonical !== null) local.add(canonical);
  }
  const matches: string[] = [];
  const seen = new Set<string>();
  for (const candidate of candidates) {
    const canonical = canonicalIp(candidate);
    if (canonical === null) throw new TypeError(`peer address "${candidate}" is not an IP address`);
    if (seen.has(canonical)) continue;
    seen.add(canonical);
    if (local.has(canonical)) matches.push(candidate);
  }
  const hint = "set --announce-ip (or the POD_IP environment variable) to this node's address";
  const [only, ...others] = matches;
  if (only === undefined) {
    const resolved = candidates.length === 0 ? "no addresses" : candidates.join(", ");
    throw new SelfAddressError(
      `cannot detect this node's address: none of the resolved peer addresses (${resolved}) ` +
        `belongs to a local interface (${[...local].join(", ") || "none"}); ${hint}`,
      [],
    );
  }
  if (others.length > 0) {
    throw new SelfAddressError(
      `cannot detect this node's address: it is ambiguous, several resolved peer addresses ` +
        `belong to local interfaces (${matches.join(", ")}); ${hint}`,
      matches,
    );
  }
  return only;
}
