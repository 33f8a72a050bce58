/**
 * The few libc calls the epoll proxy engine makes through `Deno.dlopen` (x86_64 Linux glibc,
 * "libc.so.6"), their constants, and socket-address encoding. Needs `--allow-ffi`.
 *
 * Every symbol is a synchronous FFI call (V8 fast calls where the types allow): it blocks the
 * calling thread, which is why the proxy loop runs in a Web Worker. The library is opened
 * lazily on the first {@link libc} call, so importing this module needs no permission.
 *
 * Sizes (`size_t`) are passed as `usize` (a `BigInt`: as fast as a 32-bit number in fast calls,
 * and no undefined upper register bits); `ssize_t` results are read as `i32`: the low 32 bits
 * of a 64-bit result within ±2^31 are exact on x86_64, and every size here is far below that.
 *
 * @example
 * ```ts
 * import { AF_INET, libc, SOCK_STREAM } from "./libc.ts";
 * const fd = libc().socket(AF_INET, SOCK_STREAM, 0);
 * libc().close(fd);
 * ```
 */

/** The libc symbols used, with their FFI signatures. */
export const LIBC_SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  accept4: { parameters: ["i32", "pointer", "pointer", "i32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "i32" },
  recvfrom: {
    parameters: ["i32", "buffer", "usize", "i32", "buffer", "buffer"],
    result: "i32",
  },
  sendto: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"], result: "i32" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "i32" },
  write: { parameters: ["i32", "buffer", "usize"], result: "i32" },
  epoll_create1: { parameters: ["i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32" },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  inet_pton: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  getaddrinfo: { parameters: ["buffer", "pointer", "buffer", "buffer"], result: "i32" },
  freeaddrinfo: { parameters: ["pointer"], result: "void" },
  gai_strerror: { parameters: ["i32"], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
  __errno_location: { parameters: [], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The opened library's symbols. */
export type Libc = Deno.DynamicLibrary<typeof LIBC_SYMBOLS>["symbols"];

let opened: Deno.DynamicLibrary<typeof LIBC_SYMBOLS> | null = null;

/**
 * The libc symbols, opening "libc.so.6" on first use (once per thread: each Worker opens its
 * own). Throws when not on x86_64 Linux.
 *
 * @example
 * ```ts
 * import { libc } from "./libc.ts";
 * const efd = libc().eventfd(0, 0);
 * ```
 */
export function libc(): Libc {
  if (opened === null) {
    if (Deno.build.os !== "linux" || Deno.build.arch !== "x86_64") {
      throw new Error(
        `libc: the epoll proxy engine needs x86_64 Linux, this is ${Deno.build.arch} ${Deno.build.os}`,
      );
    }
    opened = Deno.dlopen("libc.so.6", LIBC_SYMBOLS);
  }
  return opened.symbols;
}

/** `errno` of the calling thread (read right after a failed call). */
export function errno(): number {
  const where = libc().__errno_location();
  if (where === null) throw new Error("libc: __errno_location returned NULL");
  return new Deno.UnsafePointerView(where).getInt32();
}

/** `strerror(code)` with the code appended, e.g. "Connection refused (errno 111)". */
export function errorText(code: number): string {
  const text = libc().strerror(code);
  const message = text === null ? "unknown error" : Deno.UnsafePointerView.getCString(text);
  return `${message} (errno ${code})`;
}

// Address families, socket types and flags (x86_64 Linux values).
/** IPv4. */
export const AF_INET = 2;
/** IPv6. */
export const AF_INET6 = 10;
/** Any family (getaddrinfo hint). */
export const AF_UNSPEC = 0;
/** Unix domain sockets. */
export const AF_UNIX = 1;
/** TCP. */
export const SOCK_STREAM = 1;
/** Socket type flag: non-blocking. */
export const SOCK_NONBLOCK = 0o4000;
/** Socket type flag: close on exec. */
export const SOCK_CLOEXEC = 0o2000000;
/** `setsockopt` level of socket options. */
export const SOL_SOCKET = 1;
/** Reuse a listening address in TIME_WAIT. */
export const SO_REUSEADDR = 2;
/** Pending socket error (the outcome of a non-blocking connect). */
export const SO_ERROR = 4;
/** TCP keepalive probes. */
export const SO_KEEPALIVE = 9;
/** `setsockopt` level of TCP options. */
export const IPPROTO_TCP = 6;
/** Disable Nagle's algorithm. */
export const TCP_NODELAY = 1;
/** `recv`/`send` flag: do not block. */
export const MSG_DONTWAIT = 0x40;
/** `send` flag: EPIPE instead of SIGPIPE. */
export const MSG_NOSIGNAL = 0x4000;
/** `shutdown` how: no more sends (a FIN). */
export const SHUT_WR = 1;
/** `epoll_create1`/`eventfd` flag: close on exec. */
export const EPOLL_CLOEXEC = 0o2000000;
/** `eventfd` flag: non-blocking. */
export const EFD_NONBLOCK = 0o4000;
/** `epoll_ctl` op: add. */
export const EPOLL_CTL_ADD = 1;
/** `epoll_ctl` op: remove. */
export const EPOLL_CTL_DEL = 2;
/** `epoll_ctl` op: change the mask. */
export const EPOLL_CTL_MOD = 3;
/** Readable (or end of stream). */
export const EPOLLIN = 0x1;
/** Writable (or a non-blocking connect finished). */
export const EPOLLOUT = 0x4;
/** Error condition (always reported). */
export const EPOLLERR = 0x8;
/** Both directions shut (always reported). */
export const EPOLLHUP = 0x10;
/**
 * `epoll_ctl` flag (`EPOLL_CTL_ADD` only): of the epoll sets waiting on this file, wake one,
 * not all (several workers sharing one listening socket).
 */
export const EPOLLEXCLUSIVE = 1 << 28;
/**
 * Bytes of one kernel `struct epoll_event` (packed on x86_64: u32 events, u64 data). Not to be
 * confused with the proxy's own events in the shared mailbox (`MAILBOX_EVENT_MAX_BYTES` in
 * epoll_control.ts).
 */
export const EPOLL_EVENT_STRUCT_BYTES = 12;

// errno values.
/** Interrupted by a signal. */
export const EINTR = 4;
/** Would block. */
export const EAGAIN = 11;
/** A non-blocking connect is under way. */
export const EINPROGRESS = 115;

/** A socket address ready for `bind`/`connect`. */
export interface SocketAddress {
  family: typeof AF_INET | typeof AF_INET6 | typeof AF_UNIX;
  /**
   * `struct sockaddr_in` (16 bytes), `struct sockaddr_in6` (28 bytes) or `struct sockaddr_un`
   * (the family, the path and its NUL: pass `bytes.length` as the address length).
   */
  bytes: Uint8Array<ArrayBuffer>;
}

/** Bytes of `sockaddr_un.sun_path`, its terminating NUL included. */
export const UNIX_PATH_BYTES = 108;

/**
 * Encodes a Unix socket path. Throws a clear error for a path longer than `sun_path` allows
 * (107 bytes of UTF-8) or holding a NUL.
 *
 * @example
 * ```ts
 * import { unixSocketAddress } from "./libc.ts";
 * unixSocketAddress("/run/redis/redis.sock").bytes.length; // 2 + 21 + 1
 * ```
 */
export function unixSocketAddress(path: string): SocketAddress {
  const encoded = new TextEncoder().encode(path);
  if (encoded.length === 0 || encoded.length >= UNIX_PATH_BYTES || encoded.includes(0)) {
    throw new RangeError(
      `unix socket path must be 1..${UNIX_PATH_BYTES - 1} bytes without NUL, got ${
        JSON.stringify(path)
      }`,
    );
  }
  const bytes = new Uint8Array(2 + encoded.length + 1);
  new DataView(bytes.buffer).setUint16(0, AF_UNIX, true);
  bytes.set(encoded, 2);
  return { family: AF_UNIX, bytes };
}

/**
 * Encodes an IPv4 or IPv6 literal and a port; null when `host` is not an IP literal.
 *
 * @example
 * ```ts
 * import { ipSocketAddress } from "./libc.ts";
 * ipSocketAddress("127.0.0.1", 6379)?.bytes.length; // 16
 * ```
 */
export function ipSocketAddress(host: string, port: number): SocketAddress | null {
  const text = new TextEncoder().encode(`${host}\0`);
  const v4 = new Uint8Array(4);
  if (libc().inet_pton(AF_INET, text, v4) === 1) {
    const bytes = new Uint8Array(16);
    const view = new DataView(bytes.buffer);
    view.setUint16(0, AF_INET, true);
    view.setUint16(2, port, false);
    bytes.set(v4, 4);
    return { family: AF_INET, bytes };
  }
  const v6 = new Uint8Array(16);
  if (libc().inet_pton(AF_INET6, text, v6) === 1) {
    const bytes = new Uint8Array(28);
    const view = new DataView(bytes.buffer);
    view.setUint16(0, AF_INET6, true);
    view.setUint16(2, port, false);
    bytes.set(v6, 8);
    return { family: AF_INET6, bytes };
  }
  return null;
}

/**
 * `struct addrinfo` on x86_64 glibc: its size and the offsets of the fields the walk reads
 * (`int ai_flags; int ai_family; int ai_socktype; int ai_protocol; socklen_t ai_addrlen;
 * struct sockaddr *ai_addr; char *ai_canonname; struct addrinfo *ai_next;`, pointers 8-aligned).
 */
const ADDRINFO = {
  bytes: 48,
  familyOffset: 4,
  socktypeOffset: 8,
  addrlenOffset: 16,
  addrOffset: 24,
  nextOffset: 40,
} as const;

/**
 * `host` (an IP literal or a name, looked up with `getaddrinfo`, blocking) and `port` as a
 * socket address: the first TCP address. Throws a clear error when the name does not resolve.
 *
 * @example
 * ```ts
 * import { resolveSocketAddress } from "./libc.ts";
 * resolveSocketAddress("localhost", 6379).family; // AF_INET or AF_INET6
 * ```
 */
export function resolveSocketAddress(host: string, port: number): SocketAddress {
  const literal = ipSocketAddress(host, port);
  if (literal !== null) return literal;
  const c = libc();
  const hints = new Uint8Array(ADDRINFO.bytes);
  const hv = new DataView(hints.buffer);
  hv.setInt32(ADDRINFO.familyOffset, AF_UNSPEC, true);
  hv.setInt32(ADDRINFO.socktypeOffset, SOCK_STREAM, true);
  const result = new BigUint64Array(1);
  const code = c.getaddrinfo(new TextEncoder().encode(`${host}\0`), null, hints, result);
  if (code !== 0) {
    const why = c.gai_strerror(code);
    throw new Error(
      `cannot resolve ${host}: ${why === null ? code : Deno.UnsafePointerView.getCString(why)}`,
    );
  }
  const list = Deno.UnsafePointer.create(result[0] as bigint);
  try {
    for (let info = list; info !== null;) {
      const view = new Deno.UnsafePointerView(info);
      const family = view.getInt32(ADDRINFO.familyOffset);
      const addrLength = view.getUint32(ADDRINFO.addrlenOffset);
      const addr = view.getPointer(ADDRINFO.addrOffset);
      if ((family === AF_INET || family === AF_INET6) && addr !== null) {
        const bytes = new Uint8Array(addrLength);
        new Deno.UnsafePointerView(addr).copyInto(bytes);
        new DataView(bytes.buffer).setUint16(2, port, false);
        return { family, bytes };
      }
      info = view.getPointer(ADDRINFO.nextOffset);
    }
  } finally {
    c.freeaddrinfo(list);
  }
  throw new Error(`cannot resolve ${host}: no IPv4 or IPv6 address`);
}

/** The port of a `struct sockaddr_in`/`sockaddr_in6` (network byte order at offset 2). */
export function socketAddressPort(bytes: Uint8Array): number {
  if (bytes.length < 4) throw new RangeError(`socketAddressPort: ${bytes.length} bytes`);
  return ((bytes[2] as number) << 8) | (bytes[3] as number);
}
