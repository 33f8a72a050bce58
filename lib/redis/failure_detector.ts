/**
 * The failure detector of the local redis: tells a busy redis from a dead one.
 *
 * A pure state machine (no sockets, no timers, no clock reads): the redis controller tells it
 * what happened on its connection (a probe sent, answered, answered `-BUSY`, the connection
 * lost, a reconnect refused or made) with the current monotonic time, and asks it for the
 * verdict ({@link RedisHealth}).
 *
 * - **Dead** is dead: an established connection dropped and a reconnect was refused (nothing
 *   listens: the process is gone), or redis left a probe unanswered for longer than the hang
 *   timeout. A new `run_id` after a reconnect is a restart, which the election sees in the
 *   observation itself.
 * - **Busy** is alive: a dropped connection whose reconnect has not been refused (`CLIENT KILL`
 *   of the monitoring connection: the reconnect follows at once), a probe answered slowly
 *   (a long script, a big `DEL`, a fork, `CLIENT PAUSE`), a `-BUSY` answer (a script past
 *   `busy-reply-threshold`), a master `-LOADING`. Busy turns into dead only after
 *   {@link FailureDetectorOptions.hangMs} without an answer.
 * - A redis that answers `-BUSY` for the whole hang timeout is first asked to end its script
 *   (`SCRIPT KILL`, `FUNCTION KILL`: the controller sends them once when
 *   {@link RedisFailureDetector.shouldKillScript} says so, as Sentinel does); it counts as dead
 *   only if it still does not answer {@link FailureDetectorOptions.scriptKillGraceMs} later
 *   (a script that wrote cannot be killed: `-UNKILLABLE`).
 *
 * Why the hang timeout defaults to redis's `busy-reply-threshold` (5 s): until then redis does
 * not answer anyone while a script runs, and nobody may interrupt the script, so a redis silent
 * for less than that may be doing legitimate work; failing over then would lose the script's
 * writes and bounce every client (see `docs/election.md`).
 *
 * @example
 * ```ts
 * import { RedisFailureDetector } from "./failure_detector.ts";
 * const d = new RedisFailureDetector({ hangMs: 5000 });
 * d.connected(0);
 * d.probeSent(10);
 * d.health(600).state; // "busy": unanswered for 590 ms
 * d.answered(700);
 * d.health(700).state; // "answering"
 * d.connectionLost(800);
 * d.connectFailed("ECONNREFUSED", 801);
 * d.health(801); // { state: "dead", reason: "refused", ... }
 * ```
 */

import { checkInteger, checkPositiveInteger } from "../common/assert.ts";

/** Default hang timeout: redis's default `busy-reply-threshold` (`lua-time-limit`). */
export const DEFAULT_REDIS_HANG_MS = 5_000;
/** Smallest hang timeout accepted (below it a loaded machine would look hung). */
export const MIN_REDIS_HANG_MS = 500;
/** Largest hang timeout accepted (10 minutes). */
export const MAX_REDIS_HANG_MS = 600_000;
/** Default wait, after `SCRIPT KILL`, before a still-busy redis counts as hung. */
export const DEFAULT_SCRIPT_KILL_GRACE_MS = 1_000;

/**
 * Connect errors that mean nothing listens at the redis address: the process is gone. (`ENOENT`:
 * the Unix socket file is gone.)
 */
export const REFUSED_CODES: readonly string[] = ["ECONNREFUSED", "ENOENT"];

/** Why a redis counts as busy. */
export type BusyReason =
  /** A probe is unanswered so far (a long command, a fork, `CLIENT PAUSE`). */
  | "slow"
  /** Redis answers `-BUSY` (a script or function past `busy-reply-threshold`). */
  | "script"
  /** A master answers with `loading:1`. */
  | "loading"
  /** The connection dropped; the reconnect has not failed. */
  | "reconnecting";

/** Why a redis counts as dead. */
export type DeadReason =
  /** No connection was ever made (or the controller is closed). */
  | "not-connected"
  /** The connection dropped and a reconnect was refused. */
  | "refused"
  /** No answer for the hang timeout. */
  | "hung";

/** The verdict on the local redis. */
export type RedisHealth =
  | { state: "answering" }
  | { state: "busy"; reason: BusyReason; unansweredMs: number }
  | { state: "dead"; reason: DeadReason; unansweredMs: number | null };

/** Options of {@link RedisFailureDetector}. */
export interface FailureDetectorOptions {
  /** How long redis may leave a probe unanswered before it counts as dead (hung). */
  hangMs: number;
  /** After `SCRIPT KILL`: how long a still-busy redis has before it counts as hung. */
  scriptKillGraceMs?: number;
}

/**
 * Checks a hang timeout: an integer from {@link MIN_REDIS_HANG_MS} to {@link MAX_REDIS_HANG_MS}.
 *
 * @throws {RangeError} naming the value otherwise.
 * @example
 * ```ts
 * checkHangMs(5000); // 5000
 * ```
 */
export function checkHangMs(hangMs: number): number {
  return checkInteger(
    "RedisFailureDetector",
    "hangMs",
    hangMs,
    MIN_REDIS_HANG_MS,
    MAX_REDIS_HANG_MS,
  );
}

/** See the module documentation. */
export class RedisFailureDetector {
  readonly hangMs: number;
  readonly scriptKillGraceMs: number;
  #everConnected = false;
  #connected = false;
  #refused = false;
  /** Since when redis owes an answer (the oldest unanswered probe, or the loss), or null. */
  #waitingSinceMs: number | null = null;
  #lastReplyBusy = false;
  #loading = false;
  #scriptKillSentMs: number | null = null;

  /** @throws {RangeError} on a bad hang timeout or grace. */
  constructor(opts: FailureDetectorOptions) {
    this.hangMs = checkHangMs(opts.hangMs);
    this.scriptKillGraceMs = checkPositiveInteger(
      "RedisFailureDetector",
      "scriptKillGraceMs",
      opts.scriptKillGraceMs ?? DEFAULT_SCRIPT_KILL_GRACE_MS,
    );
  }

  /** A connection to redis is established (the first, or a reconnect). */
  connected(_nowMs: number): void {
    this.#everConnected = true;
    this.#connected = true;
    this.#refused = false;
  }

  /** The established connection dropped (reset, closed by redis, `CLIENT KILL`). */
  connectionLost(nowMs: number): void {
    if (!this.#connected) return;
    this.#connected = false;
    this.#waitingSinceMs ??= nowMs;
  }

  /** A connect attempt failed with `code` (a Node error code such as `ECONNREFUSED`). */
  connectFailed(code: string | undefined, _nowMs: number): void {
    if (this.#connected) return;
    if (code !== undefined && REFUSED_CODES.includes(code)) this.#refused = true;
  }

  /** A probe (INFO) was sent; redis owes an answer from now on unless it already did. */
  probeSent(nowMs: number): void {
    this.#waitingSinceMs ??= nowMs;
  }

  /** A probe was answered normally (a master answering `loading:1`: call {@link loading}). */
  answered(_nowMs: number): void {
    this.#waitingSinceMs = null;
    this.#lastReplyBusy = false;
    this.#loading = false;
    this.#scriptKillSentMs = null;
  }

  /** A probe was answered `-BUSY`: redis runs a script past `busy-reply-threshold`. */
  busyReply(_nowMs: number): void {
    this.#lastReplyBusy = true;
  }

  /** A master answered a probe with `loading:1`: it lives, but cannot serve yet. */
  loading(_nowMs: number): void {
    this.#loading = true;
  }

  /** True when the controller should send `SCRIPT KILL` and `FUNCTION KILL` now (once). */
  shouldKillScript(nowMs: number): boolean {
    return this.#connected && this.#lastReplyBusy && this.#scriptKillSentMs === null &&
      this.#unanswered(nowMs) >= this.hangMs;
  }

  /** The controller sent `SCRIPT KILL` / `FUNCTION KILL`. */
  scriptKillSent(nowMs: number): void {
    this.#scriptKillSentMs = nowMs;
  }

  /** The verdict now. */
  health(nowMs: number): RedisHealth {
    const waiting = this.#waitingSinceMs;
    if (!this.#everConnected) return { state: "dead", reason: "not-connected", unansweredMs: null };
    if (this.#refused) {
      return { state: "dead", reason: "refused", unansweredMs: this.#unansweredOrNull(nowMs) };
    }
    if (waiting === null) return { state: "answering" };
    const unansweredMs = this.#unanswered(nowMs);
    if (unansweredMs >= this.hangMs) {
      const killPending = this.#connected && this.#lastReplyBusy &&
        (this.#scriptKillSentMs === null ||
          nowMs - this.#scriptKillSentMs < this.scriptKillGraceMs);
      if (!killPending) return { state: "dead", reason: "hung", unansweredMs };
    }
    const reason: BusyReason = !this.#connected
      ? "reconnecting"
      : this.#lastReplyBusy
      ? "script"
      : this.#loading
      ? "loading"
      : "slow";
    return { state: "busy", reason, unansweredMs };
  }

  #unanswered(nowMs: number): number {
    return this.#waitingSinceMs === null ? 0 : Math.max(0, nowMs - this.#waitingSinceMs);
  }

  #unansweredOrNull(nowMs: number): number | null {
    return this.#waitingSinceMs === null ? null : this.#unanswered(nowMs);
  }
}

/**
 * True when two verdicts are the same state for the same reason (a change is worth a log line).
 *
 * @example
 * ```ts
 * sameHealth({ state: "answering" }, { state: "answering" }); // true
 * ```
 */
export function sameHealth(a: RedisHealth, b: RedisHealth): boolean {
  if (a.state !== b.state) return false;
  if (a.state === "answering" || b.state === "answering") return true;
  return a.reason === b.reason;
}
