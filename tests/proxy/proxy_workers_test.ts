/**
 * lib/proxy/proxy_workers.ts: the epoll engine's default thread count and its source. Pure, but
 * for the last test, which reads this machine's cgroup files (no socket, no process).
 */

import assert from "node:assert/strict";
import {
  hostProxyWorkerCount,
  MAX_EPOLL_WORKERS,
  proxyWorkerCount,
} from "../../lib/proxy/proxy_workers.ts";
import { readCgroupCpuLimit } from "../../lib/common/cgroup.ts";
import { resolveProxyOptions } from "../../lib/proxy/proxy_options.ts";

const limit = (cpus: number, source = `cgroup cpu.max ${cpus * 100000}/100000`) => () => ({
  cpus,
  source,
});

Deno.test("proxy workers: the flag wins, whatever the cgroup says", () => {
  assert.deepEqual(
    proxyWorkerCount({ flag: 3, cgroup: limit(1), hardwareConcurrency: 2 }),
    { workers: 3, source: "flag" },
  );
});

Deno.test("proxy workers: the cgroup CPU limit, rounded up, at least 1", () => {
  const at = (cpus: number, hardwareConcurrency = 8) =>
    proxyWorkerCount({ flag: null, cgroup: limit(cpus), hardwareConcurrency });
  assert.deepEqual(at(1.5), { workers: 2, source: "cgroup cpu.max 150000/100000" });
  assert.equal(at(0.5).workers, 1);
  assert.equal(at(0.01).workers, 1);
  assert.equal(at(1).workers, 1);
  assert.equal(at(2).workers, 2);
  assert.equal(at(4).workers, 4);
});

Deno.test("proxy workers: never more than the machine's CPUs, nor the most workers", () => {
  assert.deepEqual(
    proxyWorkerCount({ flag: null, cgroup: limit(4), hardwareConcurrency: 2 }),
    { workers: 2, source: "cgroup cpu.max 400000/100000 (capped at 2: 2 CPUs)" },
  );
  assert.deepEqual(
    proxyWorkerCount({ flag: null, cgroup: limit(64), hardwareConcurrency: 96 }),
    {
      workers: MAX_EPOLL_WORKERS,
      source: `cgroup cpu.max 6400000/100000 (capped at ${MAX_EPOLL_WORKERS}: the most workers)`,
    },
  );
});

Deno.test("proxy workers: no CPU limit: the machine's CPUs (capped), source cpus", () => {
  assert.deepEqual(
    proxyWorkerCount({ flag: null, cgroup: () => null, hardwareConcurrency: 2 }),
    { workers: 2, source: "cpus" },
  );
  assert.deepEqual(
    proxyWorkerCount({ flag: null, cgroup: () => null, hardwareConcurrency: 1 }),
    { workers: 1, source: "cpus" },
  );
  assert.equal(
    proxyWorkerCount({ flag: null, cgroup: () => null, hardwareConcurrency: 64 }).workers,
    MAX_EPOLL_WORKERS,
  );
  // A nonsense CPU count counts as 1.
  assert.equal(
    proxyWorkerCount({ flag: null, cgroup: () => null, hardwareConcurrency: 0 }).workers,
    1,
  );
});

Deno.test("proxy workers: an unreadable cgroup falls back to the CPUs and says why", () => {
  const r = proxyWorkerCount({
    flag: null,
    cgroup: () => {
      throw new Error('cpu.max: expected "<quota|max> <period>", got "garbage"');
    },
    hardwareConcurrency: 2,
  });
  assert.equal(r.workers, 2);
  assert.match(r.source, /^cpus \(cgroup unreadable: cpu\.max: expected/);
});

Deno.test("proxy workers: one default, this host's, for the hive and the engine alike", () => {
  const expected = proxyWorkerCount({
    flag: null,
    cgroup: () => readCgroupCpuLimit(),
    hardwareConcurrency: navigator.hardwareConcurrency,
  });
  assert.deepEqual(hostProxyWorkerCount(null), expected);
  assert.deepEqual(hostProxyWorkerCount(5), { workers: 5, source: "flag" });
  const bind = { host: "127.0.0.1", port: 0 };
  // The engine's default when `workers` is not given is the same count.
  assert.equal(resolveProxyOptions("test", { bind }, "epoll").workers, expected.workers);
  assert.equal(resolveProxyOptions("test", { bind, workers: 3 }, "epoll").workers, 3);
  assert.equal(resolveProxyOptions("test", { bind }, "deno").workers, 1);
});
