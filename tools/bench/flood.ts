/**
 * Datagram-flood benchmark (`deno task bench flood`): a real 3-node hive (redis-server and hive
 * processes on 127.0.13.31..33, static peers, a random secret, see {@link LocalCluster}) whose
 * leader's election port gets `--rate` junk or badly signed datagrams per second for `--seconds`
 * from 127.0.13.39 (not a peer). It measures the leader's resident memory (VmRSS from
 * /proc/PID/status, sampled every {@link SAMPLE_MS}) while idle before the flood, during it and
 * after it, and checks at every sample that the leader kept its role and that both followers
 * still hear it (their `/status` names it leader and its last heartbeat is fresh).
 *
 * Datagrams (`--kind`): `junk` (random bytes, dropped as `bad-magic`), `bad-signature` (a
 * well-formed heartbeat claiming to lead, signed with another secret: every one costs an
 * HMAC), or `mixed` (alternating; the default).
 *
 * Target (issue 13): RSS at most {@link TARGET_RSS_GROWTH_MIB} MiB above the idle value, the
 * role and the heartbeats kept. Exit status 1 when missed.
 *
 * @example
 * ```sh
 * deno task bench flood                        # 10 000/s for 20 s, mixed
 * deno task bench flood --kind bad-signature --seconds 5
 * ```
 */

import dgram from "node:dgram";
import { parseArgs } from "node:util";
import { LocalCluster } from "../../testing/local_cluster.ts";
import { sleep } from "../../testing/wait.ts";
import { createCodec } from "../../lib/election/codec.ts";
import { forgedLeaderHeartbeat } from "../../testing/election_samples.ts";
import { quantile } from "./stats.ts";

/** Nodes of the benchmark cluster. */
const ADDRESSES = ["127.0.13.31", "127.0.13.32", "127.0.13.33"] as const;
/** Where the flood comes from (not a peer). */
const ATTACKER = "127.0.13.39";
/** Default datagrams per second. */
export const DEFAULT_RATE = 10_000;
/** Most datagrams per second accepted. */
export const MAX_RATE = 100_000;
/** Default flood duration. */
export const DEFAULT_SECONDS = 20;
/** Longest flood accepted. */
export const MAX_SECONDS = 300;
/** Idle sampling before the flood, and calm sampling after it. */
export const IDLE_MS = 5_000;
/** Interval between two samples. */
export const SAMPLE_MS = 250;
/** Interval between two bursts of datagrams. */
export const BURST_MS = 10;
/** Target: RSS growth over idle, in MiB. */
export const TARGET_RSS_GROWTH_MIB = 32;
/** The kinds of datagram sent. */
export const KINDS = ["junk", "bad-signature", "mixed"] as const;

const MIB = 1024 * 1024;

/** One invocation's options. */
export interface FloodOptions {
  rate: number;
  seconds: number;
  kind: typeof KINDS[number];
}

/** Parses the options; throws a clear error on a bad one. */
export function parseFloodArgs(args: string[]): FloodOptions {
  const { values } = parseArgs({
    args,
    options: {
      rate: { type: "string" },
      seconds: { type: "string" },
      kind: { type: "string" },
    },
    strict: true,
    allowPositionals: false,
  });
  const int = (name: string, text: string | undefined, fallback: number, max: number) => {
    if (text === undefined) return fallback;
    const n = Number(text);
    if (!Number.isInteger(n) || n < 1 || n > max) {
      throw new Error(`--${name}: expected an integer 1..${max}, got ${JSON.stringify(text)}`);
    }
    return n;
  };
  const kind = values.kind ?? "mixed";
  if (!(KINDS as readonly string[]).includes(kind)) {
    throw new Error(`--kind: expected one of ${KINDS.join(", ")}, got ${JSON.stringify(kind)}`);
  }
  return {
    rate: int("rate", values.rate, DEFAULT_RATE, MAX_RATE),
    seconds: int("seconds", values.seconds, DEFAULT_SECONDS, MAX_SECONDS),
    kind: kind as FloodOptions["kind"],
  };
}

function rssBytes(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const m = /^VmRSS:\s+(\d+) kB/m.exec(status);
  if (m === null) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/** The datagrams of one kind: a few distinct ones, sent round-robin. */
async function payloads(kind: FloodOptions["kind"]): Promise<Uint8Array[]> {
  const junk = Array.from({ length: 16 }, () => crypto.getRandomValues(new Uint8Array(300)));
  const forger = await createCodec("not-the-secret");
  const forged: Uint8Array[] = [];
  for (let seq = 1; seq <= 16; seq++) {
    forged.push(
      await forger.encode(forgedLeaderHeartbeat(ATTACKER, seq, { bootId: "00000000000000ff" })),
    );
  }
  if (kind === "junk") return junk;
  if (kind === "bad-signature") return forged;
  return junk.flatMap((j, i) => [j, forged[i]!]);
}

/** What one run measured. */
export interface FloodResult {
  options: FloodOptions;
  sent: number;
  idleRssMiB: number;
  maxRssMiB: number;
  afterRssMiB: number;
  growthMiB: number;
  roleChanges: number;
  followersLostLeader: number;
  dropped: Record<string, number>;
  heartbeatsSentDuringFlood: number;
  ok: boolean;
}

/** Runs the benchmark once. */
export async function runFlood(options: FloodOptions): Promise<FloodResult> {
  return await LocalCluster.run({
    addresses: ADDRESSES,
    discovery: { kind: "static" },
  }, async (cluster) => {
    const settled = await cluster.waitForSettled();
    const leader = cluster.node(settled.leader);
    const followers = cluster.nodes.filter((n) => n !== leader);
    const pid = leader.hive!.pid;
    let roleChanges = 0;
    let followersLostLeader = 0;
    const check = async () => {
      const s = await leader.status().catch(() => null);
      if (s === null || s.role !== "leader") roleChanges++;
      for (const f of followers) {
        const fs = await f.status().catch(() => null);
        const view = fs?.peers.find((p) => p.address === leader.address);
        if (fs === null || fs.leader !== leader.address || !view?.live) followersLostLeader++;
      }
    };
    const sample = async (ms: number, into: number[]) => {
      const until = Date.now() + ms;
      while (Date.now() < until) {
        into.push(rssBytes(pid));
        await check();
        await sleep(SAMPLE_MS);
      }
    };

    const idle: number[] = [];
    await sample(IDLE_MS, idle);
    const before = await leader.status();

    const socket = dgram.createSocket("udp4");
    await new Promise<void>((resolve) => socket.bind(0, ATTACKER, () => resolve()));
    const data = await payloads(options.kind);
    let sent = 0;
    let stop = false;
    const perBurst = Math.max(1, Math.round(options.rate * BURST_MS / 1000));
    const started = Date.now();
    const sender = (async () => {
      while (!stop) {
        const due = Math.floor((Date.now() - started) / 1000 * options.rate);
        for (let i = 0; sent < due && i < perBurst * 4; i++) {
          socket.send(data[sent % data.length]!, leader.ports.election, leader.address);
          sent++;
        }
        await sleep(BURST_MS);
      }
    })();
    const during: number[] = [];
    await sample(options.seconds * 1000, during);
    stop = true;
    await sender;
    socket.close();
    const after: number[] = [];
    await sample(IDLE_MS, after);
    const end = await leader.status();

    const idleRss = quantile(idle, 0.5);
    const maxRss = Math.max(...during, ...after);
    const dropped: Record<string, number> = {};
    for (const [reason, n] of Object.entries(end.runtime.datagramsDropped)) {
      const d = n - (before.runtime.datagramsDropped as Record<string, number>)[reason]!;
      if (d > 0) dropped[reason] = d;
    }
    const growthMiB = (maxRss - idleRss) / MIB;
    return {
      options,
      sent,
      idleRssMiB: idleRss / MIB,
      maxRssMiB: maxRss / MIB,
      afterRssMiB: quantile(after, 0.5) / MIB,
      growthMiB,
      roleChanges,
      followersLostLeader,
      dropped,
      heartbeatsSentDuringFlood: end.election.heartbeatsSent - before.election.heartbeatsSent,
      ok: growthMiB <= TARGET_RSS_GROWTH_MIB && roleChanges === 0 && followersLostLeader === 0,
    };
  });
}

/** `deno task bench flood [--rate N] [--seconds N] [--kind junk|bad-signature|mixed]`. */
export async function main(args: string[]): Promise<void> {
  const options = parseFloodArgs(args);
  const r = await runFlood(options);
  const f = (n: number) => n.toFixed(1);
  console.log(
    [
      `flood: ${r.sent} ${options.kind} datagrams in ${options.seconds} s ` +
      `(${Math.round(r.sent / options.seconds)}/s) at the leader's election port`,
      `leader RSS: idle ${f(r.idleRssMiB)} MiB, max ${f(r.maxRssMiB)} MiB during/after, ` +
      `${f(r.afterRssMiB)} MiB after; growth ${f(r.growthMiB)} MiB ` +
      `(target <= ${TARGET_RSS_GROWTH_MIB})`,
      `role changes of the leader: ${r.roleChanges}; samples where a follower did not hear it ` +
      `as leader: ${r.followersLostLeader}; heartbeats it sent meanwhile: ` +
      `${r.heartbeatsSentDuringFlood}`,
      `dropped by the leader: ${JSON.stringify(r.dropped)}`,
      r.ok ? "OK" : "MISSED the target",
    ].join("\n"),
  );
  if (!r.ok) Deno.exit(1);
}
