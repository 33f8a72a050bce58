/**
 * The harness's side of the client agent: starts `tools/chaos/agent.ts` inside the bridge
 * namespace and sends it typed requests (see `agent_protocol.ts`).
 *
 * @example
 * ```ts
 * import { AgentClient } from "./agent_client.ts";
 * const agent = await AgentClient.start("/tmp/rh-chaos-x/agent.log");
 * const view = await agent.call({ op: "redis", ip: "192.0.2.11" });
 * await agent.close();
 * ```
 */

import type { AgentRequest, AgentResponse, AgentResults } from "./agent_protocol.ts";
import { bridgeNamespace, namePrefix } from "./network.ts";

/** Default deadline of one request. */
export const AGENT_REQUEST_TIMEOUT_MS = 30_000;
/** How long the agent may take to answer its first request (deno start-up included). */
export const AGENT_START_TIMEOUT_MS = 30_000;
/** How long the agent may take to exit once its stdin closed. */
export const AGENT_EXIT_TIMEOUT_MS = 10_000;

const AGENT_PATH = new URL("./agent.ts", import.meta.url).pathname;

type Pending = {
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  timer: ReturnType<typeof setTimeout>;
};

/**
 * A running agent.
 *
 * @example
 * ```ts
 * const agent = await AgentClient.start("/tmp/rh-chaos-x/agent.log");
 * await agent.call({ op: "endpoints", ips: ["192.0.2.11"] });
 * ```
 */
export class AgentClient {
  #nextId = 1;
  readonly #pending = new Map<number, Pending>();
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #reading: Promise<void>;
  #closed = false;

  private constructor(readonly child: Deno.ChildProcess, readonly logPath: string) {
    this.#writer = child.stdin.getWriter();
    this.#reading = this.#read();
  }

  /** Starts the agent (its stderr appended to `logPath`) and waits until it answers. */
  static async start(logPath: string): Promise<AgentClient> {
    const child = new Deno.Command("sh", {
      args: [
        "-c",
        'log="$1"; shift; exec "$@" 2>>"$log"',
        "sh",
        logPath,
        "ip",
        "netns",
        "exec",
        bridgeNamespace(),
        Deno.execPath(),
        "run",
        "--allow-net",
        "--no-prompt",
        AGENT_PATH,
        namePrefix(),
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const agent = new AgentClient(child, logPath);
    try {
      await agent.call({ op: "endpoints", ips: [] }, AGENT_START_TIMEOUT_MS);
    } catch (e) {
      await agent.close();
      const log = await Deno.readTextFile(logPath).catch(() => "");
      throw new Error(`the client agent did not start: ${e}\n${log.slice(-2000)}`);
    }
    return agent;
  }

  /** The agent's process id. */
  get pid(): number {
    return this.child.pid;
  }

  /** Sends one request and awaits its result. */
  call<K extends AgentRequest["op"]>(
    req: Extract<AgentRequest, { op: K }>,
    timeoutMs = AGENT_REQUEST_TIMEOUT_MS,
  ): Promise<AgentResults[K]> {
    if (this.#closed) return Promise.reject(new Error("agent: closed"));
    const id = this.#nextId++;
    return new Promise<AgentResults[K]>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`agent: no answer to ${req.op} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      const line = new TextEncoder().encode(JSON.stringify({ id, ...req }) + "\n");
      this.#writer.write(line).catch((e) => {
        clearTimeout(timer);
        this.#pending.delete(id);
        reject(new Error(`agent: cannot send ${req.op}: ${e}`));
      });
    });
  }

  async #read(): Promise<void> {
    let pending = "";
    try {
      for await (const chunk of this.child.stdout.pipeThrough(new TextDecoderStream())) {
        pending += chunk;
        const lines = pending.split("\n");
        pending = lines.pop() ?? "";
        for (const line of lines) {
          if (line.trim() === "") continue;
          const res = JSON.parse(line) as AgentResponse;
          const p = this.#pending.get(res.id);
          if (p === undefined) continue; // timed out already
          this.#pending.delete(res.id);
          clearTimeout(p.timer);
          if (res.ok) p.resolve(res.result);
          else p.reject(new Error(`agent: ${res.error}`));
        }
      }
    } finally {
      for (const p of this.#pending.values()) {
        clearTimeout(p.timer);
        p.reject(new Error("agent: exited"));
      }
      this.#pending.clear();
    }
  }

  /** Closes its stdin (it stops its clients and exits), SIGKILL after a bound. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#writer.close().catch(() => {});
    let timer: ReturnType<typeof setTimeout> | undefined;
    const exited = await Promise.race([
      this.child.status.then(() => true),
      new Promise<false>((r) => timer = setTimeout(() => r(false), AGENT_EXIT_TIMEOUT_MS)),
    ]);
    clearTimeout(timer);
    if (!exited) {
      try {
        this.child.kill("SIGKILL");
      } catch { /* gone */ }
      await this.child.status;
    }
    await this.#reading.catch(() => {});
  }
}
