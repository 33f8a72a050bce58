/**
 * Random heartbeat secrets for local clusters, the dev cluster, chaos pods and benchmarks: the
 * hive refuses to start without one (see docs/security.md), and a fresh one per cluster keeps
 * two clusters on one machine from ever accepting each other's heartbeats.
 *
 * @example
 * ```ts
 * import { randomSecret } from "./secret.ts";
 * const secret = randomSecret(); // 64 hex characters
 * ```
 */

/** Bytes of randomness in a {@link randomSecret} (256 bits, the HMAC-SHA256 key size). */
export const SECRET_BYTES = 32;

/**
 * A fresh random secret: {@link SECRET_BYTES} random bytes as lowercase hex.
 *
 * @example
 * ```ts
 * randomSecret().length; // 64
 * ```
 */
export function randomSecret(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(SECRET_BYTES));
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Returns the path of a secret file in `dir` (`hive-secret`), creating it with a
 * {@link randomSecret} (mode 0600) the first time: every pod of one chaos session shares it.
 *
 * @example
 * ```ts
 * const path = await sharedSecretFile("/tmp/session"); // "/tmp/session/hive-secret"
 * ```
 */
export async function sharedSecretFile(dir: string): Promise<string> {
  const path = `${dir}/hive-secret`;
  try {
    await Deno.writeTextFile(path, randomSecret() + "\n", { createNew: true, mode: 0o600 });
  } catch (e) {
    if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
  }
  return path;
}
