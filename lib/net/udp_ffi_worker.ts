/**
 * The receive side of {@link listenUdpFfi} (lib/net/udp_ffi.ts), in its own Web Worker: a
 * blocking `recvfrom` loop on the socket the main thread opened, into one fixed buffer. Every
 * datagram is checked by the envelope filter (size, magic, version, flags, HMAC) right there;
 * one that fails is only counted (a shared counter per reason, no allocation, no message), one
 * that passes is copied and posted to the main thread with its sender. So a flood of junk or
 * badly signed datagrams costs this thread a few microseconds each and the process no memory,
 * while the election on the main thread runs on.
 *
 * Posted datagrams are bounded: while {@link UdpWorkerInit.maxPending} are posted and not yet
 * handled (a shared counter the main thread decrements), more are dropped as `overload`.
 *
 * The loop wakes at least every {@link RECV_TIMEOUT_MS} (`SO_RCVTIMEO`, set by the main thread)
 * to look at the shared stop flag; it then posts `{ closed: true }` and ends.
 *
 * @example
 * ```ts
 * declare const init: import("./udp_ffi_protocol.ts").UdpWorkerInit;
 * const worker = new Worker(new URL("./udp_ffi_worker.ts", import.meta.url), { type: "module" });
 * worker.postMessage(init);
 * ```
 */

import { createEnvelopeFilter } from "../election/envelope_filter.ts";
import { DROP_REASONS } from "../election/codec.ts";
import { EAGAIN, EINTR, errno, libc } from "../proxy/epoll/libc.ts";
import {
  type PostedDatagram,
  RECV_BUFFER_BYTES,
  senderOf,
  SHARED,
  type UdpWorkerInit,
} from "./udp_ffi_protocol.ts";

interface WorkerScope {
  onmessage: ((event: MessageEvent<UdpWorkerInit>) => void) | null;
  postMessage(message: unknown, transfer?: Transferable[]): void;
  close(): void;
}
const scope = self as unknown as WorkerScope;

function run(init: UdpWorkerInit): void {
  const c = libc();
  const filter = createEnvelopeFilter(init.secret);
  const counters = new Int32Array(init.shared);
  const buf = new Uint8Array(RECV_BUFFER_BYTES);
  const addr = new Uint8Array(28);
  const addrLen = new Uint32Array(1);
  const addrLenBytes = new Uint8Array(addrLen.buffer);
  const reasonIndex = new Map(DROP_REASONS.map((r, i) => [r, i]));
  while (Atomics.load(counters, SHARED.stop) === 0) {
    addrLen[0] = addr.length;
    const n = c.recvfrom(init.fd, buf, BigInt(buf.length), 0, addr, addrLenBytes);
    if (n < 0) {
      const e = errno();
      if (e === EAGAIN || e === EINTR) continue;
      break; // the socket is gone
    }
    const datagram = buf.subarray(0, n);
    const reason = filter(datagram);
    if (reason !== null) {
      Atomics.add(counters, reasonIndex.get(reason)!, 1);
      continue;
    }
    if (Atomics.load(counters, SHARED.pending) >= init.maxPending) {
      Atomics.add(counters, SHARED.overload, 1);
      continue;
    }
    Atomics.add(counters, SHARED.pending, 1);
    Atomics.add(counters, SHARED.posted, 1);
    const bytes = datagram.slice();
    const posted: PostedDatagram = { bytes, ...senderOf(addr) };
    scope.postMessage(posted, [bytes.buffer]);
  }
  scope.postMessage({ closed: true });
}

scope.onmessage = (e: MessageEvent<UdpWorkerInit>) => {
  scope.onmessage = null;
  try {
    run(e.data);
  } catch (error) {
    scope.postMessage({ closed: true, error: String(error) });
  }
  scope.close();
};
