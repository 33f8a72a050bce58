/**
 * The adversary of the security tests: a UDP endpoint on a loopback address that forges,
 * captures and replays heartbeats, and records whatever the hives send it (reflection).
 *
 * @example
 * ```ts
 * import { Attacker } from "./attacker.ts";
 * import { forgedLeaderHeartbeat as forgedLeader } from "../../testing/election_samples.ts";
 * const attacker = await Attacker.bind("127.0.13.59", 17379);
 * await attacker.sendTo({ host: "127.0.13.51", port: 17379 }, await attacker.encode(forgedLeader("127.0.13.59", 1), null));
 * await attacker.close();
 * ```
 */

import dgram from "node:dgram";
import { createCodec } from "../../lib/election/codec.ts";
import type { Heartbeat } from "../../lib/election/heartbeat.ts";
import { sampleHeartbeat } from "../../testing/election_samples.ts";

/** A datagram the attacker received, and from where. */
export interface Captured {
  bytes: Uint8Array;
  host: string;
  port: number;
  atMs: number;
}

/** A plain follower heartbeat of `from` (for crowding the peer table). */
export function forgedFollower(from: string, seq: number, electionPort = 17379): Heartbeat {
  return sampleHeartbeat(from, seq, {
    electionPort,
    redisPort: 16379,
    bootId: "00000000000000ef",
    sentMs: Date.now(),
  });
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
