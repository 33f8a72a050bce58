/**
 * The chaos harness's network: a bridge in a network namespace of its own (`rh-br`, address
 * {@link BRIDGE_IP}, where the cluster DNS and the client agent live) and one namespace per pod
 * (`rh-p<N>`) joined to it by a veth pair created inside the namespaces, so no link and no route
 * of 192.0.2.0/24 (TEST-NET-1, a documentation range) ever appears in the host's namespace.
 *
 * Every name starts with {@link NAME_PREFIX}; {@link removeLeftovers} kills whatever still runs
 * in such namespaces (a previous run that crashed) and deletes them.
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

/** Prefix of every namespace and link the harness creates. */
export const NAME_PREFIX = "rh-";
/** The namespace holding the bridge, the cluster DNS and the client agent. */
export const BRIDGE_NAMESPACE = "rh-br";
/** The bridge device inside {@link BRIDGE_NAMESPACE}. */
export const BRIDGE_DEVICE = "rh-br0";
/** The bridge namespace's address: DNS server and client source address. */
export const BRIDGE_IP = "192.0.2.1";
/** Prefix length of the pods' subnet (192.0.2.0/24). */
export const SUBNET_PREFIX_LENGTH = 24;
/** Pod number N gets address 192.0.2.(POD_ADDRESS_OFFSET + N). */
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
  /** The veth end on the bridge (inside {@link BRIDGE_NAMESPACE}). */
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
  return `192.0.2.${POD_ADDRESS_OFFSET + n}`;
}

function checkPodNumber(n: number): void {
  if (!Number.isInteger(n) || n < 1 || n > MAX_POD_NUMBER) {
    throw new RangeError(`pod number must be an integer 1..${MAX_POD_NUMBER}, got ${n}`);
  }
}

/**
 * Creates {@link BRIDGE_NAMESPACE} with its bridge up and {@link BRIDGE_IP} on it.
 *
 * @example
 * ```ts
 * import { createBridge } from "./network.ts";
 * await createBridge();
 * ```
 */
export async function createBridge(): Promise<void> {
  const ns = BRIDGE_NAMESPACE;
  await runCommand("ip", ["netns", "add", ns]);
  await runCommand("ip", ["-n", ns, "link", "set", "lo", "up"]);
  await runCommand("ip", ["-n", ns, "link", "add", BRIDGE_DEVICE, "type", "bridge"]);
  await runCommand("ip", [
    "-n",
    ns,
    "addr",
    "add",
    `${BRIDGE_IP}/${SUBNET_PREFIX_LENGTH}`,
    "dev",
    BRIDGE_DEVICE,
  ]);
  await runCommand("ip", ["-n", ns, "link", "set", BRIDGE_DEVICE, "up"]);
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
  const namespace = `${NAME_PREFIX}p${n}`;
  const bridgePort = `${NAME_PREFIX}v${n}`;
  await runCommand("ip", ["netns", "add", namespace]);
  try {
    await runCommand("ip", ["-n", namespace, "link", "set", "lo", "up"]);
    await runCommand("ip", [
      "-n",
      BRIDGE_NAMESPACE,
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
      BRIDGE_NAMESPACE,
      "link",
      "set",
      bridgePort,
      "master",
      BRIDGE_DEVICE,
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
 * Every namespace whose name starts with {@link NAME_PREFIX}.
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
    .filter((name) => name.startsWith(NAME_PREFIX));
}

function checkOwnName(name: string): void {
  if (!name.startsWith(NAME_PREFIX) || !/^[a-z0-9-]+$/.test(name)) {
    throw new Error(`refusing to touch "${name}": not a chaos-harness name (${NAME_PREFIX}*)`);
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
    if (name === undefined || !name.startsWith(NAME_PREFIX)) continue;
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
    if (!ns.startsWith(NAME_PREFIX)) continue;
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
  const probe = `${NAME_PREFIX}probe${Deno.pid}`;
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
