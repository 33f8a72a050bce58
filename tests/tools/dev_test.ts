/**
 * `deno task dev` (tools/dev.ts): the real command as a subprocess on 127.0.5.11..13 (not the
 * default 127.0.0.11.. range, so a developer's running dev hive is left alone), with real
 * redis-server and hive processes on the product's default ports; Ctrl-C (SIGINT) must leave
 * no process behind; as on Kubernetes, every redis also serves a Unix socket, which the leader's
 * proxy forwards to. Also: the missing redis-server message, the flags, the role-change lines.
 *
 * Loopback addresses: 127.0.5.11 to 127.0.5.13 (the hive), 127.0.5.21 (missing redis-server).
 */

import { sleep } from "../../testing/wait.ts";
import assert from "node:assert/strict";
import {
  DEFAULT_DEV_NODES,
  DEV_PORTS,
  devAddresses,
  DevUsageError,
  EXIT_MISSING_REDIS,
  EXIT_USAGE,
  findExecutable,
  MAX_DEV_NODES,
  parseDevArgs,
  RoleWatcher,
} from "../../tools/dev.ts";
import type { HiveStatus } from "../../lib/http/hive_status.ts";
import { respCommand } from "../../testing/resp_client.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const DEV = `${ROOT}tools/dev.ts`;
const BASE_IP = "127.0.5.11";
const ADDRESSES = ["127.0.5.11", "127.0.5.12", "127.0.5.13"];
/** Bound of the wait for the endpoints and the first leader line (deno start-up included). */
const START_TIMEOUT_MS = 90_000;
/** Bound of the wait for every proxy to forward to the announced leader's redis. */
const UPSTREAM_TIMEOUT_MS = 15_000;
/** Bound of the wait for the dev process to exit after SIGINT. */
const EXIT_TIMEOUT_MS = 30_000;
/** The line announcing the leader every node agrees on (after a time stamp). */
const LEADER_LINE = /^\S+ leader: (\S+) /;

/** A subprocess whose stdout and stderr are read line by line in the background. */
class LineProcess {
  readonly lines: string[] = [];
  readonly errLines: string[] = [];
  readonly child: Deno.ChildProcess;
  readonly done: Promise<void>;
  #exit: Deno.CommandStatus | null = null;

  constructor(args: string[], env: Record<string, string> = {}) {
    this.child = new Deno.Command(Deno.execPath(), {
      args,
      cwd: ROOT,
      env: { NO_COLOR: "1", ...env },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.child.status.then((s) => this.#exit = s);
    this.done = Promise.all([
      readLines(this.child.stdout, this.lines),
      readLines(this.child.stderr, this.errLines),
    ]).then(() => {});
  }

  get exited(): boolean {
    return this.#exit !== null;
  }

  /** Waits (bounded) until a stdout line matches; throws with the output so far. */
  async waitForLine(re: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (const line of this.lines) {
        const m = re.exec(line);
        if (m !== null) return m;
      }
      if (this.exited || Date.now() > deadline) {
        throw new Error(
          `no line matching ${re} (${
            this.exited ? "process exited" : "timed out"
          }):\n${this.output()}`,
        );
      }
      await sleep(50);
    }
  }

  output(): string {
    return [...this.lines, ...this.errLines.map((l) => `stderr: ${l}`)].join("\n");
  }

  /** Waits (bounded) for the exit status and the end of the output. */
  async status(timeoutMs: number): Promise<Deno.CommandStatus> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("process did not exit in time")), timeoutMs);
    });
    try {
      const status = await Promise.race([this.child.status, timeout]);
      await this.done;
      return status;
    } finally {
      clearTimeout(timer);
    }
  }

  async kill(): Promise<void> {
    if (!this.exited) {
      try {
        this.child.kill("SIGKILL");
      } catch { /* gone */ }
    }
    await this.child.status;
    await this.done;
  }
}

async function readLines(stream: ReadableStream<Uint8Array>, into: string[]): Promise<void> {
  let pending = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    const parts = pending.split("\n");
    pending = parts.pop() ?? "";
    into.push(...parts);
  }
  if (pending !== "") into.push(pending);
}

/** The arguments of a live process, or null when it is gone (or a zombie). */
function processArgs(pid: number): string[] | null {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    if (/^\d+ \(.*\) Z/.test(stat)) return null;
    return Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0").filter((a) => a !== "");
  } catch {
    return null;
  }
}

/** Pids of every live process whose arguments name one of `addresses` as a whole address. */
function processesNaming(addresses: readonly string[]): { pid: number; args: string[] }[] {
  const found: { pid: number; args: string[] }[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const pid = Number(entry.name);
    if (pid === Deno.pid) continue;
    const args = processArgs(pid);
    if (args === null) continue;
    const text = args.join(" ");
    if (
      addresses.some((a) =>
        new RegExp(`(^|[^0-9.])${a.replaceAll(".", "\\.")}([^0-9]|$)`).test(text)
      )
    ) {
      found.push({ pid, args });
    }
  }
  return found;
}

/** `CONFIG GET` of each parameter of the redis at host:port, as one object. */
async function redisConfig(
  host: string,
  port: number,
  params: readonly string[],
): Promise<Record<string, string>> {
  const config: Record<string, string> = {};
  for (const param of params) {
    const reply = await respCommand(host, port, ["CONFIG", "GET", param], { timeoutMs: 5_000 });
    assert.ok(Array.isArray(reply) && reply.length === 2, `CONFIG GET ${param}: ${reply}`);
    config[param] = String(reply[1]);
  }
  return config;
}

function killAll(pids: Iterable<number>): void {
  for (const pid of pids) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch { /* gone */ }
  }
}

Deno.test("deno task dev: a hive of 3 on its own addresses, endpoints, leader line, Ctrl-C leaves no process", async () => {
  assert.deepEqual(
    processesNaming(ADDRESSES),
    [],
    "processes already use the test's addresses",
  );
  const dev = new LineProcess(["task", "dev", "--base-ip", BASE_IP]);
  const pids = new Set<number>();
  const sockets = new Map<string, string>();
  try {
    await dev.waitForLine(LEADER_LINE, START_TIMEOUT_MS);
    // The process ids it started, one line per node.
    for (const address of ADDRESSES) {
      const m = await dev.waitForLine(
        new RegExp(`^node ${address.replaceAll(".", "\\.")}: redis pid (\\d+), hive pid (\\d+)$`),
        1_000,
      );
      pids.add(Number(m[1]));
      pids.add(Number(m[2]));
      assert.notEqual(processArgs(Number(m[1])), null, `redis of ${address} runs`);
      assert.notEqual(processArgs(Number(m[2])), null, `hive of ${address} runs`);
      // Its redis runs with the manifests' flags on the default port (redis rewrites its
      // process title, so ask it).
      const config = await redisConfig(address, DEV_PORTS.redis, [
        "bind",
        "bind-source-addr",
        "replica-announce-ip",
        "protected-mode",
        "appendonly",
        "save",
        "repl-diskless-sync-delay",
      ]);
      assert.deepEqual(config, {
        bind: address,
        "bind-source-addr": address,
        "replica-announce-ip": address,
        "protected-mode": "no",
        appendonly: "no",
        save: "",
        "repl-diskless-sync-delay": "0",
      });
      // ...and also on a Unix socket (the manifests' --unixsocket), which its hive is given.
      const { unixsocket } = await redisConfig(address, DEV_PORTS.redis, ["unixsocket"]);
      assert.ok(
        unixsocket !== undefined && unixsocket.startsWith("/"),
        `redis of ${address} serves no Unix socket`,
      );
      sockets.set(address, unixsocket);
    }
    assert.equal(pids.size, 2 * ADDRESSES.length);
    // The endpoints it printed.
    const out = dev.lines.join("\n");
    for (const a of ADDRESSES) {
      assert.ok(out.includes(`redis-cli -h ${a} -p ${DEV_PORTS.proxy}`), out);
      assert.ok(out.includes(`redis-cli -h ${a} -p ${DEV_PORTS.redis}`), out);
      assert.ok(out.includes(`http://${a}:${DEV_PORTS.http}/`), out);
    }
    // Every node answers /status on the default http port and agrees on the printed leader.
    const announced = (await dev.waitForLine(LEADER_LINE, 1_000))[1];
    const statuses: HiveStatus[] = [];
    for (const a of ADDRESSES) {
      const res = await fetch(`http://${a}:${DEV_PORTS.http}/status`, {
        signal: AbortSignal.timeout(5_000),
      });
      assert.equal(res.status, 200);
      statuses.push(await res.json() as HiveStatus);
    }
    assert.deepEqual(statuses.map((s) => s.id), ADDRESSES);
    const leaders = statuses.filter((s) => s.role === "leader").map((s) => s.id);
    assert.deepEqual(leaders, [announced]);
    for (const s of statuses) assert.equal(s.leader, announced);
    assert.equal(new Set(sockets.values()).size, ADDRESSES.length, "one socket per redis");
    // The leader's proxy forwards to its redis's socket; the followers' to the leader over TCP
    // (eventually: a proxy gets its target once the leader's redis is seen as the master).
    const expectedUpstreams = ADDRESSES.map((a) =>
      a === announced ? `unix:${sockets.get(a)}` : `${announced}:${DEV_PORTS.redis}`
    );
    let upstreams: (string | null)[] = [];
    const upstreamDeadline = Date.now() + UPSTREAM_TIMEOUT_MS;
    for (;;) {
      upstreams = await Promise.all(ADDRESSES.map(async (a) => {
        const res = await fetch(`http://${a}:${DEV_PORTS.http}/status`, {
          signal: AbortSignal.timeout(5_000),
        });
        return (await res.json() as HiveStatus).proxy.upstream;
      }));
      if (JSON.stringify(upstreams) === JSON.stringify(expectedUpstreams)) break;
      assert.ok(
        Date.now() < upstreamDeadline,
        `proxy upstreams ${JSON.stringify(upstreams)}, expected ${
          JSON.stringify(expectedUpstreams)
        }`,
      );
      await sleep(100);
    }
    assert.deepEqual(upstreams, expectedUpstreams);
    // A write through a proxy on the default proxy port reaches the master.
    const conn = await Deno.connect({ hostname: ADDRESSES[0] as string, port: DEV_PORTS.proxy });
    try {
      await conn.write(new TextEncoder().encode("*1\r\n$4\r\nPING\r\n"));
      const buf = new Uint8Array(64);
      const n = await conn.read(buf);
      assert.equal(new TextDecoder().decode(buf.subarray(0, n ?? 0)), "+PONG\r\n");
    } finally {
      conn.close();
    }

    dev.child.kill("SIGINT");
    const status = await dev.status(EXIT_TIMEOUT_MS);
    assert.equal(status.code, 0, dev.output());
    for (const pid of pids) {
      assert.equal(processArgs(pid), null, `pid ${pid} is still alive after Ctrl-C`);
    }
    assert.deepEqual(processesNaming(ADDRESSES), [], "no process names the test's addresses");
    assert.ok(dev.lines.some((l) => / SIGINT: stopping/.test(l)), dev.output());
  } finally {
    // Kill the whole tree first: an orphan would hold the output pipes open.
    killAll([dev.child.pid, ...pids, ...processesNaming(ADDRESSES).map((p) => p.pid)]);
    await dev.kill();
  }
});

Deno.test("deno task dev: without redis-server on the PATH it says how to install it and fails", async () => {
  const emptyDir = await Deno.makeTempDir({ prefix: "dev-test-path-" });
  try {
    assert.equal(findExecutable("redis-server", emptyDir), null);
    const dev = new LineProcess(
      ["run", "--allow-all", DEV, "--base-ip", "127.0.5.21"],
      { PATH: emptyDir },
    );
    let status: Deno.CommandStatus;
    try {
      status = await dev.status(EXIT_TIMEOUT_MS);
    } finally {
      await dev.kill();
    }
    assert.equal(status.code, EXIT_MISSING_REDIS, dev.output());
    const err = dev.errLines.join("\n");
    assert.match(err, /redis-server was not found/);
    assert.match(err, /apt-get install redis-server/);
    assert.match(err, /npm install -g deno@2\.9\.6/);
    assert.deepEqual(processesNaming(["127.0.5.21"]), []);
  } finally {
    await Deno.remove(emptyDir, { recursive: true });
  }
});

Deno.test("deno task dev: --help exits 0, a bad flag exits with a message naming it", async () => {
  const help = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", DEV, "--help"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(help.code, 0);
  const text = new TextDecoder().decode(help.stdout);
  assert.match(text, /usage: deno task dev/);
  assert.match(text, /--base-ip/);
  const bad = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", DEV, "--nodes", "99"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(bad.code, EXIT_USAGE);
  assert.match(new TextDecoder().decode(bad.stderr), /--nodes: expected an integer 2\.\.9/);
});

Deno.test("dev: parseDevArgs and devAddresses validate and default", () => {
  assert.deepEqual(parseDevArgs([]), {
    nodes: DEFAULT_DEV_NODES,
    baseIp: "127.0.0.11",
    logs: false,
  });
  assert.deepEqual(parseDevArgs(["--nodes", "5", "--base-ip", "127.0.5.11", "--logs"]), {
    nodes: 5,
    baseIp: "127.0.5.11",
    logs: true,
  });
  assert.equal(parseDevArgs(["-h"]), "help");
  assert.deepEqual(devAddresses("127.0.0.11", 3), ["127.0.0.11", "127.0.0.12", "127.0.0.13"]);
  for (
    const bad of [["--nodes", "1"], ["--nodes", String(MAX_DEV_NODES + 1)], ["--nodes", "2.5"]]
  ) {
    assert.throws(
      () => parseDevArgs(bad),
      (e) => e instanceof DevUsageError && /--nodes/.test(e.message),
    );
  }
  for (const ip of ["10.0.0.1", "127.0.0.256", "localhost", "127.0.0.250"]) {
    assert.throws(
      () => parseDevArgs(["--base-ip", ip, "--nodes", "9"]),
      (e) => e instanceof DevUsageError && /--base-ip/.test(e.message),
    );
  }
  assert.throws(() => parseDevArgs(["--bogus"]), DevUsageError);
});

Deno.test("dev: RoleWatcher prints each change once and the leader when every node agrees", () => {
  const w = new RoleWatcher(["127.0.0.11", "127.0.0.12"], 6379);
  const view = (
    entries: [string, { role: HiveStatus["role"]; leader: string | null } | { error: string }][],
  ) => new Map(entries);
  assert.deepEqual(
    w.update(view([
      ["127.0.0.11", { role: "candidate", leader: null }],
      ["127.0.0.12", { role: "starting", leader: null }],
    ])),
    ["127.0.0.11 starting -> candidate"],
  );
  // One leader, but a node still disagrees: no leader line yet.
  assert.deepEqual(
    w.update(view([
      ["127.0.0.11", { role: "leader", leader: "127.0.0.11" }],
      ["127.0.0.12", { role: "starting", leader: null }],
    ])),
    ["127.0.0.11 candidate -> leader (leader 127.0.0.11)"],
  );
  assert.equal(w.leader, null);
  const agreed = w.update(view([
    ["127.0.0.11", { role: "leader", leader: "127.0.0.11" }],
    ["127.0.0.12", { role: "follower", leader: "127.0.0.11" }],
  ]));
  assert.equal(agreed.length, 2);
  assert.equal(agreed[0], "127.0.0.12 starting -> follower (leader 127.0.0.11)");
  assert.match(agreed[1] as string, /^leader: 127\.0\.0\.11 .*replicas 127\.0\.0\.12:6379/);
  // Nothing changed: nothing printed.
  assert.deepEqual(
    w.update(view([
      ["127.0.0.11", { role: "leader", leader: "127.0.0.11" }],
      ["127.0.0.12", { role: "follower", leader: "127.0.0.11" }],
    ])),
    [],
  );
  // The leader stops answering; the other takes over.
  const lines = w.update(view([
    ["127.0.0.11", { error: "connection refused" }],
    ["127.0.0.12", { role: "leader", leader: "127.0.0.12" }],
  ]));
  assert.deepEqual(lines.slice(0, 2), [
    "127.0.0.11 not answering: connection refused",
    "127.0.0.12 follower (leader 127.0.0.11) -> leader (leader 127.0.0.12)",
  ]);
  assert.match(lines[2] as string, /^leader: 127\.0\.0\.12 /);
  assert.equal(w.leader, "127.0.0.12");
  assert.throws(() => w.update(new Map()), /no view of 127\.0\.0\.11/);
});
