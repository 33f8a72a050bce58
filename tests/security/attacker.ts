/**
 * The adversary of the security tests: a UDP endpoint on a loopback address that forges,
 * captures and replays heartbeats, and records whatever the hives send it (reflection).
 *
 * @example
 * ```ts
 * import { Attacker, forgedLeader } from "./attacker.ts";
 * const attacker = await Attacker.bind("127.0.13.59", 17379);
 * await attacker.sendTo({ host: "127.0.13.51", port: 17379 }, await attacker.encode(forgedLeader("127.0.13.59", 1), null));
 * await attacker.close();
 * ```
 */

import dgram from "node:dgram";
import { createCodec } from "../../lib/election/codec.ts";
import { type Heartbeat, HEARTBEAT_VERSION, UNKNOWN_REDIS } from "../../lib/election/heartbeat.ts";

/** A datagram the attacker received, and from where. */
export interface Captured {
  bytes: Uint8Array;
  host: string;
  port: number;
  atMs: number;
}

/** A leader claim built to win everywhere: the oldest lineage, a huge group, leading forever. */
export function forgedLeader(
  from: string,
  seq: number,
  opts: { runId?: string | null; electionPort?: number; redisPort?: number } = {},
): Heartbeat {
  return {
    version: HEARTBEAT_VERSION,
    from,
    electionPort: opts.electionPort ?? 17379,
    redisPort: opts.redisPort ?? 16379,
    bootId: "00000000000000ee",
    seq,
    sentMs: Date.now(),
    role: "leader",
    leader: from,
    electionStartMs: null,
    leaderSinceMs: 1,
    groupSize: 1024,
    handoffTo: null,
    redis: {
      ...UNKNOWN_REDIS,
      up: true,
      role: "master",
      runId: opts.runId === undefined ? "e".repeat(40) : opts.runId,
      replId: "e".repeat(40),
      offset: 1_000_000_000,
      lineage: { bornMs: 1, bornBy: from },
    },
  };
}

/** A plain follower heartbeat of `from` (for crowding the peer table). */
export function forgedFollower(from: string, seq: number, electionPort = 17379): Heartbeat {
  return {
    version: HEARTBEAT_VERSION,
    from,
    electionPort,
    redisPort: 16379,
    bootId: "00000000000000ef",
    seq,
    sentMs: Date.now(),
    role: "follower",
    leader: null,
    electionStartMs: null,
    leaderSinceMs: null,
    groupSize: 0,
    handoffTo: null,
    redis: UNKNOWN_REDIS,
  };
}

/** One UDP endpoint of the attacker. */
export class Attacker {
  readonly captured: Captured[] = [];
  private constructor(private readonly socket: dgram.Socket, readonly host: string) {
    socket.on("message", (msg: Uint8Array, rinfo: dgram.RemoteInfo) => {
      this.captured.push({
        bytes: new Uint8Array(msg),
        host: rinfo.address,
        port: rinfo.port,
        atMs: Date.now(),
      });
    });
  }

  /** Binds `host:port` (port 0: any). */
  static async bind(host: string, port = 0): Promise<Attacker> {
    const socket = dgram.createSocket("udp4");
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(port, host, () => resolve());
    });
    return new Attacker(socket, host);
  }

  /** Encodes `hb` unsigned (`secret` null) or signed with `secret`. */
  async encode(hb: Heartbeat, secret: string | null): Promise<Uint8Array> {
    return await (await createCodec(secret)).encode(hb);
  }

  /** Sends one datagram. */
  sendTo(to: { host: string; port: number }, bytes: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) =>
      this.socket.send(bytes, to.port, to.host, (e) => e ? reject(e) : resolve())
    );
  }

  /** Closes the socket. */
  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}

/** Sleeps `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
