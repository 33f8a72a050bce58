/**
 * Peer discovery: keeps the set of peer addresses fresh, from DNS (`--service`) or from a
 * static list (`--peers`).
 *
 * DNS mode resolves the name every `refreshMs`. A failed or empty answer is retried with
 * bounded exponential backoff ({@link backoffDelayMs}), reported through `onEvent` and counted
 * in {@link PeerDiscovery.stats}; it is never fatal and it **never replaces a non-empty peer
 * set with an empty one**: the last good set is kept (the election, separately, keeps every
 * peer it still hears over UDP). `onPeers` is called only when the set changes, so it never
 * receives an empty list. At most `maxPeers` addresses are kept (the first ones in sorted
 * order; the rest are dropped and counted).
 *
 * Timers and the clock come from an injected {@link Scheduler}, so the backoff schedule can be
 * tested deterministically; {@link REAL_SCHEDULER} is the default.
 *
 * @example
 * ```ts
 * import { PeerDiscovery } from "./peer_discovery.ts";
 * import { DnsResolver } from "./resolver.ts";
 * const discovery = new PeerDiscovery({
 *   source: { kind: "dns", name: "redis-hive", resolver: new DnsResolver() },
 *   onPeers: (peers) => console.log("peers", peers),
 *   onEvent: (event) => console.log(event.kind),
 * });
 * discovery.start();
 * // ... later
 * discovery.stop();
 * ```
 */

import { normalizeAddresses } from "./address.ts";
import { checkPositive, checkPositiveInteger } from "../common/assert.ts";
import { type PeerResolver, ResolveError } from "./resolver.ts";

const WHO = "PeerDiscovery";

/** Interval between resolutions while answers are good. */
export const DISCOVERY_REFRESH_MS = 5_000;
/** First retry delay after a failed or empty answer. */
export const DISCOVERY_BACKOFF_INITIAL_MS = 250;
/** Each further consecutive failure multiplies the retry delay by this. */
export const DISCOVERY_BACKOFF_FACTOR = 2;
/** The retry delay never exceeds this. */
export const DISCOVERY_BACKOFF_MAX_MS = 10_000;
/**
 * A resolution still pending after this long counts as failed (a guard for resolvers without
 * their own timeout; `DnsResolver` times out sooner, after `DNS_TIMEOUT_MS`).
 */
export const DISCOVERY_RESOLVE_DEADLINE_MS = 5_000;
/** Most peer addresses kept; further ones (in sorted order) are dropped and counted. */
export const MAX_PEERS = 64;

/** An opaque timer handle returned by {@link Scheduler.setTimeout}. */
export type TimerHandle = unknown;

/**
 * Timers and a monotonic clock, injected so tests can drive time by hand.
 *
 * @example
 * ```ts
 * import { REAL_SCHEDULER } from "./peer_discovery.ts";
 * const handle = REAL_SCHEDULER.setTimeout(() => console.log("tick"), 100);
 * REAL_SCHEDULER.clearTimeout(handle);
 * ```
 */
export interface Scheduler {
  /** Calls `callback` once after `delayMs`. */
  setTimeout(callback: () => void, delayMs: number): TimerHandle;
  /** Cancels a timer that has not fired; a no-op for one that has. */
  clearTimeout(handle: TimerHandle): void;
  /** Monotonic milliseconds. */
  now(): number;
}

/** The {@link Scheduler} of the real world: global timers and `performance.now()`. */
export const REAL_SCHEDULER: Scheduler = {
  setTimeout: (callback, delayMs) => setTimeout(callback, delayMs),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
  now: () => performance.now(),
};

/** The backoff parameters of {@link backoffDelayMs}. */
export interface BackoffPolicy {
  /** Delay after the first failure. */
  initialMs: number;
  /** Multiplier per further consecutive failure (at least 1). */
  factor: number;
  /** Cap. */
  maxMs: number;
}

/** The default {@link BackoffPolicy}, from the named constants. */
export const DISCOVERY_BACKOFF: BackoffPolicy = {
  initialMs: DISCOVERY_BACKOFF_INITIAL_MS,
  factor: DISCOVERY_BACKOFF_FACTOR,
  maxMs: DISCOVERY_BACKOFF_MAX_MS,
};

/**
 * The retry delay after `consecutiveFailures` (at least 1) failures in a row:
 * `min(maxMs, initialMs * factor^(consecutiveFailures - 1))`.
 *
 * @example
 * ```ts
 * import { backoffDelayMs, DISCOVERY_BACKOFF } from "./peer_discovery.ts";
 * [1, 2, 3, 10].map((n) => backoffDelayMs(n, DISCOVERY_BACKOFF)); // [250, 500, 1000, 10000]
 * ```
 */
export function backoffDelayMs(consecutiveFailures: number, policy: BackoffPolicy): number {
  if (!Number.isInteger(consecutiveFailures) || consecutiveFailures < 1) {
    throw new RangeError(`consecutiveFailures must be an integer >= 1, got ${consecutiveFailures}`);
  }
  const delay = policy.initialMs * policy.factor ** (consecutiveFailures - 1);
  return Math.min(policy.maxMs, delay);
}

/** Where the peers come from: a DNS name, or a fixed list. */
export type PeerSource =
  | { kind: "dns"; name: string; resolver: PeerResolver }
  | { kind: "static"; peers: readonly string[] };

/** What discovery reports through `onEvent` (for logs and metrics). */
export type DiscoveryEvent =
  /** The peer set changed (also the first good answer). */
  | { kind: "peers"; peers: readonly string[]; previous: readonly string[] }
  /** The name had no addresses; `kept` is the set still in use. */
  | { kind: "empty"; kept: readonly string[]; consecutive: number; retryInMs: number }
  /** The resolution failed; `kept` is the set still in use. */
  | {
    kind: "failed";
    error: Error;
    kept: readonly string[];
    consecutive: number;
    retryInMs: number;
  }
  /** The answer held more than `maxPeers` addresses; `dropped` were ignored. */
  | { kind: "truncated"; dropped: readonly string[]; maxPeers: number };

/** Counters of {@link PeerDiscovery}, for `/status` and `/metrics`. */
export interface DiscoveryStats {
  /** Resolutions started. */
  attempts: number;
  /** Resolutions answered with at least one address. */
  resolves: number;
  /** Resolutions that failed (error or deadline). */
  failures: number;
  /** Resolutions answered with no address. */
  empties: number;
  /** Failures and empties since the last good answer. */
  consecutiveFailures: number;
  /** Addresses dropped because an answer held more than `maxPeers`, summed over answers. */
  droppedPeers: number;
  /** The message of the last failure, or null if none yet. */
  lastError: string | null;
  /** Milliseconds since the last good answer, or null if none yet (always null in static mode). */
  lastSuccessAgoMs: number | null;
  /** Size of the current peer set. */
  peers: number;
}

/** Options of {@link PeerDiscovery}. */
export interface PeerDiscoveryOptions {
  /** Where the peers come from. */
  source: PeerSource;
  /** Called with the new set (sorted, non-empty) whenever it changes. */
  onPeers: (peers: readonly string[]) => void;
  /** Called for every notable event (see {@link DiscoveryEvent}). */
  onEvent?: (event: DiscoveryEvent) => void;
  /** Interval between good resolutions; default {@link DISCOVERY_REFRESH_MS}. */
  refreshMs?: number;
  /** Retry policy after failed or empty answers; default {@link DISCOVERY_BACKOFF}. */
  backoff?: BackoffPolicy;
  /** Deadline for one resolution; default {@link DISCOVERY_RESOLVE_DEADLINE_MS}. */
  resolveDeadlineMs?: number;
  /** Most addresses kept; default {@link MAX_PEERS}. */
  maxPeers?: number;
  /** Timers and clock; default {@link REAL_SCHEDULER}. */
  scheduler?: Scheduler;
}

/**
 * Keeps the peer set fresh; see the module documentation for the rules.
 *
 * @example
 * ```ts
 * import { PeerDiscovery } from "./peer_discovery.ts";
 * const discovery = new PeerDiscovery({
 *   source: { kind: "static", peers: ["127.0.0.12", "127.0.0.11"] },
 *   onPeers: (peers) => console.log(peers), // once: ["127.0.0.11", "127.0.0.12"]
 * });
 * discovery.start();
 * ```
 */
export class PeerDiscovery {
  readonly #source: PeerSource;
  readonly #onPeers: (peers: readonly string[]) => void;
  readonly #onEvent: (event: DiscoveryEvent) => void;
  readonly #refreshMs: number;
  readonly #backoff: BackoffPolicy;
  readonly #resolveDeadlineMs: number;
  readonly #maxPeers: number;
  readonly #scheduler: Scheduler;
  /** The normalized static list (static mode only). */
  readonly #staticPeers: readonly string[] = [];

  #peers: readonly string[] = [];
  #started = false;
  #stopped = false;
  #timer: TimerHandle | null = null;
  #inFlight: Promise<void> | null = null;
  /** Cancels the pending resolution's deadline and settles it (set while one is pending). */
  #cancelInFlight: (() => void) | null = null;
  #lastSuccessAt: number | null = null;
  #counts = {
    attempts: 0,
    resolves: 0,
    failures: 0,
    empties: 0,
    consecutiveFailures: 0,
    droppedPeers: 0,
  };
  #lastError: string | null = null;

  /** Validates the options; throws a clear error on a bad value or a bad static list. */
  constructor(options: PeerDiscoveryOptions) {
    this.#source = options.source;
    this.#onPeers = options.onPeers;
    this.#onEvent = options.onEvent ?? (() => {});
    this.#refreshMs = options.refreshMs ?? DISCOVERY_REFRESH_MS;
    this.#backoff = { ...(options.backoff ?? DISCOVERY_BACKOFF) };
    this.#resolveDeadlineMs = options.resolveDeadlineMs ?? DISCOVERY_RESOLVE_DEADLINE_MS;
    this.#maxPeers = options.maxPeers ?? MAX_PEERS;
    this.#scheduler = options.scheduler ?? REAL_SCHEDULER;

    const positive = (name: string, value: number) => checkPositive(WHO, name, value);
    positive("refreshMs", this.#refreshMs);
    positive("resolveDeadlineMs", this.#resolveDeadlineMs);
    positive("backoff.initialMs", this.#backoff.initialMs);
    positive("backoff.maxMs", this.#backoff.maxMs);
    if (!(this.#backoff.factor >= 1) || !Number.isFinite(this.#backoff.factor)) {
      throw new RangeError(`backoff.factor must be a number >= 1, got ${this.#backoff.factor}`);
    }
    if (this.#backoff.maxMs < this.#backoff.initialMs) {
      throw new RangeError(
        `backoff.maxMs (${this.#backoff.maxMs}) must be >= backoff.initialMs (${this.#backoff.initialMs})`,
      );
    }
    checkPositiveInteger(WHO, "maxPeers", this.#maxPeers);

    const source = this.#source;
    if (source.kind === "static") {
      let peers: string[];
      try {
        peers = normalizeAddresses(source.peers);
      } catch (error) {
        throw new TypeError(`static peers must be IP addresses; ${(error as Error).message}`);
      }
      if (peers.length === 0) throw new RangeError("the static peer list is empty");
      if (peers.length > this.#maxPeers) {
        throw new RangeError(
          `the static peer list has ${peers.length} addresses, more than maxPeers ${this.#maxPeers}`,
        );
      }
      this.#staticPeers = peers;
    } else if (source.kind === "dns") {
      if (typeof source.name !== "string" || source.name.length === 0) {
        throw new TypeError("the DNS name to discover peers from must be a non-empty string");
      }
    } else {
      throw new TypeError(`unknown peer source ${JSON.stringify(source)}`);
    }
  }

  /** The current peer set (sorted); empty until the first good answer. */
  get peers(): readonly string[] {
    return this.#peers;
  }

  /** A snapshot of the counters. */
  get stats(): DiscoveryStats {
    return {
      ...this.#counts,
      lastError: this.#lastError,
      lastSuccessAgoMs: this.#lastSuccessAt === null
        ? null
        : this.#scheduler.now() - this.#lastSuccessAt,
      peers: this.#peers.length,
    };
  }

  /**
   * Starts discovery: static mode reports its list once; DNS mode resolves at once, then keeps
   * refreshing until {@link stop}. Throws when called twice.
   */
  start(): void {
    if (this.#started) throw new Error("PeerDiscovery.start called twice");
    this.#started = true;
    if (this.#source.kind === "static") {
      this.#setPeers(this.#staticPeers);
      return;
    }
    this.#runAttempt();
  }

  /** Stops refreshing; a resolution in flight is ignored. Idempotent. */
  stop(): void {
    this.#stopped = true;
    if (this.#timer !== null) {
      this.#scheduler.clearTimeout(this.#timer);
      this.#timer = null;
    }
    this.#cancelInFlight?.();
  }

  /**
   * Resolves when no resolution is in flight (the current one, if any, has been handled).
   * Rejects if handling it threw (an `onPeers`/`onEvent` callback threw).
   */
  settled(): Promise<void> {
    return this.#inFlight ?? Promise.resolve();
  }

  #runAttempt(): void {
    this.#timer = null;
    if (this.#stopped) return;
    const attempt = this.#attempt().finally(() => {
      if (this.#inFlight === attempt) this.#inFlight = null;
    });
    this.#inFlight = attempt;
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    if (this.#timer !== null) throw new Error("PeerDiscovery: a refresh is already scheduled");
    this.#timer = this.#scheduler.setTimeout(() => this.#runAttempt(), delayMs);
  }

  async #attempt(): Promise<void> {
    const source = this.#source;
    if (source.kind !== "dns") throw new Error("PeerDiscovery: resolving in static mode");
    this.#counts.attempts++;
    let answer: string[];
    try {
      const raw = await this.#resolveWithDeadline(source.name, source.resolver);
      try {
        answer = normalizeAddresses(raw);
      } catch (error) {
        throw new ResolveError(source.name, `bad answer: ${(error as Error).message}`);
      }
    } catch (error) {
      if (this.#stopped) return;
      const err = error instanceof Error ? error : new Error(String(error));
      this.#counts.failures++;
      this.#counts.consecutiveFailures++;
      this.#lastError = err.message;
      const retryInMs = backoffDelayMs(this.#counts.consecutiveFailures, this.#backoff);
      this.#schedule(retryInMs);
      this.#onEvent({
        kind: "failed",
        error: err,
        kept: this.#peers,
        consecutive: this.#counts.consecutiveFailures,
        retryInMs,
      });
      return;
    }
    if (this.#stopped) return;

    let peers = answer;
    if (peers.length === 0) {
      this.#counts.empties++;
      this.#counts.consecutiveFailures++;
      const retryInMs = backoffDelayMs(this.#counts.consecutiveFailures, this.#backoff);
      this.#schedule(retryInMs);
      this.#onEvent({
        kind: "empty",
        kept: this.#peers,
        consecutive: this.#counts.consecutiveFailures,
        retryInMs,
      });
      return;
    }

    this.#counts.resolves++;
    this.#counts.consecutiveFailures = 0;
    this.#lastSuccessAt = this.#scheduler.now();
    this.#schedule(this.#refreshMs);
    if (peers.length > this.#maxPeers) {
      const dropped = peers.slice(this.#maxPeers);
      peers = peers.slice(0, this.#maxPeers);
      this.#counts.droppedPeers += dropped.length;
      this.#onEvent({ kind: "truncated", dropped, maxPeers: this.#maxPeers });
    }
    this.#setPeers(peers);
  }

  /** Reports `peers` if it differs from the current set. */
  #setPeers(peers: readonly string[]): void {
    if (peers.length === 0) throw new Error("PeerDiscovery: never report an empty peer set");
    const previous = this.#peers;
    if (peers.length === previous.length && peers.every((peer, i) => peer === previous[i])) {
      return;
    }
    this.#peers = peers;
    this.#onEvent({ kind: "peers", peers, previous });
    this.#onPeers(peers);
  }

  #resolveWithDeadline(name: string, resolver: PeerResolver): Promise<string[]> {
    return new Promise<string[]>((resolve, reject) => {
      let done = false;
      // Settles once: a late answer after the deadline (or after stop) is ignored.
      const settle = (action: () => void) => {
        if (done) return;
        done = true;
        this.#scheduler.clearTimeout(deadline);
        if (this.#cancelInFlight === cancel) this.#cancelInFlight = null;
        action();
      };
      const cancel = () => settle(() => reject(new Error("PeerDiscovery stopped")));
      const deadline = this.#scheduler.setTimeout(
        () =>
          settle(() =>
            reject(new ResolveError(name, `no answer within ${this.#resolveDeadlineMs} ms`))
          ),
        this.#resolveDeadlineMs,
      );
      this.#cancelInFlight = cancel;
      let pending: Promise<string[]>;
      try {
        pending = resolver.resolve(name);
      } catch (error) {
        settle(() => reject(error));
        return;
      }
      pending.then(
        (addresses) => settle(() => resolve(addresses)),
        (error) => settle(() => reject(error)),
      );
    });
  }
}
