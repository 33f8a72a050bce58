/**
 * The cluster DNS: a real `dnsmasq` in the bridge namespace on {@link bridgeIp}:53, answering
 * the headless Service name with the pods' current addresses from a hosts file the harness
 * rewrites (then SIGHUP, as dnsmasq re-reads `--addn-hosts` on SIGHUP). It answers only from
 * that file (`--no-resolv --no-hosts`), with TTL 0 and no negative cache, so a change shows at
 * once, like the endpoints of a headless Service.
 *
 * @example
 * ```ts
 * import { ClusterDns } from "./cluster_dns.ts";
 * const dns = await ClusterDns.start(dir, (name) => agent.call({ op: "resolve", name }));
 * await dns.setAddresses(["192.0.2.11", "192.0.2.12"]);
 * await dns.stop();
 * ```
 */

import { NamespacedProcess } from "./process.ts";
import { bridgeIp, bridgeNamespace } from "./network.ts";
import { SERVICE_NAME } from "./agent_protocol.ts";

/** Bound of the wait for dnsmasq to answer after a start or a change. */
export const DNS_CHANGE_TIMEOUT_MS = 10_000;
/** Pause between two checks of the answer. */
const CHECK_INTERVAL_MS = 50;

/** Asks the DNS (from inside the bridge namespace) for the A records of a name. */
export type Resolve = (name: string) => Promise<string[]>;

/**
 * The running cluster DNS.
 *
 * @example
 * ```ts
 * await dns.setAddresses(["192.0.2.11"]);
 * ```
 */
export class ClusterDns {
  #addresses: string[] = [];

  private constructor(
    readonly process: NamespacedProcess,
    readonly hostsPath: string,
    readonly resolve: Resolve,
  ) {}

  /** Starts dnsmasq with its files in `dir`; `resolve` is used to check its answers. */
  static async start(dir: string, resolve: Resolve): Promise<ClusterDns> {
    const hostsPath = `${dir}/hosts`;
    await Deno.writeTextFile(hostsPath, hostsText([]));
    const process = NamespacedProcess.spawn({
      namespace: bridgeNamespace(),
      program: "dnsmasq",
      args: [
        "--keep-in-foreground",
        "--no-resolv",
        "--no-hosts",
        `--addn-hosts=${hostsPath}`,
        `--listen-address=${bridgeIp()}`,
        "--bind-interfaces",
        "--port=53",
        `--pid-file=${dir}/dnsmasq.pid`,
        "--log-facility=-",
        "--no-negcache",
        "--local-ttl=0",
        // As root dnsmasq would drop to "nobody", which cannot re-read our private hosts file.
        "--user=root",
      ],
      logPath: `${dir}/dnsmasq.log`,
    });
    const dns = new ClusterDns(process, hostsPath, resolve);
    try {
      await dns.#waitFor(PROBE_NAME, [bridgeIp()]); // this dnsmasq answers
    } catch (e) {
      await process.stop("SIGKILL", 1_000);
      throw e;
    }
    return dns;
  }

  /** The addresses currently served. */
  get addresses(): readonly string[] {
    return this.#addresses;
  }

  /** Serves exactly `ips` for the Service name and waits until dnsmasq answers them. */
  async setAddresses(ips: readonly string[]): Promise<void> {
    const next = [...new Set(ips)].sort();
    await Deno.writeTextFile(`${this.hostsPath}.new`, hostsText(next));
    await Deno.rename(`${this.hostsPath}.new`, this.hostsPath);
    this.process.signal("SIGHUP");
    await this.#waitFor(SERVICE_NAME, next);
    this.#addresses = next;
  }

  async #waitFor(name: string, expected: string[]): Promise<void> {
    const deadline = Date.now() + DNS_CHANGE_TIMEOUT_MS;
    let last: string[] | string = "no answer yet";
    while (Date.now() < deadline) {
      if (!this.process.running) {
        throw new Error(`dnsmasq exited: ${JSON.stringify(this.process.status)}`);
      }
      try {
        last = await this.resolve(name);
        if (JSON.stringify(last) === JSON.stringify(expected)) return;
      } catch (e) {
        last = String(e);
      }
      await new Promise((r) => setTimeout(r, CHECK_INTERVAL_MS));
    }
    throw new Error(
      `the cluster DNS did not answer ${name} = ${JSON.stringify(expected)} within ` +
        `${DNS_CHANGE_TIMEOUT_MS} ms (last: ${JSON.stringify(last)})`,
    );
  }

  /** Stops dnsmasq. */
  async stop(): Promise<void> {
    await this.process.stop("SIGTERM", 5_000);
  }
}

/** A name only the harness's dnsmasq serves: its answer proves that dnsmasq is up. */
const PROBE_NAME = "dns-probe.chaos.test";

function hostsText(ips: readonly string[]): string {
  return `${bridgeIp()} ${PROBE_NAME}\n` + ips.map((ip) => `${ip} ${SERVICE_NAME}\n`).join("");
}
