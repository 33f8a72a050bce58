import assert from "node:assert/strict";
import {
  CLASHING_PROPERTY_PREFIX,
  getLogger,
  MAX_LOG_COLLECTION_ITEMS,
  MAX_LOG_DEPTH,
  MAX_LOG_STRING_CHARS,
  ROOT_CATEGORY,
  setupLogging,
  teardownLogging,
} from "../../lib/hive/log.ts";

/** Sets up logging into a string buffer, runs `body`, and returns everything written. */
function capture(options: Parameters<typeof setupLogging>[0], body: () => void): string {
  let text = "";
  setupLogging({ ...options, write: (chunk) => (text += chunk) });
  try {
    body();
  } finally {
    teardownLogging();
  }
  return text;
}

/** Every line of JSON-lines output, parsed; asserts the fields every line must have. */
function parseJsonLines(text: string): Record<string, unknown>[] {
  assert.ok(text.endsWith("\n"), "output ends with a newline");
  return text.slice(0, -1).split("\n").map((line) => {
    const record = JSON.parse(line) as Record<string, unknown>;
    assert.equal(typeof record, "object");
    assert.ok(!Number.isNaN(Date.parse(String(record["time"]))), `time: ${line}`);
    assert.match(String(record["time"]), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.ok(
      ["trace", "debug", "info", "warning", "error", "fatal"].includes(String(record["level"])),
      line,
    );
    assert.ok(String(record["category"]).startsWith(ROOT_CATEGORY), line);
    assert.equal(typeof record["message"], "string", line);
    return record;
  });
}

Deno.test("log: JSON lines carry time, level, category, message and the properties", () => {
  const before = Date.now();
  const text = capture({ level: "debug", format: "json" }, () => {
    const log = getLogger("election");
    log.debug("leader is now {leader}", { leader: "127.0.0.11", term: 3 });
    log.info`peers changed`;
    getLogger(["redis", "controller"]).warn("redis unreachable", { delayMs: 400, attempt: 2 });
    getLogger().error('multi\nline "message"', { level: "clash", message: "clash too" });
  });
  const after = Date.now();
  const lines = parseJsonLines(text);
  assert.equal(lines.length, 4);
  assert.deepEqual({ ...lines[0], time: undefined }, {
    time: undefined,
    level: "debug",
    category: "redis-hive.election",
    message: "leader is now 127.0.0.11",
    leader: "127.0.0.11",
    term: 3,
  });
  const time = Date.parse(String(lines[0]?.["time"]));
  assert.ok(time >= before - 1 && time <= after + 1, `time ${time} within [${before}, ${after}]`);
  assert.equal(lines[1]?.["message"], "peers changed");
  assert.equal(lines[1]?.["level"], "info");
  assert.equal(lines[2]?.["category"], "redis-hive.redis.controller");
  assert.equal(lines[2]?.["level"], "warning");
  assert.equal(lines[2]?.["delayMs"], 400);
  assert.equal(lines[3]?.["category"], "redis-hive");
  assert.equal(lines[3]?.["level"], "error");
  assert.equal(lines[3]?.["message"], 'multi\nline "message"');
  assert.equal(lines[3]?.[`${CLASHING_PROPERTY_PREFIX}level`], "clash");
  assert.equal(lines[3]?.[`${CLASHING_PROPERTY_PREFIX}message`], "clash too");
});

Deno.test("log: the level filters records", () => {
  const text = capture({ level: "warning", format: "json" }, () => {
    const log = getLogger("filter");
    log.trace("no");
    log.debug("no");
    log.info("no");
    log.warn("yes 1");
    log.error("yes 2");
    log.fatal("yes 3");
  });
  assert.deepEqual(parseJsonLines(text).map((r) => [r["level"], r["message"]]), [
    ["warning", "yes 1"],
    ["error", "yes 2"],
    ["fatal", "yes 3"],
  ]);
  const none = capture({ level: "info", format: "json" }, () => getLogger("filter").debug("x"));
  assert.equal(none, "");
});

Deno.test("log: values JSON cannot hold are converted, and sizes are bounded", () => {
  const cycle: Record<string, unknown> = { name: "a" };
  cycle["self"] = cycle;
  let deep: unknown = "bottom";
  for (let i = 0; i < MAX_LOG_DEPTH + 3; i++) deep = { d: deep };
  const shared = { x: 1 };
  const text = capture({ level: "info", format: "json" }, () => {
    getLogger("values").info("offset {offset}", {
      offset: 12345678901234567890n,
      error: new Error("boom", { cause: new RangeError("inner") }),
      cycle,
      deep,
      twice: [shared, shared],
      long: "x".repeat(MAX_LOG_STRING_CHARS + 10),
      many: Array.from({ length: MAX_LOG_COLLECTION_ITEMS + 5 }, (_, i) => i),
      nan: Number.NaN,
      map: new Map([["k", 1]]),
      set: new Set(["s"]),
      bytes: new Uint8Array(7),
      date: new Date(0),
      missing: undefined,
    });
  });
  const [line] = parseJsonLines(text);
  assert.ok(line !== undefined);
  assert.equal(line["message"], "offset 12345678901234567890");
  assert.equal(line["offset"], "12345678901234567890");
  const error = line["error"] as Record<string, unknown>;
  assert.equal(error["name"], "Error");
  assert.equal(error["message"], "boom");
  assert.match(String(error["stack"]), /boom/);
  assert.equal((error["cause"] as Record<string, unknown>)["name"], "RangeError");
  assert.deepEqual(line["cycle"], { name: "a", self: "[circular]" });
  assert.deepEqual(line["twice"], [{ x: 1 }, { x: 1 }], "a shared object is no cycle");
  assert.match(JSON.stringify(line["deep"]), /\[too deep\]/);
  assert.ok(!JSON.stringify(line["deep"]).includes("bottom"));
  const long = String(line["long"]);
  assert.ok(long.startsWith("x".repeat(MAX_LOG_STRING_CHARS)) && long.includes("10 more chars"));
  const many = line["many"] as unknown[];
  assert.equal(many.length, MAX_LOG_COLLECTION_ITEMS + 1);
  assert.equal(many[MAX_LOG_COLLECTION_ITEMS], "...(5 more items)");
  assert.equal(line["nan"], "NaN");
  assert.deepEqual(line["map"], { k: 1 });
  assert.deepEqual(line["set"], ["s"]);
  assert.equal(line["bytes"], "[Uint8Array 7 bytes]");
  assert.equal(line["date"], "1970-01-01T00:00:00.000Z");
  assert.equal(line["missing"], null);
});

Deno.test("log: the pretty format is one line with level, category, message and extra properties", () => {
  const text = capture({ level: "info", format: "pretty" }, () => {
    getLogger("proxy").info("client from {client} held", {
      client: "127.0.0.1:5000",
      waitedMs: 12,
      note: "two words",
    });
    getLogger("proxy").error("escape\u001b[2J");
  });
  const lines = text.trimEnd().split("\n");
  assert.equal(lines.length, 2, text);
  const [first, second] = lines;
  assert.match(
    first ?? "",
    /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} [+-]\d\d INF redis-hive\.proxy: client from 127\.0\.0\.1:5000 held waitedMs=12 note="two words"$/,
  );
  assert.ok(
    !(first ?? "").includes("client=127"),
    "a property shown in the message is not repeated",
  );
  assert.ok(!(second ?? "").includes("\u001b"), "control sequences in messages are escaped");
  assert.ok(!text.includes("\u001b"), "no colour unless asked");
  const colored = capture({ level: "info", format: "pretty", color: true }, () => {
    getLogger("proxy").info("hello");
  });
  assert.ok(colored.includes("\u001b["), "colour when asked");
});

Deno.test("log: a real process writes parseable JSON lines to stdout, none lost at exit", async () => {
  const root = new URL("../..", import.meta.url);
  const script = `
    import { getLogger, setupLogging } from "./lib/hive/log.ts";
    setupLogging({ level: "info", format: "json" });
    const log = getLogger("subprocess");
    for (let i = 0; i < 200; i++) log.info("record {i}", { i, pad: "y".repeat(500) });
    log.fatal("last before exit");
    Deno.exit(3);
  `;
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", script],
    cwd: root,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 3, stderr);
  const lines = parseJsonLines(new TextDecoder().decode(output.stdout));
  assert.equal(lines.length, 201);
  lines.slice(0, 200).forEach((line, i) => {
    assert.equal(line["i"], i);
    assert.equal(line["message"], `record ${i}`);
    assert.equal(line["category"], "redis-hive.subprocess");
  });
  assert.equal(lines[200]?.["level"], "fatal");
});
