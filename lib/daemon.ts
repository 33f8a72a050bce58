/**
 * Placeholder of the hive runtime (it will be replaced by the real one): logs that the runtime
 * is missing and exits with status 1, so that `main.ts` runs end to end meanwhile.
 *
 * @example
 * ```ts
 * import { runHive } from "./daemon.ts";
 * import { parseConfig } from "./config.ts";
 * await runHive(parseConfig(["--peers", "127.0.0.11"], {}, Deno.readTextFileSync));
 * ```
 */

import type { Config } from "./config.ts";
import { getLogger } from "./log.ts";

/**
 * Runs the hive with `config` until the process is stopped. Placeholder: exits with status 1.
 *
 * @example
 * ```ts
 * import { runHive } from "./daemon.ts";
 * import { parseConfig } from "./config.ts";
 * await runHive(parseConfig(["--service", "redis-hive"], {}, Deno.readTextFileSync));
 * ```
 */
export function runHive(config: Config): Promise<void> {
  getLogger("daemon").fatal("runtime not implemented yet", { announceIp: config.announceIp });
  Deno.exit(1);
}
