/**
 * `deno task status-screenshot`: takes `docs/status-page.png` from a real hive. It starts a local
 * 3-node hive (real redis-server and hive processes on 127.0.43.21 to .23, a random secret, the
 * fence armed), cuts the leader off from its group by stopping (SIGSTOP) the two other hives,
 * as tests/e2e/fence_test.ts does, waits until the leader is fenced and refusing writes, and
 * photographs the leader's status page in a real headless Chromium (testing/chromium.ts) once
 * it shows the fence. Before the cut it writes {@link KEYS_BEFORE_CUT} keys through the leader's
 * proxy (so offsets and proxy bytes are not zero), and once fenced it tries one more write,
 * which redis refuses (`-NOREPLICAS`). Then it resumes the two hives and stops everything.
 *
 * Takes about 10 s; it binds loopback addresses and runs real processes (on a shared machine,
 * under the heavy-run lock).
 *
 * @example
 * ```sh
 * deno task status-screenshot                   # writes docs/status-page.png
 * deno task status-screenshot --out /tmp/x.png  # elsewhere
 * ```
 */

import { parseArgs } from "node:util";
import type { HiveStatus } from "../lib/http/hive_status.ts";
import { withChromium } from "../testing/chromium.ts";
import { LocalCluster, type LocalNode } from "../testing/local_cluster.ts";
import { RespConnection, RespReplyError } from "../testing/resp_connection.ts";
import { eventually } from "../testing/wait.ts";

/** The nodes' addresses. */
export const SCREENSHOT_ADDRESSES: readonly string[] = [
  "127.0.43.21",
  "127.0.43.22",
  "127.0.43.23",
];
/** Where the screenshot goes without `--out`. */
export const DEFAULT_SCREENSHOT_PATH = new URL("../docs/status-page.png", import.meta.url)
  .pathname;
/** Bound of each wait (the leader fenced, the page showing it). */
export const SCREENSHOT_WAIT_MS = 20_000;
/** Keys written through the leader's proxy before the cut. */
export const KEYS_BEFORE_CUT = 1_000;
/** How long the leader stays fenced before the photo, so the fenced time reads in seconds. */
export const FENCED_BEFORE_PHOTO_MS = 2_000;

/** One SET per key through `node`'s proxy, on one connection: the replies ("OK" or the error). */
async function writeThrough(node: LocalNode, keys: string[]): Promise<string[]> {
  const conn = await RespConnection.open(node.address, node.ports.proxy);
  const replies: string[] = [];
  try {
    for (const key of keys) {
      try {
        replies.push(String(await conn.command(["SET", key, `value of ${key}`])));
      } catch (e) {
        if (!(e instanceof RespReplyError)) throw e;
        replies.push(e.message);
      }
    }
  } finally {
    conn.close();
  }
  return replies;
}

/** Waits (bounded) until `leader` is fenced and its redis refuses writes; returns that status. */
function refusing(leader: LocalNode): Promise<HiveStatus> {
  return eventually("the leader is fenced and refuses writes", async () => {
    const s = await leader.status();
    return s.fence.fenced && s.fence.applied === "refusing" &&
        s.fence.fencedForMs >= FENCED_BEFORE_PHOTO_MS
      ? s
      : undefined;
  }, { timeoutMs: SCREENSHOT_WAIT_MS });
}

/** Photographs the status page of `node` once it shows the fence; writes the PNG to `out`. */
async function photograph(node: LocalNode, out: string): Promise<void> {
  await withChromium(async (page) => {
    await page.goto(`http://${node.address}:${node.ports.http}/`);
    await eventually("the page shows the fence", async () => {
      return (await page.locator("#fence").innerText()).startsWith("FENCED") || undefined;
    }, { timeoutMs: SCREENSHOT_WAIT_MS, intervalMs: 100 });
    await Deno.writeFile(out, await page.screenshot({ fullPage: true }));
  });
}

/** Runs the cluster, fences its leader and takes the screenshot to `out`. */
export async function takeStatusScreenshot(out: string): Promise<void> {
  const opts = { addresses: SCREENSHOT_ADDRESSES, discovery: { kind: "static" as const } };
  await LocalCluster.run(opts, async (cluster) => {
    const first = await cluster.waitForSettled();
    const leader = cluster.node(first.leader);
    const keys = Array.from({ length: KEYS_BEFORE_CUT }, (_, i) => `key:${i}`);
    const failed = (await writeThrough(leader, keys)).find((r) => r !== "OK");
    if (failed !== undefined) throw new Error(`a write before the cut failed: ${failed}`);
    const settled = await cluster.waitForSettled({ leader: leader.address }); // replicas caught up
    const others = settled.followers.map((a) => cluster.node(a).hive!.pid);
    for (const pid of others) Deno.kill(pid, "SIGSTOP");
    try {
      const s = await refusing(leader);
      console.log(`${leader.address}: ${s.fence.reason} (fenced ${s.fence.fencedForMs} ms)`);
      console.log(`a write through its proxy now: ${await writeThrough(leader, ["after-cut"])}`);
      await photograph(leader, out);
    } finally {
      for (const pid of others) Deno.kill(pid, "SIGCONT");
    }
  });
}

if (import.meta.main) {
  const { values } = parseArgs({ args: Deno.args, options: { out: { type: "string" } } });
  const out = values.out ?? DEFAULT_SCREENSHOT_PATH;
  await takeStatusScreenshot(out);
  console.log(`wrote ${out}`);
}
