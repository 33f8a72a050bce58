/**
 * `GET /metrics`: the node's {@link HiveStatus} in the Prometheus text exposition format 0.0.4.
 *
 * Every metric is named `redis_hive_*`, with its unit last (`_seconds`, `_bytes`) and `_total`
 * on counters. {@link hiveMetrics} turns a status into metric families (the list, with HELP
 * text, is {@link HIVE_METRICS} and `docs/operations.md`); {@link formatMetrics} writes any
 * families as text, escaping HELP text and label values.
 *
 * @example
 * ```ts
 * import { metricsText, METRICS_CONTENT_TYPE } from "./metrics.ts";
 * declare const hive: { status(): import("./hive_status.ts").HiveStatus }; // a running Hive
 * const body = metricsText(hive.status());
 * new Response(body, { headers: { "content-type": METRICS_CONTENT_TYPE } });
 * ```
 */

import type { HiveStatus } from "./hive_status.ts";
import { ROLES } from "../election/heartbeat.ts";
import { readiness, replicationLag } from "./readiness.ts";

/** The content type of the text exposition format this module writes. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Every metric name starts with this. */
export const METRIC_PREFIX = "redis_hive_";

/** Most labels one sample may carry (a guard against a label explosion by mistake). */
export const MAX_LABELS_PER_SAMPLE = 4;

/** The metric types this module writes. */
export type MetricType = "counter" | "gauge" | "histogram";

/** One sample line: `name{labels} value`. */
export interface MetricSample {
  /** Appended to the family name: `_bucket`, `_sum`, `_count` for histograms, else "". */
  suffix?: "" | "_bucket" | "_sum" | "_count";
  labels?: Record<string, string>;
  value: number;
}

/** One metric family: its HELP and TYPE lines and its samples. */
export interface MetricFamily {
  name: string;
  help: string;
  type: MetricType;
  samples: MetricSample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/**
 * Writes metric families as Prometheus text (format 0.0.4). Throws on a programmer error: a bad
 * metric or label name, a reserved label (`__*`), a name used twice, too many labels, a
 * histogram sample without its suffix.
 *
 * @example
 * ```ts
 * import { formatMetrics } from "./metrics.ts";
 * formatMetrics([{ name: "redis_hive_up", help: "Up.", type: "gauge", samples: [{ value: 1 }] }]);
 * // "# HELP redis_hive_up Up.\n# TYPE redis_hive_up gauge\nredis_hive_up 1\n"
 * ```
 */
export function formatMetrics(families: readonly MetricFamily[]): string {
  const seen = new Set<string>();
  const lines: string[] = [];
  for (const f of families) {
    if (!METRIC_NAME.test(f.name)) throw new Error(`bad metric name ${JSON.stringify(f.name)}`);
    if (seen.has(f.name)) throw new Error(`metric ${f.name} written twice`);
    seen.add(f.name);
    lines.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
    for (const s of f.samples) lines.push(sampleLine(f, s));
  }
  return lines.length === 0 ? "" : lines.join("\n") + "\n";
}

function sampleLine(f: MetricFamily, s: MetricSample): string {
  const suffix = s.suffix ?? "";
  if ((f.type === "histogram") !== (suffix !== "")) {
    throw new Error(`metric ${f.name}: suffix ${JSON.stringify(suffix)} on a ${f.type}`);
  }
  const entries = Object.entries(s.labels ?? {});
  if (entries.length > MAX_LABELS_PER_SAMPLE) {
    throw new Error(`metric ${f.name}: ${entries.length} labels, at most ${MAX_LABELS_PER_SAMPLE}`);
  }
  const labels = entries.map(([k, v]) => {
    if (!LABEL_NAME.test(k) || k.startsWith("__")) {
      throw new Error(`metric ${f.name}: bad label name ${JSON.stringify(k)}`);
    }
    return `${k}="${escapeLabelValue(v)}"`;
  });
  const labelText = labels.length === 0 ? "" : `{${labels.join(",")}}`;
  return `${f.name}${suffix}${labelText} ${formatValue(s.value)}`;
}

/** HELP text escaping of format 0.0.4: backslash and newline. */
export function escapeHelp(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

/** Label value escaping of format 0.0.4: backslash, double quote and newline. */
export function escapeLabelValue(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}

/** A sample value as Prometheus writes it (`+Inf`, `-Inf`, `NaN`, else the shortest decimal). */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

/** Name, type and HELP text of every metric {@link hiveMetrics} may write, in its order. */
export const HIVE_METRICS = {
  info: ["gauge", "Always 1; the label id is this node's announced address."],
  role: ["gauge", "1 for the role this node has now (label role), 0 for the others."],
  leader_info: ["gauge", "1 with label leader set to the leader's address, while one is known."],
  ready: ["gauge", "1 when /readyz answers 200."],
  eligible: ["gauge", "1 when this node may stand for election now."],
  uptime_seconds: ["gauge", "Seconds since this hive process started."],
  leader_changes_total: [
    "counter",
    "Times the leader this node follows changed (losing it counts too).",
  ],
  elections_total: ["counter", "Elections this node started as a candidate."],
  failover_duration_seconds: [
    "histogram",
    "Time from losing a leader to knowing the next one, in seconds.",
  ],
  peers_known: ["gauge", "Peers this node tracks (peer set and peers heard)."],
  peers_live: ["gauge", "Peers heard within the failure timeout."],
  peers_refused_total: ["counter", "Peers refused because --max-peers were tracked."],
  peers_evicted_total: [
    "counter",
    "Heard-only peers that gave their place to a peer listed by DNS or --peers.",
  ],
  peer_live: ["gauge", "1 while the peer (label peer) is heard within the failure timeout."],
  peer_last_heard_seconds: ["gauge", "Seconds since the last heartbeat of the peer (label peer)."],
  peer_replication_offset_bytes: [
    "gauge",
    "Replication offset of the peer's redis (label peer), as its last heartbeat reported.",
  ],
  heartbeats_sent_total: ["counter", "Heartbeat datagrams sent (one per destination)."],
  heartbeats_received_total: ["counter", "Heartbeats accepted by the election."],
  heartbeats_dropped_total: [
    "counter",
    "Datagrams dropped before the election used them, by reason (codec reasons, stale, from-self).",
  ],
  redis_up: ["gauge", "1 when the last observation of the local redis succeeded."],
  redis_master: ["gauge", "1 when the local redis is a master."],
  redis_link_up: ["gauge", "1 when the local redis is a replica with its master link up."],
  redis_loading: ["gauge", "1 while the local redis loads a dataset."],
  replication_offset_bytes: ["gauge", "master_repl_offset of the local redis."],
  replication_lag_bytes: [
    "gauge",
    "Bytes the local redis is behind the offset the leader last reported (0 on the leader).",
  ],
  redis_commands_total: ["counter", "Commands the hive issued to change its redis's role."],
  redis_enforce_failures_total: ["counter", "Attempts to set the redis role that failed."],
  redis_observations_total: ["counter", "Observations of the local redis."],
  proxy_listening: ["gauge", "1 while the master proxy listens."],
  proxy_engine_info: [
    "gauge",
    "1 with label engine set to the master proxy's engine (epoll or deno), while it runs.",
  ],
  proxy_has_target: ["gauge", "1 while the master proxy has a master to forward to."],
  proxy_connections_active: ["gauge", "Open client connections of the proxy."],
  proxy_connections_proxied: ["gauge", "Client connections joined to the master now."],
  proxy_connections_waiting: ["gauge", "Client connections held, waiting for a master now."],
  proxy_connections_total: ["counter", "Client connections accepted, refused ones included."],
  proxy_connections_refused_total: ["counter", "Connections refused: --max-connections open."],
  proxy_connections_held_total: ["counter", "Connections that had to wait for a master."],
  proxy_hold_timeouts_total: ["counter", "Held connections closed: no master came in time."],
  proxy_upstream_failures_total: ["counter", "Connects to the master that failed."],
  proxy_connections_closed_by_leader_change_total: [
    "counter",
    "Proxied connections closed because the master changed.",
  ],
  proxy_target_changes_total: ["counter", "Times the proxy was re-pointed."],
  proxy_bytes_total: [
    "counter",
    "Bytes the proxy forwarded, by direction (client_to_redis, redis_to_client).",
  ],
  proxy_buffered_bytes: ["gauge", "Bytes read by the proxy but not yet written."],
  dns_lookups_total: ["counter", "DNS resolutions of the peer Service started."],
  dns_failures_total: ["counter", "DNS resolutions that failed (error or timeout)."],
  dns_empty_answers_total: ["counter", "DNS resolutions answered with no address."],
  dns_consecutive_failures: ["gauge", "Failed or empty DNS resolutions since the last good one."],
  state_file_errors_total: ["counter", "Failed writes of the state file."],
  fenced: ["gauge", "1 while this node leads fenced: it does not hear a majority, writes refused."],
  fence_armed: ["gauge", "1 while this node leads with the fence armed (--fence, peer set size)."],
  fences_total: [
    "counter",
    "Times this node, leading, became fenced (each new leadership included).",
  ],
  fenced_seconds_total: ["counter", "Seconds this node spent leading fenced."],
  fence_refusals_total: [
    "counter",
    "Fences that outlasted the hold and turned into -NOREPLICAS refusals.",
  ],
  fence_command_failures_total: ["counter", "Fence commands to the local redis that failed."],
  lease_probes_sent_total: ["counter", "Lease probes sent (one per destination)."],
  lease_echoes_received_total: ["counter", "Lease echoes counted by this node as leader."],
  process_resident_memory_bytes: [
    "gauge",
    "Resident memory of the hive process, all threads (the proxy's worker isolates) included.",
  ],
  process_heap_size_bytes: ["gauge", "V8 heap of the main isolate: memory it holds."],
  process_heap_used_bytes: ["gauge", "V8 heap of the main isolate: bytes in use."],
  process_external_memory_bytes: [
    "gauge",
    "Memory outside the V8 heap held by the main isolate's objects (ArrayBuffers...).",
  ],
  process_heap_space_bytes: [
    "gauge",
    "Memory each V8 heap space of the main isolate holds (label space).",
  ],
  http_connections_active: ["gauge", "HTTP connections open now (at most 64)."],
  http_requests_total: ["counter", "HTTP requests answered."],
  http_connections_refused_total: [
    "counter",
    "HTTP connections refused, by reason: cap (64 open), accept-error (out of descriptors...).",
  ],
  http_timeouts_total: [
    "counter",
    "HTTP connections closed for slowness, by kind: header (5 s), connection (15 s).",
  ],
  http_bad_requests_total: ["counter", "HTTP requests answered 400 or 431."],
  nofile_limit: ["gauge", "The process's soft open-file limit (after raising it to the hard one)."],
  max_connections: ["gauge", "The proxy's connection cap in force (lowered to fit nofile)."],
  heartbeat_replies_suppressed_total: [
    "counter",
    "Immediate replies to a new or starting peer not sent: it had one within the interval.",
  ],
  proxy_accept_errors_total: [
    "counter",
    "Accepts of the master proxy that failed (out of file descriptors...); retried.",
  ],
  log_lines_suppressed_total: [
    "counter",
    "Repeated warning lines not written (one line per kind per 10 s, with the count).",
  ],
} as const satisfies Record<string, readonly [MetricType, string]>;

/** A metric's short name: the key in {@link HIVE_METRICS}, without {@link METRIC_PREFIX}. */
export type HiveMetricName = keyof typeof HIVE_METRICS;

/**
 * The metric families of one status. A metric whose value is unknown (the lag of a node that
 * follows no leader, the proxy counters of a node without a proxy) is left out, never faked.
 *
 * @example
 * ```ts
 * import { formatMetrics, hiveMetrics } from "./metrics.ts";
 * declare const hive: { status(): import("./hive_status.ts").HiveStatus }; // a running Hive
 * const text = formatMetrics(hiveMetrics(hive.status()));
 * ```
 */
export function hiveMetrics(status: HiveStatus): MetricFamily[] {
  const out: MetricFamily[] = [];
  const add: AddMetric = (name, samples) => {
    const [type, help] = HIVE_METRICS[name];
    out.push({ name: METRIC_PREFIX + name, type, help, samples });
  };
  nodeMetrics(status, add);
  peerMetrics(status, add);
  redisMetrics(status, add);
  fenceMetrics(status, add);
  proxyMetrics(status, add);
  discoveryMetrics(status, add);
  processMetrics(status, add);
  protectionMetrics(status, add);
  return out;
}

/** Adds one family of {@link HIVE_METRICS} with its samples. */
type AddMetric = (name: HiveMetricName, samples: MetricSample[]) => void;

/** One sample without labels (a boolean counts as 0 or 1). */
function one(value: number | boolean): MetricSample[] {
  return [{ value: Number(value) }];
}

/** A numeric field of a record as one sample, or none when it is missing. */
function numberField(record: Record<string, unknown> | null, key: string): MetricSample[] {
  const v = record?.[key];
  return typeof v === "number" ? one(v) : [];
}

/** The node itself: identity, role, leader, readiness, elections and failovers. */
function nodeMetrics(status: HiveStatus, add: AddMetric): void {
  add("info", [{ labels: { id: status.id }, value: 1 }]);
  add("role", ROLES.map((role) => ({ labels: { role }, value: Number(role === status.role) })));
  add(
    "leader_info",
    status.leader === null ? [] : [{ labels: { leader: status.leader }, value: 1 }],
  );
  add("ready", one(readiness(status).ready));
  add("eligible", one(status.eligible));
  add("uptime_seconds", one(status.uptimeMs / 1000));
  add("leader_changes_total", one(status.election.leaderChanges));
  add("elections_total", one(status.election.elections));
  add("failover_duration_seconds", failoverSamples(status.failovers));
}

/** The peers as this node hears them, and the heartbeats. */
function peerMetrics(status: HiveStatus, add: AddMetric): void {
  add("peers_known", one(status.peers.length));
  add("peers_live", one(status.peers.filter((p) => p.live).length));
  add("peers_refused_total", one(status.election.peersRefused));
  add("peers_evicted_total", one(status.election.peersEvicted));
  add("peer_live", status.peers.map((p) => ({ labels: { peer: p.address }, value: +p.live })));
  add(
    "peer_last_heard_seconds",
    status.peers.flatMap((p) =>
      p.lastHeardAgoMs === null
        ? []
        : [{ labels: { peer: p.address }, value: p.lastHeardAgoMs / 1000 }]
    ),
  );
  add(
    "peer_replication_offset_bytes",
    status.peers.flatMap((p) =>
      p.redis === null || !p.redis.up
        ? []
        : [{ labels: { peer: p.address }, value: p.redis.offset }]
    ),
  );
  add("heartbeats_sent_total", one(status.election.heartbeatsSent));
  add("heartbeats_received_total", one(status.election.heartbeatsReceived));
  add("heartbeats_dropped_total", [
    ...Object.entries(status.runtime.datagramsDropped).map(([reason, value]) => ({
      labels: { reason },
      value,
    })),
    { labels: { reason: "stale" }, value: status.election.heartbeatsStale },
    { labels: { reason: "old-boot" }, value: status.election.heartbeatsOldBoot },
    { labels: { reason: "expired" }, value: status.election.heartbeatsExpired },
    { labels: { reason: "from-self" }, value: status.election.heartbeatsFromSelf },
  ]);
}

/** The local redis as last observed, replication, and the commands the hive ran on it. */
function redisMetrics(status: HiveStatus, add: AddMetric): void {
  const obs = status.redis.observation;
  const up = obs !== null && obs.up;
  add("redis_up", one(up));
  add("redis_master", one(up && obs.role === "master"));
  add("redis_link_up", one(up && obs.role === "replica" && obs.linkUp));
  add("redis_loading", one(up && obs.loading));
  add("replication_offset_bytes", up ? one(obs.offset) : []);
  const lag = replicationLag(status);
  add("replication_lag_bytes", lag === null ? [] : one(lag.lagBytes));
  add("redis_commands_total", one(status.runtime.redisCommands));
  add("redis_enforce_failures_total", one(status.runtime.enforceFailures));
  add("redis_observations_total", one(status.runtime.observations));
}

/** The write fence (lib/election/fence.ts) and its lease datagrams. */
function fenceMetrics(status: HiveStatus, add: AddMetric): void {
  add("fenced", one(status.fence.fenced));
  add("fence_armed", one(status.fence.armed));
  add("fences_total", one(status.election.fences));
  add("fenced_seconds_total", one(status.fence.fencedTotalMs / 1000));
  add("fence_refusals_total", one(status.fence.actuator.refusals));
  add("fence_command_failures_total", one(status.fence.actuator.failures));
  add("lease_probes_sent_total", one(status.election.leaseProbesSent));
  add("lease_echoes_received_total", one(status.election.leaseEchoesReceived));
}

/** The master proxy; its counters are left out when the node runs no proxy. */
function proxyMetrics(status: HiveStatus, add: AddMetric): void {
  add("proxy_listening", one(status.proxy.listening));
  add(
    "proxy_engine_info",
    status.proxy.engine === null ? [] : [{ labels: { engine: status.proxy.engine }, value: 1 }],
  );
  add("proxy_has_target", one(status.proxy.target !== null));
  const p = status.proxy.stats as Record<string, unknown> | null;
  const stat = (key: string) => numberField(p, key);
  add("proxy_connections_active", stat("active"));
  add("proxy_connections_proxied", stat("proxied"));
  add("proxy_connections_waiting", stat("waiting"));
  add("proxy_connections_total", stat("total"));
  add("proxy_connections_refused_total", stat("refused"));
  add("proxy_connections_held_total", stat("held"));
  add("proxy_hold_timeouts_total", stat("holdTimeouts"));
  add("proxy_upstream_failures_total", stat("upstreamFailures"));
  add("proxy_connections_closed_by_leader_change_total", stat("closedByTargetChange"));
  add("proxy_target_changes_total", stat("targetChanges"));
  add("proxy_bytes_total", [
    ...stat("bytesToUpstream").map((s) => ({ ...s, labels: { direction: "client_to_redis" } })),
    ...stat("bytesToClient").map((s) => ({ ...s, labels: { direction: "redis_to_client" } })),
  ]);
  add("proxy_buffered_bytes", stat("bufferedBytes"));
}

/** Peer discovery (DNS) and the state file. */
function discoveryMetrics(status: HiveStatus, add: AddMetric): void {
  const dns = (key: string) => numberField(status.discovery as Record<string, unknown>, key);
  add("dns_lookups_total", dns("attempts"));
  add("dns_failures_total", dns("failures"));
  add("dns_empty_answers_total", dns("empties"));
  add("dns_consecutive_failures", dns("consecutiveFailures"));
  add("state_file_errors_total", one(status.runtime.stateFileErrors));
}

/** The process's memory (RSS, the main isolate's V8 heap and its spaces). */
function processMetrics(status: HiveStatus, add: AddMetric): void {
  const m = status.process;
  add("process_resident_memory_bytes", m === undefined ? [] : one(m.rssBytes));
  add("process_heap_size_bytes", m === undefined ? [] : one(m.heapTotalBytes));
  add("process_heap_used_bytes", m === undefined ? [] : one(m.heapUsedBytes));
  add("process_external_memory_bytes", m === undefined ? [] : one(m.externalBytes));
  add(
    "process_heap_space_bytes",
    (m?.heapSpaces ?? []).map((space) => ({
      labels: { space: space.name },
      value: space.physicalBytes,
    })),
  );
}

/** What protects the node: the HTTP server's limits, descriptors, suppressed replies and log lines. */
function protectionMetrics(status: HiveStatus, add: AddMetric): void {
  const h = status.http;
  add("http_connections_active", h === null ? [] : one(h.active));
  add("http_requests_total", h === null ? [] : one(h.requests));
  add(
    "http_connections_refused_total",
    h === null ? [] : [
      { labels: { reason: "cap" }, value: h.refusedCap },
      { labels: { reason: "accept-error" }, value: h.acceptErrors },
    ],
  );
  add(
    "http_timeouts_total",
    h === null ? [] : [
      { labels: { kind: "header" }, value: h.headerTimeouts },
      { labels: { kind: "connection" }, value: h.connectionTimeouts },
    ],
  );
  add("http_bad_requests_total", h === null ? [] : one(h.badRequests));
  add("nofile_limit", status.limits.nofileSoft === null ? [] : one(status.limits.nofileSoft));
  add("max_connections", one(status.limits.maxConnections));
  add("heartbeat_replies_suppressed_total", one(status.election.repliesSuppressed));
  add("proxy_accept_errors_total", one(status.runtime.proxyAcceptErrors));
  add("log_lines_suppressed_total", one(status.runtime.logLinesSuppressed));
}

function failoverSamples(h: HiveStatus["failovers"]): MetricSample[] {
  if (h.bucketsMs.length !== h.bucketCounts.length) {
    throw new Error(
      `failover histogram: ${h.bucketsMs.length} bounds but ${h.bucketCounts.length} counts`,
    );
  }
  const buckets = h.bucketsMs.map((ms, i) => ({
    suffix: "_bucket" as const,
    labels: { le: formatValue(ms / 1000) },
    value: h.bucketCounts[i]!,
  }));
  return [
    ...buckets,
    { suffix: "_bucket", labels: { le: "+Inf" }, value: h.count },
    { suffix: "_sum", value: h.sumMs / 1000 },
    { suffix: "_count", value: h.count },
  ];
}

/**
 * The whole `/metrics` body of a status.
 *
 * @example
 * ```ts
 * import { metricsText } from "./metrics.ts";
 * declare const hive: { status(): import("./hive_status.ts").HiveStatus }; // a running Hive
 * console.log(metricsText(hive.status()));
 * ```
 */
export function metricsText(status: HiveStatus): string {
  return formatMetrics(hiveMetrics(status));
}
