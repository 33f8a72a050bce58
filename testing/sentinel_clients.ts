/**
 * Real sentinel-aware clients writing keys in a loop, for the end-to-end tests and the
 * benchmark of the hive's Sentinel endpoint: ioredis in sentinel mode (`sentinels`, `name`,
 * with ioredis's default `failoverDetector: false`: see docs/sentinel.md), node-redis `createSentinel`, redis-py
 * `Sentinel` (Debian's python3-redis, run by /usr/bin/python3 with testing/sentinel_writer.py),
 * and `redis-cli` (asks `SENTINEL get-master-addr-by-name` with redis-cli, then writes to that
 * address with redis-cli, and asks again after a failed write).
 *
 * Each writer SETs `<prefix>:0`, `<prefix>:1`, ... one after the other and records every
 * acknowledged write with the time it was acknowledged; a failed attempt is retried with the
 * same key after {@link RETRY_PAUSE_MS}. None of them is told where the master is: they are
 * given the sentinel addresses only.
 *
 * @example
 * ```ts
 * import { startSentinelWriter } from "./sentinel_clients.ts";
 * const w = await startSentinelWriter("ioredis", {
 *   sentinels: [{ host: "127.0.16.21", port: 36379 }],
 *   masterName: "mymaster",
 *   prefix: "demo",
 * });
 * // ... later
 * const acks = await w.stop();
 * ```
 */

import { Redis } from "ioredis";
import { createSentinel } from "redis";
import { sleep } from "./wait.ts";

/** The clients. */
export const SENTINEL_CLIENTS = ["ioredis", "node-redis", "redis-py", "redis-cli"] as const;

/** One of {@link SENTINEL_CLIENTS}. */
export type SentinelClientName = typeof SENTINEL_CLIENTS[number];

/** Pause after a failed write before the next attempt. */
export const RETRY_PAUSE_MS = 10;
/** Deadline of one command of a client (and of its connection attempts). */
export const CLIENT_TIMEOUT_MS = 500;
/** The redis-py writer stops by itself after this long, if nobody stops it. */
export const PYTHON_WRITER_MAX_SECONDS = 600;
/** Most acknowledgements one writer keeps (it stops writing past that). */
export const MAX_WRITER_ACKS = 1_000_000;
/** The Python interpreter that has Debian's python3-redis. */
export const PYTHON = "/usr/bin/python3";

/** A host and port. */
export interface Endpoint {
  host: string;
  port: number;
}

/** One acknowledged write. */
export interface SentinelAck {
  key: string;
  /** Wall-clock ms (`Date.now()`) when the acknowledgement arrived (redis-py: its own clock). */
  atMs: number;
}

/** Options of {@link startSentinelWriter}. */
export interface SentinelWriterOptions {
  sentinels: readonly Endpoint[];
  masterName: string;
  /** Key prefix, unique per writer. */
  prefix: string;
  /** Pause between two writes (default 5 ms). */
  intervalMs?: number;
  /** The password of the Sentinel endpoint, or none. */
  sentinelPassword?: string;
}

/** A running writer. */
export interface SentinelWriter {
  readonly client: SentinelClientName;
  /** Acknowledged writes so far. */
  readonly acks: readonly SentinelAck[];
  /** Failed attempts so far. */
  readonly failures: number;
  /** The last failed attempt's error, when the writer knows it. */
  readonly lastError?: string;
  /** Stops writing and closes the client; resolves to every acknowledgement. */
  stop(): Promise<SentinelAck[]>;
}

const DEFAULT_INTERVAL_MS = 5;

/** Base of the in-process writers: the loop, the acks and the stop. */
class LoopWriter implements SentinelWriter {
  acks: SentinelAck[] = [];
  failures = 0;
  lastError?: string;
  #stopped = false;
  #loop: Promise<void> = Promise.resolve();

  constructor(
    readonly client: SentinelClientName,
    private readonly opts: SentinelWriterOptions,
    private readonly write: (key: string, value: string) => Promise<void>,
    private readonly close: () => Promise<void>,
  ) {}

  start(): void {
    this.#loop = this.#run();
  }

  async #run(): Promise<void> {
    let i = 0;
    while (!this.#stopped && this.acks.length < MAX_WRITER_ACKS) {
      const key = `${this.opts.prefix}:${i}`;
      try {
        await this.write(key, key);
        this.acks.push({ key, atMs: Date.now() });
        i++;
        await sleep(this.opts.intervalMs ?? DEFAULT_INTERVAL_MS);
      } catch (e) {
        this.failures++;
        this.lastError = e instanceof Error ? e.message : String(e);
        await sleep(RETRY_PAUSE_MS);
      }
    }
  }

  async stop(): Promise<SentinelAck[]> {
    this.#stopped = true;
    await this.#loop;
    await this.close().catch(() => {});
    return this.acks;
  }
}

async function ioredisWriter(opts: SentinelWriterOptions): Promise<SentinelWriter> {
  const redis = new Redis({
    sentinels: opts.sentinels.map((s) => ({ host: s.host, port: s.port })),
    name: opts.masterName,
    sentinelPassword: opts.sentinelPassword,
    // ioredis's default. With `failoverDetector: true` a `+switch-master` that reaches one of
    // its subscribers while it resolves the master on another sentinel ends the client for good
    // (status `end`); docs/sentinel.md says so.
    failoverDetector: false,
    connectTimeout: CLIENT_TIMEOUT_MS,
    commandTimeout: CLIENT_TIMEOUT_MS,
    sentinelCommandTimeout: CLIENT_TIMEOUT_MS,
    maxRetriesPerRequest: 0,
    retryStrategy: () => RETRY_PAUSE_MS,
    sentinelRetryStrategy: () => RETRY_PAUSE_MS,
    lazyConnect: true,
  });
  redis.on("error", () => {});
  await redis.connect();
  const w = new LoopWriter(
    "ioredis",
    opts,
    async (k, v) => {
      await redis.set(k, v);
    },
    () => {
      redis.disconnect();
      return Promise.resolve();
    },
  );
  w.start();
  return w;
}

async function nodeRedisWriter(opts: SentinelWriterOptions): Promise<SentinelWriter> {
  const clientOptions = {
    password: opts.sentinelPassword,
    socket: { connectTimeout: CLIENT_TIMEOUT_MS, reconnectStrategy: () => RETRY_PAUSE_MS },
  };
  const sentinel = createSentinel({
    name: opts.masterName,
    sentinelRootNodes: opts.sentinels.map((s) => ({ host: s.host, port: s.port })),
    nodeClientOptions: {
      socket: { connectTimeout: CLIENT_TIMEOUT_MS, reconnectStrategy: () => RETRY_PAUSE_MS },
    },
    sentinelClientOptions: clientOptions,
  });
  sentinel.on("error", () => {});
  await sentinel.connect();
  const w = new LoopWriter(
    "node-redis",
    opts,
    async (k, v) => {
      await withTimeout(sentinel.set(k, v), CLIENT_TIMEOUT_MS);
    },
    () => {
      sentinel.destroy();
      return Promise.resolve();
    },
  );
  w.start();
  return w;
}

async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** redis-cli: one process per command, as a shell script would run it. */
async function redisCli(args: string[]): Promise<string> {
  const out = await new Deno.Command("redis-cli", {
    args,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(CLIENT_TIMEOUT_MS * 4),
  }).output();
  return new TextDecoder().decode(out.stdout).trim();
}

function redisCliWriter(opts: SentinelWriterOptions): Promise<SentinelWriter> {
  let master: Endpoint | null = null;
  let next = 0;
  const auth = opts.sentinelPassword === undefined
    ? []
    : ["--no-auth-warning", "-a", opts.sentinelPassword];
  const discover = async (): Promise<Endpoint> => {
    const s = opts.sentinels[next++ % opts.sentinels.length]!;
    const answer = await redisCli([
      "-h",
      s.host,
      "-p",
      String(s.port),
      ...auth,
      "SENTINEL",
      "get-master-addr-by-name",
      opts.masterName,
    ]);
    const [host, port] = answer.split("\n");
    if (host === undefined || port === undefined || !/^[0-9]+$/.test(port)) {
      throw new Error(`no master from ${s.host}:${s.port}: ${answer}`);
    }
    return { host, port: Number(port) };
  };
  const w = new LoopWriter("redis-cli", opts, async (k, v) => {
    master ??= await discover();
    const answer = await redisCli(["-h", master.host, "-p", String(master.port), "SET", k, v]);
    if (answer !== "OK") {
      master = null;
      throw new Error(answer);
    }
  }, () => Promise.resolve());
  w.start();
  return Promise.resolve(w);
}

async function redisPyWriter(opts: SentinelWriterOptions): Promise<SentinelWriter> {
  if (opts.sentinelPassword !== undefined) {
    throw new Error("the redis-py writer takes no sentinel password");
  }
  const script = new URL("./sentinel_writer.py", import.meta.url).pathname;
  const child = new Deno.Command(PYTHON, {
    args: [
      script,
      opts.masterName,
      opts.prefix,
      String(opts.intervalMs ?? DEFAULT_INTERVAL_MS),
      String(PYTHON_WRITER_MAX_SECONDS),
      ...opts.sentinels.map((s) => `${s.host}:${s.port}`),
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const acks: SentinelAck[] = [];
  let failures = 0;
  let ready!: () => void;
  const readyP = new Promise<void>((r) => ready = r);
  const stderr = new Response(child.stderr).text();
  const reading = (async () => {
    let rest = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      rest += chunk;
      const lines = rest.split("\n");
      rest = lines.pop()!;
      for (const line of lines) {
        if (line === "ready") ready();
        else if (line.startsWith("ack ")) {
          const [, key, atMs] = line.split(" ");
          acks.push({ key: key!, atMs: Number(atMs) });
        } else if (line.startsWith("err ")) failures++;
      }
    }
    ready();
  })();
  await readyP;
  const writer: SentinelWriter = {
    client: "redis-py",
    get acks() {
      return acks;
    },
    get failures() {
      return failures;
    },
    async stop() {
      await child.stdin.close().catch(() => {});
      const status = await child.status;
      await reading;
      if (!status.success) {
        throw new Error(`redis-py writer exited ${status.code}: ${await stderr}`);
      }
      return acks;
    },
  };
  return writer;
}

/**
 * Starts one writer: it connects through the sentinels (resolves once connected) and writes
 * until {@link SentinelWriter.stop}.
 *
 * @example
 * ```ts
 * import { startSentinelWriter } from "./sentinel_clients.ts";
 * const w = await startSentinelWriter("redis-py", {
 *   sentinels: [{ host: "127.0.16.21", port: 36379 }],
 *   masterName: "mymaster",
 *   prefix: "py",
 * });
 * await w.stop();
 * ```
 */
export function startSentinelWriter(
  client: SentinelClientName,
  opts: SentinelWriterOptions,
): Promise<SentinelWriter> {
  switch (client) {
    case "ioredis":
      return ioredisWriter(opts);
    case "node-redis":
      return nodeRedisWriter(opts);
    case "redis-py":
      return redisPyWriter(opts);
    case "redis-cli":
      return redisCliWriter(opts);
  }
}
