/**
 * The fence: a leader that does not hear a majority of its peer set stops acknowledging writes
 * before anyone else can lead with a majority. Pure rules, no sockets, no clocks: the election
 * (`election.ts`) feeds them what it hears and the runtime carries the result out on redis
 * (`lib/hive/fence_actuator.ts`).
 *
 * The leader learns that its group still hears it from **leases**: every
 * {@link FenceTiming.leaseProbeMs} it sends a signed probe carrying its own monotonic send time
 * (`lease.ts`); a follower of that leader echoes the send time back at once. An echo of a probe
 * sent at `s` proves the follower followed this leader at some time after `s`; the leader
 * counts it until `s + leaseMs` (its own clock, so no clock skew enters). The leader is
 * **unfenced** while the echoes it counts, plus itself, reach {@link quorumNeeded} of its peer
 * set; a leader has no echo when it is elected, so it is **fenced from its first moment** until
 * a majority answers (one round trip in a healthy group; never, in a minority group).
 *
 * Why two leaders can never both be unfenced (`docs/election.md` gives the timing): two
 * majorities of one peer set share a node X. X echoes only the leader it follows, and never two
 * different leaders within {@link FenceTiming.leaseHoldoffMs} (> `leaseMs`) of each other
 * ({@link LeaseGrant}), unless the first leader itself said it stopped leading. So the first
 * leader's count of X expires before the second can count X.
 *
 * @example
 * ```ts
 * import { defaultFenceTiming, LeaseTable } from "./fence.ts";
 * const timing = defaultFenceTiming(200); // probe every 25 ms, lease 150 ms
 * const leases = new LeaseTable();
 * leases.record("127.0.0.12", 1000);
 * const state = leases.evaluate(1100, ["127.0.0.12", "127.0.0.13"], timing.leaseMs, "on");
 * console.log(state.fenced); // false: itself and .12 are 2 of 3
 * ```
 */

/** How the fence is configured: `auto` arms it when the peer set (itself included) is 3 or more. */
export type FenceMode = "on" | "off" | "auto";

/** Every fence mode, as the `--fence` flag accepts them. */
export const FENCE_MODES: readonly FenceMode[] = ["on", "off", "auto"];

/** The fence's timing, in milliseconds. */
export interface FenceTiming {
  /** Interval between a leader's lease probes to every peer. */
  leaseProbeMs: number;
  /** How long an echo of a probe counts, from the probe's send time (leader's clock). */
  leaseMs: number;
  /**
   * A follower echoes no other leader for this long after its last echo to one (nor a node
   * after it led), unless that leader said it no longer leads. Must exceed `leaseMs`.
   */
  leaseHoldoffMs: number;
}

/**
 * The fence timing derived from the heartbeat interval: probes 8 times per heartbeat (25 ms at
 * the default 200 ms), a lease of 3/4 heartbeat (150 ms), a holdoff of twice the lease.
 */
export function defaultFenceTiming(heartbeatMs: number): FenceTiming {
  const leaseProbeMs = Math.max(5, Math.floor(heartbeatMs / 8));
  const leaseMs = Math.max(2 * leaseProbeMs, Math.floor((heartbeatMs * 3) / 4));
  return { leaseProbeMs, leaseMs, leaseHoldoffMs: 2 * leaseMs };
}

/**
 * Checks a fence timing against the election's failure timeout; returns the first problem in
 * words, or null. The lease must be shorter than `failureMs` (so a leader whose group stopped
 * hearing it is fenced before the group even notices), at least two probes long, and shorter
 * than the holdoff.
 */
export function fenceTimingProblem(t: FenceTiming, failureMs: number): string | null {
  for (const [key, value] of Object.entries(t)) {
    if (!Number.isFinite(value) || value <= 0) return `${key} must be a positive number`;
  }
  if (t.leaseMs >= failureMs) {
    return `leaseMs (${t.leaseMs}) must be shorter than failureMs (${failureMs})`;
  }
  if (t.leaseMs < 2 * t.leaseProbeMs) {
    return `leaseMs (${t.leaseMs}) must be at least twice leaseProbeMs (${t.leaseProbeMs})`;
  }
  if (t.leaseHoldoffMs <= t.leaseMs) {
    return `leaseHoldoffMs (${t.leaseHoldoffMs}) must exceed leaseMs (${t.leaseMs})`;
  }
  return null;
}

/** Smallest peer set (itself included) on which `auto` arms the fence. */
export const FENCE_AUTO_MIN_PEERS = 3;

/** True when the fence applies to a peer set of `peerSetSize` nodes (itself included). */
export function fenceArmed(mode: FenceMode, peerSetSize: number): boolean {
  if (mode === "off") return false;
  if (mode === "on") return peerSetSize >= 2;
  return peerSetSize >= FENCE_AUTO_MIN_PEERS;
}

/**
 * How many nodes (itself included) a leader must hear to stay unfenced: a strict majority of
 * its peer set (2 of 3, 3 of 5, 3 of 4); 1 when the fence is not armed.
 */
export function quorumNeeded(mode: FenceMode, peerSetSize: number): number {
  if (!Number.isInteger(peerSetSize) || peerSetSize < 1) {
    throw new RangeError(
      `quorumNeeded: peerSetSize must be a positive integer, got ${peerSetSize}`,
    );
  }
  return fenceArmed(mode, peerSetSize) ? Math.floor(peerSetSize / 2) + 1 : 1;
}

/** The fence as a leader sees it at one instant. */
export interface FenceState {
  /** The leader must not acknowledge writes now. */
  fenced: boolean;
  /** The fence applies (mode and peer set size). */
  armed: boolean;
  /** Why, in words (for `/status` and the log). */
  reason: string;
  /** The peers whose lease counts now, sorted. */
  heard: string[];
  /** Nodes needed, itself included. */
  needed: number;
  /** The peer set's size, itself included. */
  peerSetSize: number;
  /**
   * Monotonic time at which this unfenced leader becomes fenced if no further echo arrives, or
   * null when fenced or not armed. The runtime wakes the election then.
   */
  fenceAtMono: number | null;
}

/** The state of a node that does not lead: nothing to fence. */
export const NOT_LEADING: FenceState = {
  fenced: false,
  armed: false,
  reason: "not leading",
  heard: [],
  needed: 1,
  peerSetSize: 1,
  fenceAtMono: null,
};

/**
 * The peer set size the fence counts a majority of: the largest peer set (DNS answer or
 * `--peers`, itself included) seen within a memory window, so a DNS answer that omits pods for
 * a while (partial, or pods being replaced) never shrinks the majority a cut-off leader needs.
 * Pods deleted from the DNS stop counting once the window has passed without them.
 *
 * @example
 * ```ts
 * const m = new PeerSetMemory(30_000);
 * m.record(3, 0);
 * m.record(1, 1000); // two pods deleted from the DNS
 * m.size(1, 2000); // 3: still remembered
 * m.size(1, 31_000); // 1
 * ```
 */
export class PeerSetMemory {
  #seen: { atMono: number; size: number }[] = [];

  /** Most sizes remembered (one per DNS answer that changed the size). */
  static readonly MAX_ENTRIES = 64;

  /** Remembers sizes for `windowMs` (the election's `peerForgetMs`). */
  constructor(readonly windowMs: number) {
    if (!(windowMs > 0)) {
      throw new RangeError(`PeerSetMemory: windowMs must be > 0, got ${windowMs}`);
    }
  }

  /** Records the peer set's size (itself included) at `nowMono`. */
  record(size: number, nowMono: number): void {
    const last = this.#seen.at(-1);
    if (last !== undefined && last.size === size) last.atMono = nowMono;
    else this.#seen.push({ atMono: nowMono, size });
    if (this.#seen.length > PeerSetMemory.MAX_ENTRIES) this.#seen.shift();
  }

  /** The largest size recorded within the window before `nowMono` (at least `current`). */
  size(current: number, nowMono: number): number {
    this.#seen = this.#seen.filter((e) => nowMono - e.atMono < this.windowMs);
    return Math.max(current, ...this.#seen.map((e) => e.size));
  }
}

/** True when two fence states differ in what the runtime or `/status` act on. */
export function fenceChanged(a: FenceState, b: FenceState): boolean {
  return a.fenced !== b.fenced || a.armed !== b.armed || a.needed !== b.needed ||
    a.peerSetSize !== b.peerSetSize;
}

/**
 * A leader's table of lease echoes: for each peer, the latest send time (leader's monotonic
 * clock) of one of its probes that the peer echoed during this leadership.
 */
export class LeaseTable {
  #latest = new Map<string, number>();

  /** Records an echo of a probe sent at `sentMono` by `peer`; older echoes change nothing. */
  record(peer: string, sentMono: number): void {
    const prev = this.#latest.get(peer);
    if (prev === undefined || sentMono > prev) this.#latest.set(peer, sentMono);
  }

  /** Forgets every echo (a new leadership starts with none: fenced from its first moment). */
  clear(): void {
    this.#latest.clear();
  }

  /** The latest echoed send time of `peer`, or null. */
  latest(peer: string): number | null {
    return this.#latest.get(peer) ?? null;
  }

  /**
   * The fence at `nowMono` for a leader whose echoes may come from `peers` (itself excluded).
   * Only those count; an echo counts while `sentMono + leaseMs > nowMono`. The majority is of
   * `peerSetSize` (itself included; default: `peers` and itself).
   */
  evaluate(
    nowMono: number,
    peers: readonly string[],
    leaseMs: number,
    mode: FenceMode,
    peerSetSize: number = new Set(peers).size + 1,
  ): FenceState {
    const others = [...new Set(peers)];
    const armed = fenceArmed(mode, peerSetSize);
    const needed = quorumNeeded(mode, peerSetSize);
    const live: { peer: string; expiresMono: number }[] = [];
    for (const peer of others) {
      const sent = this.#latest.get(peer);
      if (sent !== undefined && sent + leaseMs > nowMono) {
        live.push({ peer, expiresMono: sent + leaseMs });
      }
    }
    const heard = live.map((l) => l.peer).sort();
    if (!armed) {
      return {
        fenced: false,
        armed,
        reason: mode === "off"
          ? "fence off (--fence off)"
          : `fence not armed: peer set of ${peerSetSize} (a hive of 2 or fewer keeps leading alone)`,
        heard,
        needed,
        peerSetSize,
        fenceAtMono: null,
      };
    }
    const have = live.length + 1;
    if (have < needed) {
      return {
        fenced: true,
        armed,
        reason: `hears ${have} of ${peerSetSize} (itself included) within ${leaseMs} ms; ` +
          `needs ${needed}`,
        heard,
        needed,
        peerSetSize,
        fenceAtMono: null,
      };
    }
    // Fenced once fewer than needed-1 echoes remain: at the (needed-1)-th latest expiry.
    const expiries = live.map((l) => l.expiresMono).sort((a, b) => b - a);
    const fenceAtMono = needed - 1 === 0 ? null : expiries[needed - 2]!;
    return {
      fenced: false,
      armed,
      reason: `hears ${have} of ${peerSetSize} (itself included); needs ${needed}`,
      heard,
      needed,
      peerSetSize,
      fenceAtMono,
    };
  }
}

/**
 * A follower's side of the lease: whom it may echo. It echoes only the leader it follows, and
 * not a leader other than the one it last echoed (or itself, when it led) until
 * {@link FenceTiming.leaseHoldoffMs} has passed, unless that previous leader said it no longer
 * leads (a handoff, a step-down), which {@link released} records.
 */
export class LeaseGrant {
  #last: { leader: string; atMono: number } | null = null;

  /** True when an echo to `leader` is allowed at `nowMono`. */
  mayEcho(leader: string, nowMono: number, holdoffMs: number): boolean {
    const last = this.#last;
    return last === null || last.leader === leader || nowMono - last.atMono >= holdoffMs;
  }

  /** Records an echo to `leader` (or, with this node's own address, that it leads). */
  echoed(leader: string, nowMono: number): void {
    this.#last = { leader, atMono: nowMono };
  }

  /** `leader` said it no longer leads: echoes to it no longer hold others off. */
  released(leader: string): void {
    if (this.#last?.leader === leader) this.#last = null;
  }

  /** The leader last echoed (or this node, if it led last), or null. */
  get lastLeader(): string | null {
    return this.#last?.leader ?? null;
  }
}
