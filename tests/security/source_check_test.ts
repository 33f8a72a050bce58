/**
 * The runtime's door, on in-memory parts (the same Hive code as production): a datagram signed
 * with the secret but sent from an address other than its `from` is dropped as
 * `source-mismatch`, and neither it nor an unsigned or badly signed datagram makes the hive
 * track, answer or send anything to the address it names (no reflection).
 */

import assert from "node:assert/strict";
import { Hive } from "../../lib/hive/hive.ts";
import { parseConfig } from "../../lib/hive/config.ts";
import { MemoryNetwork } from "../../lib/net/udp_transport.ts";
import { MemoryRedisNetwork } from "../../lib/redis/memory_redis_controller.ts";
import { createCodec } from "../../lib/election/codec.ts";
import type { Heartbeat } from "../../lib/election/heartbeat.ts";
import { forgedLeaderHeartbeat } from "../../testing/election_samples.ts";

const NODE = "10.13.0.1";
const PEER = "10.13.0.2";
const ATTACKER = "10.13.0.66";
const SECRET = "in-memory-secret";

function forged(from: string, seq: number): Heartbeat {
  return forgedLeaderHeartbeat(from, seq, {
    electionPort: 7379,
    redisPort: 6379,
    bootId: "00000000000000ff",
    groupSize: 1000,
  });
}

Deno.test("security: signed but from another source, unsigned or badly signed: never heard, never answered", async () => {
  const udp = new MemoryNetwork();
  const redisNet = new MemoryRedisNetwork();
  redisNet.addRedis(NODE, 6379, { parked: true });
  const config = parseConfig(
    ["--peers", `${NODE},${PEER}`, "--announce-ip", NODE, "--bind", NODE],
    { HIVE_SECRET: SECRET },
    () => "",
  );
  const hive = await Hive.start(config, {
    udp: (bind) => Promise.resolve(udp.listen(bind)),
    redis: (announceIp) =>
      redisNet.controller({ host: NODE, port: 6379, password: null, announceIp }),
    proxy: false,
    http: false,
    sentinel: false, // in-memory parts: no real socket on the test addresses
  });
  const attacker = udp.listen({ host: ATTACKER, port: 7379 });
  const reflected: string[] = [];
  attacker.setHandler((_bytes, from) => reflected.push(from.host));
  try {
    const good = await createCodec(SECRET);
    const open = await createCodec(null);
    const other = await createCodec("another-secret");
    for (let seq = 1; seq <= 20; seq++) {
      // The real peer's name, signed with the real secret (e.g. a captured datagram), sent from
      // the attacker's address.
      attacker.send({ host: NODE, port: 7379 }, await good.encode(forged(PEER, seq)));
      // The attacker's own name, unsigned and badly signed.
      attacker.send({ host: NODE, port: 7379 }, await open.encode(forged(ATTACKER, seq)));
      attacker.send({ host: NODE, port: 7379 }, await other.encode(forged(ATTACKER, seq)));
      await udp.settled();
      await new Promise((r) => setTimeout(r, 5));
    }
    await new Promise((r) => setTimeout(r, 100));
    const s = hive.status();
    assert.equal(s.runtime.datagramsDropped["source-mismatch"], 20);
    assert.equal(s.runtime.datagramsDropped["unsigned"], 20);
    assert.equal(s.runtime.datagramsDropped["bad-signature"], 20);
    assert.equal(s.runtime.datagramsReceived, 0);
    assert.deepEqual(s.peers.map((p) => p.address), [PEER], "the attacker is never tracked");
    assert.equal(s.peers[0]!.lastHeardAgoMs, null, "the real peer was never heard");
    assert.notEqual(s.leader, PEER);
    assert.deepEqual(reflected, [], "nothing was ever sent to the attacker's address");
    // One warning line for the 20 source mismatches; the other 19 only counted.
    assert.equal(s.runtime.logLinesSuppressed, 19);
  } finally {
    await attacker.close();
    await hive.stop();
  }
});
