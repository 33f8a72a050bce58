/**
 * lib/common/cgroup.ts: parsing cgroup v2's cpu.max and v1's cfs quota/period (pure), and the
 * order in which the files are read (an injected reader). No real cgroup needed.
 */

import assert from "node:assert/strict";
import {
  CGROUP_V2_CPU_MAX,
  parseCfsQuota,
  parseCpuMax,
  readCgroupCpuLimit,
} from "../../lib/common/cgroup.ts";

Deno.test("cgroup: cpu.max: a quota, or max (no limit); anything else is an error", () => {
  assert.deepEqual(parseCpuMax("150000 100000\n"), { quotaUs: 150000, periodUs: 100000 });
  assert.deepEqual(parseCpuMax("50000 100000"), { quotaUs: 50000, periodUs: 100000 });
  assert.equal(parseCpuMax("max 100000\n"), null);
  for (
    const bad of ["", "max", "150000", "0 100000", "-1 100000", "1.5 100000", "max 0", "a b c"]
  ) {
    assert.throws(() => parseCpuMax(bad), /cpu\.max/, JSON.stringify(bad));
  }
});

Deno.test("cgroup: v1 cfs quota and period: -1 is no limit; anything else is an error", () => {
  assert.deepEqual(parseCfsQuota("200000\n", "100000\n"), { quotaUs: 200000, periodUs: 100000 });
  assert.equal(parseCfsQuota("-1\n", "100000\n"), null);
  assert.throws(() => parseCfsQuota("0", "100000"), /cfs_quota_us/);
  assert.throws(() => parseCfsQuota("-2", "100000"), /cfs_quota_us/);
  assert.throws(() => parseCfsQuota("100000", "0"), /cfs_period_us/);
  assert.throws(() => parseCfsQuota("100000", ""), /cfs_period_us/);
});

Deno.test("cgroup: v2 first, then v1 (cpu, then cpu,cpuacct); none: no limit", () => {
  const reader = (files: Record<string, string>) => (path: string) => files[path] ?? null;
  assert.deepEqual(
    readCgroupCpuLimit(reader({
      [CGROUP_V2_CPU_MAX]: "150000 100000\n",
      "/sys/fs/cgroup/cpu/cpu.cfs_quota_us": "400000\n",
      "/sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000\n",
    })),
    { cpus: 1.5, source: "cgroup cpu.max 150000/100000" },
  );
  // v2 present and unlimited: v1 files are not consulted.
  assert.equal(
    readCgroupCpuLimit(reader({
      [CGROUP_V2_CPU_MAX]: "max 100000\n",
      "/sys/fs/cgroup/cpu/cpu.cfs_quota_us": "400000\n",
      "/sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000\n",
    })),
    null,
  );
  assert.deepEqual(
    readCgroupCpuLimit(reader({
      "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "50000\n",
      "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n",
    })),
    { cpus: 0.5, source: "cgroup cpu.cfs_quota_us/cpu.cfs_period_us 50000/100000" },
  );
  assert.equal(
    readCgroupCpuLimit(reader({
      "/sys/fs/cgroup/cpu/cpu.cfs_quota_us": "-1\n",
      "/sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000\n",
    })),
    null,
  );
  assert.equal(readCgroupCpuLimit(reader({})), null);
  assert.throws(() => readCgroupCpuLimit(reader({ [CGROUP_V2_CPU_MAX]: "garbage" })), /cpu\.max/);
});

Deno.test("cgroup: this machine's files read without error", () => {
  const limit = readCgroupCpuLimit();
  if (limit !== null) assert.ok(limit.cpus > 0 && limit.source.startsWith("cgroup "));
});
