/**
 * The UDP side of the hive behind one small interface, {@link DatagramTransport}, with two
 * implementations: {@link listenUdp} on a real socket and {@link MemoryNetwork} in memory, so the
 * runtime runs unchanged on either. One contract test suite holds both to the same behaviour.
 *
 * The real socket is `node:dgram`, not `Deno.listenDatagram`: `node:dgram` is stable in Deno 2,
 * so neither `deno run` nor `deno compile` needs the `--unstable-net` flag.
 *
 * Addresses: a transport binds one IP literal (IPv4 or IPv6; a `udp6` socket for IPv6).
 * Binding `0.0.0.0` receives IPv4 only; binding `::` receives IPv6 and, unless `ipv6Only` is set,
 * IPv4 too (as IPv4-mapped addresses). Sender addresses are reported as peers announce themselves:
 * an IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) is reported as plain IPv4 (`10.0.0.1`).
 * Destinations must be IP literals: the transport never resolves names.
 *
 * Sizes: a datagram of any size up to the UDP maximum is delivered whole to the handler, also
 * one larger than the heartbeat limit (`MAX_DATAGRAM_BYTES` in codec.ts): the decoder drops and
 * counts it. The kernel's receive buffer is bounded by {@link UdpListenOptions.recvBufferBytes}.
 *
 * @example
 * ```ts
 * import { listenUdp } from "./udp_transport.ts";
 * const udp = await listenUdp({ host: "127.0.0.11", port: 7379 });
 * udp.setHandler((bytes, from) => console.log(bytes.length, "bytes from", from.host, from.port));
 * udp.send({ host: "127.0.0.12", port: 7379 }, new TextEncoder().encode("hello"));
 * await udp.close();
 * ```
 */

import dgram from "node:dgram";
import { isIP } from "node:net";
import { getLogger } from "@logtape/logtape";
import { formatHostPort } from "./address.ts";
import { checkInteger } from "../common/assert.ts";

/** An IP literal and a UDP port. */
export interface Endpoint {
  host: string;
  port: number;
}

/** Receives one datagram: its bytes (the transport's own copy) and its sender. */
export type DatagramHandler = (bytes: Uint8Array, from: Endpoint) => void;

/**
 * Called for every failed send (`to` is the destination) and every socket error (`to` null).
 * The transport never throws on send; this is where failures are counted and logged.
 */
export type TransportErrorHandler = (error: Error, to: Endpoint | null) => void;

/** A bound datagram endpoint: real UDP ({@link listenUdp}) or in memory ({@link MemoryNetwork}). */
export interface DatagramTransport {
  /** The bound address and port (the actual port when bound with port 0). */
  readonly local: Endpoint;
  /**
   * Sends one datagram. Never throws: a bad destination, an oversized datagram, a closed
   * transport or a socket error is reported to the error handler.
   */
  send(to: Endpoint, bytes: Uint8Array): void;
  /** Sets (replaces) the handler. Datagrams that arrive while no handler is set are discarded. */
  setHandler(handler: DatagramHandler): void;
  /** Stops delivery at once and releases the socket. Idempotent. */
  close(): Promise<void>;
}

/** The largest UDP payload over IPv4 (65535 minus IP and UDP headers); larger sends fail. */
export const MAX_UDP_PAYLOAD_BYTES = 65507;

/**
 * Default kernel receive buffer: room for about 100 queued full-size heartbeats (the kernel
 * charges each datagram roughly twice its size), i.e. one heartbeat interval of a 100-node hive
 * even if the event loop stalls for a whole interval. Raise it for larger hives.
 */
export const DEFAULT_RECV_BUFFER_BYTES = 256 * 1024;

/** Default kernel send buffer. */
export const DEFAULT_SEND_BUFFER_BYTES = 256 * 1024;

/** Smallest accepted socket buffer size option, in bytes. */
export const MIN_SOCKET_BUFFER_BYTES = 4096;
/** Largest accepted socket buffer size option, in bytes. */
export const MAX_SOCKET_BUFFER_BYTES = 16 * 1024 * 1024;

/** Options of {@link listenUdp}. */
export interface UdpListenOptions {
  /** SO_RCVBUF, in bytes (the kernel may round it up, Linux doubles it). */
  recvBufferBytes?: number;
  /** SO_SNDBUF, in bytes. */
  sendBufferBytes?: number;
  /** For an IPv6 wildcard bind (`::`): receive IPv6 only. Default false (dual stack). */
  ipv6Only?: boolean;
  /** Send and socket errors; by default logged as warnings (category `redis-hive.udp`). */
  onError?: TransportErrorHandler;
}

/** A real UDP transport, with the buffer size the kernel actually granted. */
export interface UdpTransport extends DatagramTransport {
  /** SO_RCVBUF as the kernel reports it after the bind. */
  readonly recvBufferBytes: number;
}

const logger = getLogger(["redis-hive", "udp"]);

/**
 * The default error handler of both UDP transports: one warning per failure.
 *
 * @example
 * ```ts
 * logTransportError(new Error("EPERM"), { host: "127.0.0.12", port: 7379 });
 * ```
 */
export function logTransportError(error: Error, to: Endpoint | null): void {
  logger.warn("UDP {op} failed: {error}", {
    op: to === null ? "socket" : `send to ${formatEndpoint(to)}`,
    error: error.message,
  });
}

/**
 * The address as peers announce it: an IPv4-mapped IPv6 address becomes plain IPv4.
 *
 * @example
 * ```ts
 * normalizeAddress("::ffff:127.0.0.11"); // "127.0.0.11"
 * normalizeAddress("::1"); // "::1"
 * ```
 */
export function normalizeAddress(address: string): string {
  const mapped = /^::ffff:(.*)$/i.exec(address);
  if (mapped !== null && mapped[1] !== undefined && isIP(mapped[1]) === 4) return mapped[1];
  return address;
}

/**
 * `host:port`, with IPv6 hosts in brackets, for logs and map keys.
 *
 * @example
 * ```ts
 * formatEndpoint({ host: "::1", port: 17400 }); // "[::1]:17400"
 * ```
 */
export function formatEndpoint(endpoint: Endpoint): string {
  return formatHostPort(endpoint.host, endpoint.port);
}

/**
 * Why `bytes` cannot be sent to `to`, or null when it is a valid destination (both transports).
 *
 * @example
 * ```ts
 * destinationProblem({ host: "localhost", port: 7379 }, new Uint8Array(1)); // "... not an IP literal"
 * ```
 */
export function destinationProblem(to: Endpoint, bytes: Uint8Array): string | null {
  if (isIP(to.host) === 0) {
    return `destination host ${JSON.stringify(to.host)} is not an IP literal`;
  }
  if (!Number.isInteger(to.port) || to.port < 1 || to.port > 65535) {
    return `destination port ${to.port} is not an integer 1..65535`;
  }
  if (bytes.length > MAX_UDP_PAYLOAD_BYTES) {
    return `datagram of ${bytes.length} bytes exceeds MAX_UDP_PAYLOAD_BYTES (${MAX_UDP_PAYLOAD_BYTES})`;
  }
  return null;
}

/**
 * Checks a bind endpoint (both transports); returns its IP family, throws a clear error on a
 * programmer error.
 *
 * @example
 * ```ts
 * assertBindable({ host: "::1", port: 0 }); // 6
 * ```
 */
export function assertBindable(bind: Endpoint): 4 | 6 {
  const family = isIP(bind.host);
  if (family === 0) {
    throw new Error(`bind address ${JSON.stringify(bind.host)} is not an IP literal`);
  }
  if (!Number.isInteger(bind.port) || bind.port < 0 || bind.port > 65535) {
    throw new Error(`bind port ${bind.port} is not an integer 0..65535`);
  }
  return family as 4 | 6;
}

/** A `node:dgram` socket bound at `bind` with the buffer sizes of `opts` (each checked). */
async function bindDgramSocket(bind: Endpoint, opts: UdpListenOptions): Promise<dgram.Socket> {
  const family = assertBindable(bind);
  const recvBufferBytes = opts.recvBufferBytes ?? DEFAULT_RECV_BUFFER_BYTES;
  const sendBufferBytes = opts.sendBufferBytes ?? DEFAULT_SEND_BUFFER_BYTES;
  for (
    const [name, value] of [["recvBufferBytes", recvBufferBytes], [
      "sendBufferBytes",
      sendBufferBytes,
    ]] as const
  ) {
    checkInteger("listenUdp", name, value, MIN_SOCKET_BUFFER_BYTES, MAX_SOCKET_BUFFER_BYTES);
  }
  const socket = dgram.createSocket({
    type: family === 6 ? "udp6" : "udp4",
    ipv6Only: opts.ipv6Only ?? false,
    recvBufferSize: recvBufferBytes,
    sendBufferSize: sendBufferBytes,
  });
  await new Promise<void>((resolve, reject) => {
    const onBindError = (error: Error) => {
      socket.close();
      reject(
        new Error(`cannot bind UDP ${formatEndpoint(bind)}: ${error.message}`, { cause: error }),
      );
    };
    socket.once("error", onBindError);
    socket.bind({ port: bind.port, address: bind.host }, () => {
      socket.off("error", onBindError);
      resolve();
    });
  });
  return socket;
}

/**
 * Binds a real UDP socket (`node:dgram`) at `bind` (port 0 picks a free port). Rejects when the
 * address is in use or not local; throws on an invalid address or option.
 *
 * @example
 * ```ts
 * const udp = await listenUdp({ host: "::1", port: 0 }, { recvBufferBytes: 1 << 20 });
 * console.log(udp.local.port, udp.recvBufferBytes);
 * await udp.close();
 * ```
 */
export async function listenUdp(
  bind: Endpoint,
  opts: UdpListenOptions = {},
): Promise<UdpTransport> {
  const socket = await bindDgramSocket(bind, opts);
  const onError = opts.onError ?? logTransportError;
  const address = socket.address();
  const local: Endpoint = { host: normalizeAddress(address.address), port: address.port };
  const granted = socket.getRecvBufferSize();
  let handler: DatagramHandler | null = null;
  let closed = false;
  let closing: Promise<void> | null = null;

  socket.on("error", (error: Error) => {
    if (!closed) onError(error, null);
  });
  socket.on("message", (message: Uint8Array, rinfo: dgram.RemoteInfo) => {
    if (closed || handler === null) return;
    // A plain Uint8Array copy: not a Buffer (whose slice shares memory), not a pooled view.
    handler(new Uint8Array(message), { host: normalizeAddress(rinfo.address), port: rinfo.port });
  });

  return {
    local,
    recvBufferBytes: granted,
    send(to: Endpoint, bytes: Uint8Array): void {
      const problem = closed ? "send on a closed transport" : destinationProblem(to, bytes);
      if (problem !== null) {
        onError(new Error(problem), to);
        return;
      }
      try {
        // A copy: the datagram leaves after send returns, and the caller may reuse its buffer.
        socket.send(bytes.slice(), to.port, to.host, (error: Error | null) => {
          if (error !== null && error !== undefined) onError(error, to);
        });
      } catch (error) {
        onError(error instanceof Error ? error : new Error(String(error)), to);
      }
    },
    setHandler(next: DatagramHandler): void {
      handler = next;
    },
    close(): Promise<void> {
      closed = true;
      handler = null;
      closing ??= new Promise<void>((resolve) => socket.close(() => resolve()));
      return closing;
    },
  };
}

/** Options of {@link MemoryNetwork.listen}. */
export interface MemoryListenOptions {
  /** For an IPv6 wildcard bind (`::`): receive IPv6 only. Default false (dual stack). */
  ipv6Only?: boolean;
  /** Send errors; by default logged as warnings (category `redis-hive.udp`). */
  onError?: TransportErrorHandler;
}

/**
 * Decides whether one datagram in flight is delivered (true) or lost (false): the hook tests
 * use for loss and partitions. `from` is the address the receiver would see.
 */
export type DeliveryFilter = (from: Endpoint, to: Endpoint, bytes: Uint8Array) => boolean;

/** Counters of a {@link MemoryNetwork}. */
export interface MemoryNetworkStats {
  /** Datagrams accepted by `send`. */
  sent: number;
  /** Datagrams handed to a handler. */
  delivered: number;
  /** Datagrams the filter dropped. */
  filtered: number;
  /** Datagrams that found no bound endpoint with a handler (like a closed UDP port). */
  undeliverable: number;
}

/** The first port {@link MemoryNetwork} hands out for port 0 (the IANA dynamic range). */
export const MEMORY_EPHEMERAL_PORT_FIRST = 49152;

interface MemoryBinding {
  local: Endpoint;
  family: 4 | 6;
  wildcard: boolean;
  ipv6Only: boolean;
  handler: DatagramHandler | null;
  closed: boolean;
}

/**
 * An in-memory datagram network with the same contract as real UDP on loopback. Delivery is
 * asynchronous (a microtask after `send`), so a handler never runs inside `send` and a handler
 * error surfaces as an uncaught error, as with a real socket. Bytes are copied at send time.
 * A sender bound to a wildcard is seen from the loopback address of the destination's family
 * (`127.0.0.1` or `::1`), as Linux does on loopback.
 *
 * @example
 * ```ts
 * const net = new MemoryNetwork();
 * const a = net.listen({ host: "127.0.0.11", port: 7379 });
 * const b = net.listen({ host: "127.0.0.12", port: 7379 });
 * b.setHandler((bytes, from) => console.log(bytes, from));
 * a.send(b.local, new Uint8Array([1, 2, 3]));
 * await net.settled();
 * ```
 */
export class MemoryNetwork {
  readonly #bindings = new Set<MemoryBinding>();
  #filter: DeliveryFilter | null = null;
  #nextEphemeralPort = MEMORY_EPHEMERAL_PORT_FIRST;
  #inFlight = 0;
  readonly #stats: MemoryNetworkStats = { sent: 0, delivered: 0, filtered: 0, undeliverable: 0 };

  /** A snapshot of the counters. */
  get stats(): MemoryNetworkStats {
    return { ...this.#stats };
  }

  /** Sets (or with null removes) the filter deciding which datagrams are lost. */
  setFilter(filter: DeliveryFilter | null): void {
    this.#filter = filter;
  }

  /** Resolves once no datagram is in flight (delivered or lost). */
  async settled(): Promise<void> {
    while (this.#inFlight > 0) await new Promise((resolve) => setTimeout(resolve, 0));
  }

  /**
   * Binds `bind` (port 0 picks a free port). Throws, like a failed bind, on an invalid address
   * or an address already in use.
   */
  listen(bind: Endpoint, opts: MemoryListenOptions = {}): DatagramTransport {
    const family = assertBindable(bind);
    const host = normalizeAddress(bind.host);
    const binding: MemoryBinding = {
      local: { host, port: bind.port === 0 ? this.#freePort() : bind.port },
      family,
      wildcard: isWildcard(host),
      ipv6Only: opts.ipv6Only ?? false,
      handler: null,
      closed: false,
    };
    for (const other of this.#bindings) {
      if (other.local.port === binding.local.port && overlaps(other, binding)) {
        throw new Error(`cannot bind UDP ${formatEndpoint(binding.local)}: EADDRINUSE`);
      }
    }
    this.#bindings.add(binding);
    const onError = opts.onError ?? logTransportError;
    const transport: DatagramTransport = {
      local: { ...binding.local },
      send: (to, bytes) => this.#send(binding, to, bytes, onError),
      setHandler: (handler) => {
        if (!binding.closed) binding.handler = handler;
      },
      close: () => {
        binding.closed = true;
        binding.handler = null;
        this.#bindings.delete(binding);
        return Promise.resolve();
      },
    };
    return transport;
  }

  #freePort(): number {
    for (let tries = 0; tries <= 65535 - MEMORY_EPHEMERAL_PORT_FIRST; tries++) {
      const port = this.#nextEphemeralPort;
      this.#nextEphemeralPort = port >= 65535 ? MEMORY_EPHEMERAL_PORT_FIRST : port + 1;
      if (![...this.#bindings].some((b) => b.local.port === port)) return port;
    }
    throw new Error("MemoryNetwork: no free ephemeral port");
  }

  #send(sender: MemoryBinding, to: Endpoint, bytes: Uint8Array, onError: TransportErrorHandler) {
    const problem = sender.closed ? "send on a closed transport" : destinationProblem(to, bytes);
    if (problem !== null) {
      onError(new Error(problem), to);
      return;
    }
    const destination: Endpoint = { host: normalizeAddress(to.host), port: to.port };
    const destinationFamily = isIP(destination.host) as 4 | 6;
    if (!canReach(sender, destinationFamily)) {
      onError(
        new Error(
          `cannot send from ${formatEndpoint(sender.local)} to an IPv${destinationFamily} address`,
        ),
        to,
      );
      return;
    }
    const from: Endpoint = {
      host: sender.wildcard ? (destinationFamily === 4 ? "127.0.0.1" : "::1") : sender.local.host,
      port: sender.local.port,
    };
    const copy = bytes.slice();
    this.#stats.sent++;
    this.#inFlight++;
    queueMicrotask(() => {
      this.#inFlight--;
      if (this.#filter !== null && !this.#filter(from, destination, copy)) {
        this.#stats.filtered++;
        return;
      }
      const receiver = this.#receiverFor(destination, destinationFamily);
      if (receiver === null || receiver.handler === null) {
        this.#stats.undeliverable++;
        return;
      }
      this.#stats.delivered++;
      receiver.handler(copy, from);
    });
  }

  /** The binding a datagram to `to` reaches: an exact match, else a wildcard of the port. */
  #receiverFor(to: Endpoint, family: 4 | 6): MemoryBinding | null {
    let wildcard: MemoryBinding | null = null;
    for (const b of this.#bindings) {
      if (b.local.port !== to.port) continue;
      if (b.local.host === to.host) return b;
      if (b.wildcard && canReach(b, family)) wildcard = b;
    }
    return wildcard;
  }
}

function isWildcard(host: string): boolean {
  return host === "0.0.0.0" || host === "::" || /^[0:]+$/.test(host) && isIP(host) === 6;
}

/** A binding can exchange datagrams with addresses of `family`. */
function canReach(b: MemoryBinding, family: 4 | 6): boolean {
  if (b.family === family) return true;
  return b.family === 6 && b.wildcard && !b.ipv6Only;
}

/** Two bindings of one port conflict (EADDRINUSE). */
function overlaps(a: MemoryBinding, b: MemoryBinding): boolean {
  if (a.local.host === b.local.host) return true;
  if (a.wildcard) return canReach(a, b.family);
  if (b.wildcard) return canReach(b, a.family);
  return false;
}
