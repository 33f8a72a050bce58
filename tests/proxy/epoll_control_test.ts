/**
 * EpollControl (lib/proxy/epoll/epoll_control.ts), the shared memory between the epoll proxy's
 * main thread and its worker, driven from one thread: the command slot and its acknowledgement,
 * the event mailbox in order, its "full" path, and the int32 counters wrapping around.
 * Pure: no FFI, no socket, so it runs on every platform.
 */

import assert from "node:assert/strict";
import {
  CONTROL_OFFSET,
  CONTROL_SLOTS,
  EPOLL_EVENT_SLOTS,
  EpollControl,
  MAILBOX_EVENT_MAX_BYTES,
} from "../../lib/proxy/epoll/epoll_control.ts";
import type { ProxyEvent } from "../../lib/proxy/proxy_options.ts";

const INT32_MAX = 2 ** 31 - 1;

/** Both sides over one buffer, and the raw control slots (to start counters near the wrap). */
function pair() {
  const buffer = EpollControl.allocate();
  const main = new EpollControl(buffer);
  const worker = new EpollControl(buffer);
  const slots = new Int32Array(buffer, CONTROL_OFFSET, 8);
  return { main, worker, slots };
}

function refused(n: number): ProxyEvent {
  return { kind: "refused", openConnections: n, maxConnections: n };
}

Deno.test("EpollControl: a command reaches the worker and its reply comes back", () => {
  const { main, worker } = pair();
  assert.equal(worker.takeCommand(), null, "nothing posted yet");
  const reply = main.call({ op: "target", target: { host: "127.0.11.1", port: 6379 } }, () => {
    const command = worker.takeCommand(); // the worker, woken
    assert.deepEqual(command, { op: "target", target: { host: "127.0.11.1", port: 6379 } });
    worker.reply(7);
  }, 1000);
  assert.equal(reply, 7);
  assert.equal(worker.takeCommand(), null, "taken once");
});

Deno.test("EpollControl: a worker that does not answer is a clear error", () => {
  const { main } = pair();
  assert.throws(() => main.call({ op: "close" }, () => {}, 1), /did not answer close within 1 ms/);
});

Deno.test("EpollControl: the command sequence number wraps around int32", () => {
  const { main, worker, slots } = pair();
  // The last command was number INT32_MAX - 1: the next ones are INT32_MAX, then -2^31...
  slots[CONTROL_SLOTS.cmdSeq] = INT32_MAX - 1;
  slots[CONTROL_SLOTS.ackSeq] = INT32_MAX - 1;
  for (let i = 0; i < 3; i++) {
    const reply = main.call({ op: "close" }, () => {
      assert.deepEqual(worker.takeCommand(), { op: "close" });
      worker.reply(i);
    }, 1000);
    assert.equal(reply, i);
  }
  assert.equal(slots[CONTROL_SLOTS.cmdSeq], -(2 ** 31) + 1, "wrapped");
});

Deno.test("EpollControl: events arrive in order; a long error is cut to fit a slot", () => {
  const { main, worker } = pair();
  assert.ok(worker.postEvent(refused(1)));
  assert.ok(worker.postEvent({ kind: "accept-error", error: "x".repeat(10_000) }));
  assert.ok(worker.postEvent(refused(2)));
  const events = main.drainEvents();
  assert.equal(events.length, 3);
  assert.deepEqual(events[0], refused(1));
  const cut = events[1] as { kind: "accept-error"; error: string };
  assert.equal(cut.kind, "accept-error");
  assert.ok(cut.error.length > 0 && cut.error.length <= MAILBOX_EVENT_MAX_BYTES, "cut");
  assert.deepEqual(events[2], refused(2));
  assert.deepEqual(main.drainEvents(), [], "drained");
});

Deno.test("EpollControl: a full mailbox drops the event and counts it, then takes events again", () => {
  const { main, worker } = pair();
  for (let i = 0; i < EPOLL_EVENT_SLOTS; i++) assert.ok(worker.postEvent(refused(i)), `slot ${i}`);
  assert.equal(worker.postEvent(refused(-1)), false, "full");
  assert.equal(main.droppedEvents, 1);
  const events = main.drainEvents();
  assert.equal(events.length, EPOLL_EVENT_SLOTS);
  assert.deepEqual(events.at(-1), refused(EPOLL_EVENT_SLOTS - 1), "the dropped one is not there");
  assert.ok(worker.postEvent(refused(9)), "room again after the drain");
  assert.deepEqual(main.drainEvents(), [refused(9)]);
});

Deno.test("EpollControl: the mailbox counters wrap around int32, in order and with the full check", () => {
  const { main, worker, slots } = pair();
  const start = INT32_MAX - 5;
  slots[CONTROL_SLOTS.eventsWritten] = start;
  slots[CONTROL_SLOTS.eventsRead] = start;
  for (let i = 0; i < 12; i++) assert.ok(worker.postEvent(refused(i)));
  assert.ok(slots[CONTROL_SLOTS.eventsWritten]! < 0, "the write counter wrapped");
  assert.deepEqual(main.drainEvents(), Array.from({ length: 12 }, (_, i) => refused(i)));
  // Full across the wrap: written - read is still the number of waiting events.
  slots[CONTROL_SLOTS.eventsWritten] = start;
  slots[CONTROL_SLOTS.eventsRead] = start;
  for (let i = 0; i < EPOLL_EVENT_SLOTS; i++) assert.ok(worker.postEvent(refused(i)));
  assert.equal(worker.postEvent(refused(-1)), false, "full across the wrap");
  const events = main.drainEvents();
  assert.equal(events.length, EPOLL_EVENT_SLOTS);
  assert.deepEqual(events[0], refused(0));
  assert.deepEqual(events.at(-1), refused(EPOLL_EVENT_SLOTS - 1));
});

Deno.test("EpollControl: a buffer of the wrong size is refused", () => {
  assert.throws(() => new EpollControl(new SharedArrayBuffer(16)), /EpollControl: expected/);
});
