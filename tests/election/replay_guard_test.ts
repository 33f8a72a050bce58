/**
 * The replay guard (lib/election/replay_guard.ts) on its own, and inside the election across
 * restarts of either side: a previous boot's datagram never retires the current boot, a capture
 * older than the window is never heard, and a receiver that restarted is misled by a replay for
 * at most one heartbeat of the real peer.
 */

import assert from "node:assert/strict";
import { replayVerdict } from "../../lib/election/replay_guard.ts";
import { Election } from "../../lib/election/election.ts";
import type { Heartbeat } from "../../lib/election/heartbeat.ts";
import {
  SAMPLE_WALL_MS,
  sampleElectionOptions,
  sampleHeartbeat,
} from "../../testing/election_samples.ts";
import type { Instant } from "../../lib/common/clock.ts";

const WINDOW = 15_000;
const WALL0 = SAMPLE_WALL_MS;
const SELF = "10.0.0.5";
const PEER = "10.0.0.1";

Deno.test("replay guard: the rules one by one", () => {
  const last = { bootId: "b1", seq: 10, sentMs: 5_000 };
  assert.equal(
    replayVerdict(null, [], { bootId: "b1", seq: 1, sentMs: 5_000 }, 5_100, WINDOW),
    "accept",
  );
  assert.equal(
    replayVerdict(last, [], { bootId: "b1", seq: 11, sentMs: 5_200 }, 5_200, WINDOW),
    "accept",
  );
  assert.equal(
    replayVerdict(last, [], { bootId: "b1", seq: 10, sentMs: 5_000 }, 5_200, WINDOW),
    "stale",
  );
  assert.equal(
    replayVerdict(last, [], { bootId: "b1", seq: 3, sentMs: 4_000 }, 5_200, WINDOW),
    "stale",
  );
  // Another boot: heard only when sent after the last heartbeat heard.
  assert.equal(
    replayVerdict(last, [], { bootId: "b2", seq: 1, sentMs: 5_001 }, 5_200, WINDOW),
    "accept",
  );
  assert.equal(
    replayVerdict(last, [], { bootId: "b0", seq: 99, sentMs: 4_999 }, 5_200, WINDOW),
    "old-boot",
  );
  assert.equal(
    replayVerdict(last, ["b0"], { bootId: "b0", seq: 99, sentMs: 6_000 }, 6_000, WINDOW),
    "old-boot",
  );
  // Outside the window either way: expired, whatever is remembered.
  assert.equal(
    replayVerdict(null, [], { bootId: "b1", seq: 1, sentMs: 0 }, WINDOW + 1, WINDOW),
    "expired",
  );
  assert.equal(
    replayVerdict(null, [], { bootId: "b1", seq: 1, sentMs: 2 * WINDOW + 2 }, WINDOW, WINDOW),
    "expired",
  );
  assert.equal(
    replayVerdict(null, [], { bootId: "b1", seq: 1, sentMs: 0 }, WINDOW, WINDOW),
    "accept",
  );
});

function at(ms: number): Instant {
  return { monoMs: ms, wallMs: WALL0 + ms };
}

function receiver(): Election {
  const e = new Election(sampleElectionOptions(SELF, { maxClockSkewMs: WINDOW }));
  e.setPeers([SELF, PEER], at(0));
  return e;
}

/** The peer's heartbeat of boot `bootId`, number `seq`, sent at wall time WALL0 + `sentAt`. */
function peerHb(bootId: string, seq: number, sentAt: number): Heartbeat {
  return sampleHeartbeat(PEER, seq, { bootId, sentMs: WALL0 + sentAt });
}

Deno.test("replay: after the receiver restarts, a previous boot's datagram does not silence the peer", () => {
  // The peer ran boot "old" until t=1000, restarted as boot "new". The receiver restarts at
  // t=2000 (a fresh Election) and first hears a replay of the old boot, then the real peer.
  const e = receiver();
  e.receive(peerHb("0000000000000001", 500, 900), at(2_000)); // the replay, inside the window
  e.receive(peerHb("0000000000000002", 5, 1_950), at(2_010)); // the real, current boot
  assert.equal(e.peer(PEER, at(2_010))?.last?.bootId, "0000000000000002");
  // Replays of the old boot keep coming: dropped, and the current boot stays heard.
  for (let i = 0; i < 5; i++) e.receive(peerHb("0000000000000001", 501 + i, 990), at(2_100 + i));
  e.receive(peerHb("0000000000000002", 6, 2_150), at(2_200));
  const view = e.peer(PEER, at(2_200))!;
  assert.equal(view.last?.seq, 6, "the current boot is still heard");
  assert.equal(view.live, true);
  assert.equal(e.stats.heartbeatsOldBoot, 5);
});

Deno.test("replay: a previous boot's datagram, after the current boot was heard, cannot retire it", () => {
  // Without the ordering, the old rule (retire whatever boot was known when another arrives)
  // let one replayed datagram turn the current boot into a retired one.
  const e = receiver();
  e.receive(peerHb("0000000000000002", 5, 1_950), at(2_000)); // current boot heard first
  e.receive(peerHb("0000000000000001", 900, 1_000), at(2_010)); // replay of the previous boot
  e.receive(peerHb("0000000000000002", 6, 2_150), at(2_200));
  assert.equal(e.peer(PEER, at(2_200))?.last?.seq, 6);
  assert.equal(e.stats.heartbeatsOldBoot, 1);
});

Deno.test("replay: a capture older than the window is never heard, by a fresh receiver either", () => {
  const e = receiver();
  e.receive(peerHb("0000000000000001", 1, 0), at(WINDOW + 1));
  assert.equal(e.stats.heartbeatsExpired, 1);
  assert.equal(e.peer(PEER, at(WINDOW + 1))?.last, null, "nothing learnt from it");
  // A peer whose clock is off by more than the window is not heard either (and counted).
  e.receive(peerHb("0000000000000003", 1, 3 * WINDOW), at(WINDOW + 2));
  assert.equal(e.stats.heartbeatsExpired, 2);
});

Deno.test("replay: when the sender restarts, its new boot is heard at once", () => {
  const e = receiver();
  e.receive(peerHb("0000000000000001", 7, 100), at(110));
  e.receive(peerHb("0000000000000009", 1, 400), at(410)); // restarted: a new random boot id
  assert.equal(e.peer(PEER, at(410))?.last?.bootId, "0000000000000009");
  e.receive(peerHb("0000000000000001", 8, 120), at(420)); // the old boot, late or replayed
  assert.equal(e.peer(PEER, at(420))?.last?.bootId, "0000000000000009");
});
