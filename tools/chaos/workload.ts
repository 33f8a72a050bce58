/**
 * The client workload, run by the agent in the bridge namespace: `writers` clients write unique
 * keys (`prefix:writer:n`) one at a time through the master Service, i.e. the proxy port of any
 * pod listed as an endpoint, and record every acknowledgement with the redis process that gave
 * it.
 *
 * How a client finds out which redis acknowledged: right after connecting through a proxy it
 * asks `INFO server` (the `run_id`) and `CONFIG GET replica-announce-ip` (the pod address). A
 * proxy forwards a connection to one redis for the connection's whole life (it closes every
 * connection when its target changes), so every write on that connection went to that redis.
 *
 * Endpoint choice, like a Service with least-connections balancing: a client (re)connects to
 * the endpoint with the fewest clients (ties at random), so clients spread over every pod; a
 * client whose endpoint is removed from the list drops its connection and moves.
 *
 * Mode `sentinel` (the harness testing Redis Sentinel instead of the hive): the endpoint a client
 * picks, by the same rule, is the pod whose Redis Sentinel it asks (`SENTINEL
 * get-master-addr-by-name`, the next endpoints' sentinels if that one does not answer); it
 * connects to the named master directly, checks `ROLE` is master (as Redis's guidelines for
 * sentinel-aware clients ask), and writes there. Like a client subscribed to its sentinel's
 * `+switch-master`, it asks its sentinel again every {@link SENTINEL_POLL_MS} and moves when the
 * answer changes; on any error it reconnects through a sentinel. So a client whose sentinel is
 * on the cut-off master's pod keeps writing to that master, as a hive client entering through
 * the cut-off pod does, and the others follow the failover their sentinels make.
 *
 * @example
 * ```ts
 * import { Workload } from "./workload.ts";
 * const w = new Workload({ prefix: "run1", writers: 3, intervalMs: 5 });
 * w.setEndpoints(["192.0.2.11", "192.0.2.12"]);
 * w.start();
 * const log = await w.stop();
 * console.log(log.acks.length);
 * ```
 */

import { sleep } from "../../testing/wait.ts";
import { RespConnection } from "../../testing/resp_connection.ts";
import { parseInfo } from "../../lib/redis/redis_info.ts";
import { parseMasterAddr } from "./sentinel_reply.ts";
import { SENTINEL_MASTER_NAME } from "./sentinel_config.ts";
import {
  ackKey,
  type AckRecord,
  type ClientMode,
  epochNowMs,
  POD_PORTS,
  type ServerId,
  type WorkloadLog,
} from "./agent_protocol.ts";

/** Deadline of a client's connect to a proxy. */
export const CONNECT_TIMEOUT_MS = 1_000;
/** Deadline of one write: above the proxy's hold of new connections (3 s by default). */
export const WRITE_TIMEOUT_MS = 5_000;
/** Pause before reconnecting after a failure. */
export const RECONNECT_DELAY_MS = 5;
/** Pause while no endpoint is listed. */
export const NO_ENDPOINT_DELAY_MS = 20;
/** Most clients of one workload. */
export const MAX_WRITERS = 16;
/** Most failures kept as samples (the count is exact). */
export const MAX_FAILURE_SAMPLES = 200;
/** Most acknowledgements recorded in one workload (a guard against a runaway run). */
export const MAX_ACKS = 2_000_000;
/** Mode `sentinel`: how often a client asks its sentinel whether the master moved. */
export const SENTINEL_POLL_MS = 100;
/** Mode `sentinel`: deadline of one question to a sentinel. */
export const SENTINEL_QUERY_TIMEOUT_MS = 1_000;

/** Options of a {@link Workload}. */
export interface WorkloadOptions {
  prefix: string;
  writers: number;
  /** Pause between two writes of one client. */
  intervalMs: number;
  /** How clients find the master (default `proxy`). */
  mode?: ClientMode;
}

/** A client's connection to the redis that takes its writes. */
interface Upstream {
  conn: RespConnection;
  server: number;
  /** Mode `sentinel`: the master's address and the sentinel's connection it asks. */
  masterIp: string | null;
  sentinel: RespConnection | null;
}

/**
 * A set of writing clients.
 *
 * @example
 * ```ts
 * const w = new Workload({ prefix: "p", writers: 2, intervalMs: 5 });
 * w.setEndpoints(["192.0.2.11"]);
 * w.start();
 * const log = await w.stop();
 * ```
 */
export class Workload {
  readonly #log: WorkloadLog;
  #endpoints: string[] = [];
  /** The endpoint each client is connected to (null while it is not). */
  readonly #current: (string | null)[];
  readonly #conns: (RespConnection | null)[];
  readonly #serverIndex = new Map<string, number>();
  #stopped = false;
  #running: Promise<void>[] = [];

  constructor(readonly options: WorkloadOptions) {
    if (
      !Number.isInteger(options.writers) || options.writers < 1 || options.writers > MAX_WRITERS
    ) {
      throw new RangeError(`writers must be 1..${MAX_WRITERS}, got ${options.writers}`);
    }
    if (!/^[\w.-]+$/.test(options.prefix)) {
      throw new TypeError(`prefix "${options.prefix}" must be word characters, dots or dashes`);
    }
    this.#log = {
      prefix: options.prefix,
      writers: options.writers,
      startedMs: 0,
      stoppedMs: 0,
      servers: [],
      acks: [],
      attempts: 0,
      failures: 0,
      failureSamples: [],
    };
    this.#current = Array.from({ length: options.writers }, () => null);
    this.#conns = Array.from({ length: options.writers }, () => null);
  }

  /** Replaces the endpoint list; clients on a removed endpoint drop their connection. */
  setEndpoints(ips: readonly string[]): void {
    this.#endpoints = [...ips];
    this.#current.forEach((ip, w) => {
      if (ip !== null && !this.#endpoints.includes(ip)) {
        this.#conns[w]?.close();
      }
    });
  }

  /** Starts every client. */
  start(): void {
    if (this.#running.length > 0) throw new Error("workload already started");
    this.#log.startedMs = epochNowMs();
    for (let w = 0; w < this.options.writers; w++) this.#running.push(this.#client(w));
  }

  /** Stops the clients (a write in flight is abandoned) and returns the log. */
  async stop(): Promise<WorkloadLog> {
    this.#stopped = true;
    for (const c of this.#conns) c?.close();
    await Promise.all(this.#running);
    this.#log.stoppedMs = epochNowMs();
    return this.#log;
  }

  #pickEndpoint(w: number): string | null {
    if (this.#endpoints.length === 0) return null;
    const load = (ip: string) => this.#current.filter((c, i) => i !== w && c === ip).length;
    const least = Math.min(...this.#endpoints.map(load));
    const candidates = this.#endpoints.filter((ip) => load(ip) === least);
    return candidates[Math.floor(Math.random() * candidates.length)] ?? null;
  }

  #fail(w: number, error: unknown): void {
    this.#log.failures++;
    if (this.#log.failureSamples.length < MAX_FAILURE_SAMPLES) {
      const text = error instanceof Error ? error.message : String(error);
      this.#log.failureSamples.push({ atMs: epochNowMs(), writer: w, error: text });
    }
  }

  #server(id: ServerId): number {
    const key = `${id.ip}/${id.runId}`;
    let index = this.#serverIndex.get(key);
    if (index === undefined) {
      index = this.#log.servers.length;
      this.#log.servers.push(id);
      this.#serverIndex.set(key, index);
    }
    return index;
  }

  /** Mode `sentinel`: asks the sentinels, `ip`'s first, for the master; returns both. */
  async #askSentinels(ip: string): Promise<{ sentinel: RespConnection; masterIp: string }> {
    const start = Math.max(0, this.#endpoints.indexOf(ip));
    const order = [...this.#endpoints.slice(start), ...this.#endpoints.slice(0, start)];
    const errors: string[] = [];
    for (const s of order) {
      let sentinel: RespConnection | null = null;
      try {
        sentinel = await RespConnection.open(s, POD_PORTS.sentinel, {
          timeoutMs: CONNECT_TIMEOUT_MS,
        });
        const addr = parseMasterAddr(
          await sentinel.command(
            ["SENTINEL", "get-master-addr-by-name", SENTINEL_MASTER_NAME],
            SENTINEL_QUERY_TIMEOUT_MS,
          ),
        );
        if (addr === null) throw new Error(`sentinel ${s} does not know the master`);
        return { sentinel, masterIp: addr.ip };
      } catch (e) {
        sentinel?.close();
        errors.push(`${s}: ${e instanceof Error ? e.message : e}`);
      }
    }
    throw new Error(`no sentinel named the master (${errors.join("; ")})`);
  }

  async #connect(w: number, ip: string): Promise<Upstream> {
    this.#current[w] = ip;
    if (this.options.mode === "sentinel") return await this.#connectViaSentinel(w, ip);
    const conn = await RespConnection.open(ip, POD_PORTS.proxy, { timeoutMs: CONNECT_TIMEOUT_MS });
    this.#conns[w] = conn;
    if (this.#stopped || !this.#endpoints.includes(ip)) {
      conn.close();
      throw new Error(`endpoint ${ip} removed while connecting`);
    }
    const [info, announce] = await conn.pipeline([
      ["INFO", "server"],
      ["CONFIG", "GET", "replica-announce-ip"],
    ], WRITE_TIMEOUT_MS);
    if (typeof info !== "string" || !Array.isArray(announce)) {
      conn.close();
      throw new Error(`identity query answered ${JSON.stringify([info, announce])}`);
    }
    const runId = parseInfo(info).get("run_id");
    const serverIp = announce[1];
    if (runId === undefined || typeof serverIp !== "string" || serverIp === "") {
      conn.close();
      throw new Error("the redis behind the proxy did not say its run_id and address");
    }
    return { conn, server: this.#server({ ip: serverIp, runId }), masterIp: null, sentinel: null };
  }

  async #connectViaSentinel(w: number, ip: string): Promise<Upstream> {
    const { sentinel, masterIp } = await this.#askSentinels(ip);
    let conn: RespConnection | null = null;
    try {
      conn = await RespConnection.open(masterIp, POD_PORTS.redis, {
        timeoutMs: CONNECT_TIMEOUT_MS,
      });
      this.#conns[w] = conn;
      if (this.#stopped) throw new Error("stopped while connecting");
      const [role, info] = await conn.pipeline([["ROLE"], ["INFO", "server"]], WRITE_TIMEOUT_MS);
      if (!Array.isArray(role) || role[0] !== "master") {
        throw new Error(`${masterIp}, named master by a sentinel, answered ROLE ${role}`);
      }
      const runId = typeof info === "string" ? parseInfo(info).get("run_id") : undefined;
      if (runId === undefined) throw new Error(`${masterIp} did not say its run_id`);
      return { conn, server: this.#server({ ip: masterIp, runId }), masterIp, sentinel };
    } catch (e) {
      conn?.close();
      sentinel.close();
      throw e;
    }
  }

  /** Mode `sentinel`: true when the client's sentinel now names another master. */
  async #masterMoved(up: Upstream): Promise<boolean> {
    if (up.sentinel === null || up.sentinel.closed) return false;
    try {
      const addr = parseMasterAddr(
        await up.sentinel.command(
          ["SENTINEL", "get-master-addr-by-name", SENTINEL_MASTER_NAME],
          SENTINEL_QUERY_TIMEOUT_MS,
        ),
      );
      return addr !== null && addr.ip !== up.masterIp;
    } catch {
      up.sentinel.close(); // keeps writing where it is, as a client whose subscription broke
      return false;
    }
  }

  async #client(w: number): Promise<void> {
    let up: Upstream | null = null;
    let conn: RespConnection | null = null;
    let server = -1;
    let n = 0;
    let polledMs = 0;
    // The first connection of client w goes to endpoint w, so clients start spread evenly.
    let first = true;
    while (!this.#stopped) {
      try {
        if (conn === null || conn.closed) {
          const ip = first && this.#endpoints.length > 0
            ? this.#endpoints[w % this.#endpoints.length] ?? null
            : this.#pickEndpoint(w);
          if (ip === null) {
            this.#current[w] = null;
            await sleep(NO_ENDPOINT_DELAY_MS);
            continue;
          }
          first = false;
          up = await this.#connect(w, ip);
          ({ conn, server } = up);
          polledMs = performance.now();
        }
        if (up?.sentinel != null && performance.now() - polledMs >= SENTINEL_POLL_MS) {
          polledMs = performance.now();
          if (await this.#masterMoved(up)) {
            conn.close();
            up.sentinel?.close();
            conn = null;
            continue;
          }
        }
        const key = ackKey(this.options.prefix, w, n);
        const value = String(n);
        this.#log.attempts++;
        n++; // a write that failed may or may not have landed: never reuse its key
        const reply = await conn.command(["SET", key, value], WRITE_TIMEOUT_MS);
        if (reply !== "OK") throw new Error(`SET answered ${JSON.stringify(reply)}`);
        const ack: AckRecord = [w, n - 1, epochNowMs(), server];
        this.#log.acks.push(ack);
        if (this.#log.acks.length >= MAX_ACKS) {
          this.#fail(w, new Error(`${MAX_ACKS} acknowledgements: runaway workload stopped`));
          this.#stopped = true;
          break;
        }
        if (this.options.intervalMs > 0) await sleep(this.options.intervalMs);
      } catch (e) {
        if (this.#stopped) break;
        this.#fail(w, e);
        conn?.close();
        up?.sentinel?.close();
        conn = null;
        this.#current[w] = null;
        await sleep(RECONNECT_DELAY_MS);
      }
    }
    conn?.close();
    up?.sentinel?.close();
    this.#conns[w] = null;
    this.#current[w] = null;
  }
}
