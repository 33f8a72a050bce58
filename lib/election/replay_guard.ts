/**
 * Replay protection of heartbeats, across restarts of either side.
 *
 * A captured, correctly signed heartbeat verifies forever, so the signature alone cannot tell a
 * replay from the real thing. Every heartbeat therefore carries, under the signature, the
 * sender's wall-clock time of sending (`sentMs`), its boot id (random, new at every process
 * start) and a sequence number (per boot, increasing). A receiver accepts a heartbeat only when:
 *
 * 1. it is fresh: `|sentMs - receiver's wall clock| <= maxClockSkewMs` (else `expired`). A
 *    capture is useless once it is older than that, whatever the receiver remembers (a receiver
 *    that restarted remembers nothing);
 * 2. its boot is not one the receiver saw replaced (else `old-boot`);
 * 3. of the boot the receiver knows for that peer, it is newer: a higher `seq` (else `stale`);
 * 4. of another boot, it was sent later than the last heartbeat accepted from that peer (else
 *    `old-boot`): boots only move forward, so a datagram of a previous boot never retires the
 *    current one, even at a receiver that just restarted and first heard the previous boot's
 *    replay (the current boot's next heartbeat, sent later, replaces it at once).
 *
 * What this bounds (docs/security.md has the whole model): replaying a peer's datagrams can at
 * most make a receiver that just restarted believe, for at most `maxClockSkewMs`, what the peer
 * said during the last `maxClockSkewMs`; it can never silence a live peer, and never make a
 * receiver accept a previous boot once it heard the current one. The price is that clocks must
 * agree within `maxClockSkewMs` (a node further off is not heard, and says so in its metrics:
 * `expired`), and that a sender whose clock steps back across its own restart by D is not heard
 * for D (at most twice `maxClockSkewMs`; beyond that its datagrams are expired anyway).
 *
 * Pure: no clock of its own; the election passes its `now`.
 *
 * @example
 * ```ts
 * import { replayVerdict } from "./replay_guard.ts";
 * const last = { bootId: "aa", seq: 7, sentMs: 1_000 };
 * replayVerdict(last, [], { bootId: "aa", seq: 8, sentMs: 1_200 }, 1_250, 15_000); // "accept"
 * replayVerdict(last, [], { bootId: "aa", seq: 7, sentMs: 1_000 }, 1_250, 15_000); // "stale"
 * replayVerdict(last, [], { bootId: "bb", seq: 1, sentMs: 900 }, 1_250, 15_000); // "old-boot"
 * ```
 */

/** Default of `--max-clock-skew-ms`: the replay window, and the clock skew tolerated. */
export const DEFAULT_MAX_CLOCK_SKEW_MS = 15_000;

/** What the guard looks at in a heartbeat. */
export interface ReplayFields {
  bootId: string;
  seq: number;
  /** The sender's wall-clock ms when it sent the heartbeat. */
  sentMs: number;
}

/** The verdict: accept, or why the heartbeat is dropped. */
export type ReplayVerdict = "accept" | ReplayDropReason;

/** Every reason the replay guard drops a heartbeat (counted per reason in `/metrics`). */
export const REPLAY_DROP_REASONS = ["expired", "old-boot", "stale"] as const;

/** One of {@link REPLAY_DROP_REASONS}. */
export type ReplayDropReason = typeof REPLAY_DROP_REASONS[number];

/**
 * Decides whether `hb` is heard, given the last heartbeat accepted from its sender (`last`,
 * null if none), the boots of that sender seen replaced (`retired`), the receiver's wall clock
 * and the tolerated skew. See the module documentation for the rules.
 *
 * @example
 * ```ts
 * replayVerdict(null, [], { bootId: "aa", seq: 1, sentMs: 0 }, 60_000, 15_000); // "expired"
 * ```
 */
export function replayVerdict(
  last: ReplayFields | null,
  retired: readonly string[],
  hb: ReplayFields,
  nowWallMs: number,
  maxClockSkewMs: number,
): ReplayVerdict {
  if (Math.abs(hb.sentMs - nowWallMs) > maxClockSkewMs) return "expired";
  if (retired.includes(hb.bootId)) return "old-boot";
  if (last === null) return "accept";
  if (hb.bootId === last.bootId) return hb.seq > last.seq ? "accept" : "stale";
  return hb.sentMs > last.sentMs ? "accept" : "old-boot";
}
