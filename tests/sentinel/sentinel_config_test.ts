/** The Sentinel endpoint's flags: --sentinel-port, --master-name, --sentinel-password-file. */

import assert from "node:assert/strict";
import { ConfigError, parseConfig } from "../../lib/hive/config.ts";

const PEERS = ["--peers", "127.0.0.11"];

function parse(
  args: string[],
  env: Record<string, string> = {},
  files: Record<string, string> = {},
) {
  // Every hive needs a secret (issue 13); these tests are about the Sentinel flags.
  return parseConfig([...PEERS, ...args], { HIVE_SECRET: "test-secret", ...env }, (path) => {
    const content = files[path];
    if (content === undefined) throw new Error(`no such file: ${path}`);
    return content;
  });
}

function fails(args: string[], env: Record<string, string>, pattern: RegExp): void {
  assert.throws(
    () => parse(args, env),
    (e: unknown) => e instanceof ConfigError && pattern.test(e.message),
    `${args.join(" ")} ${JSON.stringify(env)}`,
  );
}

Deno.test("sentinel config: defaults, flags and environment", () => {
  const d = parse([]);
  assert.equal(d.sentinelPort, 26379);
  assert.equal(d.masterName, "mymaster");
  assert.equal(d.sentinelPassword, null);
  assert.equal(parse(["--sentinel-port", "0"]).sentinelPort, 0, "0 turns the endpoint off");
  assert.equal(parse([], { HIVE_SENTINEL_PORT: "26380" }).sentinelPort, 26380);
  assert.equal(parse(["--sentinel-port", "1"], { HIVE_SENTINEL_PORT: "2" }).sentinelPort, 1);
  assert.equal(parse([], { HIVE_MASTER_NAME: "cache" }).masterName, "cache");
  assert.equal(parse(["--master-name", "my-master.1"]).masterName, "my-master.1");
  assert.equal(
    parse(["--sentinel-password-file", "/p"], {}, { "/p": " pw\n" }).sentinelPassword,
    "pw",
  );
  assert.equal(parse([], { HIVE_SENTINEL_PASSWORD: "env-pw" }).sentinelPassword, "env-pw");
  assert.equal(parse([], { HIVE_SENTINEL_PASSWORD: "" }).sentinelPassword, null);
});

Deno.test("sentinel config: bad values name the flag", () => {
  fails(
    ["--sentinel-port", "70000"],
    {},
    /^--sentinel-port: expected an integer port 1\.\.65535, or 0/,
  );
  fails([], { HIVE_SENTINEL_PORT: "x" }, /^--sentinel-port \(from env HIVE_SENTINEL_PORT\)/);
  fails(
    ["--sentinel-port", "6380"],
    {},
    /^--sentinel-port: expected a port other than --proxy-port/,
  );
  fails(["--sentinel-port", "8080"], {}, /--http-port, got 8080/);
  fails(["--master-name", "my master"], {}, /^--master-name: expected 1\.\.128 printable ASCII/);
  fails(["--master-name", "x".repeat(129)], {}, /^--master-name/);
  fails(["--sentinel-password-file", "/missing"], {}, /^--sentinel-password-file: .*cannot read/);
});
