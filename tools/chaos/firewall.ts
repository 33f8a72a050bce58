/**
 * Network faults as nftables rules inside a pod's namespace: drop what comes from some
 * addresses, drop what goes to some addresses (together: a symmetric partition; one of them: a
 * one-way partition), and drop a random share of the datagrams to a UDP port (`numgen random`,
 * since this kernel has no `tc netem`).
 *
 * The rules live in one table, {@link FIREWALL_TABLE}, replaced as a whole in one atomic
 * `nft -f` transaction by {@link setFirewall}; an empty rule list removes the table.
 *
 * @example
 * ```ts
 * import { setFirewall } from "./firewall.ts";
 * await setFirewall("rh-p1", [{ kind: "drop-from", addresses: ["192.0.2.12"] }]);
 * await setFirewall("rh-p1", [{ kind: "loss", udpPort: 7379, percent: 20 }]);
 * await setFirewall("rh-p1", []); // healed
 * ```
 */

import { isIP } from "node:net";
import { runCommand } from "./command.ts";
import { namePrefix } from "./network.ts";

/** The nftables table (family inet) holding the harness's rules in a pod namespace. */
export const FIREWALL_TABLE = "rh_chaos";
/** Most addresses in one rule. */
export const MAX_RULE_ADDRESSES = 64;

/** One fault rule. */
export type FirewallRule =
  /** Drop every packet whose source is one of `addresses` (this pod stops hearing them). */
  | { kind: "drop-from"; addresses: readonly string[] }
  /** Drop every packet whose destination is one of `addresses` (they stop hearing this pod). */
  | { kind: "drop-to"; addresses: readonly string[] }
  /** Drop `percent`% of the incoming UDP datagrams to `udpPort`, at random. */
  | { kind: "loss"; udpPort: number; percent: number };

function addressSet(addresses: readonly string[]): string {
  if (addresses.length === 0 || addresses.length > MAX_RULE_ADDRESSES) {
    throw new RangeError(
      `a rule takes 1..${MAX_RULE_ADDRESSES} addresses, got ${addresses.length}`,
    );
  }
  for (const a of addresses) {
    if (isIP(a) !== 4) throw new TypeError(`"${a}" is not an IPv4 address`);
  }
  return `{ ${addresses.join(", ")} }`;
}

/**
 * The `nft -f` script that replaces the harness's table with `rules` (exported for tests).
 *
 * @example
 * ```ts
 * import { firewallScript } from "./firewall.ts";
 * console.log(firewallScript([{ kind: "loss", udpPort: 7379, percent: 20 }]));
 * ```
 */
export function firewallScript(rules: readonly FirewallRule[]): string {
  const input: string[] = [];
  const output: string[] = [];
  for (const rule of rules) {
    switch (rule.kind) {
      case "drop-from":
        input.push(`ip saddr ${addressSet(rule.addresses)} drop`);
        break;
      case "drop-to":
        output.push(`ip daddr ${addressSet(rule.addresses)} drop`);
        break;
      case "loss": {
        const { udpPort, percent } = rule;
        if (!Number.isInteger(udpPort) || udpPort < 1 || udpPort > 65535) {
          throw new RangeError(`udpPort must be 1..65535, got ${udpPort}`);
        }
        if (!Number.isInteger(percent) || percent < 1 || percent > 100) {
          throw new RangeError(`loss percent must be an integer 1..100, got ${percent}`);
        }
        input.push(`udp dport ${udpPort} numgen random mod 100 < ${percent} drop`);
        break;
      }
    }
  }
  // "add table" creates it if missing, so "delete table" never fails; then the new content.
  const lines = [`add table inet ${FIREWALL_TABLE}`, `delete table inet ${FIREWALL_TABLE}`];
  if (rules.length > 0) {
    lines.push(
      `table inet ${FIREWALL_TABLE} {`,
      `  chain input {`,
      `    type filter hook input priority 0; policy accept;`,
      ...input.map((r) => `    ${r}`),
      `  }`,
      `  chain output {`,
      `    type filter hook output priority 0; policy accept;`,
      ...output.map((r) => `    ${r}`),
      `  }`,
      `}`,
    );
  }
  return lines.join("\n") + "\n";
}

/**
 * Replaces the fault rules of namespace `ns` with `rules` (atomically); `[]` heals it.
 *
 * @example
 * ```ts
 * import { setFirewall } from "./firewall.ts";
 * await setFirewall("rh-p2", [{ kind: "drop-to", addresses: ["192.0.2.11"] }]);
 * ```
 */
export async function setFirewall(ns: string, rules: readonly FirewallRule[]): Promise<void> {
  if (!ns.startsWith(namePrefix())) throw new Error(`refusing to firewall namespace "${ns}"`);
  await runCommand("ip", ["netns", "exec", ns, "nft", "-f", "-"], {
    stdin: firewallScript(rules),
  });
}

/**
 * The rules currently in namespace `ns`, as `nft list` prints them ("" when none).
 *
 * @example
 * ```ts
 * import { listFirewall } from "./firewall.ts";
 * console.log(await listFirewall("rh-p1"));
 * ```
 */
export async function listFirewall(ns: string): Promise<string> {
  try {
    return await runCommand("ip", [
      "netns",
      "exec",
      ns,
      "nft",
      "list",
      "table",
      "inet",
      FIREWALL_TABLE,
    ]);
  } catch {
    return "";
  }
}
