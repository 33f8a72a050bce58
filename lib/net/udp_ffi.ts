/**
 * The hive's UDP socket through libc (`Deno.dlopen`, `--allow-ffi`, x86_64 Linux): a
 * {@link DatagramTransport} whose receive loop reads the socket into one fixed buffer and drops
 * junk and badly signed datagrams there, before they cost the process any memory.
 *
 * Why not `node:dgram` (lib/net/udp_transport.ts, still the fallback and the contract's
 * reference): measured here, a `node:dgram` socket that receives 10 000 datagrams per second and
 * does nothing with them grows the process's RSS by about 200 MiB within 10 s and keeps it, and
 * `Deno.listenDatagram` by about 85 MiB; a `recvfrom` into one buffer grows it by under 10 MiB (`deno task bench flood` measures the hive as a whole, see
 * docs/security.md). One socket sends and receives, so heartbeats leave from the bound address
 * and port, as with `node:dgram`.
 *
 * Sends are `sendto` with `MSG_DONTWAIT` from the calling thread: never blocking; a full send
 * buffer is reported to the error handler like any failed send.
 *
 * @example
 * ```ts
 * import { listenUdpFfi } from "./udp_ffi.ts";
 * const udp = await listenUdpFfi({ host: "127.0.0.11", port: 7379 }, { secret: "s3cret" });
 * udp.setHandler((bytes, from) => console.log(bytes.length, from.host));
 * console.log(udp.prefilterDrops()); // { "bad-magic": 0, ... }
 * await udp.close();
 * ```
 */

import { isIP } from "node:net";
import { DROP_REASONS, type DropReason } from "../election/codec.ts";
import {
  AF_INET,
  AF_INET6,
  errno,
  errorText,
  ipSocketAddress,
  libc,
  MSG_DONTWAIT,
  MSG_NOSIGNAL,
  SOCK_CLOEXEC,
  SOL_SOCKET,
} from "../proxy/epoll/libc.ts";
import {
  assertBindable,
  DEFAULT_RECV_BUFFER_BYTES,
  DEFAULT_SEND_BUFFER_BYTES,
  destinationProblem,
  type Endpoint,
  formatEndpoint,
  logTransportError,
  normalizeAddress,
  type UdpListenOptions,
  type UdpTransport,
} from "./udp_transport.ts";
import { RECV_BUFFER_BYTES, RECV_TIMEOUT_MS, senderOf } from "./udp_ffi_protocol.ts";
import { createEnvelopeFilter } from "../election/envelope_filter.ts";

/**
 * Datagrams read per wake-up of the receive loop, at most: then the event loop runs (timers,
 * the election) before the next batch; what is left waits in the kernel's bounded buffer.
 */
export const MAX_DATAGRAMS_PER_WAKEUP = 256;
/** `poll(2)` events: readable, error, not open. */
const POLLIN = 0x001;
const POLLERR = 0x008;
const POLLNVAL = 0x020;
/** Most destination addresses whose encoding is cached (peers: bounded by --max-peers). */
export const MAX_CACHED_DESTINATIONS = 2_048;

const SOCK_DGRAM = 2;
const SO_SNDBUF = 7;
const SO_RCVBUF = 8;
const IPPROTO_IPV6 = 41;
const IPV6_V6ONLY = 26;

/** Options of {@link listenUdpFfi}. */
export interface FilteredUdpOptions extends UdpListenOptions {
  /** The heartbeat secret the receive loop checks tags with, or null (signed datagrams refused). */
  secret: string | null;
}

/** A UDP transport that drops bad datagrams before they reach the handler. */
export interface FilteredUdpTransport extends UdpTransport {
  /** Datagrams the worker dropped, by reason (the codec's reasons and `overload`). */
  prefilterDrops(): Record<DropReason | "overload", number>;
}

/**
 * True when this process can run {@link listenUdpFfi}: x86_64 Linux with `--allow-ffi`.
 *
 * @example
 * ```ts
 * if (!ffiUdpAvailable()) console.warn("falling back to node:dgram");
 * ```
 */
export function ffiUdpAvailable(): boolean {
  try {
    libc();
    return true;
  } catch {
    return false;
  }
}

function check(result: number, what: string): number {
  if (result < 0) throw new Error(`${what}: ${errorText(errno())}`);
  return result;
}

/** libc as {@link libc} returns it. */
type Libc = ReturnType<typeof libc>;

/** A bound socket: its descriptor, granted receive buffer and local endpoint. */
interface BoundSocket {
  fd: number;
  granted: number;
  local: Endpoint;
}

/** `value` as the 4 bytes of a C `int`. */
function cInt(value: number): Uint8Array {
  return new Uint8Array(new Int32Array([value]).buffer);
}

/** Sets the socket's buffers and (IPv6) `IPV6_V6ONLY`. */
function setSocketOptions(c: Libc, fd: number, family: 4 | 6, opts: UdpListenOptions): void {
  const recvBytes = opts.recvBufferBytes ?? DEFAULT_RECV_BUFFER_BYTES;
  check(c.setsockopt(fd, SOL_SOCKET, SO_RCVBUF, cInt(recvBytes), 4), "SO_RCVBUF");
  const sendBytes = opts.sendBufferBytes ?? DEFAULT_SEND_BUFFER_BYTES;
  check(c.setsockopt(fd, SOL_SOCKET, SO_SNDBUF, cInt(sendBytes), 4), "SO_SNDBUF");
  if (family === 6) {
    check(
      c.setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, cInt(opts.ipv6Only ? 1 : 0), 4),
      "IPV6_V6ONLY",
    );
  }
}

/** Opens a datagram socket, sets its options and binds it; closes it on any failure. */
function bindSocket(
  c: Libc,
  bind: Endpoint,
  family: 4 | 6,
  opts: UdpListenOptions,
): BoundSocket {
  const address = ipSocketAddress(bind.host, bind.port);
  if (address === null) throw new Error(`bind address ${bind.host} cannot be encoded`);
  const fd = check(
    c.socket(family === 6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0),
    "socket",
  );
  try {
    setSocketOptions(c, fd, family, opts);
    if (c.bind(fd, address.bytes, address.bytes.length) < 0) {
      throw new Error(`cannot bind UDP ${formatEndpoint(bind)}: ${errorText(errno())}`);
    }
    const got = new Uint8Array(4);
    const gotLen = new Uint8Array(new Uint32Array([4]).buffer);
    check(c.getsockopt(fd, SOL_SOCKET, SO_RCVBUF, got, gotLen), "getsockopt");
    const name = new Uint8Array(28);
    const nameLen = new Uint8Array(new Uint32Array([28]).buffer);
    check(c.getsockname(fd, name, nameLen), "getsockname");
    const local = { host: normalizeAddress(bind.host), port: senderOf(name).port };
    return { fd, granted: new Int32Array(got.buffer)[0]!, local };
  } catch (e) {
    c.close(fd);
    throw e;
  }
}

/** The receive loop of one socket, and when it has stopped. */
interface ReceiveLoop {
  /** Asks the loop to stop; it does within {@link RECV_TIMEOUT_MS}. */
  stop(): void;
  /** Resolves when the loop has stopped. */
  stopped: Promise<void>;
}

/** `poll(2)` as a nonblocking FFI call: it waits on a runtime thread, the event loop runs on. */
let pollLibrary:
  | { symbols: { poll: (fds: Uint8Array, n: bigint, ms: number) => Promise<number> } }
  | null = null;

function pollSymbol(): (fds: Uint8Array, n: bigint, ms: number) => Promise<number> {
  pollLibrary ??= Deno.dlopen("libc.so.6", {
    poll: { parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },
  });
  return pollLibrary.symbols.poll;
}

/**
 * Reads `fd` on the main thread: waits for it to be readable with a nonblocking `poll` (on a
 * runtime thread, so the event loop runs on), then reads at most {@link MAX_DATAGRAMS_PER_WAKEUP}
 * datagrams with `MSG_DONTWAIT` into one fixed buffer, checks each with the envelope filter
 * (size, magic, version, flags, HMAC; allocation-free), counts a failure by reason and copies only
 * a datagram that passes to `deliver`. So a flood of junk or badly signed datagrams costs a few
 * microseconds each and no memory, and what it leaves unread stays in the kernel's bounded
 * buffer. (Issue 13 ran this loop in a worker of its own, a V8 isolate of 7 to 11 MiB.)
 */
function startReceiveLoop(
  c: Libc,
  fd: number,
  secret: string | null,
  counters: Int32Array,
  deliver: (bytes: Uint8Array, from: Endpoint) => void,
  onLoopError: (message: string) => void,
): ReceiveLoop {
  const poll = pollSymbol();
  const filter = createEnvelopeFilter(secret);
  const reasonIndex = new Map(DROP_REASONS.map((r, i) => [r, i]));
  const buf = new Uint8Array(RECV_BUFFER_BYTES);
  const addr = new Uint8Array(28);
  const addrLen = new Uint32Array(1);
  const addrLenBytes = new Uint8Array(addrLen.buffer);
  const pollFd = new Uint8Array(8); // struct pollfd { int fd; short events; short revents; }
  const pollView = new DataView(pollFd.buffer);
  pollView.setInt32(0, fd, true);
  pollView.setInt16(4, POLLIN, true);
  let stopping = false;
  const drain = () => {
    for (let i = 0; i < MAX_DATAGRAMS_PER_WAKEUP && !stopping; i++) {
      addrLen[0] = addr.length;
      const n = c.recvfrom(fd, buf, BigInt(buf.length), MSG_DONTWAIT, addr, addrLenBytes);
      if (n < 0) return; // EAGAIN: read everything (or the socket failed; poll says so next)
      const datagram = buf.subarray(0, n);
      const reason = filter(datagram);
      if (reason !== null) {
        counters[reasonIndex.get(reason)!]! += 1;
        continue;
      }
      deliver(datagram.slice(), senderOf(addr));
    }
  };
  const stopped = (async () => {
    while (!stopping) {
      const ready = await poll(pollFd, 1n, RECV_TIMEOUT_MS);
      if (stopping) break;
      if (ready > 0) {
        const revents = pollView.getInt16(6, true);
        if ((revents & (POLLERR | POLLNVAL)) !== 0 && (revents & POLLIN) === 0) {
          onLoopError(`poll: socket error (revents ${revents})`);
          break;
        }
        drain();
      }
    }
  })();
  return {
    stop: () => {
      stopping = true;
    },
    stopped,
  };
}

/**
 * A bounded cache of encoded destination addresses (`sockaddr`) for a socket of `family`; an
 * IPv4 destination of an IPv6 socket is IPv4-mapped. Null when an address cannot be encoded.
 */
function destinationCache(family: 4 | 6): (to: Endpoint) => Uint8Array<ArrayBuffer> | null {
  const destinations = new Map<string, Uint8Array<ArrayBuffer>>();
  return (to) => {
    const key = `${to.host}|${to.port}`;
    let bytes = destinations.get(key);
    if (bytes === undefined) {
      const host = family === 6 && isIP(to.host) === 4 ? `::ffff:${to.host}` : to.host;
      const sa = ipSocketAddress(host, to.port);
      if (sa === null) return null;
      if (destinations.size >= MAX_CACHED_DESTINATIONS) destinations.clear();
      bytes = sa.bytes;
      destinations.set(key, bytes);
    }
    return bytes;
  };
}

/**
 * The receive loop's drops by reason (`counters[i]` counts `DROP_REASONS[i]`), and `overload`,
 * kept for the `/status` and `/metrics` contract: always 0, the loop queues nothing.
 */
function dropCounts(counters: Int32Array): Record<DropReason | "overload", number> {
  const out = Object.fromEntries(DROP_REASONS.map((r, i) => [r, counters[i]!]));
  return { ...out, overload: 0 } as Record<DropReason | "overload", number>;
}

/**
 * Binds `bind` and starts the receive loop. Rejects when the address is in use or not local,
 * or FFI is not available.
 *
 * @example
 * ```ts
 * const udp = await listenUdpFfi({ host: "::1", port: 0 }, { secret: null });
 * await udp.close();
 * ```
 */
export async function listenUdpFfi(
  bind: Endpoint,
  opts: FilteredUdpOptions,
): Promise<FilteredUdpTransport> {
  const family = assertBindable(bind);
  const c = libc();
  const { fd, granted, local } = bindSocket(c, bind, family, opts);
  const counters = new Int32Array(DROP_REASONS.length);
  const onError = opts.onError ?? logTransportError;
  let handler: ((bytes: Uint8Array, from: Endpoint) => void) | null = null;
  let closed = false;
  let closing: Promise<void> | null = null;
  const receive = startReceiveLoop(c, fd, opts.secret, counters, (bytes, from) => {
    if (!closed && handler !== null) handler(bytes, from);
  }, (message) => {
    if (!closed) onError(new Error(`receive loop: ${message}`), null);
  });
  const destination = destinationCache(family);

  await Promise.resolve();
  return {
    local,
    recvBufferBytes: granted,
    send(to: Endpoint, bytes: Uint8Array): void {
      if (closed) return onError(new Error("send on a closed transport"), to);
      const problem = destinationProblem(to, bytes);
      if (problem !== null) return onError(new Error(problem), to);
      const sa = destination(to);
      if (sa === null) return onError(new Error(`cannot send to ${to.host} from this socket`), to);
      const copy = bytes.slice();
      const n = c.sendto(fd, copy, BigInt(copy.length), MSG_DONTWAIT | MSG_NOSIGNAL, sa, sa.length);
      if (n < 0) onError(new Error(errorText(errno())), to);
    },
    setHandler(next): void {
      handler = next;
    },
    prefilterDrops: () => dropCounts(counters),
    close(): Promise<void> {
      closed = true;
      handler = null;
      closing ??= (async () => {
        receive.stop();
        await receive.stopped; // within one poll timeout
        c.close(fd);
      })();
      return closing;
    },
  };
}
