/**
 * The shared memory between the epoll proxy's façade (main thread) and its worker thread: one
 * `SharedArrayBuffer` holding
 *
 * - the stats (a `Float64Array`, written by the worker only, read by the main thread at any time,
 *   so `proxy.stats` stays synchronous);
 * - one command slot (main → worker: set the target, close), answered synchronously: the main
 *   thread writes the command, wakes the worker through its eventfd and `Atomics.wait`s for the
 *   acknowledgement, so `setTarget` returns with the connections already closed, as with the
 *   Deno engine;
 * - an event mailbox (worker → main): fixed slots of JSON-encoded {@link ProxyEvent}s, drained
 *   by the main thread whenever it reads the stats or is woken by a worker message, so an event
 *   is never seen later than the counter it goes with. A full mailbox drops the event (counted).
 *
 * @example
 * ```ts
 * import { EpollControl } from "./epoll_control.ts";
 * const control = new EpollControl(EpollControl.allocate());
 * control.stats.active; // 0
 * ```
 */

import type { ProxyEvent, ProxyStats, ProxyUpstream } from "../proxy_options.ts";
import { monotonicMs } from "../../common/clock.ts";

/** The stats fields, in their order in shared memory. */
export const STAT_FIELDS = [
  "active",
  "proxied",
  "waiting",
  "total",
  "refused",
  "held",
  "holdTimeouts",
  "upstreamFailures",
  "closedByTargetChange",
  "targetChanges",
  "bytesToUpstream",
  "bytesToClient",
  "bufferedBytes",
] as const satisfies readonly (keyof ProxyStats)[];

/** Index of each stats field in the shared `Float64Array`. */
export const STAT = Object.fromEntries(STAT_FIELDS.map((name, i) => [name, i])) as {
  readonly [K in keyof ProxyStats]: number;
};

/** Largest encoded command (JSON: a target's host is at most a DNS name, a path 107 bytes). */
export const EPOLL_COMMAND_BYTES = 4096;
/** Slots of the event mailbox: events not yet drained by the main thread. */
export const EPOLL_EVENT_SLOTS = 1024;
/**
 * Largest encoded proxy event in a mailbox slot (JSON); a longer error text is cut. Not the
 * kernel's `struct epoll_event` (`EPOLL_EVENT_STRUCT_BYTES` in libc.ts).
 */
export const MAILBOX_EVENT_MAX_BYTES = 512;

/** A command from the main thread to the worker. */
export type EpollCommand =
  | { op: "target"; target: ProxyUpstream }
  | { op: "stop-accepting" }
  | { op: "close" };

/**
 * The Int32 slots of the control area. The sequence numbers and the mailbox counters are int32
 * and wrap around (2^31 - 1 + 1 is -2^31): every comparison is of a difference (`| 0`), and a
 * slot index is taken from the unsigned value, which 1024 slots divide evenly.
 */
export const CONTROL_SLOTS = {
  cmdSeq: 0,
  ackSeq: 1,
  cmdLength: 2,
  reply: 3,
  eventsWritten: 4,
  eventsRead: 5,
  eventsDropped: 6,
} as const;
const { cmdSeq: CMD_SEQ, ackSeq: ACK_SEQ, cmdLength: CMD_LENGTH, reply: REPLY } = CONTROL_SLOTS;
const { eventsWritten: EVENTS_WRITTEN, eventsRead: EVENTS_READ, eventsDropped: EVENTS_DROPPED } =
  CONTROL_SLOTS;
const CONTROL_INTS = 8;

const STATS_OFFSET = 0;
/** Byte offset of the control area (the Int32 {@link CONTROL_SLOTS}) in the shared buffer. */
export const CONTROL_OFFSET = STATS_OFFSET + STAT_FIELDS.length * 8;
const COMMAND_OFFSET = CONTROL_OFFSET + CONTROL_INTS * 4;
const EVENTS_OFFSET = COMMAND_OFFSET + EPOLL_COMMAND_BYTES;
/** Each event slot: a u16 length, then the JSON bytes. */
const EVENT_SLOT_BYTES = 2 + MAILBOX_EVENT_MAX_BYTES;
const TOTAL_BYTES = EVENTS_OFFSET + EPOLL_EVENT_SLOTS * EVENT_SLOT_BYTES;

/** Both threads' view of the shared memory; each side uses only its own methods. */
export class EpollControl {
  /** The stats, live: the worker writes them, the main thread reads them. */
  readonly statValues: Float64Array;
  readonly #control: Int32Array;
  readonly #command: Uint8Array;
  readonly #events: Uint8Array;
  #commandsTaken = 0;

  /** A zeroed shared buffer of the right size. */
  static allocate(): SharedArrayBuffer {
    return new SharedArrayBuffer(TOTAL_BYTES);
  }

  constructor(readonly buffer: SharedArrayBuffer) {
    if (buffer.byteLength !== TOTAL_BYTES) {
      throw new RangeError(`EpollControl: expected ${TOTAL_BYTES} bytes, got ${buffer.byteLength}`);
    }
    this.statValues = new Float64Array(buffer, STATS_OFFSET, STAT_FIELDS.length);
    this.#control = new Int32Array(buffer, CONTROL_OFFSET, CONTROL_INTS);
    this.#command = new Uint8Array(buffer, COMMAND_OFFSET, EPOLL_COMMAND_BYTES);
    this.#events = new Uint8Array(buffer, EVENTS_OFFSET, EPOLL_EVENT_SLOTS * EVENT_SLOT_BYTES);
  }

  /** A snapshot of the stats. */
  get stats(): ProxyStats {
    const values = this.statValues;
    const out = {} as ProxyStats;
    for (let i = 0; i < STAT_FIELDS.length; i++) out[STAT_FIELDS[i]!] = values[i]!;
    return out;
  }

  /** Events dropped because the mailbox was full. */
  get droppedEvents(): number {
    return Atomics.load(this.#control, EVENTS_DROPPED);
  }

  // ---- main thread ----

  /**
   * Main thread: posts `command`, calls `wake` (which must make the worker look), and blocks
   * until the worker acknowledges, at most `timeoutMs`; returns the worker's reply number.
   */
  call(command: EpollCommand, wake: () => void, timeoutMs: number): number {
    const bytes = new TextEncoder().encode(JSON.stringify(command));
    if (bytes.length > EPOLL_COMMAND_BYTES) {
      throw new RangeError(`EpollControl: command of ${bytes.length} bytes`);
    }
    // `| 0`: the int32 slot wraps at 2^31, so must the number compared with its ack.
    const seq = (Atomics.load(this.#control, CMD_SEQ) + 1) | 0;
    this.#command.set(bytes);
    Atomics.store(this.#control, CMD_LENGTH, bytes.length);
    Atomics.store(this.#control, CMD_SEQ, seq);
    wake();
    const deadline = monotonicMs() + timeoutMs;
    for (;;) {
      const acked = Atomics.load(this.#control, ACK_SEQ);
      if (acked === seq) return Atomics.load(this.#control, REPLY);
      const leftMs = deadline - monotonicMs();
      if (leftMs <= 0) {
        throw new Error(`epoll proxy worker did not answer ${command.op} within ${timeoutMs} ms`);
      }
      Atomics.wait(this.#control, ACK_SEQ, acked, leftMs);
    }
  }

  /** Main thread: the events the worker posted since the last drain, oldest first. */
  drainEvents(): ProxyEvent[] {
    const out: ProxyEvent[] = [];
    const written = Atomics.load(this.#control, EVENTS_WRITTEN);
    let read = Atomics.load(this.#control, EVENTS_READ);
    const decoder = new TextDecoder();
    while (read !== written) {
      const at = ((read >>> 0) % EPOLL_EVENT_SLOTS) * EVENT_SLOT_BYTES;
      const length = this.#events[at]! | (this.#events[at + 1]! << 8);
      // A copy: TextDecoder does not read shared memory.
      const json = decoder.decode(this.#events.slice(at + 2, at + 2 + length));
      out.push(JSON.parse(json) as ProxyEvent);
      read = (read + 1) | 0;
      Atomics.store(this.#control, EVENTS_READ, read);
    }
    return out;
  }

  // ---- worker thread ----

  /** Worker: the command posted since the last call, or null. */
  takeCommand(): EpollCommand | null {
    const seq = Atomics.load(this.#control, CMD_SEQ);
    if (seq === this.#commandsTaken) return null;
    this.#commandsTaken = seq;
    const length = Atomics.load(this.#control, CMD_LENGTH);
    return JSON.parse(new TextDecoder().decode(this.#command.slice(0, length))) as EpollCommand;
  }

  /** Worker: acknowledges the last taken command with `reply`, waking the main thread. */
  reply(reply: number): void {
    Atomics.store(this.#control, REPLY, reply);
    Atomics.store(this.#control, ACK_SEQ, this.#commandsTaken);
    Atomics.notify(this.#control, ACK_SEQ);
  }

  /** Worker: posts an event; false (and counted) when the mailbox is full. */
  postEvent(event: ProxyEvent): boolean {
    const written = Atomics.load(this.#control, EVENTS_WRITTEN);
    const read = Atomics.load(this.#control, EVENTS_READ);
    if (((written - read) | 0) >= EPOLL_EVENT_SLOTS) {
      Atomics.add(this.#control, EVENTS_DROPPED, 1);
      return false;
    }
    let bytes = new TextEncoder().encode(JSON.stringify(event));
    if (bytes.length > MAILBOX_EVENT_MAX_BYTES && "error" in event) {
      const cut = { ...event, error: event.error.slice(0, MAILBOX_EVENT_MAX_BYTES / 4) };
      bytes = new TextEncoder().encode(JSON.stringify(cut));
    }
    if (bytes.length > MAILBOX_EVENT_MAX_BYTES) {
      throw new RangeError(`EpollControl: event of ${bytes.length} bytes: ${event.kind}`);
    }
    const at = ((written >>> 0) % EPOLL_EVENT_SLOTS) * EVENT_SLOT_BYTES;
    this.#events[at] = bytes.length & 0xff;
    this.#events[at + 1] = bytes.length >> 8;
    this.#events.set(bytes, at + 2);
    Atomics.store(this.#control, EVENTS_WRITTEN, (written + 1) | 0);
    return true;
  }
}
