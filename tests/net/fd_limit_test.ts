/**
 * The open-file limit (lib/net/fd_limit.ts): parsing /proc/self/limits, fitting
 * --max-connections, and raising the soft limit to the hard one in a real child process started
 * with a low soft limit (`prlimit --nofile=SOFT:HARD`).
 */

import assert from "node:assert/strict";
import {
  DESCRIPTORS_PER_CONNECTION,
  fitMaxConnections,
  readProcLimits,
  RESERVED_DESCRIPTORS,
} from "../../lib/net/fd_limit.ts";

Deno.test("fd limit: /proc/self/limits is parsed, unlimited included", () => {
  const text = [
    "Limit                     Soft Limit           Hard Limit           Units     ",
    "Max processes             127423               127423               processes ",
    "Max open files            1024                 524288               files     ",
  ].join("\n");
  assert.deepEqual(readProcLimits(text), {
    soft: 1024,
    hard: 524288,
    raisedFrom: null,
    via: "proc",
  });
  assert.equal(readProcLimits("Max open files  unlimited  unlimited  files")?.soft, Infinity);
  assert.equal(readProcLimits("nothing here"), null);
});

Deno.test("fd limit: --max-connections is lowered to what the limit holds, never below 1", () => {
  assert.deepEqual(fitMaxConnections(10_000, null), {
    maxConnections: 10_000,
    lowered: false,
    reason: "",
  });
  assert.equal(fitMaxConnections(10_000, 1_048_576).lowered, false);
  const fit = fitMaxConnections(10_000, 1024);
  assert.equal(
    fit.maxConnections,
    Math.floor((1024 - RESERVED_DESCRIPTORS) / DESCRIPTORS_PER_CONNECTION),
  );
  assert.equal(fit.lowered, true);
  assert.match(
    fit.reason,
    /--max-connections lowered from 10000 to \d+: the open-file limit \(nofile 1024\)/,
  );
  assert.equal(fitMaxConnections(10_000, 10).maxConnections, 1);
  assert.equal(fitMaxConnections(100, 1024).lowered, false);
});

Deno.test("fd limit: the soft limit is raised to the hard one at start (libc via FFI)", async () => {
  // Deno itself raises the soft limit at start, so the child lowers it first (setrlimit through
  // libc, as a process started with a low soft limit would have it), then asks for the raise.
  const code = `
    import { raiseNofileLimit } from "./lib/net/fd_limit.ts";
    const lib = Deno.dlopen("libc.so.6", {
      setrlimit: { parameters: ["i32", "buffer"], result: "i32" },
    });
    if (lib.symbols.setrlimit(7, new BigUint64Array([200n, 4096n])) !== 0) throw new Error("lower");
    console.log(JSON.stringify(raiseNofileLimit()));
    const limits = Deno.readTextFileSync("/proc/self/limits").split(String.fromCharCode(10));
    console.log(limits.find((l) => l.startsWith("Max open files")));`;
  const out = await new Deno.Command("prlimit", {
    args: ["--nofile=4096:4096", Deno.execPath(), "eval", code],
    cwd: new URL("../..", import.meta.url),
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const [json, proc] = new TextDecoder().decode(out.stdout).trim().split("\n");
  assert.deepEqual(JSON.parse(json!), {
    soft: 4096,
    hard: 4096,
    raisedFrom: 200,
    via: "setrlimit",
  });
  assert.match(proc!, /^Max open files\s+4096\s+4096/);
});
