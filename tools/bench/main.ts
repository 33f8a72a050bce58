/**
 * Benchmark dispatcher: `deno task bench <name> [options]` runs one benchmark from
 * {@link BENCHMARKS}; `deno task bench` alone lists them. Each benchmark lives in its own
 * module exporting `main(args)`, loaded only when selected.
 *
 * @example
 * ```sh
 * deno task bench proxy --rounds 3
 * ```
 */

/** A benchmark module: runs with the arguments after its name. */
export interface BenchmarkModule {
  main(args: string[]): Promise<void>;
}

/** Every benchmark: name -> one-line description and lazy loader. Add a row to add one. */
export const BENCHMARKS: Record<string, { about: string; load: () => Promise<BenchmarkModule> }> = {
  proxy: {
    about: "redis-benchmark direct vs through the hive proxy vs HAProxy; proxy memory",
    load: () => import("./proxy.ts"),
  },
  failover: {
    about: "write unavailability and acked writes lost: redis crash, empty restart, node loss",
    load: () => import("./failover.ts"),
  },
  suspicions: {
    about:
      "false suspicions of a healthy leader under datagram loss (simulated): --failure-ms cost",
    load: () => import("./suspicions.ts"),
  },
  sentinel: {
    about: "sentinel-aware clients: throughput vs direct and the proxy; recovery after a crash",
    load: () => import("./sentinel.ts"),
  },
  memory: {
    about: "resident memory of every hive of a 3-node cluster in service: idle, under load, after",
    load: () => import("./memory.ts"),
  },
  rolling: {
    about: "write pause and acked writes lost across rolling restarts (graceful handoff)",
    load: () => import("./rolling.ts"),
  },
  flood: {
    about: "leader RSS, role and heartbeats under 10 000 junk/badly signed datagrams/s",
    load: () => import("./flood.ts"),
  },
};

function usage(): string {
  const rows = Object.entries(BENCHMARKS).map(([name, b]) => `  ${name.padEnd(10)} ${b.about}`);
  return `usage: deno task bench <benchmark> [options]\n\nbenchmarks:\n${rows.join("\n")}`;
}

if (import.meta.main) {
  const [name, ...rest] = Deno.args;
  const bench = name === undefined ? undefined : BENCHMARKS[name];
  if (bench === undefined) {
    console.error(name === undefined ? usage() : `unknown benchmark ${name}\n\n${usage()}`);
    Deno.exit(2);
  }
  await (await bench.load()).main(rest);
}
