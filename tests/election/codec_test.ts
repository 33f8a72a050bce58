import assert from "node:assert/strict";
import fc from "fast-check";
import {
  createCodec,
  DROP_REASONS,
  type DropReason,
  FLAG_SIGNED,
  HEADER_BYTES,
  heartbeatProblem,
  MAGIC,
  MAX_ADDRESS_CHARS,
  MAX_BOOT_ID_CHARS,
  MAX_DATAGRAM_BYTES,
  MAX_GROUP_SIZE,
  MAX_REDIS_ID_CHARS,
  TAG_BYTES,
} from "../../lib/election/codec.ts";
import {
  type Heartbeat,
  HEARTBEAT_VERSION,
  ROLES,
  UNKNOWN_REDIS,
} from "../../lib/election/heartbeat.ts";

const SECRET = "correct horse battery staple";

const IPV4_LEADER: Heartbeat = {
  version: HEARTBEAT_VERSION,
  from: "127.0.0.11",
  electionPort: 7379,
  redisPort: 6379,
  bootId: "4f2a9c0d1e7b3a55",
  seq: 42,
  sentMs: 1_700_000_000_000,
  role: "leader",
  leader: "127.0.0.11",
  electionStartMs: null,
  leaderSinceMs: 1_700_000_000_123,
  groupSize: 3,
  handoffTo: null,
  redis: {
    up: true,
    role: "master",
    runId: "8d5c2f9a0b1e3d4c5f6a7b8c9d0e1f2a3b4c5d6e",
    replId: "0123456789abcdef0123456789abcdef01234567",
    offset: 987_654,
    linkUp: false,
    loading: false,
    lineage: { bornMs: 1_699_999_999_000, bornBy: "127.0.0.12" },
  },
};

const IPV6_CANDIDATE: Heartbeat = {
  version: HEARTBEAT_VERSION,
  from: "fd00::a:1",
  electionPort: 17400,
  redisPort: 6380,
  bootId: "00ff",
  seq: 0,
  sentMs: 0,
  role: "candidate",
  leader: null,
  electionStartMs: 1_700_000_000_000,
  leaderSinceMs: null,
  groupSize: 0,
  handoffTo: null,
  redis: UNKNOWN_REDIS,
};

const IPV6_FOLLOWER: Heartbeat = {
  ...IPV6_CANDIDATE,
  from: "::1",
  role: "follower",
  leader: "fd00::a:1",
  electionStartMs: null,
  redis: {
    up: true,
    role: "replica",
    runId: "r1",
    replId: "x",
    offset: 0,
    linkUp: true,
    loading: true,
    lineage: { bornMs: 0, bornBy: "fd00::a:1" },
  },
};

/** The longest heartbeat the validator accepts: every string at its limit. */
const LARGEST: Heartbeat = {
  version: HEARTBEAT_VERSION,
  from: "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255%" + "z".repeat(MAX_ADDRESS_CHARS - 46),
  electionPort: 65535,
  redisPort: 65535,
  bootId: "f".repeat(MAX_BOOT_ID_CHARS),
  seq: Number.MAX_SAFE_INTEGER,
  sentMs: Number.MAX_SAFE_INTEGER,
  role: "candidate",
  leader: "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255%" + "y".repeat(MAX_ADDRESS_CHARS - 46),
  electionStartMs: Number.MAX_SAFE_INTEGER,
  leaderSinceMs: Number.MAX_SAFE_INTEGER,
  groupSize: MAX_GROUP_SIZE,
  handoffTo: "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255%" + "x".repeat(MAX_ADDRESS_CHARS - 46),
  redis: {
    up: false,
    role: "unknown",
    runId: "\\".repeat(MAX_REDIS_ID_CHARS),
    replId: '"'.repeat(MAX_REDIS_ID_CHARS),
    offset: Number.MAX_SAFE_INTEGER,
    linkUp: false,
    loading: false,
    lineage: {
      bornMs: Number.MAX_SAFE_INTEGER,
      bornBy: "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255%" + "x".repeat(MAX_ADDRESS_CHARS - 46),
    },
  },
};

const signedCodec = await createCodec(SECRET);
const openCodec = await createCodec(null);

/** A datagram with a valid header and `payload` as its body, signed when `secret` is given. */
async function craft(
  payload: string | Uint8Array,
  opts: { secret?: string; version?: number; flags?: number } = {},
): Promise<Uint8Array> {
  const body = typeof payload === "string" ? new TextEncoder().encode(payload) : payload;
  const header = new Uint8Array(HEADER_BYTES);
  header.set(MAGIC, 0);
  header[MAGIC.length] = opts.version ?? HEARTBEAT_VERSION;
  header[MAGIC.length + 1] = opts.flags ?? (opts.secret === undefined ? 0 : FLAG_SIGNED);
  const unsigned = new Uint8Array([...header, ...body]);
  if (opts.secret === undefined) return unsigned;
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(opts.secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const tag = new Uint8Array(await crypto.subtle.sign("HMAC", key, unsigned));
  return new Uint8Array([...unsigned, ...tag]);
}

async function assertDropped(
  codec: typeof signedCodec,
  bytes: Uint8Array,
  reason: DropReason,
): Promise<void> {
  const result = await codec.decode(bytes);
  assert.deepEqual(result, { ok: false, reason });
}

Deno.test("round trip of hand-written heartbeats, IPv4 and IPv6, with and without secret", async () => {
  for (const codec of [signedCodec, openCodec]) {
    for (const hb of [IPV4_LEADER, IPV6_CANDIDATE, IPV6_FOLLOWER, LARGEST]) {
      const bytes = await codec.encode(hb);
      assert.ok(bytes.length <= MAX_DATAGRAM_BYTES);
      assert.deepEqual(await codec.decode(bytes), { ok: true, heartbeat: hb });
    }
  }
});

Deno.test("envelope layout: magic, version, flags, JSON payload, tag only when signed", async () => {
  const open = await openCodec.encode(IPV4_LEADER);
  const signed = await signedCodec.encode(IPV4_LEADER);
  assert.equal(new TextDecoder().decode(open.subarray(0, 4)), "RHIV");
  assert.equal(open[4], HEARTBEAT_VERSION);
  assert.equal(open[5], 0);
  assert.equal(signed[5], FLAG_SIGNED);
  assert.deepEqual(
    JSON.parse(new TextDecoder().decode(open.subarray(HEADER_BYTES))),
    IPV4_LEADER,
  );
  assert.equal(signed.length, open.length + TAG_BYTES);
  assert.equal(signedCodec.signed, true);
  assert.equal(openCodec.signed, false);
});

Deno.test("the largest valid heartbeat fits in MAX_DATAGRAM_BYTES, so encode never hits it", async () => {
  // Every string at its limit, redis ids made of the characters JSON escapes (`"` and `\`);
  // address zone ids can only hold [0-9a-zA-Z.:-], which JSON never escapes.
  const bytes = await signedCodec.encode(LARGEST);
  assert.ok(bytes.length <= MAX_DATAGRAM_BYTES, `largest datagram is ${bytes.length} bytes`);
  assert.equal(bytes.length, 1036, "the worst case documented in codec.ts changed");
});

Deno.test("encode throws on an invalid heartbeat, naming the field", async () => {
  await assert.rejects(
    openCodec.encode({ ...IPV4_LEADER, electionPort: 0 }),
    /electionPort/,
  );
  await assert.rejects(openCodec.encode({ ...IPV4_LEADER, from: "node-1" }), /from/);
  await assert.rejects(
    openCodec.encode({ ...IPV4_LEADER, redis: { ...IPV4_LEADER.redis, offset: -1 } }),
    /redis\.offset/,
  );
  const withExtra = { ...IPV4_LEADER, extra: 1 } as unknown as Heartbeat;
  await assert.rejects(openCodec.encode(withExtra), /unknown key "extra"/);
});

Deno.test("createCodec rejects an empty secret", async () => {
  await assert.rejects(createCodec(""), /empty/);
});

Deno.test("each drop reason is provoked by a crafted datagram", async () => {
  const validJson = JSON.stringify(IPV4_LEADER);
  const provoked = new Set<DropReason>();
  const check = async (codec: typeof signedCodec, bytes: Uint8Array, reason: DropReason) => {
    await assertDropped(codec, bytes, reason);
    provoked.add(reason);
  };

  // A valid datagram padded past the limit: oversized is checked before anything else.
  const padded = await craft(validJson + " ".repeat(MAX_DATAGRAM_BYTES));
  await check(openCodec, padded, "oversized");
  await check(openCodec, new Uint8Array(MAX_DATAGRAM_BYTES + 1), "oversized");

  await check(openCodec, new Uint8Array(0), "truncated");
  await check(openCodec, MAGIC.slice(0, 2), "truncated");
  await check(openCodec, new Uint8Array([...MAGIC, HEARTBEAT_VERSION]), "truncated");
  await check(signedCodec, await craft("{}", { flags: FLAG_SIGNED }), "truncated");

  await check(openCodec, new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n"), "bad-magic");
  await check(openCodec, new Uint8Array([0x52, 0x48, 0x49]).with(2, 0), "bad-magic");

  await check(
    openCodec,
    await craft(validJson, { version: HEARTBEAT_VERSION + 1 }),
    "wrong-version",
  );
  await check(openCodec, await craft(validJson, { version: 0 }), "wrong-version");
  // The version byte is checked before the signature: a future format may sign differently.
  await check(
    signedCodec,
    await craft(validJson, { version: HEARTBEAT_VERSION + 1, flags: 0 }),
    "wrong-version",
  );
  // Version 1 (before sentMs) is dropped as wrong-version, not parsed.
  await check(openCodec, await craft(validJson, { version: 1 }), "wrong-version");

  await check(openCodec, await craft(validJson, { flags: 0x02 }), "unknown-flags");
  await check(openCodec, await craft(validJson, { flags: 0x80 | FLAG_SIGNED }), "unknown-flags");

  await check(signedCodec, await openCodec.encode(IPV4_LEADER), "unsigned");
  await check(openCodec, await signedCodec.encode(IPV4_LEADER), "unexpected-signature");
  await check(signedCodec, await craft(validJson, { secret: "another secret" }), "bad-signature");

  await check(openCodec, await craft("{not json"), "malformed");
  await check(openCodec, await craft(""), "malformed");
  await check(openCodec, await craft(new Uint8Array([0x7b, 0xff, 0x7d])), "malformed");
  await check(signedCodec, await craft("[1,2", { secret: SECRET }), "malformed");

  await check(openCodec, await craft("{}"), "invalid-field");
  await check(openCodec, await craft("null"), "invalid-field");
  await check(signedCodec, await craft('"heartbeat"', { secret: SECRET }), "invalid-field");

  assert.deepEqual([...provoked].sort(), [...DROP_REASONS].sort());
});

Deno.test("a signed datagram decodes only with the right secret and untouched bytes", async () => {
  const bytes = await signedCodec.encode(IPV4_LEADER);
  assert.equal((await signedCodec.decode(bytes)).ok, true);

  const otherCodec = await createCodec(SECRET + "!");
  await assertDropped(otherCodec, bytes, "bad-signature");

  // Flip one bit anywhere after the header (payload or tag): the signature fails.
  for (let i = HEADER_BYTES; i < bytes.length; i++) {
    const tampered = bytes.slice();
    tampered[i] = (tampered[i] ?? 0) ^ 0x01;
    await assertDropped(signedCodec, tampered, "bad-signature");
  }
  // Drop the last byte: the tag is one byte short of covering the right range.
  await assertDropped(signedCodec, bytes.subarray(0, bytes.length - 1), "bad-signature");
});

Deno.test("decode reads a view at any offset of a larger buffer", async () => {
  const bytes = await signedCodec.encode(IPV6_FOLLOWER);
  const big = new Uint8Array(bytes.length + 10).fill(0xaa);
  big.set(bytes, 7);
  const view = big.subarray(7, 7 + bytes.length);
  assert.deepEqual(await signedCodec.decode(view), { ok: true, heartbeat: IPV6_FOLLOWER });
});

Deno.test("invalid fields are rejected one by one", async () => {
  const r = IPV4_LEADER.redis;
  const bad: Record<string, unknown>[] = [
    { version: 1 },
    { version: 3 },
    { version: "1" },
    { from: "127.0.0.256" },
    { from: "" },
    { from: "a".repeat(10) },
    { from: "fe80::1%" + "e".repeat(MAX_ADDRESS_CHARS) },
    { from: null },
    { electionPort: 0 },
    { electionPort: 65536 },
    { electionPort: 7379.5 },
    { redisPort: "6379" },
    { bootId: "" },
    { bootId: "ABCD" },
    { bootId: "0".repeat(MAX_BOOT_ID_CHARS + 1) },
    { bootId: "xyz" },
    { seq: -1 },
    { seq: Number.MAX_SAFE_INTEGER + 1 },
    { seq: 1.5 },
    { seq: "1" },
    { sentMs: -1 },
    { sentMs: 1.5 },
    { sentMs: null },
    { role: "king" },
    { role: null },
    { leader: "leader" },
    { leader: 1 },
    { electionStartMs: -5 },
    { electionStartMs: 1e300 },
    { leaderSinceMs: "now" },
    { groupSize: MAX_GROUP_SIZE + 1 },
    { groupSize: -1 },
    { groupSize: null },
    { handoffTo: "not-an-ip" },
    { handoffTo: 7 },
    { redis: null },
    { redis: [] },
    { redis: { ...r, up: 1 } },
    { redis: { ...r, role: "slave" } },
    { redis: { ...r, runId: "" } },
    { redis: { ...r, runId: "a b" } },
    { redis: { ...r, runId: "r".repeat(MAX_REDIS_ID_CHARS + 1) } },
    { redis: { ...r, replId: 7 } },
    { redis: { ...r, offset: -1 } },
    { redis: { ...r, offset: null } },
    { redis: { ...r, linkUp: "true" } },
    { redis: { ...r, loading: 0 } },
    { redis: { ...r, lineage: {} } },
    { redis: { ...r, lineage: { bornMs: 1, bornBy: "nobody" } } },
    { redis: { ...r, lineage: { bornMs: -1, bornBy: "127.0.0.1" } } },
    { redis: { ...r, lineage: { bornMs: 1, bornBy: "127.0.0.1", extra: true } } },
    { redis: { ...r, extra: true } },
    { extra: true },
  ];
  for (const patch of bad) {
    const json = JSON.stringify({ ...IPV4_LEADER, ...patch });
    const result = await openCodec.decode(await craft(json));
    assert.deepEqual(result, { ok: false, reason: "invalid-field" }, json);
    assert.notEqual(heartbeatProblem(JSON.parse(json)), null);
  }
  // A missing key, and "__proto__" as an own JSON key, are rejected too.
  const { seq: _seq, ...withoutSeq } = IPV4_LEADER;
  await assertDropped(openCodec, await craft(JSON.stringify(withoutSeq)), "invalid-field");
  const protoKey = JSON.stringify(IPV4_LEADER).replace(/^\{/, '{"__proto__":{"x":1},');
  await assertDropped(openCodec, await craft(protoKey), "invalid-field");
  // Sanity: the unpatched heartbeat passes.
  assert.equal(heartbeatProblem(JSON.parse(JSON.stringify(IPV4_LEADER))), null);
});

// ---- property tests ----

const ipv4 = fc.ipV4();
const ipv6 = fc.ipV6();
const address = fc.oneof(ipv4, ipv6);
const count = fc.nat({ max: Number.MAX_SAFE_INTEGER });
const port = fc.integer({ min: 1, max: 65535 });
const redisId = fc.stringMatching(/^[\x21-\x7e]{1,64}$/);

/** Plain objects, as JSON.parse makes them (fast-check's default has a null prototype). */
const plain = { noNullPrototype: true } as const;

const heartbeatArb: fc.Arbitrary<Heartbeat> = fc.record({
  version: fc.constant(HEARTBEAT_VERSION),
  from: address,
  electionPort: port,
  redisPort: port,
  bootId: fc.stringMatching(/^[0-9a-f]{1,64}$/),
  seq: count,
  sentMs: count,
  role: fc.constantFrom(...ROLES),
  leader: fc.option(address, { nil: null }),
  electionStartMs: fc.option(count, { nil: null }),
  leaderSinceMs: fc.option(count, { nil: null }),
  groupSize: fc.integer({ min: 0, max: MAX_GROUP_SIZE }),
  handoffTo: fc.option(address, { nil: null }),
  redis: fc.record({
    up: fc.boolean(),
    role: fc.constantFrom("master" as const, "replica" as const, "unknown" as const),
    runId: fc.option(redisId, { nil: null }),
    replId: fc.option(redisId, { nil: null }),
    offset: count,
    linkUp: fc.boolean(),
    loading: fc.boolean(),
    lineage: fc.option(fc.record({ bornMs: count, bornBy: address }, plain), { nil: null }),
  }, plain),
}, plain);

function assertValidResult(result: Awaited<ReturnType<typeof openCodec.decode>>): void {
  if (result.ok) {
    assert.equal(heartbeatProblem(result.heartbeat), null);
  } else {
    assert.ok(DROP_REASONS.includes(result.reason), `unknown reason ${result.reason}`);
  }
}

Deno.test("property: every valid heartbeat round-trips exactly, signed and unsigned", async () => {
  await fc.assert(
    fc.asyncProperty(heartbeatArb, async (hb) => {
      for (const codec of [signedCodec, openCodec]) {
        const bytes = await codec.encode(hb);
        assert.ok(bytes.length <= MAX_DATAGRAM_BYTES);
        assert.deepEqual(await codec.decode(bytes), { ok: true, heartbeat: hb });
      }
    }),
    { numRuns: 500 },
  );
});

Deno.test("property: arbitrary bytes never throw past decode", async () => {
  const header = fc.constantFrom(
    new Uint8Array(0),
    MAGIC,
    new Uint8Array([...MAGIC, HEARTBEAT_VERSION, 0]),
    new Uint8Array([...MAGIC, HEARTBEAT_VERSION, FLAG_SIGNED]),
  );
  const bytes = fc.tuple(header, fc.uint8Array({ maxLength: MAX_DATAGRAM_BYTES + 20 }))
    .map(([h, rest]) => new Uint8Array([...h, ...rest]));
  await fc.assert(
    fc.asyncProperty(bytes, async (input) => {
      for (const codec of [signedCodec, openCodec]) assertValidResult(await codec.decode(input));
    }),
    { numRuns: 1000 },
  );
});

Deno.test("property: arbitrary JSON payloads never throw past decode", async () => {
  const payload = fc.oneof(
    fc.jsonValue().map((v) => JSON.stringify(v)),
    heartbeatArb.chain((hb) =>
      fc.tuple(fc.constantFrom(...Object.keys(hb)), fc.jsonValue()).map(([key, value]) =>
        JSON.stringify({ ...hb, [key]: value })
      )
    ),
  );
  await fc.assert(
    fc.asyncProperty(payload, async (json) => {
      assertValidResult(await openCodec.decode(await craft(json)));
      assertValidResult(await signedCodec.decode(await craft(json, { secret: SECRET })));
    }),
    { numRuns: 500 },
  );
});

Deno.test("property: mutations of a valid datagram never throw; signed ones never decode", async () => {
  const mutation = fc.oneof(
    fc.record({
      kind: fc.constant("flip" as const),
      at: fc.nat(),
      bit: fc.integer({ min: 0, max: 7 }),
    }),
    fc.record({
      kind: fc.constant("set" as const),
      at: fc.nat(),
      value: fc.integer({ min: 0, max: 255 }),
    }),
    fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
    fc.record({
      kind: fc.constant("insert" as const),
      at: fc.nat(),
      value: fc.integer({ min: 0, max: 255 }),
    }),
  );
  await fc.assert(
    fc.asyncProperty(
      heartbeatArb,
      fc.array(mutation, { minLength: 1, maxLength: 4 }),
      fc.boolean(),
      async (hb, mutations, signed) => {
        const codec = signed ? signedCodec : openCodec;
        const original = await codec.encode(hb);
        let bytes = original.slice();
        for (const m of mutations) {
          const at = m.at % (bytes.length + 1);
          if (m.kind === "flip" && at < bytes.length) bytes[at] = (bytes[at] ?? 0) ^ (1 << m.bit);
          if (m.kind === "set" && at < bytes.length) bytes[at] = m.value;
          if (m.kind === "truncate") bytes = bytes.slice(0, at);
          if (m.kind === "insert") {
            bytes = new Uint8Array([...bytes.subarray(0, at), m.value, ...bytes.subarray(at)]);
          }
        }
        const result = await codec.decode(bytes);
        assertValidResult(result);
        const changed = bytes.length !== original.length || bytes.some((b, i) => b !== original[i]);
        if (signed && changed) assert.equal(result.ok, false, "a changed signed datagram decoded");
      },
    ),
    { numRuns: 500 },
  );
});
