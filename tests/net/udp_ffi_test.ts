/**
 * The libc UDP transport (lib/net/udp_ffi.ts) over real UDP on 127.0.13.41..43: signed
 * heartbeats arrive with their sender, junk and badly signed datagrams are dropped in the
 * receive loop and counted by reason, sends leave from the bound address and port, close
 * stops the worker. And the envelope filter agrees with the codec on every envelope fault
 * (fuzzed).
 */

import assert from "node:assert/strict";
import dgram from "node:dgram";
import fc from "fast-check";
import { listenUdpFfi } from "../../lib/net/udp_ffi.ts";
import { createCodec } from "../../lib/election/codec.ts";
import { createEnvelopeFilter } from "../../lib/election/envelope_filter.ts";
import { sampleHeartbeat } from "../../testing/election_samples.ts";
import { senderOf } from "../../lib/net/udp_ffi_protocol.ts";

const A = "127.0.13.41";
const B = "127.0.13.42";
const SECRET = "ffi-secret";

const HB = sampleHeartbeat(B, 1, { electionPort: 17441, bootId: "00000000000000b1" });

async function until(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(ok(), what);
}

Deno.test("udp ffi: signed heartbeats reach the handler, junk is dropped in the worker and counted", async () => {
  const udp = await listenUdpFfi({ host: A, port: 0 }, { secret: SECRET });
  const peer = dgram.createSocket("udp4");
  await new Promise<void>((r) => peer.bind(17441, B, () => r()));
  const got: { bytes: Uint8Array; host: string; port: number }[] = [];
  const back: { host: string; port: number }[] = [];
  peer.on("message", (_m: Uint8Array, rinfo: dgram.RemoteInfo) => {
    back.push({ host: rinfo.address, port: rinfo.port });
  });
  udp.setHandler((bytes, from) => got.push({ bytes, ...from }));
  try {
    const codec = await createCodec(SECRET);
    const other = await createCodec("not-the-secret");
    const good = await codec.encode(HB);
    const send = (b: Uint8Array) => peer.send(b, udp.local.port, A);
    send(good);
    send(new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n"));
    send(await other.encode(HB));
    send(await (await createCodec(null)).encode(HB));
    await until("the signed heartbeat arrives", () => got.length === 1);
    await until("the others are counted", () => {
      const d = udp.prefilterDrops();
      return d["bad-magic"] === 1 && d["bad-signature"] === 1 && d["unsigned"] === 1;
    });
    assert.deepEqual(got[0]!.bytes, good);
    assert.equal(got[0]!.host, B);
    assert.equal(got[0]!.port, 17441);
    // Sends leave from the bound address and port.
    udp.send({ host: B, port: 17441 }, new Uint8Array([1, 2, 3]));
    await until("the reply arrives", () => back.length === 1);
    assert.deepEqual(back[0], { host: A, port: udp.local.port });
    assert.ok(udp.recvBufferBytes > 0);
  } finally {
    peer.close();
    await udp.close();
  }
  // Closed: the port is free again at once.
  const again = await listenUdpFfi({ host: A, port: udp.local.port }, { secret: null });
  await again.close();
});

Deno.test("udp ffi: a bad bind or destination is a clear error, never a throw from send", async () => {
  await assert.rejects(
    listenUdpFfi({ host: "10.255.13.1", port: 0 }, { secret: null }),
    /cannot bind UDP/,
  );
  const errors: string[] = [];
  const udp = await listenUdpFfi({ host: A, port: 0 }, {
    secret: null,
    onError: (e) => errors.push(e.message),
  });
  try {
    udp.send({ host: "not-an-ip", port: 1 }, new Uint8Array(1));
    udp.send({ host: B, port: 0 }, new Uint8Array(1));
    assert.equal(errors.length, 2, errors.join("; "));
  } finally {
    await udp.close();
  }
  udp.send({ host: B, port: 1 }, new Uint8Array(1)); // closed: reported, not thrown
  assert.equal(errors.length, 3);
  assert.match(errors[2]!, /closed/);
});

Deno.test("udp ffi: senders are decoded as peers announce themselves", () => {
  const v4 = new Uint8Array([2, 0, 0x1c, 0xcb, 127, 0, 13, 41, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(senderOf(v4), { host: "127.0.13.41", port: 7371 });
  const v6 = new Uint8Array(28);
  v6[0] = 10;
  v6[2] = 0x1c;
  v6[3] = 0xcb;
  v6.set([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7], 8);
  assert.deepEqual(senderOf(v6), { host: "fd00::7", port: 7371 });
  const mapped = new Uint8Array(28);
  mapped[0] = 10;
  mapped.set([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 11], 8);
  assert.equal(senderOf(mapped).host, "127.0.0.11");
});

Deno.test("envelope filter: agrees with the codec on every envelope fault (fuzzed)", async () => {
  for (const secret of [SECRET, null]) {
    const codec = await createCodec(secret);
    const filter = createEnvelopeFilter(secret);
    const valid = await codec.encode(HB);
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.uint8Array({ maxLength: 1300 }),
          // Mutations of a valid datagram: one byte changed, or cut short.
          fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })).map(([i, v]) =>
            valid.with(i, v)
          ),
          fc.nat(valid.length).map((n) => valid.slice(0, n)),
        ),
        async (bytes) => {
          const verdict = filter(bytes);
          const decoded = await codec.decode(bytes);
          if (verdict === null) {
            // Only the payload can still be wrong.
            assert.ok(decoded.ok || ["malformed", "invalid-field"].includes(decoded.reason));
          } else {
            assert.ok(!decoded.ok, "the codec accepted what the filter dropped");
            assert.equal(decoded.reason, verdict);
          }
        },
      ),
      { numRuns: 500 },
    );
    assert.equal(filter(valid), null);
  }
});
