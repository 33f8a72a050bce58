/**
 * The Sentinel-protocol endpoint (`--sentinel-port`, default 26379): a TCP server that answers
 * sentinel-aware clients (ioredis `sentinels`, redis-py `Sentinel`, node-redis
 * `createSentinel`, Jedis, Lettuce, go-redis `NewFailoverClient`) with the hive's confirmed
 * master, so they connect to it directly, and publishes `+switch-master` (with `+sdown`,
 * `+odown`, `+failover-end`, `-sdown`, `-odown`) to its subscribers whenever that master
 * changes.
 *
 * The server reads what it reports from a {@link SentinelSource} (the running hive) and is told
 * to look again by {@link SentinelServer.refresh} (the hive calls it on every change of its
 * proxy target, i.e. every leader change). Commands are in sentinel_commands.ts, the wire
 * format in resp.ts, the events in sentinel_events.ts.
 *
 * Every limit is explicit ({@link SENTINEL_LIMITS}): connections (one more is answered
 * `-ERR max number of clients reached` and closed, as redis does), command size and arguments
 * (a bigger request gets `-ERR Protocol error` and the connection is closed), subscriptions per
 * connection, and bytes waiting to be written to one connection (a subscriber that does not
 * read is disconnected, like redis's pub/sub output-buffer limit).
 *
 * @example
 * ```ts
 * import { SentinelServer } from "./sentinel_server.ts";
 * import type { SentinelView } from "./sentinel_view.ts";
 * declare const view: SentinelView; // what the hive reports
 * const server = await SentinelServer.listen({
 *   host: "127.0.0.11",
 *   port: 26379,
 *   self: "127.0.0.11",
 *   masterName: "mymaster",
 *   password: null,
 *   downAfterMs: 1000,
 *   source: { sentinelView: () => view },
 * });
 * server.refresh(); // after a leader change: publishes +switch-master when the master moved
 * await server.close();
 * ```
 */

import { createHash } from "node:crypto";
import { checkPositiveInteger } from "../common/assert.ts";
import { encodeReply, type Reply, reply, RequestParser, RespProtocolError } from "./resp.ts";
import {
  handleCommand,
  newSession,
  type SentinelContext,
  type SentinelSettings,
  type Session,
} from "./sentinel_commands.ts";
import {
  type AnnouncedMaster,
  globMatch,
  masterChangeEvents,
  sameAddress,
  type SentinelEvent,
} from "./sentinel_events.ts";
import type { SentinelMaster, SentinelView } from "./sentinel_view.ts";

/** The limits of the endpoint. */
export interface SentinelLimits {
  /** Most client connections at once. */
  maxConnections: number;
  /** Most channels plus patterns one connection subscribes to. */
  maxSubscriptionsPerConnection: number;
  /** Most bytes waiting to be written to one connection before it is closed. */
  maxPendingOutputBytes: number;
  /** Most bytes in one command (framing included). */
  maxCommandBytes: number;
  /** Most arguments in one command. */
  maxArgs: number;
  /**
   * How long a master query (`SENTINEL get-master-addr-by-name`, `master`, `masters`) waits for
   * a master while there is none (a failover in progress) before it answers that there is none
   * (null; the master flagged `s_down,o_down`); the connection reads nothing else meanwhile.
   * Clients then get the new master the moment it is confirmed, instead of retrying on their
   * own schedule (node-redis waits a whole second after a master flagged down).
   */
  maxMasterWaitMs: number;
}

/**
 * The default limits. Sentinel clients hold one or two connections per application process (a
 * subscriber and a short-lived query connection), so 1024 serves hundreds of processes.
 */
export const SENTINEL_LIMITS: Readonly<SentinelLimits> = {
  maxConnections: 1024,
  maxSubscriptionsPerConnection: 64,
  maxPendingOutputBytes: 1024 * 1024,
  maxCommandBytes: 16 * 1024,
  maxArgs: 64,
  maxMasterWaitMs: 1000,
};

/**
 * Delay between a change of master and the events that announce it. A client asking for the
 * master at that moment (its request held by {@link SentinelLimits.maxMasterWaitMs}) gets the
 * new address first: ioredis's `failoverDetector` gives up for good when `+switch-master`
 * arrives while it is still resolving the master, so the event must come after the answer.
 */
export const SENTINEL_EVENT_DELAY_MS = 100;

/**
 * A due event is held further while a query connection is open: a connection with no
 * subscription opened at most {@link SENTINEL_QUERY_CONNECTION_MS} ago (ioredis resolves the
 * master on a fresh connection and closes it at once). ioredis's `failoverDetector` ends the
 * client for good when `+switch-master` reaches its old subscriber while such a resolve is in
 * flight (the client's `connect` sees itself disconnected and sets status `end`); with the
 * crash handoff a master moves within tens of ms, so a client that started resolving just
 * before the event would otherwise hit that race. Bounded: an event waits at most
 * {@link SENTINEL_EVENT_MAX_HOLD_MS} past its due time, whatever connections are open.
 */
export const SENTINEL_QUERY_CONNECTION_MS = 2000;
/** Longest extra hold of a due event for open query connections (see above). */
export const SENTINEL_EVENT_MAX_HOLD_MS = 1000;
/** How often a held event checks again whether the query connections have closed. */
const EVENT_HOLD_RECHECK_MS = 5;

/** Bytes read from a socket at once. */
const READ_CHUNK_BYTES = 16 * 1024;

/** Where the endpoint reads what it reports (a running hive; a fake in tests). */
export interface SentinelSource {
  /** The current view: confirmed master, replicas, other endpoints. */
  sentinelView(): SentinelView;
}

/** Something the endpoint did that is worth a log line. */
export type SentinelServerEvent =
  | { kind: "published"; channel: string; message: string; receivers: number }
  | { kind: "connection-refused"; maxConnections: number }
  | { kind: "protocol-error"; error: string }
  | { kind: "slow-client-closed"; pendingBytes: number };

/** Options of {@link SentinelServer.listen}. */
export interface SentinelServerOptions {
  host: string;
  /** The TCP port (0 for any free one, in tests). */
  port: number;
  /** This node's address: its endpoint id ({@link sentinelIdOf}) is derived from it. */
  self: string;
  masterName: string;
  /** The password clients must give, or null for none. */
  password: string | null;
  /** Reported as `down-after-milliseconds` (the hive's `--failure-ms`). */
  downAfterMs: number;
  source: SentinelSource;
  limits?: Partial<SentinelLimits>;
  /** Delay of the events after a change (default {@link SENTINEL_EVENT_DELAY_MS}). */
  eventDelayMs?: number;
  onEvent?: (e: SentinelServerEvent) => void;
}

/** Counters of the endpoint (`/status`-style). */
export interface SentinelServerStats {
  connectionsAccepted: number;
  connectionsRefused: number;
  commands: number;
  protocolErrors: number;
  slowClientsClosed: number;
  messagesPublished: number;
}

/**
 * The endpoint id of the hive at `ip`: 40 hex digits, as Sentinel's run ids, stable across
 * restarts (so clients that remember sentinels by id are not confused).
 *
 * @example
 * ```ts
 * import { sentinelIdOf } from "./sentinel_server.ts";
 * sentinelIdOf("10.0.0.7").length; // 40
 * ```
 */
export function sentinelIdOf(ip: string): string {
  return createHash("sha1").update(`redis-hive sentinel ${ip}`).digest("hex");
}

interface Client {
  conn: Deno.TcpConn;
  session: Session;
  pendingBytes: number;
  writes: Promise<void>;
  closed: boolean;
  /** `performance.now()` when the connection was accepted. */
  openedMs: number;
}

/** A running endpoint. */
export class SentinelServer {
  readonly stats: SentinelServerStats = {
    connectionsAccepted: 0,
    connectionsRefused: 0,
    commands: 0,
    protocolErrors: 0,
    slowClientsClosed: 0,
    messagesPublished: 0,
  };
  readonly limits: Readonly<SentinelLimits>;
  #listener: Deno.TcpListener;
  #clients = new Set<Client>();
  #nextId = 1;
  #state: AnnouncedMaster;
  #epoch = 0;
  #startedMs = performance.now();
  #closed = false;
  #accepting: Promise<void>;
  /** Requests waiting for a master (resolved by {@link refresh} or their timeout). */
  #masterWaiters = new Set<() => void>();
  /** Events not yet published, oldest first, and the timer that publishes them. */
  #pendingEvents: { event: SentinelEvent; dueMs: number }[] = [];
  #eventTimer: ReturnType<typeof setTimeout> | null = null;
  readonly #settings: SentinelSettings;
  readonly #ctx: SentinelContext;
  readonly #opts: SentinelServerOptions;

  private constructor(listener: Deno.TcpListener, opts: SentinelServerOptions) {
    this.#listener = listener;
    this.#opts = opts;
    this.limits = { ...SENTINEL_LIMITS, ...opts.limits };
    checkLimits(this.limits);
    this.#settings = {
      masterName: opts.masterName,
      password: opts.password,
      myId: sentinelIdOf(opts.self),
      idOf: sentinelIdOf,
      downAfterMs: opts.downAfterMs,
      maxSubscriptionsPerConnection: this.limits.maxSubscriptionsPerConnection,
      port: (listener.addr as Deno.NetAddr).port,
    };
    this.#ctx = {
      settings: this.#settings,
      view: () => opts.source.sentinelView(),
      lastKnownMaster: () => this.#state.lastKnown,
      epoch: () => this.#epoch,
      connectedClients: () => this.#clients.size,
      uptimeMs: () => performance.now() - this.#startedMs,
    };
    const master = opts.source.sentinelView().master;
    this.#state = { announced: master, lastKnown: master };
    this.#accepting = this.#acceptLoop();
  }

  /** Binds and starts serving. */
  static listen(opts: SentinelServerOptions): Promise<SentinelServer> {
    const listener = Deno.listen({ hostname: opts.host, port: opts.port, transport: "tcp" });
    return Promise.resolve(new SentinelServer(listener, opts));
  }

  /** The bound address. */
  get address(): { host: string; port: number } {
    const a = this.#listener.addr as Deno.NetAddr;
    return { host: a.hostname, port: a.port };
  }

  /** The master announced now (null while none). */
  get announced(): SentinelMaster | null {
    return this.#state.announced;
  }

  /** Connections open now. */
  get connections(): number {
    return this.#clients.size;
  }

  /**
   * Reads the view again and publishes the events of a change of master (none when the
   * master is the same). Call it on every leader change; calling it more often is harmless.
   */
  refresh(): void {
    if (this.#closed) return;
    const next = this.#opts.source.sentinelView().master;
    const events = masterChangeEvents(this.#settings.masterName, this.#state, next);
    if (next !== null && !sameAddress(next, this.#state.lastKnown)) this.#epoch++;
    this.#state = { announced: next, lastKnown: next ?? this.#state.lastKnown };
    if (next !== null) {
      for (const wake of [...this.#masterWaiters]) wake();
    }
    const dueMs = performance.now() + (this.#opts.eventDelayMs ?? SENTINEL_EVENT_DELAY_MS);
    for (const event of events) this.#pendingEvents.push({ event, dueMs });
    this.#schedulePublish();
  }

  #schedulePublish(): void {
    if (this.#eventTimer !== null || this.#closed) return;
    const first = this.#pendingEvents[0];
    if (first === undefined) return;
    const now = performance.now();
    const held = first.dueMs <= now && this.#queryConnectionOpen(now) &&
      now < first.dueMs + SENTINEL_EVENT_MAX_HOLD_MS;
    const delayMs = held ? EVENT_HOLD_RECHECK_MS : Math.max(0, first.dueMs - now);
    this.#eventTimer = setTimeout(() => {
      this.#eventTimer = null;
      const now = performance.now();
      const next = this.#pendingEvents[0];
      const mayPublish = next !== undefined && next.dueMs <= now &&
        (!this.#queryConnectionOpen(now) || now >= next.dueMs + SENTINEL_EVENT_MAX_HOLD_MS);
      if (mayPublish) {
        while (this.#pendingEvents.length > 0 && this.#pendingEvents[0]!.dueMs <= now) {
          this.#publish(this.#pendingEvents.shift()!.event);
        }
      }
      this.#schedulePublish();
    }, delayMs);
  }

  /** True while a fresh connection without subscriptions is open (see {@link SENTINEL_QUERY_CONNECTION_MS}). */
  #queryConnectionOpen(now: number): boolean {
    for (const c of this.#clients) {
      const s = c.session;
      if (c.closed || s.channels.size + s.patterns.size > 0) continue;
      if (now - c.openedMs <= SENTINEL_QUERY_CONNECTION_MS) return true;
    }
    return false;
  }

  /** Resolves when a master is announced, or after `ms`, or when the server closes. */
  #waitForMaster(ms: number): Promise<void> {
    if (this.#state.announced !== null || this.#closed) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.#masterWaiters.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.#masterWaiters.add(wake);
    });
  }

  /** True for a master query that may wait (see {@link SentinelLimits.maxMasterWaitMs}). */
  #waitsForMaster(args: readonly string[], session: Session): boolean {
    if (args[0]?.toLowerCase() !== "sentinel") return false;
    const sub = args[1]?.toLowerCase();
    const query = sub === "masters"
      ? args.length === 2
      : (sub === "get-master-addr-by-name" || sub === "master") && args.length === 3 &&
        args[2] === this.#settings.masterName;
    return query &&
      (this.#settings.password === null || session.authenticated) &&
      (session.protocol === 3 || session.channels.size + session.patterns.size === 0) &&
      this.#state.announced === null;
  }

  #publish(e: SentinelEvent): void {
    let receivers = 0;
    for (const client of this.#clients) {
      const s = client.session;
      if (s.channels.has(e.channel)) {
        receivers++;
        this.#send(
          client,
          reply.push([reply.bulk("message"), reply.bulk(e.channel), reply.bulk(e.message)]),
        );
      }
      for (const pattern of s.patterns) {
        if (!globMatch(pattern, e.channel)) continue;
        receivers++;
        this.#send(
          client,
          reply.push([
            reply.bulk("pmessage"),
            reply.bulk(pattern),
            reply.bulk(e.channel),
            reply.bulk(e.message),
          ]),
        );
      }
    }
    this.stats.messagesPublished += receivers;
    this.#opts.onEvent?.({ kind: "published", ...e, receivers });
  }

  async #acceptLoop(): Promise<void> {
    for (;;) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#listener.accept();
      } catch {
        if (this.#closed) return;
        continue; // e.g. EMFILE: keep serving the open connections
      }
      if (this.#clients.size >= this.limits.maxConnections) {
        this.stats.connectionsRefused++;
        this.#opts.onEvent?.({
          kind: "connection-refused",
          maxConnections: this.limits.maxConnections,
        });
        void writeAll(conn, encodeReply(reply.error("ERR max number of clients reached"), 2))
          .catch(() => {}).finally(() => closeQuietly(conn));
        continue;
      }
      this.stats.connectionsAccepted++;
      void this.#serve(conn);
    }
  }

  async #serve(conn: Deno.TcpConn): Promise<void> {
    try {
      conn.setNoDelay(true);
    } catch { /* not fatal */ }
    const client: Client = {
      conn,
      session: newSession(this.#nextId++),
      pendingBytes: 0,
      writes: Promise.resolve(),
      closed: false,
      openedMs: performance.now(),
    };
    this.#clients.add(client);
    const parser = new RequestParser({
      maxArgs: this.limits.maxArgs,
      maxCommandBytes: this.limits.maxCommandBytes,
    });
    const chunk = new Uint8Array(READ_CHUNK_BYTES);
    try {
      reading: while (!client.closed) {
        const n = await conn.read(chunk);
        if (n === null) break;
        parser.push(chunk.subarray(0, n));
        for (;;) {
          let args: string[] | null;
          try {
            args = parser.next();
          } catch (e) {
            if (!(e instanceof RespProtocolError)) throw e;
            this.stats.protocolErrors++;
            this.#opts.onEvent?.({ kind: "protocol-error", error: e.message });
            this.#send(client, reply.error(`ERR Protocol error: ${e.message}`));
            break reading;
          }
          if (args === null) break;
          this.stats.commands++;
          if (this.#waitsForMaster(args, client.session)) {
            await this.#waitForMaster(this.limits.maxMasterWaitMs);
          }
          const result = handleCommand(args, client.session, this.#ctx);
          for (const r of result.replies) this.#send(client, r);
          if (result.close) break reading;
        }
      }
    } catch {
      // reset by the peer, or closed by close(): nothing to report
    }
    await client.writes;
    this.#drop(client);
  }

  #send(client: Client, r: Reply): void {
    if (client.closed) return;
    const bytes = encodeReply(r, client.session.protocol);
    if (client.pendingBytes + bytes.length > this.limits.maxPendingOutputBytes) {
      this.stats.slowClientsClosed++;
      this.#opts.onEvent?.({ kind: "slow-client-closed", pendingBytes: client.pendingBytes });
      this.#drop(client);
      return;
    }
    client.pendingBytes += bytes.length;
    client.writes = client.writes.then(async () => {
      if (client.closed) return;
      try {
        await writeAll(client.conn, bytes);
        client.pendingBytes -= bytes.length;
      } catch {
        this.#drop(client);
      }
    });
  }

  #drop(client: Client): void {
    if (!this.#clients.delete(client)) return;
    client.closed = true;
    closeQuietly(client.conn);
  }

  /** Stops listening and closes every connection. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    closeQuietly(this.#listener);
    if (this.#eventTimer !== null) clearTimeout(this.#eventTimer);
    for (const wake of [...this.#masterWaiters]) wake();
    for (const client of [...this.#clients]) this.#drop(client);
    await this.#accepting;
  }
}

function checkLimits(limits: SentinelLimits): void {
  for (const [name, value] of Object.entries(limits)) {
    checkPositiveInteger("SentinelServer", name, value);
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let at = 0;
  while (at < bytes.length) at += await conn.write(bytes.subarray(at));
}

function closeQuietly(c: { close(): void }): void {
  try {
    c.close();
  } catch { /* already closed */ }
}
