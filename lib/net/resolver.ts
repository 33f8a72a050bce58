/**
 * Peer resolution: turn the headless Service name into the sorted set of peer addresses.
 *
 * A headless Service answers one A (or AAAA) record per ready pod. A {@link PeerResolver}
 * asks for both record types and returns their union, sorted and de-duplicated. The contract
 * every implementation keeps:
 *
 * - a name with no records of either type (NXDOMAIN, or NODATA for both) resolves to `[]`;
 * - NXDOMAIN/NODATA for one type is not an error when the other type answers;
 * - any other trouble (a server that does not answer within the timeout, a refused query, a
 *   server failure) rejects with a {@link ResolveError}, so a caller can tell "the name has no
 *   peers" from "we could not ask".
 *
 * {@link DnsResolver} asks a real DNS server; {@link StaticResolver} answers from memory for
 * unit tests. `tests/net/resolver_test.ts` runs the same contract against both.
 *
 * @example
 * ```ts
 * import { DnsResolver } from "./resolver.ts";
 * const resolver = new DnsResolver({ nameServer: { ipAddr: "127.0.2.61", port: 15300 } });
 * const peers = await resolver.resolve("redis-hive.default.svc.cluster.local");
 * // e.g. ["10.0.0.11", "10.0.0.12", "fd00::13"]
 * ```
 */

import { isIP } from "node:net";
import { formatHostPort, normalizeAddresses } from "./address.ts";
import { checkPositive } from "../common/assert.ts";

/** How long one resolution (both record types, asked in parallel) may take before it fails. */
export const DNS_TIMEOUT_MS = 1000;

/** Longest DNS name accepted (RFC 1035: 253 characters in text form, without the final dot). */
export const DNS_NAME_MAX_LENGTH = 253;

/**
 * A DNS server to ask instead of the system resolver, in `Deno.resolveDns`'s shape (`--dns-server`
 * is parsed by `config.ts` into `{host, port}`: pass `{ ipAddr: host, port }`).
 */
export interface DnsServer {
  /** The server's IPv4 or IPv6 address. */
  ipAddr: string;
  /** The server's UDP/TCP port (53 for a normal server). */
  port: number;
}

/**
 * Resolves a name to the set of peer addresses (A and AAAA records).
 *
 * @example
 * ```ts
 * import type { PeerResolver } from "./resolver.ts";
 * async function peersOf(resolver: PeerResolver): Promise<string[]> {
 *   return await resolver.resolve("redis-hive");
 * }
 * ```
 */
export interface PeerResolver {
  /**
   * The name's A and AAAA addresses, sorted and de-duplicated; `[]` when the name has none.
   * Rejects with a {@link ResolveError} when the answer could not be obtained.
   */
  resolve(name: string): Promise<string[]>;
}

/**
 * A resolution that could not be completed (timeout, refused, server failure). Not thrown for
 * a name that simply has no records.
 *
 * @example
 * ```ts
 * import { ResolveError } from "./resolver.ts";
 * const e = new ResolveError("redis-hive", "timed out after 1000 ms");
 * console.log(e.message); // resolving "redis-hive" failed: timed out after 1000 ms
 * ```
 */
export class ResolveError extends Error {
  /** Always `"ResolveError"`. */
  override name = "ResolveError";
  /** The name that was being resolved. */
  readonly hostname: string;

  /** Builds the error for `hostname` with a short `reason`; `cause` keeps the underlying error. */
  constructor(hostname: string, reason: string, options?: ErrorOptions) {
    super(`resolving "${hostname}" failed: ${reason}`, options);
    this.hostname = hostname;
  }
}

/** Throws a clear error for a name that no resolver should be asked about. */
function checkName(name: string): void {
  if (typeof name !== "string" || name.length === 0) {
    throw new TypeError("the name to resolve must be a non-empty string");
  }
  if (name.length > DNS_NAME_MAX_LENGTH + 1) {
    throw new TypeError(
      `the name to resolve is ${name.length} characters, longer than ${DNS_NAME_MAX_LENGTH}`,
    );
  }
}

/** Options of {@link DnsResolver}. */
export interface DnsResolverOptions {
  /** The server to ask; the system resolver (`/etc/resolv.conf`) when absent. */
  nameServer?: DnsServer;
  /** Deadline for one resolution (both record types); default {@link DNS_TIMEOUT_MS}. */
  timeoutMs?: number;
}

/**
 * A {@link PeerResolver} that asks a real DNS server with `Deno.resolveDns`, A and AAAA in
 * parallel, under one deadline, so a server that stops answering fails fast.
 *
 * @example
 * ```ts
 * import { DnsResolver } from "./resolver.ts";
 * const resolver = new DnsResolver({ nameServer: { ipAddr: "127.0.2.61", port: 15300 }, timeoutMs: 500 });
 * await resolver.resolve("redis-hive"); // e.g. ["127.0.2.71", "127.0.2.72"]
 * ```
 */
export class DnsResolver implements PeerResolver {
  /** The configured server, or undefined for the system resolver. */
  readonly nameServer: DnsServer | undefined;
  /** The deadline for one resolution, in milliseconds. */
  readonly timeoutMs: number;

  /** Validates the options; throws on a bad server or timeout. */
  constructor(options: DnsResolverOptions = {}) {
    const timeoutMs = options.timeoutMs ?? DNS_TIMEOUT_MS;
    checkPositive("DnsResolver", "timeoutMs", timeoutMs);
    const server = options.nameServer;
    if (server !== undefined) {
      if (isIP(server.ipAddr) === 0) {
        throw new TypeError(`DNS server address "${server.ipAddr}" is not an IP address`);
      }
      if (!Number.isInteger(server.port) || server.port < 1 || server.port > 65535) {
        throw new RangeError(`DNS server port ${server.port} is out of range 1-65535`);
      }
    }
    this.nameServer = server === undefined ? undefined : { ...server };
    this.timeoutMs = timeoutMs;
  }

  /** See {@link PeerResolver.resolve}. */
  async resolve(name: string): Promise<string[]> {
    checkName(name);
    const controller = new AbortController();
    // A plain timer (cleared below) rather than AbortSignal.timeout, so no timer outlives the call.
    const timer = setTimeout(() => controller.abort(), this.timeoutMs);
    try {
      const options: Deno.ResolveDnsOptions = { signal: controller.signal };
      if (this.nameServer) options.nameServer = { ...this.nameServer };
      const [a, aaaa] = await Promise.allSettled([
        Deno.resolveDns(name, "A", options),
        Deno.resolveDns(name, "AAAA", options),
      ]);
      const addresses: string[] = [];
      for (const [type, result] of [["A", a], ["AAAA", aaaa]] as const) {
        if (result.status === "fulfilled") {
          addresses.push(...result.value);
        } else if (!(result.reason instanceof Deno.errors.NotFound)) {
          // NotFound is NXDOMAIN or NODATA: "no records of this type", not a failure.
          const reason = controller.signal.aborted
            ? `timed out after ${this.timeoutMs} ms`
            : `${type} query: ${errorText(result.reason)}`;
          throw new ResolveError(name, `${reason}${this.#serverText()}`, { cause: result.reason });
        }
      }
      try {
        return normalizeAddresses(addresses);
      } catch (error) {
        throw new ResolveError(name, `bad answer: ${errorText(error)}`, { cause: error });
      }
    } finally {
      clearTimeout(timer);
    }
  }

  #serverText(): string {
    if (!this.nameServer) return " (system resolver)";
    const { ipAddr, port } = this.nameServer;
    return ` (server ${formatHostPort(ipAddr, port)})`;
  }
}

function errorText(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/**
 * A {@link PeerResolver} answering from memory, for unit tests: names map to address lists,
 * and a name can be made to fail. Unknown names resolve to `[]` (like NXDOMAIN).
 *
 * @example
 * ```ts
 * import { StaticResolver } from "./resolver.ts";
 * const resolver = new StaticResolver({ "redis-hive": ["10.0.0.2", "10.0.0.1"] });
 * await resolver.resolve("redis-hive"); // ["10.0.0.1", "10.0.0.2"]
 * resolver.setFailure("redis-hive", "server down");
 * await resolver.resolve("redis-hive").catch((e) => e.message); // resolving "redis-hive" failed: server down
 * ```
 */
export class StaticResolver implements PeerResolver {
  #records = new Map<string, string[]>();
  #failures = new Map<string, string>();
  /** How many times {@link resolve} was called. */
  calls = 0;

  /** Starts with `records` (name to addresses). */
  constructor(records: Record<string, readonly string[]> = {}) {
    for (const [name, addresses] of Object.entries(records)) this.setRecords(name, addresses);
  }

  /** Replaces the addresses of `name`; an empty list removes the name. Throws on a non-IP. */
  setRecords(name: string, addresses: readonly string[]): void {
    checkName(name);
    normalizeAddresses(addresses); // throws on a non-address
    if (addresses.length === 0) this.#records.delete(name);
    else this.#records.set(name, [...addresses]);
  }

  /** Makes `name` fail with a {@link ResolveError} carrying `reason`; null makes it answer again. */
  setFailure(name: string, reason: string | null): void {
    if (reason === null) this.#failures.delete(name);
    else this.#failures.set(name, reason);
  }

  /** See {@link PeerResolver.resolve}. */
  resolve(name: string): Promise<string[]> {
    this.calls++;
    try {
      checkName(name);
    } catch (error) {
      return Promise.reject(error);
    }
    const failure = this.#failures.get(name);
    if (failure !== undefined) return Promise.reject(new ResolveError(name, failure));
    const addresses = this.#records.get(name) ?? [];
    return Promise.resolve(normalizeAddresses(addresses));
  }
}
