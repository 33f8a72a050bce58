/**
 * The status page in a real headless Chromium (Debian's `chromium`, driven by `playwright-core`),
 * served by a real status server whose fake source changes under it: the page must show the
 * change by itself (polling), show a fenced leader and a security warning, flag a node it cannot
 * reach, make no request to another origin, and throw no script error. (`docs/status-page.png`
 * is taken from a real hive instead: `deno task status-screenshot`.)
 */

import { sleep } from "../../testing/wait.ts";
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import type { HiveStatus } from "../../lib/http/hive_status.ts";
import { STATUS_PAGE_REFRESH_MS } from "../../lib/http/status_page.ts";
import { startStatusServer } from "../../lib/http/status_server.ts";
import { INSECURE_WARNING } from "../../lib/hive/hive.ts";
import { withChromium } from "../../testing/chromium.ts";
import {
  FOLLOWER,
  followerStatus,
  LEADER,
  LEADER_OFFSET,
  leaderStatus,
  LINEAGE,
  OTHER,
  REDIS_PORT,
  REPL_ID,
} from "./hive_status_samples.ts";

const HOST = "127.0.4.31";
/** Generous bound for "the page eventually shows it" (several refresh ticks on a slow machine). */
const SHOW_TIMEOUT_MS = 20 * STATUS_PAGE_REFRESH_MS;

/** The fixture's leader, cut off from its group: fenced, refusing writes, and without a secret. */
function fencedInsecureLeader(): HiveStatus {
  const s = leaderStatus();
  s.fence = {
    ...s.fence,
    armed: true,
    fenced: true,
    reason: "hears 1 of 3 (itself included) within 150 ms; needs 2",
    needed: 2,
    peerSetSize: 3,
    applied: "refusing",
    fencedForMs: 2_100,
    fencedTotalMs: 2_350,
  };
  s.election.fences = 2;
  s.security = { authenticated: false, warnings: [INSECURE_WARNING] };
  return s;
}

/** The fixture's follower after 127.0.4.11 was lost and 127.0.4.13 took over. */
function afterFailover(): HiveStatus {
  const s = followerStatus();
  const now = Date.now();
  s.leader = OTHER;
  s.leaderSinceMs = now - 42_000;
  s.election.leaderChanges = 4;
  s.election.elections = 3;
  s.redis.target = { kind: "follow", host: OTHER, port: REDIS_PORT, expectRunId: "run-o" };
  s.redis.observation = {
    ...s.redis.observation!,
    masterHost: OTHER,
    offset: LEADER_OFFSET + 90_000,
  };
  s.redis.offset = LEADER_OFFSET + 90_000;
  s.proxy.target = { host: OTHER, port: REDIS_PORT };
  s.peers = [
    {
      address: LEADER,
      role: "leader",
      leader: LEADER,
      live: false,
      lastHeardAgoMs: 42_300,
      inPeerSet: true,
      redis: {
        up: true,
        role: "master",
        runId: "run-l",
        replId: REPL_ID,
        offset: LEADER_OFFSET,
        linkUp: false,
        loading: false,
        lineage: LINEAGE,
      },
    },
    {
      address: OTHER,
      role: "leader",
      leader: OTHER,
      live: true,
      lastHeardAgoMs: 60,
      inPeerSet: true,
      redis: {
        up: true,
        role: "master",
        runId: "run-o",
        replId: REPL_ID,
        offset: LEADER_OFFSET + 92_048,
        linkUp: false,
        loading: false,
        lineage: LINEAGE,
      },
    },
  ];
  s.failovers = {
    bucketsMs: [100, 250, 500, 1000, 2000, 5000, 10_000],
    bucketCounts: [0, 1, 3, 3, 4, 4, 4],
    count: 4,
    sumMs: 3_620,
    lastMs: 720,
  };
  s.history = [
    ["election-started", "election started: no leader heard at startup"],
    ["elected", "elected over 127.0.4.12, 127.0.4.13"],
    ["role-changed", `starting -> follower (leader ${LEADER}): heard the leader`],
    ["lineage-changed", `dataset lineage ${LEADER}@${LINEAGE.bornMs}: synced from the leader`],
    ["role-changed", `follower -> starting: leader ${LEADER} not heard for 1000 ms`],
    ["election-started", `election started: leader ${LEADER} lost`],
    ["role-changed", `candidate -> follower (leader ${OTHER}): a better candidate won`],
  ].map(([kind, message], i) => ({
    atWallMs: now - (7 - i) * 6_000,
    kind: kind as HiveStatus["history"][number]["kind"],
    message: message!,
  }));
  return s;
}

Deno.test("status page: a real Chromium shows the hive and follows a leader change live", async () => {
  let status: HiveStatus = followerStatus();
  let reachable = true;
  const server = await startStatusServer({
    host: HOST,
    port: 0,
    hive: {
      healthy: () => true,
      status: () => {
        if (!reachable) throw new Error("node unreachable (test)");
        return status;
      },
    },
  });
  const base = `http://${HOST}:${server.address.port}`;
  try {
    await withChromium((page) =>
      checkPage(page, base, (next) => status = next, (up) => {
        reachable = up;
      })
    );
  } finally {
    await server.close();
  }
});

/** Drives the page through a leader change, a fenced insecure leader and an unreachable node. */
async function checkPage(
  page: Page,
  base: string,
  setStatus: (s: HiveStatus) => void,
  setReachable: (up: boolean) => void,
): Promise<void> {
  const foreign: string[] = [];
  const errors: string[] = [];
  page.on("request", (r) => {
    if (!r.url().startsWith(base + "/")) foreign.push(r.url());
  });
  page.on("pageerror", (e) => errors.push(String(e)));
  // Chromium logs every non-2xx fetch as an error: the 500 of an unreachable node, the 503 of
  // /readyz while a fenced leader is not ready. Those are the page's input, not its errors.
  const expected = /50[03] \((Internal Server Error|Service Unavailable)\)/;
  page.on("console", (m) => {
    if (m.type() === "error" && !expected.test(m.text())) {
      errors.push(m.text());
    }
  });
  await page.goto(`${base}/`);
  const textOf = (selector: string) => page.locator(selector).innerText();
  // Conditions are polled through locators: the page's CSP forbids eval (waitForFunction).
  const waitUntil = async (what: string, check: () => Promise<boolean>) => {
    const deadline = Date.now() + SHOW_TIMEOUT_MS;
    while (!await check()) {
      if (Date.now() > deadline) throw new Error(`page never showed ${what}`);
      await sleep(100);
    }
  };
  const waitText = (selector: string, want: string) =>
    waitUntil(`${selector} = ${want}`, async () => await textOf(selector) === want);
  const isStale = async () =>
    /\bstale\b/.test(await page.locator("body").getAttribute("class") ?? "");
  const leaderRow = () => page.locator("#nodes tr.is-leader").getAttribute("data-address");

  // First render: this node, its leader, every node of the hive, readiness.
  await waitText("#leader", LEADER);
  assert.equal(await textOf("#self"), FOLLOWER);
  assert.equal((await textOf("#role")).toLowerCase(), "follower");
  assert.match(await textOf("#ready"), /^ready: follower: replicating from 127\.0\.4\.11/);
  const rows = page.locator("#nodes tr");
  assert.equal(await rows.count(), 3);
  const addresses = [];
  for (let i = 0; i < 3; i++) addresses.push(await rows.nth(i).getAttribute("data-address"));
  assert.deepEqual(addresses, [LEADER, FOLLOWER, OTHER]);
  assert.equal(await leaderRow(), LEADER);
  assert.equal(await page.locator("#nodes tr.is-self").getAttribute("data-address"), FOLLOWER);
  // The third node is 2000 bytes behind the leader's reported offset.
  assert.match(await page.locator(`#nodes tr[data-address="${OTHER}"]`).innerText(), /2\.0 KiB/);
  assert.equal(await textOf("#fo-count"), "3");

  // The leader changes under the page: it must show it after a refresh tick, no reload.
  setStatus(afterFailover());
  await waitText("#leader", OTHER);
  await waitUntil(`leader row ${OTHER}`, async () => await leaderRow() === OTHER);
  assert.equal(await leaderRow(), OTHER);
  assert.equal(await textOf("#fo-count"), "4");
  assert.equal(await textOf("#leader-changes"), "4");
  assert.match(await textOf("#ready"), /^ready: follower: replicating from 127\.0\.4\.13/);
  const lost = page.locator(`#nodes tr[data-address="${LEADER}"] td:nth-child(4)`);
  assert.equal(await lost.getAttribute("class"), "bad");
  assert.match(await lost.innerText(), /42\.\d s ago/);
  assert.match(await page.locator("#events li").first().innerText(), /a better candidate won/);

  // A leader cut off from its group, running without a secret: the fence rows and the
  // security banner say so.
  assert.equal(await textOf("#fence"), "not armed (auto)");
  assert.equal(await page.locator("#security").isVisible(), false);
  setStatus(fencedInsecureLeader());
  await waitText("#fence", "FENCED: hears 1 of 3 (itself included) within 150 ms; needs 2");
  assert.equal(await page.locator("#fence").getAttribute("class"), "bad");
  assert.equal(await textOf("#fenced-total"), "2.35 s in 2 fences");
  assert.equal(await page.locator("#security").isVisible(), true);
  assert.equal(await textOf("#security"), `Warning: ${INSECURE_WARNING}`);

  // An unreachable node is flagged, and the page recovers by itself.
  setReachable(false);
  await waitUntil("the stale banner", isStale);
  assert.match(await textOf("#banner"), /Cannot reach this node: \/status answered 500/);
  setReachable(true);
  await waitUntil("recovery", async () => !await isStale());

  const shot = await page.screenshot({ fullPage: true });
  assert.ok(shot.byteLength > 0, "the page renders to a screenshot");
  assert.deepEqual(foreign, [], "the page requests nothing outside its own node");
  assert.deepEqual(errors, [], "no script error");
}
