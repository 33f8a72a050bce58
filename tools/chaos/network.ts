/**
 * The chaos harness's network: a bridge in a network namespace of its own (`<prefix>br`, address
 * {@link bridgeIp}, where the cluster DNS and the client agent live) and one namespace per pod
 * (`<prefix>p<N>`) joined to it by a veth pair created inside the namespaces, so no link and no
 * route of the harness's subnet ever appears in the host's namespace.
 *
 * Two plans of names and addresses exist, so the two systems the harness can test never touch
 * each other's namespaces: {@link HIVE_NETWORK} (`rh-*`, 192.0.2.0/24, TEST-NET-1) for the hive,
 * {@link SENTINEL_NETWORK} (`rs-*`, 198.51.100.0/24, TEST-NET-2) for Redis Sentinel. A process
 * uses one plan, chosen with {@link useNetwork} before it creates anything (the hive's by
 * default). Every name starts with the plan's prefix; {@link removeLeftovers} kills whatever
 * still runs in such namespaces (a previous run that crashed) and deletes them.
 *
 * @example
 * ```ts
 * import { createBridge, createPodNetwork, removeNamespace } from "./network.ts";
 * await createBridge();
 * const pod = await createPodNetwork(1); // { namespace: "rh-p1", ip: "192.0.2.11", ... }
 * await removeNamespace(pod.namespace);
 * ```
 */

import { processAlive, runCommand, runCommandSync } from "./command.ts";

/** The names and addresses of one harness network. */
export interface NetworkPlan {
  /** Prefix of every namespace and link (`rh-`, `rs-`). */
  prefix: string;
  /** The first three octets of the /24 the bridge and pods use (`192.0.2`). */
  subnet: string;
}

/** The hive's plan: `rh-*`, 192.0.2.0/24 (TEST-NET-1, a documentation range). */
export const HIVE_NETWORK: NetworkPlan = { prefix: "rh-", subnet: "192.0.2" };
/** Redis Sentinel's plan: `rs-*`, 198.51.100.0/24 (TEST-NET-2). */
export const SENTINEL_NETWORK: NetworkPlan = { prefix: "rs-", subnet: "198.51.100" };
/** The plans a process may choose. */
export const NETWORK_PLANS: readonly NetworkPlan[] = [HIVE_NETWORK, SENTINEL_NETWORK];

let plan: NetworkPlan = HIVE_NETWORK;

/**
 * Chooses the plan this process uses from now on (one of {@link NETWORK_PLANS}); call it before
 * a session opens.
 *
 * @throws {Error} for a plan that is not one of {@link NETWORK_PLANS}
 * @example
 * ```ts
 * import { SENTINEL_NETWORK, useNetwork } from "./network.ts";
 * useNetwork(SENTINEL_NETWORK);
 * ```
 */
export function useNetwork(chosen: NetworkPlan): void {
  if (!NETWORK_PLANS.includes(chosen)) {
    throw new Error(`unknown network plan ${JSON.stringify(chosen)}`);
  }
  plan = chosen;
}

/**
 * The plan in use.
 *
 * @example
 * ```ts
 * import { currentNetwork } from "./network.ts";
 * currentNetwork().prefix; // "rh-" unless useNetwork chose another
 * ```
 */
export function currentNetwork(): NetworkPlan {
  return plan;
}

/**
 * Prefix of every namespace and link of the plan in use.
 *
 * @example
 * ```ts
 * import { namePrefix } from "./network.ts";
 * namePrefix(); // "rh-"
 * ```
 */
export function namePrefix(): string {
  return plan.prefix;
}

/**
 * The namespace holding the bridge, the cluster DNS and the client agent (`<prefix>br`).
 *
 * @example
 * ```ts
 * import { bridgeNamespace } from "./network.ts";
 * bridgeNamespace(); // "rh-br"
 * ```
 */
export function bridgeNamespace(): string {
  return `${plan.prefix}br`;
}

/**
 * The bridge device inside {@link bridgeNamespace} (`<prefix>br0`).
 *
 * @example
 * ```ts
 * import { bridgeDevice } from "./network.ts";
 * bridgeDevice(); // "rh-br0"
 * ```
 */
export function bridgeDevice(): string {
  return `${plan.prefix}br0`;
}

/**
 * The bridge namespace's address: DNS server and client source address (`<subnet>.1`).
 *
 * @example
 * ```ts
 * import { bridgeIp } from "./network.ts";
 * bridgeIp(); // "192.0.2.1"
 * ```
 */
export function bridgeIp(): string {
  return `${plan.subnet}.1`;
}

/** Prefix length of the pods' subnet. */
export const SUBNET_PREFIX_LENGTH = 24;
/** Pod number N gets address <subnet>.(POD_ADDRESS_OFFSET + N). */
export const POD_ADDRESS_OFFSET = 10;
/** Most pods one run may create (each new address is a new pod number). */
export const MAX_POD_NUMBER = 240;
/** Bound of the wait for killed leftover processes to disappear. */
export const LEFTOVER_KILL_TIMEOUT_MS = 5_000;

/** One pod's network. */
export interface PodNetwork {
  /** The pod number (names and address derive from it). */
  number: number;
  /** Its namespace, `rh-p<N>`. */
  namespace: string;
  /** Its address on the bridge. */
  ip: string;
  /** The veth end on the bridge (inside {@link bridgeNamespace}). */
  bridgePort: string;
}

/**
 * The address of pod number `n`.
 *
 * @example
 * ```ts
 * import { podAddress } from "./network.ts";
 * podAddress(3); // "192.0.2.13"
 * ```
 */
export function podAddress(n: number): string {
  checkPodNumber(n);
  return `${plan.subnet}.${POD_ADDRESS_OFFSET + n}`;
}

function checkPodNumber(n: number): void {
  if (!Number.isInteger(n) || n < 1 || n > MAX_POD_NUMBER) {
    throw new RangeError(`pod number must be an integer 1..${MAX_POD_NUMBER}, got ${n}`);
  }
}

/**
 * Creates {@link bridgeNamespace} with its bridge up and {@link bridgeIp} on it.
 *
 * @example
 * ```ts
 * import { createBridge } from "./network.ts";
 * await createBridge();
 * ```
 */
export async function createBridge(): Promise<void> {
  const ns = bridgeNamespace();
  await runCommand("ip", ["netns", "add", ns]);
  await runCommand("ip", ["-n", ns, "link", "set", "lo", "up"]);
  await runCommand("ip", ["-n", ns, "link", "add", bridgeDevice(), "type", "bridge"]);
  await runCommand("ip", [
    "-n",
    ns,
    "addr",
    "add",
    `${bridgeIp()}/${SUBNET_PREFIX_LENGTH}`,
    "dev",
    bridgeDevice(),
  ]);
  await runCommand("ip", ["-n", ns, "link", "set", bridgeDevice(), "up"]);
}

/**
 * Creates pod number `n`'s namespace, its veth pair (one end `eth0` in the pod, the other on the
 * bridge) and its address, and brings everything up.
 *
 * @example
 * ```ts
 * import { createPodNetwork } from "./network.ts";
 * const net = await createPodNetwork(2);
 * console.log(net.namespace, net.ip); // "rh-p2" "192.0.2.12"
 * ```
 */
export async function createPodNetwork(n: number): Promise<PodNetwork> {
  const ip = podAddress(n);
  const namespace = `${plan.prefix}p${n}`;
  const bridgePort = `${plan.prefix}v${n}`;
  await runCommand("ip", ["netns", "add", namespace]);
  try {
    await runCommand("ip", ["-n", namespace, "link", "set", "lo", "up"]);
    await runCommand("ip", [
      "-n",
      bridgeNamespace(),
      "link",
      "add",
      bridgePort,
      "type",
      "veth",
      "peer",
      "name",
      "eth0",
      "netns",
      namespace,
    ]);
    await runCommand("ip", [
      "-n",
      bridgeNamespace(),
      "link",
      "set",
      bridgePort,
      "master",
      bridgeDevice(),
      "up",
    ]);
    await runCommand("ip", [
      "-n",
      namespace,
      "addr",
      "add",
      `${ip}/${SUBNET_PREFIX_LENGTH}`,
      "dev",
      "eth0",
    ]);
    await runCommand("ip", ["-n", namespace, "link", "set", "eth0", "up"]);
  } catch (e) {
    await removeNamespace(namespace).catch(() => {});
    throw e;
  }
  return { number: n, namespace, ip, bridgePort };
}

/**
 * The process ids running in namespace `ns` (empty when it does not exist).
 *
 * @example
 * ```ts
 * import { namespacePids } from "./network.ts";
 * console.log(await namespacePids("rh-p1"));
 * ```
 */
export async function namespacePids(ns: string): Promise<number[]> {
  try {
    const out = await runCommand("ip", ["netns", "pids", ns]);
    return out.split(/\s+/).filter((w) => /^\d+$/.test(w)).map(Number);
  } catch {
    return [];
  }
}

/**
 * Deletes namespace `ns` (its veth pair goes with it), first killing anything still running in
 * it. Deleting a namespace that does not exist is not an error.
 *
 * @example
 * ```ts
 * import { removeNamespace } from "./network.ts";
 * await removeNamespace("rh-p1");
 * ```
 */
export async function removeNamespace(ns: string): Promise<void> {
  checkOwnName(ns);
  await killAll(await namespacePids(ns));
  if (!(await listNamespaces()).includes(ns)) return;
  await runCommand("ip", ["netns", "del", ns]);
}

/**
 * Every namespace whose name starts with the plan's prefix ({@link namePrefix}).
 *
 * @example
 * ```ts
 * import { listNamespaces } from "./network.ts";
 * console.log(await listNamespaces()); // ["rh-br", "rh-p1", ...]
 * ```
 */
export async function listNamespaces(): Promise<string[]> {
  return parseNamespaceList(await runCommand("ip", ["netns", "list"]));
}

function parseNamespaceList(text: string): string[] {
  return text.split("\n")
    .map((line) => line.trim().split(/\s+/)[0] ?? "")
    .filter((name) => name.startsWith(plan.prefix));
}

function checkOwnName(name: string): void {
  if (!name.startsWith(plan.prefix) || !/^[a-z0-9-]+$/.test(name)) {
    throw new Error(`refusing to touch "${name}": not a chaos-harness name (${plan.prefix}*)`);
  }
}

async function killAll(pids: number[]): Promise<void> {
  for (const pid of pids) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch { /* gone */ }
  }
  const deadline = Date.now() + LEFTOVER_KILL_TIMEOUT_MS;
  while (pids.some(processAlive)) {
    if (Date.now() > deadline) {
      throw new Error(`processes ${pids.filter(processAlive).join(", ")} survived SIGKILL`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Removes what a previous run left behind: every `rh-*` namespace (after killing the processes
 * in it) and any `rh-*` link in the host's namespace (the harness never creates one there, but
 * an interrupted older version might have). Returns what it removed.
 *
 * @example
 * ```ts
 * import { removeLeftovers } from "./network.ts";
 * const removed = await removeLeftovers();
 * if (removed.length > 0) console.warn(`removed leftovers: ${removed.join(", ")}`);
 * ```
 */
export async function removeLeftovers(): Promise<string[]> {
  const removed: string[] = [];
  for (const ns of await listNamespaces()) {
    await removeNamespace(ns);
    removed.push(`namespace ${ns}`);
  }
  const links = await runCommand("ip", ["-o", "link", "show"]);
  for (const line of links.split("\n")) {
    const name = /^\d+:\s+([^:@\s]+)/.exec(line)?.[1];
    if (name === undefined || !name.startsWith(plan.prefix)) continue;
    await runCommand("ip", ["link", "del", name]);
    removed.push(`link ${name}`);
  }
  return removed;
}

/**
 * Exit-time cleanup that cannot await: SIGKILLs every process in the given namespaces and
 * deletes them, ignoring errors.
 *
 * @example
 * ```ts
 * import { removeNamespacesSync } from "./network.ts";
 * removeNamespacesSync(["rh-p1", "rh-br"]);
 * ```
 */
export function removeNamespacesSync(namespaces: readonly string[]): void {
  for (const ns of namespaces) {
    if (!ns.startsWith(plan.prefix)) continue;
    const out = runCommandSync("ip", ["netns", "pids", ns]) ?? "";
    for (const pid of out.split(/\s+/).filter((w) => /^\d+$/.test(w))) {
      try {
        Deno.kill(Number(pid), "SIGKILL");
      } catch { /* gone */ }
    }
    runCommandSync("ip", ["netns", "del", ns]);
  }
}

/**
 * Whether this process can build the harness: root, `ip netns` usable and `nft` present.
 * Returns null when it can, else the reason it cannot.
 *
 * @example
 * ```ts
 * import { whyNoNamespaces } from "./network.ts";
 * const reason = await whyNoNamespaces();
 * if (reason !== null) console.warn(`chaos harness unavailable: ${reason}`);
 * ```
 */
export async function whyNoNamespaces(): Promise<string | null> {
  if (Deno.build.os !== "linux") return `not Linux (${Deno.build.os})`;
  if (Deno.uid() !== 0) return `not root (uid ${Deno.uid()})`;
  for (const [program, args] of [["ip", ["netns", "list"]], ["nft", ["--version"]]] as const) {
    try {
      await runCommand(program, args);
    } catch (e) {
      return `\`${program} ${args.join(" ")}\` failed: ${e instanceof Error ? e.message : e}`;
    }
  }
  const probe = `${plan.prefix}probe${Deno.pid}`;
  try {
    await runCommand("ip", ["netns", "add", probe]);
    await runCommand("ip", ["netns", "del", probe]);
  } catch (e) {
    return `\`ip netns add\` failed: ${e instanceof Error ? e.message : e}`;
  }
  for (const program of ["redis-server", "dnsmasq"]) {
    try {
      await runCommand(program, ["--version"]);
    } catch (e) {
      return `${program} unavailable: ${e instanceof Error ? e.message : e}`;
    }
  }
  return null;
}
