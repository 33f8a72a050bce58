/**
 * The hive's UDP socket through libc (`Deno.dlopen`, `--allow-ffi`, x86_64 Linux): a
 * {@link DatagramTransport} whose receive loop runs in a Web Worker and drops junk and badly
 * signed datagrams there, before they cost the process any memory (lib/net/udp_ffi_worker.ts).
 *
 * Why not `node:dgram` (lib/net/udp_transport.ts, still the fallback and the contract's
 * reference): measured here, a `node:dgram` socket that receives 10 000 datagrams per second and
 * does nothing with them grows the process's RSS by about 200 MiB within 10 s and keeps it, and
 * `Deno.listenDatagram` by about 85 MiB; a blocking `recvfrom` into one buffer in a worker
 * grows it by under 10 MiB (`deno task bench flood` measures the hive as a whole, see
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
import { getLogger } from "@logtape/logtape";
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
  DEFAULT_RECV_BUFFER_BYTES,
  DEFAULT_SEND_BUFFER_BYTES,
  type Endpoint,
  formatEndpoint,
  MAX_UDP_PAYLOAD_BYTES,
  normalizeAddress,
  type UdpListenOptions,
  type UdpTransport,
} from "./udp_transport.ts";
import { type PostedDatagram, RECV_TIMEOUT_MS, senderOf, SHARED } from "./udp_ffi_protocol.ts";

/** Datagrams posted by the worker and not yet handled, at most; more are dropped (`overload`). */
export const MAX_PENDING_DATAGRAMS = 256;
/** How long {@link FilteredUdpTransport.close} waits for the worker before terminating it. */
export const WORKER_STOP_TIMEOUT_MS = 1_000;
/** Most destination addresses whose encoding is cached (peers: bounded by --max-peers). */
export const MAX_CACHED_DESTINATIONS = 2_048;

const SOCK_DGRAM = 2;
const SO_SNDBUF = 7;
const SO_RCVBUF = 8;
const SO_RCVTIMEO = 20;
const IPPROTO_IPV6 = 41;
const IPV6_V6ONLY = 26;

const WORKER_URL = new URL("./udp_ffi_worker.ts", import.meta.url);

/** Options of {@link listenUdpFfi}. */
export interface FilteredUdpOptions extends UdpListenOptions {
  /** The heartbeat secret the worker checks tags with, or null (signed datagrams refused). */
  secret: string | null;
}

/** A UDP transport that drops bad datagrams before they reach the handler. */
export interface FilteredUdpTransport extends UdpTransport {
  /** Datagrams the worker dropped, by reason (the codec's reasons and `overload`). */
  prefilterDrops(): Record<DropReason | "overload", number>;
}

const log = getLogger(["redis-hive", "udp"]);

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

/**
 * Binds `bind` and starts the receive worker. Rejects when the address is in use or not local,
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
  const family = isIP(bind.host);
  if (family === 0) {
    throw new Error(`bind address ${JSON.stringify(bind.host)} is not an IP literal`);
  }
  const c = libc();
  const address = ipSocketAddress(bind.host, bind.port);
  if (address === null) throw new Error(`bind address ${bind.host} cannot be encoded`);
  const fd = check(
    c.socket(family === 6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0),
    "socket",
  );
  let granted = 0;
  try {
    const int = (v: number) => new Uint8Array(new Int32Array([v]).buffer);
    check(
      c.setsockopt(
        fd,
        SOL_SOCKET,
        SO_RCVBUF,
        int(opts.recvBufferBytes ?? DEFAULT_RECV_BUFFER_BYTES),
        4,
      ),
      "SO_RCVBUF",
    );
    check(
      c.setsockopt(
        fd,
        SOL_SOCKET,
        SO_SNDBUF,
        int(opts.sendBufferBytes ?? DEFAULT_SEND_BUFFER_BYTES),
        4,
      ),
      "SO_SNDBUF",
    );
    const timeout = new BigInt64Array([0n, BigInt(RECV_TIMEOUT_MS * 1000)]);
    check(
      c.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, new Uint8Array(timeout.buffer), 16),
      "SO_RCVTIMEO",
    );
    if (family === 6) {
      check(
        c.setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, int(opts.ipv6Only ? 1 : 0), 4),
        "IPV6_V6ONLY",
      );
    }
    if (c.bind(fd, address.bytes, address.bytes.length) < 0) {
      throw new Error(`cannot bind UDP ${formatEndpoint(bind)}: ${errorText(errno())}`);
    }
    const got = new Uint8Array(4);
    const gotLen = new Uint8Array(new Uint32Array([4]).buffer);
    check(c.getsockopt(fd, SOL_SOCKET, SO_RCVBUF, got, gotLen), "getsockopt");
    granted = new Int32Array(got.buffer)[0]!;
  } catch (e) {
    c.close(fd);
    throw e;
  }
  const name = new Uint8Array(28);
  const nameLen = new Uint8Array(new Uint32Array([28]).buffer);
  check(c.getsockname(fd, name, nameLen), "getsockname");
  const local: Endpoint = { host: normalizeAddress(bind.host), port: senderOf(name).port };

  const shared = new SharedArrayBuffer(SHARED.length * 4);
  const counters = new Int32Array(shared);
  const onError = opts.onError ??
    ((error: Error, to: Endpoint | null) =>
      log.warn("UDP {op} failed: {error}", {
        op: to === null ? "socket" : `send to ${formatEndpoint(to)}`,
        error: error.message,
      }));
  let handler: ((bytes: Uint8Array, from: Endpoint) => void) | null = null;
  let closed = false;
  let closing: Promise<void> | null = null;
  const worker = new Worker(WORKER_URL, { type: "module" });
  const stopped = new Promise<void>((resolve) => {
    worker.onmessage = (e: MessageEvent<PostedDatagram | { closed: true; error?: string }>) => {
      const m = e.data;
      if ("closed" in m) {
        if (m.error !== undefined && !closed) {
          onError(new Error(`receive worker: ${m.error}`), null);
        }
        resolve();
        return;
      }
      Atomics.sub(counters, SHARED.pending, 1);
      if (!closed && handler !== null) handler(m.bytes, { host: m.host, port: m.port });
    };
  });
  worker.onerror = (e) => {
    e.preventDefault();
    if (!closed) onError(new Error(`receive worker: ${e.message}`), null);
  };
  worker.postMessage({ fd, secret: opts.secret, shared, maxPending: MAX_PENDING_DATAGRAMS });

  const destinations = new Map<string, Uint8Array<ArrayBuffer>>();
  const destination = (to: Endpoint): Uint8Array<ArrayBuffer> | null => {
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

  await Promise.resolve();
  return {
    local,
    recvBufferBytes: granted,
    send(to: Endpoint, bytes: Uint8Array): void {
      if (closed) return onError(new Error("send on a closed transport"), to);
      if (isIP(to.host) === 0) {
        return onError(
          new Error(`destination host ${JSON.stringify(to.host)} is not an IP literal`),
          to,
        );
      }
      if (!Number.isInteger(to.port) || to.port < 1 || to.port > 65535) {
        return onError(new Error(`destination port ${to.port} is not an integer 1..65535`), to);
      }
      if (bytes.length > MAX_UDP_PAYLOAD_BYTES) {
        return onError(
          new Error(`datagram of ${bytes.length} bytes exceeds MAX_UDP_PAYLOAD_BYTES`),
          to,
        );
      }
      const sa = destination(to);
      if (sa === null) return onError(new Error(`cannot send to ${to.host} from this socket`), to);
      const copy = bytes.slice();
      const n = c.sendto(fd, copy, BigInt(copy.length), MSG_DONTWAIT | MSG_NOSIGNAL, sa, sa.length);
      if (n < 0) onError(new Error(errorText(errno())), to);
    },
    setHandler(next): void {
      handler = next;
    },
    prefilterDrops() {
      const out = Object.fromEntries(DROP_REASONS.map((r, i) => [r, Atomics.load(counters, i)]));
      return { ...out, overload: Atomics.load(counters, SHARED.overload) } as Record<
        DropReason | "overload",
        number
      >;
    },
    close(): Promise<void> {
      closed = true;
      handler = null;
      closing ??= (async () => {
        Atomics.store(counters, SHARED.stop, 1);
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          stopped,
          new Promise<void>((r) => timer = setTimeout(r, WORKER_STOP_TIMEOUT_MS)),
        ]);
        clearTimeout(timer);
        worker.terminate();
        c.close(fd);
      })();
      return closing;
    },
  };
}
