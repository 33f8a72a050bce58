/**
 * How a {@link RedisTarget} is enforced on the local redis, written once against a small
 * {@link EnforceSession} so the real (ioredis) controller and the in-memory one share it.
 *
 * The algorithm: observe first and issue only what differs (so a repeated call issues
 * nothing); once per connection, `CONFIG SET replica-announce-ip` (and `masterauth` when a
 * password is set); for `follow` with an `expectRunId`, read the target's `run_id` first and
 * never point at a redis whose run_id differs or that cannot be read (park instead).
 *
 * @example
 * ```ts
 * import { enforceRedisTarget } from "./redis_enforce.ts";
 * declare const session: EnforceSession; // a connection to the local redis
 * const settings = { announceIp: "127.0.0.12", password: null, ownPort: 6379 };
 * const result = await enforceRedisTarget(session, { kind: "leader" }, settings);
 * if (result.ok) console.log(result.commands); // [] or ["REPLICAOF NO ONE"]
 * ```
 */

import { PARKED_MASTER, type RedisObservation, type RedisTarget } from "./redis_state.ts";

/** Why an enforce did not reach its target. */
export type EnforceFailure =
  /** The local redis could not be observed (down, hung, closed controller). */
  | "redis-down"
  /** `follow`: the target redis answered with another run_id than `expectRunId`. */
  | "guard-mismatch"
  /** `follow`: the target redis's run_id could not be read (unreachable, timeout, error). */
  | "guard-unreachable"
  /** The target itself is invalid (bad host or port, or this redis's own address). */
  | "bad-target"
  /** The local redis rejected or did not answer a REPLICAOF. */
  | "command-failed";

/** The outcome of one enforce: the commands issued to the local redis, for logging. */
export type EnforceResult =
  | {
    ok: true;
    /** Commands issued, in order (passwords masked); empty when already in the target state. */
    commands: string[];
    /** Non-fatal problems, e.g. a CONFIG SET the redis rejected. */
    warnings: string[];
  }
  | {
    ok: false;
    reason: EnforceFailure;
    /** A human-readable explanation. */
    detail: string;
    /** Commands issued anyway (e.g. the park after a guard mismatch). */
    commands: string[];
    warnings: string[];
  };

/**
 * What `enforce` answers once a controller (real or in memory) is closed.
 *
 * @example
 * ```ts
 * closedControllerResult().ok; // false
 * ```
 */
export function closedControllerResult(): EnforceResult {
  return {
    ok: false,
    reason: "redis-down",
    detail: "the controller is closed",
    commands: [],
    warnings: [],
  };
}

/** The outcome of one command on the local redis. */
export type CommandOutcome =
  | { ok: true }
  /** `rejected`: redis answered with an error. `unavailable`: timeout or no connection. */
  | { ok: false; kind: "rejected" | "unavailable"; message: string };

/** The outcome of reading another redis's `run_id`. */
export type RunIdReading = { ok: true; runId: string } | { ok: false; message: string };

/** What {@link enforceRedisTarget} needs from a connection to the local redis. */
export interface EnforceSession {
  /** Observes the local redis; never throws (down gives `up: false`). */
  observe(): Promise<RedisObservation>;
  /** Runs one command on the local redis; never throws. */
  run(args: readonly string[]): Promise<CommandOutcome>;
  /** Reads `run_id` from `INFO server` of the redis at host:port; never throws. */
  readRunId(host: string, port: number): Promise<RunIdReading>;
  /** True when the per-connection settings were not applied on the current connection yet. */
  needsConnectionSetup(): boolean;
  /** Records that the per-connection settings are applied on the current connection. */
  markConnectionSetup(): void;
}

/** Settings {@link enforceRedisTarget} applies once per connection, and the local address. */
export interface EnforceSettings {
  /** `replica-announce-ip` for the local redis (this node's announced address). */
  announceIp: string;
  /** `masterauth` for the local redis, or null for none. */
  password: string | null;
  /** The local redis's port as peers see it (with `announceIp`: refuses to follow itself). */
  ownPort: number;
}

/** True when the observation shows a replica configured to replicate from host:port. */
export function isReplicaOf(obs: RedisObservation, host: string, port: number): boolean {
  return obs.up && obs.role === "replica" && obs.masterHost === host && obs.masterPort === port;
}

/**
 * True when the observed redis already has the role `target` asks for (the follow guard
 * aside: it is checked on every enforce).
 *
 * @example
 * ```ts
 * import { PARKED_MASTER, REDIS_DOWN } from "./redis_state.ts";
 * const obs = { ...REDIS_DOWN, up: true, role: "replica" as const,
 *   masterHost: PARKED_MASTER.host, masterPort: PARKED_MASTER.port };
 * inTargetState(obs, { kind: "parked" }); // true
 * ```
 */
export function inTargetState(obs: RedisObservation, target: RedisTarget): boolean {
  switch (target.kind) {
    case "leader":
      return obs.up && obs.role === "master";
    case "parked":
      return isReplicaOf(obs, PARKED_MASTER.host, PARKED_MASTER.port);
    case "follow":
      return isReplicaOf(obs, target.host, target.port);
  }
}

/** The REPLICAOF arguments that put a redis in the role `target` asks for. */
export function replicaofArgs(target: RedisTarget): string[] {
  switch (target.kind) {
    case "leader":
      return ["REPLICAOF", "NO", "ONE"];
    case "parked":
      return ["REPLICAOF", PARKED_MASTER.host, String(PARKED_MASTER.port)];
    case "follow":
      return ["REPLICAOF", target.host, String(target.port)];
  }
}

/** The problem with a follow target, or null when it is usable. */
export function followTargetProblem(
  target: { host: string; port: number },
  settings: EnforceSettings,
): string | null {
  if (typeof target.host !== "string" || target.host === "" || /\s/.test(target.host)) {
    return `follow target host ${JSON.stringify(target.host)} is not an address`;
  }
  if (!Number.isInteger(target.port) || target.port < 1 || target.port > 65535) {
    return `follow target port ${target.port} is not a TCP port`;
  }
  if (target.host === settings.announceIp && target.port === settings.ownPort) {
    return `follow target ${target.host}:${target.port} is this redis itself`;
  }
  return null;
}

/** Renders a command for logs, masking the value of `CONFIG SET masterauth`. */
export function describeCommand(args: readonly string[]): string {
  const masked = args.length >= 4 && args[0]?.toUpperCase() === "CONFIG" &&
      args[2]?.toLowerCase() === "masterauth"
    ? [...args.slice(0, 3), "<redacted>"]
    : args;
  return masked.join(" ");
}

/**
 * Enforces `target` on the local redis through `session`. Idempotent; never throws.
 *
 * @example
 * ```ts
 * declare const session: EnforceSession; // a connection to the local redis
 * await enforceRedisTarget(session,
 *   { kind: "follow", host: "127.0.0.11", port: 6379, expectRunId: "3f2a..." },
 *   { announceIp: "127.0.0.12", password: null, ownPort: 6379 });
 * ```
 */
export async function enforceRedisTarget(
  session: EnforceSession,
  target: RedisTarget,
  settings: EnforceSettings,
): Promise<EnforceResult> {
  const commands: string[] = [];
  const warnings: string[] = [];
  const fail = (reason: EnforceFailure, detail: string): EnforceResult => ({
    ok: false,
    reason,
    detail,
    commands,
    warnings,
  });
  const issue = async (args: readonly string[]): Promise<CommandOutcome> => {
    commands.push(describeCommand(args));
    return await session.run(args);
  };

  if (target.kind === "follow") {
    const problem = followTargetProblem(target, settings);
    if (problem !== null) return fail("bad-target", problem);
  }
  const obs = await session.observe();
  if (!obs.up) return fail("redis-down", "the local redis did not answer INFO");

  if (session.needsConnectionSetup()) {
    const setup: string[][] = [["CONFIG", "SET", "replica-announce-ip", settings.announceIp]];
    if (settings.password !== null) setup.push(["CONFIG", "SET", "masterauth", settings.password]);
    let done = true;
    for (const args of setup) {
      const outcome = await issue(args);
      if (!outcome.ok) {
        warnings.push(`${describeCommand(args)}: ${outcome.kind}: ${outcome.message}`);
        // A rejection (e.g. a renamed CONFIG) will not change on retry; a timeout might.
        if (outcome.kind === "unavailable") done = false;
      }
    }
    if (done) session.markConnectionSetup();
  }

  if (target.kind === "follow" && target.expectRunId !== null) {
    const reading = await session.readRunId(target.host, target.port);
    const guardFailure: EnforceResult | null = reading.ok
      ? reading.runId === target.expectRunId ? null : fail(
        "guard-mismatch",
        `${target.host}:${target.port} has run_id ${reading.runId}, expected ${target.expectRunId}`,
      )
      : fail("guard-unreachable", `${target.host}:${target.port}: ${reading.message}`);
    if (guardFailure !== null) {
      if (!inTargetState(obs, { kind: "parked" })) {
        const parked = await issue(replicaofArgs({ kind: "parked" }));
        if (!parked.ok && !guardFailure.ok) {
          guardFailure.detail += `; parking failed too (${parked.kind}: ${parked.message})`;
        }
      }
      return guardFailure;
    }
  }

  if (inTargetState(obs, target)) return { ok: true, commands, warnings };
  const args = replicaofArgs(target);
  const outcome = await issue(args);
  if (!outcome.ok) {
    return fail("command-failed", `${args.join(" ")}: ${outcome.kind}: ${outcome.message}`);
  }
  return { ok: true, commands, warnings };
}
