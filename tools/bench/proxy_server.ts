/**
 * Runs one master proxy (either engine, `--engine deno|epoll`, default deno) on its own, in its own process, for benchmarks (so the proxy does
 * not share an event loop with the benchmark client). Prints one JSON line
 * `{"listening":{"host":...,"port":...}}` on stdout once ready; exits cleanly on SIGINT/SIGTERM.
 *
 * @example
 * ```sh
 * deno run --allow-net tools/bench/proxy_server.ts --bind 127.0.1.41:7000 --target 127.0.1.40:6379
 * deno run --allow-net --allow-ffi tools/bench/proxy_server.ts --engine epoll --bind 127.0.1.44:7000
 * deno run --allow-net --allow-read --allow-write tools/bench/proxy_server.ts --bind 127.0.1.45:7000 \
 *   --target-socket /tmp/redis.sock     # forward to a redis's Unix socket
 * ```
 */

import { parseArgs } from "node:util";
import { PROXY_BUFFER_BYTES } from "../../lib/proxy/proxy_options.ts";
import {
  DEFAULT_PROXY_ENGINE,
  listenProxy,
  PROXY_ENGINES,
  type ProxyEngine,
} from "../../lib/proxy/proxy_engine.ts";

/** Parses `host:port` (IPv6 as `[addr]:port`); throws naming the flag on bad input. */
export function parseHostPort(flag: string, text: string): { host: string; port: number } {
  const m = /^\[?([^\[\]]+?)\]?:(\d{1,5})$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port >= 0 && port <= 65535)) {
    throw new Error(`--${flag}: expected HOST:PORT, got ${JSON.stringify(text)}`);
  }
  return { host: m[1] as string, port };
}

async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      bind: { type: "string" },
      target: { type: "string" },
      "target-socket": { type: "string" },
      "buffer-bytes": { type: "string", default: String(PROXY_BUFFER_BYTES) },
      "max-connections": { type: "string", default: "100000" },
      engine: { type: "string", default: DEFAULT_PROXY_ENGINE },
    },
    strict: true,
  });
  if (values.bind === undefined) throw new Error("--bind HOST:PORT is required");
  if (values.target !== undefined && values["target-socket"] !== undefined) {
    throw new Error("--target and --target-socket: give one of them");
  }
  const engine = values.engine as ProxyEngine;
  if (!PROXY_ENGINES.includes(engine)) {
    throw new Error(`--engine: one of ${PROXY_ENGINES.join(", ")}, got ${values.engine}`);
  }
  const proxy = await listenProxy({
    engine,
    bind: parseHostPort("bind", values.bind),
    target: values["target-socket"] !== undefined
      ? { path: values["target-socket"] }
      : values.target === undefined
      ? null
      : parseHostPort("target", values.target),
    bufferBytes: Number(values["buffer-bytes"]),
    maxConnections: Number(values["max-connections"]),
    onEvent: (event) => console.error(JSON.stringify(event)),
  });
  const stop = () => {
    proxy.close().then(() => Deno.exit(0));
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  console.log(JSON.stringify({ listening: proxy.address }));
}

if (import.meta.main) {
  try {
    await main(Deno.args);
  } catch (e) {
    console.error(`proxy_server: ${e instanceof Error ? e.message : String(e)}`);
    Deno.exit(2);
  }
}
