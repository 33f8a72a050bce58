/**
 * The redis-hive command: parses the configuration (flags, then environment, then defaults),
 * sets up logging and runs the hive.
 *
 * Exit status: 0 after `--help`; {@link exitCodeForConfigError} (2) on a bad flag or environment
 * value, with `redis-hive: <message>` on stderr naming the flag (also for `--proxy-engine epoll`
 * where that engine cannot run); otherwise whatever the runtime decides.
 *
 * @example
 * ```sh
 * deno run --allow-net --allow-env --allow-read --allow-write --allow-sys --allow-ffi main.ts \
 *   --peers 127.0.0.11,127.0.0.12
 * ```
 */

import { ConfigError, exitCodeForConfigError, formatHelp, parseConfig } from "./lib/hive/config.ts";
import { setupLogging } from "./lib/hive/log.ts";
import {
  chooseProxyEngine,
  currentProxyPlatform,
  ProxyEngineUnavailableError,
} from "./lib/proxy/proxy_engine.ts";
import { runHive } from "./lib/hive/hive.ts";

/**
 * Runs the command with the process's arguments and environment.
 *
 * @example
 * ```ts
 * import { main } from "./main.ts";
 * await main(); // parses Deno.args, logs to stdout, runs until stopped
 * ```
 */
export async function main(): Promise<void> {
  let config;
  let proxyEngine;
  try {
    config = parseConfig(
      Deno.args,
      Deno.env.toObject(),
      Deno.readTextFileSync,
      Deno.stdout.isTerminal(),
    );
    // The engine is chosen with the flags, so `--proxy-engine epoll` that cannot run here
    // exits like any bad flag, before anything starts.
    proxyEngine = config.help
      ? undefined
      : chooseProxyEngine(config.proxyEngine, currentProxyPlatform());
  } catch (error) {
    if (!(error instanceof ConfigError || error instanceof ProxyEngineUnavailableError)) {
      throw error;
    }
    console.error(`redis-hive: ${error.message}`);
    Deno.exit(exitCodeForConfigError);
  }
  if (config.help) {
    console.log(formatHelp().trimEnd());
    Deno.exit(0);
  }
  setupLogging({
    level: config.logLevel,
    format: config.logFormat,
    color: Deno.stdout.isTerminal() && !Deno.noColor,
  });
  await runHive(config, { proxyEngine });
}

if (import.meta.main) await main();
