/**
 * Who gets a place in the election's bounded peer table (`--max-peers`).
 *
 * Peers the configuration lists (the DNS answer or `--peers`) always have a place ahead of
 * peers only heard: when the table is full and a listed peer needs a place, the heard-only peer
 * heard least recently (never heard first) gives up its place, except the leader this node
 * follows. A peer only heard never evicts anyone: when the table is full it is refused. So
 * heartbeats from unlisted addresses (a pod not yet in DNS, or with `--insecure-no-secret` any
 * forger) can never crowd a listed newcomer out.
 *
 * @example
 * ```ts
 * import { evictionVictim } from "./peer_admission.ts";
 * const victim = evictionVictim([
 *   { address: "10.0.0.9", inPeerSet: false, lastHeardMono: 100 },
 *   { address: "10.0.0.2", inPeerSet: true, lastHeardMono: 50 },
 * ], "10.0.0.2");
 * console.log(victim); // "10.0.0.9"
 * ```
 */

/** What the choice looks at in one tracked peer. */
export interface AdmissionView {
  address: string;
  /** Listed by the configuration (DNS answer or `--peers`). */
  inPeerSet: boolean;
  /** Monotonic ms of its last accepted heartbeat, or null if never heard. */
  lastHeardMono: number | null;
}

/**
 * The peer that gives its place to a listed newcomer: a heard-only peer that is not `leader`,
 * never heard first, then the one heard least recently, then the last address. Null when every
 * tracked peer is listed (or is the leader): the newcomer is then refused.
 *
 * @example
 * ```ts
 * evictionVictim([{ address: "10.0.0.2", inPeerSet: true, lastHeardMono: 1 }], null); // null
 * ```
 */
export function evictionVictim(
  peers: Iterable<AdmissionView>,
  leader: string | null,
): string | null {
  let victim: AdmissionView | null = null;
  for (const p of peers) {
    if (p.inPeerSet || p.address === leader) continue;
    if (victim === null || worse(p, victim)) victim = p;
  }
  return victim?.address ?? null;
}

/** True when `a` should give up its place before `b`. */
function worse(a: AdmissionView, b: AdmissionView): boolean {
  const ah = a.lastHeardMono ?? -Infinity;
  const bh = b.lastHeardMono ?? -Infinity;
  if (ah !== bh) return ah < bh;
  return a.address > b.address;
}
