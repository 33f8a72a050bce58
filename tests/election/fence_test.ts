/**
 * The fence (lib/election/fence.ts), the lease datagrams (lib/election/lease.ts), and the
 * election carrying them out: pure rules first, then three and five real Election state
 * machines exchanging their datagrams through a hand-driven network in simulated time (no
 * sockets), cut and healed at chosen instants.
 */

import assert from "node:assert/strict";
import {
  defaultFenceTiming,
  fenceArmed,
  fenceTimingProblem,
  LeaseGrant,
  LeaseTable,
  PeerSetMemory,
  quorumNeeded,
} from "../../lib/election/fence.ts";
import { createLeaseCodec, isLeaseDatagram, type LeaseMessage } from "../../lib/election/lease.ts";
import { createEnvelopeFilter } from "../../lib/election/envelope_filter.ts";
import { Election, type ElectionAction } from "../../lib/election/election.ts";
import type { Heartbeat } from "../../lib/election/heartbeat.ts";
import type { RedisObservation } from "../../lib/redis/redis_state.ts";

Deno.test("quorum: a strict majority of the peer set, itself included; 2 nodes lead alone", () => {
  assert.equal(quorumNeeded("auto", 1), 1);
  assert.equal(quorumNeeded("auto", 2), 1);
  assert.equal(quorumNeeded("auto", 3), 2);
  assert.equal(quorumNeeded("auto", 4), 3);
  assert.equal(quorumNeeded("auto", 5), 3);
  assert.equal(quorumNeeded("off", 5), 1);
  assert.equal(quorumNeeded("on", 2), 2, "--fence on with 2 nodes: both needed");
  assert.equal(fenceArmed("auto", 2), false);
  assert.equal(fenceArmed("auto", 3), true);
  assert.throws(() => quorumNeeded("auto", 0), /positive integer/);
});

Deno.test("fence timing: derived from the heartbeat, and the lease must beat failureMs", () => {
  const t = defaultFenceTiming(200);
  assert.deepEqual(t, { leaseProbeMs: 25, leaseMs: 150, leaseHoldoffMs: 300 });
  assert.equal(fenceTimingProblem(t, 1000), null);
  assert.match(fenceTimingProblem({ ...t, leaseMs: 1000 }, 1000)!, /shorter than failureMs/);
  assert.match(fenceTimingProblem({ ...t, leaseHoldoffMs: 150 }, 1000)!, /must exceed/);
  assert.match(fenceTimingProblem({ ...t, leaseMs: 40 }, 1000)!, /twice leaseProbeMs/);
  assert.throws(
    () =>
      new Election({
        self: "10.0.0.1",
        electionPort: 7379,
        redisPort: 6379,
        localRedis: { host: "127.0.0.1", port: 6379 },
        bootId: "aa",
        heartbeatMs: 200,
        failureMs: 1000,
        maxPeers: 8,
        leaseMs: 1000,
        leaseHoldoffMs: 2000,
      }),
    /leaseMs \(1000\) must be shorter than failureMs/,
  );
});

Deno.test("lease table: fenced with no echo, unfenced by a majority, fenced again when it expires", () => {
  const peers = ["10.0.0.2", "10.0.0.3"];
  const t = new LeaseTable();
  let s = t.evaluate(1000, peers, 150, "auto");
  assert.equal(s.fenced, true, "a new leadership is fenced from its first moment");
  assert.equal(s.needed, 2);
  t.record("10.0.0.2", 990);
  s = t.evaluate(1000, peers, 150, "auto");
  assert.equal(s.fenced, false);
  assert.deepEqual(s.heard, ["10.0.0.2"]);
  assert.equal(s.fenceAtMono, 1140, "fenced when that echo expires");
  t.record("10.0.0.2", 900); // older: ignored
  assert.equal(t.latest("10.0.0.2"), 990);
  assert.equal(t.evaluate(1139, peers, 150, "auto").fenced, false);
  assert.equal(t.evaluate(1140, peers, 150, "auto").fenced, true, "strictly within the lease");
  // Echoes from outside the peer set never count.
  t.record("10.0.0.9", 1100);
  assert.equal(t.evaluate(1140, peers, 150, "auto").fenced, true);
  // Five nodes: two echoes needed; the fence falls at the second-latest expiry.
  const five = ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"];
  const t5 = new LeaseTable();
  t5.record("10.0.0.2", 1000);
  assert.equal(t5.evaluate(1010, five, 150, "auto").fenced, true);
  t5.record("10.0.0.3", 1005);
  t5.record("10.0.0.4", 1008);
  assert.equal(t5.evaluate(1010, five, 150, "auto").fenceAtMono, 1155);
  // Two nodes, auto: never fenced; off: never fenced.
  assert.equal(new LeaseTable().evaluate(0, ["10.0.0.2"], 150, "auto").fenced, false);
  assert.equal(new LeaseTable().evaluate(0, peers, 150, "off").fenced, false);
});

Deno.test("peer set memory: a shrinking DNS answer shrinks the majority only after the window", () => {
  const m = new PeerSetMemory(30_000);
  m.record(3, 0);
  m.record(1, 1000);
  assert.equal(m.size(1, 2000), 3, "two pods just left the DNS answer: still 3");
  assert.equal(m.size(1, 29_999), 3);
  assert.equal(m.size(1, 30_001), 1, "gone for the whole window");
  m.record(4, 31_000); // a rolling update's surge
  m.record(3, 32_000);
  assert.equal(m.size(3, 33_000), 4);
  const t = new LeaseTable();
  t.record("10.0.0.2", 100);
  const s = t.evaluate(110, ["10.0.0.2"], 150, "auto", 3);
  assert.equal(s.fenced, false, "2 of a remembered 3");
  assert.equal(s.peerSetSize, 3);
  assert.throws(() => new PeerSetMemory(0), /windowMs/);
});

Deno.test("lease grant: no other leader echoed within the holdoff, unless the first let go", () => {
  const g = new LeaseGrant();
  assert.equal(g.mayEcho("A", 0, 300), true);
  g.echoed("A", 0);
  assert.equal(g.mayEcho("A", 10, 300), true);
  assert.equal(g.mayEcho("B", 299, 300), false);
  assert.equal(g.mayEcho("B", 300, 300), true);
  g.released("B"); // not the one last echoed: changes nothing
  assert.equal(g.mayEcho("B", 100, 300), false);
  g.released("A");
  assert.equal(g.mayEcho("B", 100, 300), true);
});

/** A valid lease probe, for the codec and filter tests. */
const PROBE: LeaseMessage = {
  kind: "probe",
  from: "127.0.14.1",
  bootId: "ab12",
  seq: 7,
  sentMono: 123.5,
  fenced: false,
};

Deno.test("lease codec: round trip, signed like heartbeats; forged, unsigned and bad fields dropped", async () => {
  const signed = await createLeaseCodec("s3cret");
  const other = await createLeaseCodec("other");
  const open = await createLeaseCodec(null);
  const probe = PROBE;
  const echo: LeaseMessage = {
    kind: "echo",
    from: "127.0.14.2",
    bootId: "cd34",
    to: "127.0.14.1",
    leaderBoot: "ab12",
    sentMono: 123.5,
  };
  for (const m of [probe, echo]) {
    const bytes = await signed.encode(m);
    assert.ok(isLeaseDatagram(bytes));
    assert.deepEqual(await signed.decode(bytes), { ok: true, message: m });
    assert.deepEqual(await other.decode(bytes), { ok: false, reason: "bad-signature" });
    assert.deepEqual(await open.decode(bytes), { ok: false, reason: "unexpected-signature" });
    assert.deepEqual(await signed.decode(await open.encode(m)), { ok: false, reason: "unsigned" });
  }
  const bytes = await signed.encode(probe);
  bytes[10] = bytes[10]! ^ 1;
  assert.deepEqual(await signed.decode(bytes), { ok: false, reason: "bad-signature" });
  await assert.rejects(() => open.encode({ ...probe, from: "nope" }), /from: must be/);
  const enc = new TextEncoder();
  const raw = (json: string) => new Uint8Array([0x52, 0x48, 0x4c, 0x53, 1, 0, ...enc.encode(json)]);
  assert.deepEqual(await open.decode(raw('{"kind":"probe"}')), {
    ok: false,
    reason: "invalid-field",
  });
  assert.deepEqual(await open.decode(raw("{")), { ok: false, reason: "malformed" });
  assert.deepEqual(await open.decode(new Uint8Array([0x52, 0x48, 0x49, 0x56, 1, 0])), {
    ok: false,
    reason: "bad-magic",
  });
  assert.deepEqual(await open.decode(new Uint8Array(600)), { ok: false, reason: "oversized" });
});

Deno.test("envelope filter (the FFI receive loop's): lets signed leases through, drops forged ones", async () => {
  // The election socket's worker drops what fails createEnvelopeFilter before the runtime sees
  // it; a lease must pass it exactly when the lease codec would accept its envelope.
  const filter = createEnvelopeFilter("s3cret");
  const open = createEnvelopeFilter(null);
  const probe = PROBE;
  const bytes = await (await createLeaseCodec("s3cret")).encode(probe);
  assert.equal(filter(bytes), null);
  assert.equal(createEnvelopeFilter("other")(bytes), "bad-signature");
  assert.equal(open(bytes), "unexpected-signature");
  assert.equal(filter(await (await createLeaseCodec(null)).encode(probe)), "unsigned");
  const tampered = bytes.slice();
  tampered[10] = tampered[10]! ^ 1;
  assert.equal(filter(tampered), "bad-signature");
  const wrongVersion = bytes.slice();
  wrongVersion[4] = 9;
  assert.equal(filter(wrongVersion), "wrong-version");
  const big = new Uint8Array(600);
  big.set([0x52, 0x48, 0x4c, 0x53, 1, 1]);
  assert.equal(filter(big), "oversized");
});

// ---- a hand-driven network of real Election state machines --------------------------------

const STEP_MS = 5;
const HEARTBEAT_MS = 200;
const FAILURE_MS = 1000;

interface Node {
  id: string;
  election: Election;
  /** The role its redis has, as the runtime would have enforced it. */
  redis: "master" | "replica";
  following: string | null;
}

/** Several nodes, a clock, and a cut: `blocked(from, to)` drops a datagram. */
class Mesh {
  nowMs = 0;
  nodes: Node[];
  blocked: (from: string, to: string) => boolean = () => false;
  /** Every fence state change: [time, node, fenced]. */
  fenceLog: [number, string, boolean][] = [];
  /** Every new leadership: [time, node]. */
  leaderLog: [number, string][] = [];
  #queue: { from: string; to: string; deliver: (n: Node) => ElectionAction[] }[] = [];

  constructor(ids: string[], fence: "auto" | "off" = "auto") {
    this.nodes = ids.map((id, i) => ({
      id,
      election: new Election({
        self: id,
        electionPort: 7379,
        redisPort: 6379,
        localRedis: { host: "127.0.0.1", port: 6379 },
        bootId: `b${i}`,
        heartbeatMs: HEARTBEAT_MS,
        failureMs: FAILURE_MS,
        maxPeers: 8,
        fence,
      }),
      redis: "replica",
      following: null,
    }));
    for (const n of this.nodes) this.#apply(n, n.election.setPeers(ids, this.#now()));
  }

  #now() {
    return { monoMs: this.nowMs, wallMs: 1_700_000_000_000 + this.nowMs };
  }

  node(id: string): Node {
    return this.nodes.find((n) => n.id === id)!;
  }

  /** Queues one datagram from `n` to each of `to`, handed to the receiver by `deliver`. */
  #post(n: Node, to: readonly { host: string }[], deliver: (m: Node) => ElectionAction[]): void {
    for (const t of to) this.#queue.push({ from: n.id, to: t.host, deliver });
  }

  #apply(n: Node, actions: ElectionAction[]): void {
    for (const a of actions) {
      if (a.type === "send") {
        const hb: Heartbeat = structuredClone(a.heartbeat);
        this.#post(n, a.to, (m) => m.election.receive(hb, this.#now()));
      } else if (a.type === "lease") {
        const msg = structuredClone(a.message);
        this.#post(n, a.to, (m) => m.election.receiveLease(msg, this.#now()));
      } else if (a.type === "redis") {
        n.redis = a.target.kind === "leader" ? "master" : "replica";
        n.following = a.target.kind === "follow" ? a.target.host : null;
      } else if (a.type === "fence") {
        this.fenceLog.push([this.nowMs, n.id, a.state.fenced]);
      } else if (
        a.type === "event" && a.event.kind === "role-changed" && a.event.to === "leader"
      ) {
        this.leaderLog.push([this.nowMs, n.id]);
      }
    }
  }

  #observation(n: Node): RedisObservation {
    const base = {
      up: true,
      runId: `run-${n.id}`,
      loading: false,
      offset: 0,
    };
    if (n.redis === "master") {
      return {
        ...base,
        role: "master",
        masterHost: null,
        masterPort: null,
        linkUp: false,
        replId: `repl-${n.id}`,
      };
    }
    const linked = n.following !== null && !this.blocked(n.following, n.id) &&
      !this.blocked(n.id, n.following);
    return {
      ...base,
      role: "replica",
      masterHost: n.following ?? "127.0.0.1",
      masterPort: n.following === null ? 1 : 6379,
      linkUp: linked,
      replId: linked ? `repl-${n.following}` : `repl-${n.id}`,
    };
  }

  /** Runs until `untilMs`, calling `check` after every step. */
  run(untilMs: number, check: () => void = () => {}): void {
    while (this.nowMs < untilMs) {
      this.nowMs += STEP_MS;
      for (const n of this.nodes) {
        const now = this.#now();
        if (this.nowMs % 100 === 0) {
          this.#apply(n, n.election.observeRedis(this.#observation(n), now));
        }
        if (this.nowMs % 50 === 0) this.#apply(n, n.election.tick(now));
        if (this.nowMs % n.election.timing.leaseProbeMs === 0) {
          this.#apply(n, n.election.probe(now));
        }
      }
      // Deliver within the step (a loopback network), including the replies it causes.
      for (let round = 0; round < 10 && this.#queue.length > 0; round++) {
        const batch = this.#queue;
        this.#queue = [];
        for (const d of batch) {
          if (this.blocked(d.from, d.to)) continue;
          const target = this.node(d.to);
          this.#apply(target, d.deliver(target));
        }
      }
      check();
    }
  }

  leader(): Node | null {
    const leaders = this.nodes.filter((n) => n.election.role === "leader");
    return leaders.length === 1 ? leaders[0]! : null;
  }

  /** Nodes that lead and are not fenced: the ones whose redis acknowledges writes. */
  writable(): string[] {
    return this.nodes.filter((n) => n.election.role === "leader" && !n.election.fence.fenced)
      .map((n) => n.id);
  }
}

function settle(mesh: Mesh): Node {
  mesh.run(4000);
  const leader = mesh.leader();
  assert.ok(leader !== null, "one leader after 4 s");
  assert.equal(leader.election.fence.fenced, false, "a leader heard by its group is unfenced");
  return leader;
}

Deno.test("a leader cut off from both peers is fenced before the others elect; lifted when heard again", () => {
  const mesh = new Mesh(["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
  const old = settle(mesh);
  const cutAt = mesh.nowMs;
  const cut = (a: string, b: string) => (a === old.id) !== (b === old.id);
  mesh.blocked = cut;
  let fencedAt: number | null = null;
  let successorAt: number | null = null;
  let successorWritableAt: number | null = null;
  mesh.run(cutAt + 3000, () => {
    if (fencedAt === null && old.election.fence.fenced) fencedAt = mesh.nowMs;
    const other = mesh.nodes.find((n) => n !== old && n.election.role === "leader");
    if (other && successorAt === null) successorAt = mesh.nowMs;
    if (other && !other.election.fence.fenced && successorWritableAt === null) {
      successorWritableAt = mesh.nowMs;
    }
    assert.ok(
      mesh.writable().length <= 1,
      `two writable leaders at ${mesh.nowMs}: ${mesh.writable()}`,
    );
  });
  const t = old.election.timing;
  assert.ok(fencedAt !== null && successorAt !== null && successorWritableAt !== null);
  assert.ok(fencedAt - cutAt <= t.leaseMs, `fenced ${fencedAt - cutAt} ms after the cut`);
  assert.ok(
    successorAt - cutAt >= FAILURE_MS - HEARTBEAT_MS,
    `successor only after the failure timeout (${successorAt - cutAt} ms)`,
  );
  assert.ok(fencedAt < successorAt, "the fence comes strictly before the successor");
  assert.equal(old.election.role, "leader", "the cut-off leader still claims to lead, fenced");
  assert.match(old.election.fence.reason, /hears 1 of 3/);
  // Heal: the old leader meets the bigger group, follows it; one writable leader.
  mesh.blocked = () => false;
  mesh.run(mesh.nowMs + 2000, () => assert.ok(mesh.writable().length <= 1));
  assert.equal(mesh.writable().length, 1);
  assert.equal(old.election.role, "follower");
});

Deno.test("a fenced leader is lifted as soon as a majority echoes again (a short cut)", () => {
  const mesh = new Mesh(["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
  const leader = settle(mesh);
  mesh.blocked = (a, b) => (a === leader.id) !== (b === leader.id);
  mesh.run(mesh.nowMs + 400);
  assert.equal(leader.election.fence.fenced, true);
  const healAt = mesh.nowMs;
  mesh.blocked = () => false;
  let liftedAt: number | null = null;
  mesh.run(healAt + 200, () => {
    if (liftedAt === null && !leader.election.fence.fenced) liftedAt = mesh.nowMs;
  });
  assert.ok(liftedAt !== null && liftedAt - healAt <= leader.election.timing.leaseProbeMs);
  assert.equal(mesh.leader(), leader, "nobody else was elected during a 400 ms cut");
});

Deno.test("a follower cut off alone elects itself and stays fenced from its first moment", () => {
  const mesh = new Mesh(["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
  const leader = settle(mesh);
  const lone = mesh.nodes.find((n) => n !== leader)!;
  mesh.blocked = (a, b) => (a === lone.id) !== (b === lone.id);
  let ledAlone = false;
  mesh.run(mesh.nowMs + 3000, () => {
    if (lone.election.role === "leader") {
      ledAlone = true;
      assert.equal(lone.election.fence.fenced, true, `lone leader unfenced at ${mesh.nowMs}`);
    }
    assert.deepEqual(mesh.writable(), [leader.id]);
  });
  assert.ok(ledAlone, "the lone follower did elect itself (today's behaviour), fenced");
  mesh.blocked = () => false;
  mesh.run(mesh.nowMs + 2000);
  assert.deepEqual(mesh.writable(), [leader.id]);
});

Deno.test("one-way cuts: at most one writable leader at every step, and the majority writes again", () => {
  for (const direction of ["mute", "deaf"] as const) {
    const mesh = new Mesh(["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
    const old = settle(mesh);
    mesh.blocked = direction === "mute" ? (a) => a === old.id : (_a, b) => b === old.id;
    mesh.run(mesh.nowMs + 3000, () => {
      assert.ok(mesh.writable().length <= 1, `${direction}: two writable at ${mesh.nowMs}`);
    });
    const writable = mesh.writable();
    assert.equal(writable.length, 1, `${direction}: the majority elected a writable leader`);
    assert.notEqual(writable[0], old.id, direction);
    mesh.blocked = () => false;
    mesh.run(mesh.nowMs + 2000, () => assert.ok(mesh.writable().length <= 1));
    assert.equal(mesh.writable().length, 1, direction);
  }
});

Deno.test("two of three lost at once: the survivor stays fenced (the price), lifted when one returns", () => {
  const mesh = new Mesh(["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
  const leader = settle(mesh);
  const [b, c] = mesh.nodes.filter((n) => n !== leader);
  mesh.blocked = (x, y) => [x, y].some((id) => id === b!.id || id === c!.id);
  mesh.run(mesh.nowMs + 5000);
  assert.equal(leader.election.role, "leader");
  assert.equal(leader.election.fence.fenced, true);
  assert.deepEqual(mesh.writable(), []);
  mesh.blocked = (x, y) => [x, y].some((id) => id === c!.id);
  mesh.run(mesh.nowMs + 2000);
  assert.deepEqual(mesh.writable(), [leader.id], "one peer back: a majority again");
});

Deno.test("a partial DNS answer does not disarm a cut-off leader's fence", () => {
  const mesh = new Mesh(["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
  const leader = settle(mesh);
  const other = mesh.nodes.find((n) => n !== leader)!;
  leader.election.setPeers([leader.id, other.id], { monoMs: mesh.nowMs, wallMs: 0 });
  mesh.blocked = (a, b) => (a === leader.id) !== (b === leader.id);
  mesh.run(mesh.nowMs + 3000, () => assert.ok(mesh.writable().length <= 1));
  assert.equal(leader.election.fence.fenced, true);
  assert.equal(leader.election.fence.peerSetSize, 3, "the 3 seen within peerForgetMs");
});

Deno.test("two nodes keep leading alone; --fence off never fences", () => {
  const two = new Mesh(["10.0.0.1", "10.0.0.2"]);
  const leader = settle(two);
  two.blocked = (a, b) => a !== b;
  two.run(two.nowMs + 3000);
  assert.equal(leader.election.fence.fenced, false);
  assert.equal(leader.election.fence.armed, false);
  const off = new Mesh(["10.0.0.1", "10.0.0.2", "10.0.0.3"], "off");
  const l3 = settle(off);
  off.blocked = (a, b) => (a === l3.id) !== (b === l3.id);
  off.run(off.nowMs + 2000);
  assert.equal(l3.election.fence.fenced, false);
  assert.match(l3.election.fence.reason, /fence off/);
});

Deno.test("five nodes: a leader keeping two of four peers stays unfenced; with one it is fenced", () => {
  const mesh = new Mesh(["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"]);
  const leader = settle(mesh);
  const others = mesh.nodes.filter((n) => n !== leader).map((n) => n.id);
  const away = new Set(others.slice(0, 2));
  const side = (id: string) => away.has(id);
  mesh.blocked = (a, b) => side(a) !== side(b);
  mesh.run(mesh.nowMs + 3000, () => assert.ok(mesh.writable().length <= 1));
  assert.deepEqual(mesh.writable(), [leader.id], "3 of 5 is a majority");
  away.add(others[2]!);
  mesh.run(mesh.nowMs + 3000, () => assert.ok(mesh.writable().length <= 1));
  assert.equal(leader.election.fence.fenced, true, "2 of 5 is not");

  assert.equal(mesh.writable().length, 1, "the three others elected a writable leader");
});
