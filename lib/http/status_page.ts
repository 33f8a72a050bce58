/**
 * `GET /`: a small self-contained status page (inline CSS and JS, no external asset) that polls
 * this node's own `/status` and `/readyz` every {@link STATUS_PAGE_REFRESH_MS} and shows who
 * leads, every node of the hive as this node knows it from their heartbeats (role, leader,
 * last heard, redis role and link, offset and lag behind the leader), readiness, failover and
 * election figures, the proxy, and the recent events.
 *
 * It fetches nothing from any other node (no CORS needed): one port-forward to any node shows
 * the whole hive as that node sees it. It fetches `status` and `readyz` by relative URL, so it
 * also works behind a path prefix. Every value is written with `textContent`, never parsed as
 * HTML.
 *
 * @example
 * ```ts
 * import { STATUS_PAGE_CSP, STATUS_PAGE_HTML } from "./status_page.ts";
 * new Response(STATUS_PAGE_HTML, {
 *   headers: { "content-type": "text/html; charset=utf-8", "content-security-policy": STATUS_PAGE_CSP },
 * });
 * ```
 */

/** How often the page polls `/status` and `/readyz`. */
export const STATUS_PAGE_REFRESH_MS = 1000;

/** A poll that has not answered within this time is aborted and shown as a lost connection. */
export const STATUS_PAGE_FETCH_TIMEOUT_MS = 3000;

/** Most history entries the page lists (newest first). */
export const STATUS_PAGE_MAX_EVENTS = 20;

/** A lag above this many bytes is shown as a warning (the readiness bound is in the reason). */
export const STATUS_PAGE_LAG_WARN_BYTES = 1_048_576;

/**
 * The Content-Security-Policy sent with the page: inline script and style only, requests only
 * to this origin, so the page cannot load (or leak to) anything outside the node.
 */
export const STATUS_PAGE_CSP =
  "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; " +
  "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'";

const STYLE = `
:root { --bg:#0f1419; --panel:#182029; --line:#2a3541; --fg:#e6edf3; --dim:#8b98a5;
  --leader:#f0b429; --follower:#3fb950; --candidate:#d29922; --starting:#8b98a5; --bad:#f85149;
  --accent:#58a6ff; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--fg);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
header { display:flex; flex-wrap:wrap; align-items:center; gap:12px 18px; padding:14px 22px;
  border-bottom:1px solid var(--line); background:var(--panel); }
header h1 { font-size:18px; margin:0; font-weight:600; letter-spacing:.2px; }
header h1 small { color:var(--dim); font-weight:400; }
.mono { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; }
.badge { display:inline-block; padding:2px 10px; border-radius:999px; font-weight:600;
  font-size:12px; text-transform:uppercase; letter-spacing:.5px; border:1px solid currentColor; }
.role-leader { color:var(--leader); } .role-follower { color:var(--follower); }
.role-candidate { color:var(--candidate); } .role-starting, .role-unknown { color:var(--starting); }
.ok { color:var(--follower); } .bad { color:var(--bad); } .warn { color:var(--candidate); }
.dim { color:var(--dim); }
#updated { margin-left:auto; color:var(--dim); font-size:12px; }
#banner { display:none; padding:8px 22px; background:#3d1518; color:#ffb3ad;
  border-bottom:1px solid var(--bad); }
body.stale #banner { display:block; }
#security { display:none; padding:8px 22px; background:#3d2a08; color:#ffd58a; }
#security.on { display:block; }
body.stale main { opacity:.55; }
main { padding:18px 22px; display:grid; gap:18px; grid-template-columns: repeat(4, minmax(0,1fr)); }
section { background:var(--panel); border:1px solid var(--line); border-radius:8px; padding:12px 14px; }
section h2 { margin:0 0 8px; font-size:12px; font-weight:600; color:var(--dim);
  text-transform:uppercase; letter-spacing:.8px; }
section h2 .dim { text-transform:none; font-weight:400; letter-spacing:0; margin-left:6px; }
.wide { grid-column: 1 / -1; } .half { grid-column: span 2; }
.big { font-size:22px; font-weight:600; }
dl { display:grid; grid-template-columns:auto 1fr; gap:2px 12px; margin:0; }
dt { color:var(--dim); } dd { margin:0; text-align:right; font-variant-numeric: tabular-nums; }
table { width:100%; border-collapse:collapse; font-variant-numeric: tabular-nums; }
th { text-align:left; color:var(--dim); font-weight:500; font-size:12px; padding:4px 8px;
  border-bottom:1px solid var(--line); }
td { padding:6px 8px; border-bottom:1px solid var(--line); white-space:nowrap; }
tr:last-child td { border-bottom:none; }
tr.is-leader td:first-child { box-shadow: inset 3px 0 0 var(--leader); }
tr.gone td:not(:nth-child(4)) { opacity:.5; }
tr.is-self td:first-child::after { content:" (this node)"; color:var(--dim); font-size:12px; }
td.num { text-align:right; }
.bars { display:flex; align-items:flex-end; gap:6px; height:70px; margin-top:6px; }
.bar { flex:1; display:flex; flex-direction:column; justify-content:flex-end; align-items:center;
  height:100%; font-size:11px; color:var(--dim); }
.bar i { display:block; width:100%; background:var(--accent); border-radius:3px 3px 0 0; min-height:1px; }
.bar b { font-weight:500; color:var(--fg); }
#events { list-style:none; margin:0; padding:0; max-height:320px; overflow:auto; }
#events li { padding:3px 0; border-bottom:1px solid var(--line); display:flex; gap:10px; }
#events li:last-child { border-bottom:none; }
#events .t { color:var(--dim); min-width:76px; } #events .k { min-width:130px; color:var(--accent); }
@media (max-width: 900px) { main { grid-template-columns: 1fr 1fr; } .half { grid-column: 1 / -1; } }
`;

// Plain ES2017 with string concatenation only (no template literals), so it embeds as-is.
const SCRIPT = `
"use strict";
var REFRESH_MS = ${STATUS_PAGE_REFRESH_MS};
var FETCH_TIMEOUT_MS = ${STATUS_PAGE_FETCH_TIMEOUT_MS};
var MAX_EVENTS = ${STATUS_PAGE_MAX_EVENTS};
var LAG_WARN_BYTES = ${STATUS_PAGE_LAG_WARN_BYTES};
var lastOkMs = null;

function $(id) { return document.getElementById(id); }
function el(tag, text, cls) {
  var e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function setText(id, text, cls) { var e = $(id); e.textContent = text; if (cls !== undefined) e.className = cls; }
function bytes(n) {
  if (n === null || n === undefined) return "–";
  var units = ["B", "KiB", "MiB", "GiB", "TiB"], i = 0, v = n;
  while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i === 0 ? String(v) : v.toFixed(1)) + " " + units[i];
}
function secs(ms) {
  if (ms === null || ms === undefined) return "–";
  if (ms < 1000) return Math.round(ms) + " ms";
  if (ms < 60000) return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + " s";
  var s = Math.round(ms / 1000), m = Math.floor(s / 60), h = Math.floor(m / 60);
  if (h > 0) return h + "h " + (m % 60) + "m";
  return m + "m " + (s % 60) + "s";
}
function bound(ms) { return ms < 1000 ? ms + " ms" : ms / 1000 + " s"; }
function clock(wallMs) {
  var d = new Date(wallMs);
  function p(n) { return (n < 10 ? "0" : "") + n; }
  return p(d.getHours()) + ":" + p(d.getMinutes()) + ":" + p(d.getSeconds());
}
function roleBadge(role) { return el("span", role || "unknown", "badge role-" + (role || "unknown")); }

function redisText(r) {
  if (!r) return ["no report", "dim"];
  if (!r.up) return ["down", "bad"];
  if (r.loading) return [r.role + ", loading", "warn"];
  if (r.role === "replica") return r.linkUp ? ["replica, link up", "ok"] : ["replica, link down", "bad"];
  return [r.role, r.role === "master" ? "" : "dim"];
}

function nodes(s) {
  var list = [{
    address: s.id, self: true, role: s.role, leader: s.leader, live: true, lastHeardAgoMs: null,
    redis: s.redis.observation && s.redis.observation.up
      ? Object.assign({}, s.redis, {
        offset: s.redis.observation.offset, linkUp: s.redis.observation.linkUp,
        loading: s.redis.observation.loading, role: s.redis.observation.role, up: true })
      : s.redis,
  }];
  s.peers.forEach(function (p) {
    list.push({ address: p.address, self: false, role: p.role, leader: p.leader, live: p.live,
      lastHeardAgoMs: p.lastHeardAgoMs, redis: p.redis, inPeerSet: p.inPeerSet });
  });
  list.sort(function (a, b) { return a.address < b.address ? -1 : a.address > b.address ? 1 : 0; });
  return list;
}

function leaderOffset(s, all) {
  if (s.leader === null) return null;
  for (var i = 0; i < all.length; i++) {
    var n = all[i];
    if (n.address === s.leader && n.redis && n.redis.up) return n.redis.offset;
  }
  return null;
}

function renderNodes(s) {
  var all = nodes(s), lo = leaderOffset(s, all), body = $("nodes");
  body.textContent = "";
  all.forEach(function (n) {
    var tr = el("tr");
    tr.dataset.address = n.address;
    if (n.self) tr.classList.add("is-self");
    if (n.address === s.leader) tr.classList.add("is-leader");
    if (!n.live) tr.classList.add("gone");
    tr.appendChild(el("td", n.address, "mono"));
    var role = el("td"); role.appendChild(roleBadge(n.role)); tr.appendChild(role);
    tr.appendChild(el("td", n.leader === null || n.leader === undefined ? "–" : n.leader, "mono"));
    tr.appendChild(n.self ? el("td", "–", "dim") : el("td",
      n.lastHeardAgoMs === null ? "never" : secs(n.lastHeardAgoMs) + " ago", n.live ? "" : "bad"));
    var rt = redisText(n.redis); tr.appendChild(el("td", rt[0], rt[1]));
    tr.appendChild(el("td", n.redis && n.redis.up ? String(n.redis.offset) : "–", "num mono"));
    var lag = null;
    if (n.address === s.leader) lag = 0;
    else if (lo !== null && n.redis && n.redis.up && n.redis.role === "replica") lag = Math.max(0, lo - n.redis.offset);
    tr.appendChild(el("td", lag === null ? "–" : bytes(lag), "num " + (lag !== null && lag > LAG_WARN_BYTES ? "warn" : "")));
    var lin = n.redis && n.redis.lineage;
    tr.appendChild(el("td", lin ? lin.bornBy + " @ " + clock(lin.bornMs) : "none", lin ? "mono" : "dim"));
    body.appendChild(tr);
  });
  setText("node-count", all.length + " nodes, " + all.filter(function (n) { return n.live; }).length + " live");
}

function renderFailovers(f) {
  setText("fo-count", String(f.count));
  setText("fo-last", secs(f.lastMs));
  setText("fo-mean", f.count === 0 ? "–" : secs(f.sumMs / f.count));
  var bars = $("fo-bars"); bars.textContent = "";
  var counts = f.bucketCounts.map(function (c, i) { return c - (i === 0 ? 0 : f.bucketCounts[i - 1]); });
  counts.push(f.count - (f.bucketCounts.length ? f.bucketCounts[f.bucketCounts.length - 1] : 0));
  var max = Math.max.apply(null, counts.concat([1]));
  counts.forEach(function (c, i) {
    var b = el("div", null, "bar");
    b.appendChild(el("b", c));
    var bar = el("i"); bar.style.height = Math.round(100 * c / max) + "%"; b.appendChild(bar);
    b.appendChild(el("span", i < f.bucketsMs.length ? "≤ " + bound(f.bucketsMs[i]) : "more"));
    bars.appendChild(b);
  });
}

function sum(o) { var t = 0; for (var k in o) t += o[k]; return t; }

function render(s, ready) {
  document.title = s.id + " " + s.role + " · redis-hive";
  var warnings = (s.security && s.security.warnings) || [];
  setText("security", warnings.length === 0 ? "" : "Warning: " + warnings.join(" · "),
    warnings.length === 0 ? "" : "on");
  setText("self", s.id);
  var role = $("role"); role.textContent = ""; role.appendChild(roleBadge(s.role));
  setText("ready", ready.text, ready.ok ? "ok" : "bad");
  setText("leader", s.leader === null ? "no leader" : s.leader, s.leader === null ? "big bad mono" : "big mono");
  setText("leader-since", s.leaderSinceMs === null ? "" : "leading since " + clock(s.leaderSinceMs) +
    " (" + secs(Date.now() - s.leaderSinceMs) + ")");
  var obs = s.redis.observation;
  setText("redis-role", obs === null ? "not observed" : !obs.up ? "down" : obs.role,
    obs !== null && obs.up ? "" : "bad");
  setText("eligible", s.eligible ? "yes" : "no");
  var f = s.fence;
  setText("fence", !f ? "–" : f.fenced ? "FENCED: " + f.reason : f.armed ? "open: " + f.reason :
    "not armed (" + f.mode + ")", f && f.fenced ? "bad" : "");
  setText("fenced-total", !f ? "–" : secs(f.fencedTotalMs) + " in " + s.election.fences + " fences");
  setText("elections", String(s.election.elections));
  setText("leader-changes", String(s.election.leaderChanges));
  setText("hb-sent", String(s.election.heartbeatsSent));
  setText("hb-recv", String(s.election.heartbeatsReceived));
  setText("hb-drop", String(sum(s.runtime.datagramsDropped) + s.election.heartbeatsStale + s.election.heartbeatsOldBoot + s.election.heartbeatsExpired + s.election.heartbeatsFromSelf));
  setText("redis-cmds", String(s.runtime.redisCommands));
  setText("uptime", secs(s.uptimeMs));
  var p = s.proxy, ps = p.stats || {};
  setText("proxy-target", p.target === null ? "holding (no master)" : p.target.host + ":" + p.target.port,
    p.target === null ? "warn mono" : "mono");
  setText("proxy-listening", p.listening ? "yes" : "no", p.listening ? "ok" : "bad");
  setText("proxy-active", ps.active === undefined ? "–" : ps.active + " (" + ps.proxied + " proxied, " + ps.waiting + " waiting)");
  setText("proxy-total", ps.total === undefined ? "–" : ps.total + " (" + ps.refused + " refused, " + ps.held + " held)");
  setText("proxy-bytes", ps.bytesToUpstream === undefined ? "–" : bytes(ps.bytesToUpstream) + " ↑ / " + bytes(ps.bytesToClient) + " ↓");
  renderNodes(s);
  renderFailovers(s.failovers);
  var ev = $("events"); ev.textContent = "";
  var h = s.history.slice(-MAX_EVENTS).reverse();
  if (h.length === 0) ev.appendChild(el("li", "no events yet", "dim"));
  h.forEach(function (e) {
    var li = el("li");
    li.appendChild(el("span", clock(e.atWallMs), "t mono"));
    li.appendChild(el("span", e.kind, "k"));
    li.appendChild(el("span", e.message));
    ev.appendChild(li);
  });
}

function timed(url) {
  var ctl = new AbortController();
  var t = setTimeout(function () { ctl.abort(); }, FETCH_TIMEOUT_MS);
  return fetch(url, { cache: "no-store", signal: ctl.signal }).finally(function () { clearTimeout(t); });
}

function poll() {
  Promise.all([timed("status"), timed("readyz")]).then(function (rs) {
    if (!rs[0].ok) throw new Error("/status answered " + rs[0].status);
    return Promise.all([rs[0].json(), rs[1].text(), rs[1].ok]);
  }).then(function (v) {
    render(v[0], { ok: v[2], text: (v[2] ? "ready: " : "not ready: ") + v[1].trim() });
    lastOkMs = Date.now();
    document.body.classList.remove("stale");
    setText("updated", "updated " + clock(lastOkMs));
  }).catch(function (e) {
    document.body.classList.add("stale");
    setText("banner", "Cannot reach this node: " + (e && e.message ? e.message : e) +
      (lastOkMs === null ? "" : " (last update " + clock(lastOkMs) + ")"));
  }).finally(function () { setTimeout(poll, REFRESH_MS); });
}
poll();
`;

/** The whole page: one HTML document with its CSS and JS inline. */
export const STATUS_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>redis-hive</title>
<style>${STYLE}</style>
</head>
<body>
<header>
  <h1>redis-hive <small>node</small> <span id="self" class="mono">…</span></h1>
  <span id="role"></span>
  <span id="ready" class="dim">loading…</span>
  <span id="updated"></span>
</header>
<div id="banner"></div>
<div id="security" role="alert"></div>
<main>
  <section>
    <h2>Leader</h2>
    <div id="leader" class="big mono">…</div>
    <div id="leader-since" class="dim"></div>
  </section>
  <section>
    <h2>This node</h2>
    <dl>
      <dt>local redis</dt><dd id="redis-role">–</dd>
      <dt>eligible</dt><dd id="eligible">–</dd>
      <dt>write fence</dt><dd id="fence">–</dd>
      <dt>fenced</dt><dd id="fenced-total">–</dd>
      <dt>uptime</dt><dd id="uptime">–</dd>
      <dt>redis commands</dt><dd id="redis-cmds">–</dd>
    </dl>
  </section>
  <section>
    <h2>Elections</h2>
    <dl>
      <dt>elections</dt><dd id="elections">–</dd>
      <dt>leader changes</dt><dd id="leader-changes">–</dd>
      <dt>heartbeats sent</dt><dd id="hb-sent">–</dd>
      <dt>received / dropped</dt><dd><span id="hb-recv">–</span> / <span id="hb-drop">–</span></dd>
    </dl>
  </section>
  <section>
    <h2>Master proxy</h2>
    <dl>
      <dt>forwards to</dt><dd id="proxy-target">–</dd>
      <dt>listening</dt><dd id="proxy-listening">–</dd>
      <dt>open</dt><dd id="proxy-active">–</dd>
      <dt>accepted</dt><dd id="proxy-total">–</dd>
      <dt>bytes</dt><dd id="proxy-bytes">–</dd>
    </dl>
  </section>
  <section class="wide">
    <h2>Nodes <span id="node-count" class="dim"></span></h2>
    <table>
      <thead><tr><th>node</th><th>role</th><th>follows</th><th>last heard</th><th>redis</th>
        <th class="num">offset</th><th class="num">lag</th><th>dataset lineage</th></tr></thead>
      <tbody id="nodes"></tbody>
    </table>
  </section>
  <section class="half">
    <h2>Failovers</h2>
    <dl>
      <dt>count</dt><dd id="fo-count">–</dd>
      <dt>last</dt><dd id="fo-last">–</dd>
      <dt>mean</dt><dd id="fo-mean">–</dd>
    </dl>
    <div id="fo-bars" class="bars"></div>
  </section>
  <section class="half">
    <h2>Recent events</h2>
    <ul id="events"></ul>
  </section>
</main>
<script>${SCRIPT}</script>
</body>
</html>
`;
