/**
 * lib/hive/malloc_trim.ts: where trimming runs (pure), the schedule with an injected
 * `malloc_trim`, and one real call of glibc's `malloc_trim` through FFI. No network.
 */

import assert from "node:assert/strict";
import {
  MALLOC_TRIM_FIRST_MS,
  MALLOC_TRIM_INTERVAL_MS,
  mallocTrimSupport,
  startMallocTrim,
} from "../../lib/hive/malloc_trim.ts";

const LINUX = { os: "linux", ffiGranted: true };

Deno.test("malloc trim: runs on Linux with --allow-ffi, says why not elsewhere", () => {
  assert.equal(mallocTrimSupport(LINUX), null);
  assert.match(
    mallocTrimSupport({ os: "darwin", ffiGranted: true })!,
    /linux only; this is darwin/,
  );
  assert.match(mallocTrimSupport({ os: "linux", ffiGranted: false })!, /--allow-ffi/);
  assert.ok(MALLOC_TRIM_FIRST_MS < MALLOC_TRIM_INTERVAL_MS * 10);
});

Deno.test("malloc trim: not supported or not openable: a stopped schedule with the reason", () => {
  const off = startMallocTrim({ platform: { os: "linux", ffiGranted: false } });
  assert.equal(off.running, false);
  assert.match(off.reason!, /--allow-ffi/);
  assert.equal(off.trimNow(), false);
  const musl = startMallocTrim({
    platform: LINUX,
    open: () => {
      throw new Error("undefined symbol: malloc_trim");
    },
  });
  assert.equal(musl.running, false);
  assert.match(musl.reason!, /cannot open malloc_trim: undefined symbol/);
});

Deno.test("malloc trim: first after firstMs, then every intervalMs, until stopped", async () => {
  const calls: bigint[] = [];
  const trim = startMallocTrim({
    platform: LINUX,
    firstMs: 1,
    intervalMs: 1,
    open: () => (pad) => {
      calls.push(pad);
      return 1;
    },
  });
  assert.equal(trim.running, true);
  assert.equal(trim.reason, null);
  while (calls.length < 3) await new Promise((r) => setTimeout(r, 5));
  trim.stop();
  const seen = calls.length;
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(calls.length, seen, "no trim after stop");
  assert.ok(calls.every((pad) => pad === 0n), "malloc_trim(0): trim everything");
  assert.equal(trim.running, false);
  assert.equal(trim.trimNow(), false);
});

Deno.test("malloc trim: bad intervals are refused", () => {
  assert.throws(() => startMallocTrim({ platform: LINUX, intervalMs: -1 }), /intervalMs/);
  assert.throws(() => startMallocTrim({ platform: LINUX, firstMs: 1.5 }), /firstMs/);
});

Deno.test({
  name: "malloc trim: glibc's malloc_trim, for real, through FFI",
  ignore: Deno.build.os !== "linux",
  fn() {
    const trim = startMallocTrim({ firstMs: 3_600_000 });
    try {
      assert.equal(trim.reason, null);
      assert.equal(trim.trimNow(), true);
      assert.equal(trim.trims, 1);
    } finally {
      trim.stop();
    }
  },
});
