/**
 * One contract for every RedisController: the same scenarios, with the same expected commands,
 * run against the real controller on real redis-server processes (127.0.2.41-.42) and against
 * the in-memory controller.
 */
import assert from "node:assert/strict";
import { createRedisController, type RedisController } from "../../lib/redis/redis_controller.ts";
import { MemoryRedisNetwork } from "../../lib/redis/memory_redis_controller.ts";
import { PARKED_MASTER, REDIS_DOWN, type RedisObservation } from "../../lib/redis/redis_state.ts";
import { startRedis } from "../../testing/redis_server.ts";
import { eventually, sleep } from "../../testing/wait.ts";

/** A redis in a contract world, real or simulated. */
interface Node {
  host: string;
  port: number;
  runId(): Promise<string>;
  write(key: string, value: string): Promise<void>;
  get(key: string): Promise<string | null>;
  keyCount(): Promise<number>;
  crash(): Promise<void>;
  restart(opts?: { parked?: boolean }): Promise<void>;
}

/** The controlled redis ("local"), a peer to follow, and the controller under test. */
interface World {
  local: Node;
  peer: Node;
  controller: RedisController;
  cleanup(): Promise<void>;
}

type WorldFactory = (opts: { localParked: boolean }) => Promise<World>;

const LOCAL = { host: "127.0.2.41", port: 16379 };
const PEER = { host: "127.0.2.42", port: 16379 };

const realWorld: WorldFactory = async ({ localParked }) => {
  const local = await startRedis({ ...LOCAL, parked: localParked });
  let peer;
  try {
    peer = await startRedis(PEER);
  } catch (e) {
    await local.stop();
    throw e;
  }
  const node = (r: typeof local): Node => ({
    host: r.host,
    port: r.port,
    runId: async () => (await r.info("server")).get("run_id") ?? "",
    write: async (k, v) => void await r.command("SET", k, v),
    get: async (k) => (await r.command("GET", k)) as string | null,
    keyCount: async () => Number(await r.command("DBSIZE")),
    crash: () => r.kill("SIGKILL"),
    restart: (opts) => r.restart(opts),
  });
  const controller = createRedisController({
    ...LOCAL,
    password: null,
    announceIp: LOCAL.host,
  });
  return {
    local: node(local),
    peer: node(peer),
    controller,
    cleanup: async () => {
      await controller.close();
      await Promise.all([local.stop(), peer.stop()]);
    },
  };
};

const memoryWorld: WorldFactory = ({ localParked }) => {
  const net = new MemoryRedisNetwork();
  const node = (r: ReturnType<typeof net.addRedis>): Node => ({
    host: r.host,
    port: r.port,
    // async: a simulated error reply rejects, as a real one does.
    runId: async () => await Promise.resolve(r.runId ?? ""),
    write: async (k, v) => await Promise.resolve(r.write(k, v)),
    get: async (k) => await Promise.resolve(r.data.get(k) ?? null),
    keyCount: async () => await Promise.resolve(r.data.size),
    crash: async () => await Promise.resolve(r.crash()),
    restart: async (opts) => await Promise.resolve(r.restart(opts)),
  });
  const local = net.addRedis(LOCAL.host, LOCAL.port, { parked: localParked });
  const peer = net.addRedis(PEER.host, PEER.port);
  const controller = net.controller({ ...LOCAL, password: null, announceIp: LOCAL.host });
  return Promise.resolve({
    local: node(local),
    peer: node(peer),
    controller,
    cleanup: () => controller.close(),
  });
};

const SETUP = `CONFIG SET replica-announce-ip ${LOCAL.host}`;
const PARK = `REPLICAOF ${PARKED_MASTER.host} ${PARKED_MASTER.port}`;
const FOLLOW_PEER = `REPLICAOF ${PEER.host} ${PEER.port}`;

async function upObservation(ctl: RedisController): Promise<RedisObservation> {
  return await eventually("controller observes redis up", async () => {
    const obs = await ctl.observe();
    return obs.up ? obs : undefined;
  });
}

function contract(name: string, makeWorld: WorldFactory): void {
  const scenario = (
    title: string,
    localParked: boolean,
    fn: (w: World) => Promise<void>,
  ) =>
    Deno.test(`[${name}] ${title}`, async () => {
      const world = await makeWorld({ localParked });
      try {
        await fn(world);
      } finally {
        await world.cleanup();
      }
    });

  scenario(
    "leader: a parked redis becomes master; a second enforce issues nothing",
    true,
    async (w) => {
      const before = await upObservation(w.controller);
      assert.equal(before.role, "replica");
      assert.deepEqual(await w.controller.enforce({ kind: "leader" }), {
        ok: true,
        commands: [SETUP, "REPLICAOF NO ONE"],
        warnings: [],
      });
      const obs = await w.controller.observe();
      assert.equal(obs.role, "master");
      assert.equal(obs.masterHost, null);
      assert.equal(obs.masterPort, null);
      assert.equal(obs.runId, await w.local.runId());
      assert.deepEqual(await w.controller.enforce({ kind: "leader" }), {
        ok: true,
        commands: [],
        warnings: [],
      });
      await w.local.write("after", "promotion"); // writable now
      assert.equal(await w.local.get("after"), "promotion");
    },
  );

  scenario(
    "parked: a master with keys becomes a replica of 127.0.0.1:1 and keeps them",
    false,
    async (w) => {
      await upObservation(w.controller);
      for (let i = 0; i < 10; i++) await w.local.write(`k${i}`, `v${i}`);
      assert.deepEqual((await w.controller.enforce({ kind: "parked" })).commands, [SETUP, PARK]);
      const obs = await w.controller.observe();
      assert.equal(obs.role, "replica");
      assert.equal(obs.masterHost, PARKED_MASTER.host);
      assert.equal(obs.masterPort, PARKED_MASTER.port);
      assert.equal(obs.linkUp, false);
      assert.deepEqual(await w.controller.enforce({ kind: "parked" }), {
        ok: true,
        commands: [],
        warnings: [],
      });
      await sleep(200);
      assert.equal(await w.local.keyCount(), 10);
      assert.equal(await w.local.get("k9"), "v9");
      await assert.rejects(w.local.write("x", "y"), /READONLY/);
    },
  );

  scenario(
    "follow (guarded): replica of host:port, link up, the peer's data; idempotent",
    true,
    async (w) => {
      await upObservation(w.controller);
      await w.peer.write("from-peer", "1");
      const target = {
        kind: "follow",
        host: PEER.host,
        port: PEER.port,
        expectRunId: await w.peer.runId(),
      } as const;
      assert.deepEqual(await w.controller.enforce(target), {
        ok: true,
        commands: [SETUP, FOLLOW_PEER],
        warnings: [],
      });
      const obs = await eventually("link up", async () => {
        const o = await w.controller.observe();
        return o.linkUp ? o : undefined;
      });
      assert.equal(obs.role, "replica");
      assert.equal(obs.masterHost, PEER.host);
      assert.equal(obs.masterPort, PEER.port);
      assert.equal(await w.local.get("from-peer"), "1");
      assert.deepEqual(await w.controller.enforce(target), {
        ok: true,
        commands: [],
        warnings: [],
      });
    },
  );

  scenario("follow without a guard points at once", false, async (w) => {
    await upObservation(w.controller);
    const r = await w.controller.enforce({ ...PEER, kind: "follow", expectRunId: null });
    assert.deepEqual(r.commands, [SETUP, FOLLOW_PEER]);
    assert.ok(r.ok);
    const obs = await w.controller.observe();
    assert.equal(obs.masterHost, PEER.host);
  });

  scenario(
    "follow with another run_id: refused, parked, keys kept; again: nothing",
    false,
    async (w) => {
      await upObservation(w.controller);
      await w.local.write("mine", "kept");
      const target = {
        kind: "follow",
        host: PEER.host,
        port: PEER.port,
        expectRunId: "f".repeat(40),
      } as const;
      const first = await w.controller.enforce(target);
      assert.ok(!first.ok && first.reason === "guard-mismatch", JSON.stringify(first));
      assert.deepEqual(first.commands, [SETUP, PARK]);
      const second = await w.controller.enforce(target);
      assert.ok(!second.ok && second.reason === "guard-mismatch");
      assert.deepEqual(second.commands, []);
      const obs = await w.controller.observe();
      assert.equal(obs.masterPort, PARKED_MASTER.port);
      assert.equal(await w.local.get("mine"), "kept");
    },
  );

  scenario(
    "the followed peer restarts: the next enforce parks instead of re-syncing",
    true,
    async (w) => {
      await upObservation(w.controller);
      const target = {
        kind: "follow",
        host: PEER.host,
        port: PEER.port,
        expectRunId: await w.peer.runId(),
      } as const;
      assert.ok((await w.controller.enforce(target)).ok);
      await w.peer.crash();
      const gone = await w.controller.enforce(target);
      assert.ok(!gone.ok && gone.reason === "guard-unreachable", JSON.stringify(gone));
      assert.deepEqual(gone.commands, [PARK]);
      await w.peer.restart();
      const mismatch = await w.controller.enforce(target);
      assert.ok(!mismatch.ok && mismatch.reason === "guard-mismatch");
      assert.deepEqual(mismatch.commands, []);
    },
  );

  scenario(
    "the local redis crashes: connection lost, down; restarted: new run_id, setup again",
    false,
    async (w) => {
      let lost = 0;
      w.controller.onConnectionLost(() => lost++);
      const before = await upObservation(w.controller);
      assert.deepEqual((await w.controller.enforce({ kind: "leader" })).commands, [SETUP]);
      await w.local.crash();
      await eventually("connection lost", () => lost === 1);
      assert.deepEqual(await w.controller.observe(), REDIS_DOWN);
      const down = await w.controller.enforce({ kind: "leader" });
      assert.ok(!down.ok && down.reason === "redis-down");
      await w.local.restart({ parked: true });
      const after = await upObservation(w.controller);
      assert.notEqual(after.runId, before.runId);
      assert.equal(after.masterPort, PARKED_MASTER.port);
      assert.deepEqual((await w.controller.enforce({ kind: "parked" })).commands, [SETUP]);
      assert.equal(lost, 1);
    },
  );

  scenario(
    "bad targets are refused without a command; a closed controller is down",
    false,
    async (w) => {
      await upObservation(w.controller);
      const self = await w.controller.enforce({ ...LOCAL, kind: "follow", expectRunId: null });
      assert.ok(!self.ok && self.reason === "bad-target");
      assert.deepEqual(self.commands, []);
      await w.controller.close();
      assert.deepEqual(await w.controller.observe(), REDIS_DOWN);
      const closed = await w.controller.enforce({ kind: "leader" });
      assert.ok(!closed.ok && closed.reason === "redis-down");
    },
  );
}

contract("real", realWorld);
contract("memory", memoryWorld);
