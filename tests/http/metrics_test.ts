/**
 * `/metrics` text: it parses (with a strict parser of format 0.0.4 written here, and with the
 * independent `parse-prometheus-text-format` package), names and types follow the conventions,
 * label values are escaped, and values come from the given status.
 */

import assert from "node:assert/strict";
import parsePrometheus from "parse-prometheus-text-format";
import type { HiveStatus } from "../../lib/http/hive_status.ts";
import {
  escapeLabelValue,
  formatMetrics,
  HIVE_METRICS,
  hiveMetrics,
  MAX_LABELS_PER_SAMPLE,
  METRIC_PREFIX,
  metricsText,
} from "../../lib/http/metrics.ts";
import {
  FOLLOWER,
  followerStatus,
  LEADER,
  LEADER_OFFSET,
  leaderStatus,
  OTHER,
} from "./hive_status_samples.ts";

interface ParsedSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
interface ParsedFamily {
  help: string;
  type: string;
  samples: ParsedSample[];
}

const HELP_LINE = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/;
const TYPE_LINE = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/;
const SAMPLE_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\\\|\\"|\\n)*)"(,|$)/y;

function unescape(s: string, labelValue: boolean): string {
  return s.replace(/\\(.)/g, (all, c: string) => {
    if (c === "\\") return "\\";
    if (c === "n") return "\n";
    if (c === '"' && labelValue) return '"';
    throw new Error(`bad escape ${all}`);
  });
}

function parseValue(text: string): number {
  if (text === "+Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  if (text === "NaN") return NaN;
  assert.match(text, /^-?\d+(\.\d+)?(e[+-]?\d+)?$/, `bad value ${text}`);
  return Number(text);
}

/** A strict parser of the text format 0.0.4 as this project writes it. */
function parseStrict(text: string): Map<string, ParsedFamily> {
  assert.ok(text.endsWith("\n"), "ends with a newline");
  const families = new Map<string, ParsedFamily>();
  let current: string | null = null;
  for (const line of text.slice(0, -1).split("\n")) {
    let m = HELP_LINE.exec(line);
    if (m) {
      const name = m[1]!;
      assert.ok(!families.has(name), `family ${name} appears twice`);
      families.set(name, { help: unescape(m[2]!, false), type: "", samples: [] });
      current = name;
      continue;
    }
    m = TYPE_LINE.exec(line);
    if (m) {
      assert.equal(m[1], current, "TYPE follows its HELP");
      families.get(m[1]!)!.type = m[2]!;
      continue;
    }
    m = SAMPLE_LINE.exec(line);
    assert.ok(m, `unparsable line: ${JSON.stringify(line)}`);
    assert.ok(current !== null, "sample before any HELP");
    const family = families.get(current)!;
    const name = m[1]!;
    const allowed = family.type === "histogram"
      ? [`${current}_bucket`, `${current}_sum`, `${current}_count`]
      : [current];
    assert.ok(allowed.includes(name), `sample ${name} inside family ${current}`);
    const labels: Record<string, string> = {};
    const body = m[2] ?? "";
    LABEL.lastIndex = 0;
    while (LABEL.lastIndex < body.length) {
      const l = LABEL.exec(body);
      assert.ok(l, `bad labels ${JSON.stringify(body)}`);
      assert.ok(!(l[1]! in labels), `label ${l[1]} twice`);
      labels[l[1]!] = unescape(l[2]!, true);
    }
    family.samples.push({ name, labels, value: parseValue(m[3]!) });
  }
  for (const [name, f] of families) assert.ok(f.type !== "", `${name} has a TYPE`);
  return families;
}

function value(
  families: Map<string, ParsedFamily>,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const f = families.get(name) ?? families.get(name.replace(/_(bucket|sum|count)$/, ""));
  return f?.samples.find((s) =>
    s.name === name && JSON.stringify(s.labels) === JSON.stringify(labels)
  )?.value;
}

Deno.test("metrics: names, types and units follow the Prometheus conventions", () => {
  const families = parseStrict(metricsText(followerStatus()));
  assert.equal(families.size, Object.keys(HIVE_METRICS).length, "every documented metric");
  for (const [name, f] of families) {
    assert.ok(name.startsWith(METRIC_PREFIX), name);
    assert.ok(f.help.length > 0, `${name} has HELP text`);
    assert.equal(f.type === "counter", name.endsWith("_total"), `${name}: _total iff counter`);
    assert.doesNotMatch(name, /_(ms|milliseconds|kb|mb)(_|$)/, `${name}: base units`);
    if (/seconds|bytes/.test(name)) {
      assert.match(name, /_(seconds|bytes)(_total)?$/, `${name}: unit last`);
    }
  }
  assert.equal(families.get("redis_hive_failover_duration_seconds")?.type, "histogram");
  assert.equal(families.get("redis_hive_role")?.type, "gauge");
});

Deno.test("metrics: values come from the status (follower)", () => {
  const s = followerStatus();
  s.redis.observation!.offset = LEADER_OFFSET - 3_000;
  s.runtime.datagramsDropped["bad-signature"] = 7;
  s.peers[1]!.live = false;
  const f = parseStrict(metricsText(s));
  assert.equal(value(f, "redis_hive_info", { id: FOLLOWER }), 1);
  assert.equal(value(f, "redis_hive_role", { role: "follower" }), 1);
  for (const role of ["starting", "candidate", "leader"]) {
    assert.equal(value(f, "redis_hive_role", { role }), 0, role);
  }
  assert.equal(value(f, "redis_hive_leader_info", { leader: LEADER }), 1);
  assert.equal(value(f, "redis_hive_ready"), 1);
  assert.equal(value(f, "redis_hive_leader_changes_total"), 3);
  assert.equal(value(f, "redis_hive_elections_total"), 2);
  assert.equal(value(f, "redis_hive_peers_known"), 2);
  assert.equal(value(f, "redis_hive_peers_live"), 1);
  assert.equal(value(f, "redis_hive_peer_live", { peer: LEADER }), 1);
  assert.equal(value(f, "redis_hive_peer_live", { peer: OTHER }), 0);
  assert.equal(value(f, "redis_hive_peer_last_heard_seconds", { peer: LEADER }), 0.04);
  assert.equal(
    value(f, "redis_hive_peer_replication_offset_bytes", { peer: LEADER }),
    LEADER_OFFSET,
  );
  assert.equal(value(f, "redis_hive_heartbeats_sent_total"), 1000);
  assert.equal(value(f, "redis_hive_heartbeats_received_total"), 900);
  assert.equal(value(f, "redis_hive_heartbeats_dropped_total", { reason: "bad-signature" }), 7);
  assert.equal(value(f, "redis_hive_heartbeats_dropped_total", { reason: "stale" }), 3);
  assert.equal(value(f, "redis_hive_heartbeats_dropped_total", { reason: "from-self" }), 0);
  assert.equal(value(f, "redis_hive_redis_up"), 1);
  assert.equal(value(f, "redis_hive_redis_master"), 0);
  assert.equal(value(f, "redis_hive_redis_link_up"), 1);
  assert.equal(value(f, "redis_hive_replication_offset_bytes"), LEADER_OFFSET - 3_000);
  assert.equal(value(f, "redis_hive_replication_lag_bytes"), 3_000);
  assert.equal(value(f, "redis_hive_proxy_engine_info", { engine: "epoll" }), 1);
  assert.equal(f.get("redis_hive_proxy_engine_info")?.samples.length, 1, "one engine");
  assert.equal(value(f, "redis_hive_proxy_connections_active"), 3);
  assert.equal(value(f, "redis_hive_proxy_connections_total"), 40);
  assert.equal(value(f, "redis_hive_proxy_connections_refused_total"), 1);
  assert.equal(value(f, "redis_hive_proxy_connections_held_total"), 5);
  assert.equal(value(f, "redis_hive_proxy_bytes_total", { direction: "client_to_redis" }), 12_345);
  assert.equal(value(f, "redis_hive_proxy_bytes_total", { direction: "redis_to_client" }), 67_890);
  assert.equal(value(f, "redis_hive_dns_failures_total"), 2);
  assert.equal(value(f, "redis_hive_dns_lookups_total"), 10);
  assert.equal(value(f, "redis_hive_uptime_seconds"), 60);
});

Deno.test("metrics: the failover histogram in seconds, cumulative, with +Inf, sum and count", () => {
  const f = parseStrict(metricsText(leaderStatus()));
  const h = f.get("redis_hive_failover_duration_seconds");
  assert.ok(h);
  const buckets = h.samples.filter((s) => s.name.endsWith("_bucket"));
  assert.deepEqual(buckets.map((b) => b.labels.le), [
    "0.1",
    "0.25",
    "0.5",
    "1",
    "2",
    "5",
    "10",
    "+Inf",
  ]);
  assert.deepEqual(buckets.map((b) => b.value), [0, 1, 2, 2, 3, 3, 3, 3]);
  for (let i = 1; i < buckets.length; i++) {
    assert.ok(buckets[i]!.value >= buckets[i - 1]!.value, "cumulative");
  }
  assert.equal(value(f, "redis_hive_failover_duration_seconds_sum"), 2.9);
  assert.equal(value(f, "redis_hive_failover_duration_seconds_count"), 3);
  // The leader: role, lag 0, redis master.
  assert.equal(value(f, "redis_hive_role", { role: "leader" }), 1);
  assert.equal(value(f, "redis_hive_replication_lag_bytes"), 0);
  assert.equal(value(f, "redis_hive_redis_master"), 1);
  assert.equal(value(f, "redis_hive_redis_link_up"), 0);
});

Deno.test("metrics: unknown values are left out, not faked", () => {
  const s: HiveStatus = followerStatus();
  s.role = "starting";
  s.leader = null;
  s.redis.observation = null;
  s.proxy = {
    engine: null,
    engineReason: null,
    workers: null,
    workersSource: null,
    target: null,
    upstream: null,
    listening: false,
    stats: null,
  };
  s.discovery = {};
  s.peers[0]!.lastHeardAgoMs = null;
  s.peers[0]!.redis = null;
  const f = parseStrict(metricsText(s));
  assert.equal(f.get("redis_hive_leader_info")?.samples.length, 0);
  assert.equal(f.get("redis_hive_replication_lag_bytes")?.samples.length, 0);
  assert.equal(f.get("redis_hive_replication_offset_bytes")?.samples.length, 0);
  assert.equal(f.get("redis_hive_proxy_connections_total")?.samples.length, 0);
  assert.equal(f.get("redis_hive_proxy_bytes_total")?.samples.length, 0);
  assert.equal(f.get("redis_hive_proxy_engine_info")?.samples.length, 0);
  assert.equal(f.get("redis_hive_dns_failures_total")?.samples.length, 0);
  assert.equal(value(f, "redis_hive_peer_last_heard_seconds", { peer: LEADER }), undefined);
  assert.equal(value(f, "redis_hive_peer_last_heard_seconds", { peer: OTHER }), 0.09);
  assert.equal(value(f, "redis_hive_redis_up"), 0);
  assert.equal(value(f, "redis_hive_proxy_listening"), 0);
  assert.equal(value(f, "redis_hive_ready"), 0);
  assert.equal(value(f, "redis_hive_role", { role: "starting" }), 1);
});

Deno.test("metrics: label values and HELP text are escaped and round-trip", () => {
  const s = followerStatus();
  const nasty = 'we"ird\\id\nline2';
  s.id = nasty;
  const text = metricsText(s);
  assert.ok(text.includes('redis_hive_info{id="we\\"ird\\\\id\\nline2"} 1\n'), text.slice(0, 300));
  assert.equal(value(parseStrict(text), "redis_hive_info", { id: nasty }), 1);
  assert.equal(escapeLabelValue('a"b\\c\nd'), 'a\\"b\\\\c\\nd');
  const custom = formatMetrics([{
    name: "redis_hive_test",
    help: "back\\slash\nnewline",
    type: "gauge",
    samples: [{ labels: { a: "x" }, value: Infinity }, { labels: { a: "y" }, value: NaN }],
  }]);
  assert.equal(
    custom,
    "# HELP redis_hive_test back\\\\slash\\nnewline\n# TYPE redis_hive_test gauge\n" +
      'redis_hive_test{a="x"} +Inf\nredis_hive_test{a="y"} NaN\n',
  );
  assert.equal(parseStrict(custom).get("redis_hive_test")?.help, "back\\slash\nnewline");
});

Deno.test("metrics: an independent parser (parse-prometheus-text-format) reads the same", () => {
  const s = followerStatus();
  s.id = 'a"b\\c';
  const text = metricsText(s);
  const ours = parseStrict(text);
  const theirs = parsePrometheus(text) as {
    name: string;
    help: string;
    type: string;
    metrics: { value?: string; labels?: Record<string, string>; buckets?: object }[];
  }[];
  assert.deepEqual(theirs.map((f) => f.name), [...ours.keys()]);
  for (const f of theirs) {
    const mine = ours.get(f.name)!;
    assert.equal(f.type.toLowerCase(), mine.type, f.name);
    assert.equal(f.help, mine.help, f.name);
  }
  const info = theirs.find((f) => f.name === "redis_hive_info");
  assert.deepEqual(info?.metrics, [{ value: "1", labels: { id: 'a"b\\c' } }]);
  const h = theirs.find((f) => f.name === "redis_hive_failover_duration_seconds");
  assert.deepEqual(h?.metrics, [{
    buckets: {
      "0.1": "0",
      "0.25": "1",
      "0.5": "2",
      "1": "2",
      "2": "3",
      "5": "3",
      "10": "3",
      "+Inf": "3",
    },
    sum: "2.9",
    count: "3",
  }]);
});

Deno.test("metrics: programmer errors fail loudly", () => {
  const family = { name: "redis_hive_x", help: "x", type: "gauge" as const };
  assert.throws(() => formatMetrics([{ ...family, name: "bad-name", samples: [] }]), /bad metric/);
  assert.throws(
    () => formatMetrics([{ ...family, samples: [] }, { ...family, samples: [] }]),
    /written twice/,
  );
  assert.throws(
    () => formatMetrics([{ ...family, samples: [{ labels: { "bad-label": "v" }, value: 1 }] }]),
    /bad label name/,
  );
  assert.throws(
    () => formatMetrics([{ ...family, samples: [{ labels: { __name__: "v" }, value: 1 }] }]),
    /bad label name/,
  );
  const tooMany = Object.fromEntries(
    Array.from({ length: MAX_LABELS_PER_SAMPLE + 1 }, (_, i) => [`l${i}`, "v"]),
  );
  assert.throws(
    () => formatMetrics([{ ...family, samples: [{ labels: tooMany, value: 1 }] }]),
    /labels, at most/,
  );
  assert.throws(
    () => formatMetrics([{ ...family, samples: [{ suffix: "_bucket", value: 1 }] }]),
    /suffix/,
  );
  assert.throws(
    () => formatMetrics([{ ...family, type: "histogram", samples: [{ value: 1 }] }]),
    /suffix/,
  );
  const s = leaderStatus();
  s.failovers.bucketCounts.pop();
  assert.throws(() => hiveMetrics(s), /7 bounds but 6 counts/);
});

Deno.test("metrics: docs/operations.md lists every metric with its type and HELP text", async () => {
  const doc = await Deno.readTextFile(new URL("../../docs/operations.md", import.meta.url));
  const rows = new Map(
    doc.split("\n").filter((l) => l.startsWith("| `redis_hive_")).map((l) => {
      const [name, type, help] = l.split("|").slice(1, -1).map((c) => c.trim());
      return [name!.slice(1, -1), [type, help]];
    }),
  );
  for (const [name, [type, help]] of Object.entries(HIVE_METRICS)) {
    assert.deepEqual(rows.get(METRIC_PREFIX + name), [type, help], `docs row of ${name}`);
  }
  assert.equal(rows.size, Object.keys(HIVE_METRICS).length, "no metric documented that is gone");
});

Deno.test("metrics: the process's resident memory and V8 heap, when the status has them", () => {
  const without = parseStrict(metricsText(followerStatus()));
  assert.equal(value(without, "redis_hive_process_resident_memory_bytes"), undefined);
  const s = followerStatus();
  s.process = {
    rssBytes: 94_052_000,
    heapTotalBytes: 12_000_000,
    heapUsedBytes: 10_500_000,
    externalBytes: 5_400_000,
    heapSpaces: [
      { name: "new_space", physicalBytes: 1_048_576, usedBytes: 500_000 },
      { name: "old_space", physicalBytes: 8_000_000, usedBytes: 7_000_000 },
    ],
  };
  const f = parseStrict(metricsText(s));
  assert.equal(value(f, "redis_hive_process_resident_memory_bytes"), 94_052_000);
  assert.equal(value(f, "redis_hive_process_heap_size_bytes"), 12_000_000);
  assert.equal(value(f, "redis_hive_process_heap_used_bytes"), 10_500_000);
  assert.equal(value(f, "redis_hive_process_external_memory_bytes"), 5_400_000);
  assert.equal(value(f, "redis_hive_process_heap_space_bytes", { space: "new_space" }), 1_048_576);
  assert.equal(value(f, "redis_hive_process_heap_space_bytes", { space: "old_space" }), 8_000_000);
});
