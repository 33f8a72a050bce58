"""A redis-py Sentinel client writing keys in a loop, for tests and benchmarks of the hive's
Sentinel endpoint (testing/sentinel_clients.ts runs it with /usr/bin/python3, Debian's
python3-redis).

Usage: sentinel_writer.py MASTER_NAME PREFIX INTERVAL_MS MAX_SECONDS HOST:PORT [HOST:PORT ...]

It asks the sentinels for the master (redis.sentinel.Sentinel.master_for), then SETs
PREFIX:0, PREFIX:1, ... (each to its own name) one after the other, pausing INTERVAL_MS between two, and prints
`ack KEY MS HOST:PORT` for every acknowledged write (MS: wall-clock milliseconds of the
acknowledgement; HOST:PORT: the master it was written to)
and `err ERRORTYPE` for every failed attempt (the same key is tried again). It stops when its
standard input closes or after MAX_SECONDS.
"""

import select
import sys
import time

from redis.sentinel import Sentinel

RETRY_PAUSE_S = 0.01


def main() -> None:
    name, prefix, interval_ms, max_seconds = sys.argv[1:5]
    sentinels = []
    for hp in sys.argv[5:]:
        host, port = hp.rsplit(":", 1)
        sentinels.append((host, int(port)))
    sentinel = Sentinel(sentinels, socket_timeout=0.5, socket_connect_timeout=0.5)
    master = sentinel.master_for(name, socket_timeout=0.5, socket_connect_timeout=0.5)
    deadline = time.monotonic() + float(max_seconds)
    interval = int(interval_ms) / 1000.0
    i = 0
    print("ready", flush=True)
    while time.monotonic() < deadline:
        readable, _, _ = select.select([sys.stdin], [], [], 0)
        if readable and sys.stdin.read(1) == "":
            break
        key = f"{prefix}:{i}"
        try:
            master.set(key, key)
            acked_ms = time.time() * 1000
            host, port = master.connection_pool.get_master_address()
            print(f"ack {key} {acked_ms:.3f} {host}:{port}", flush=True)
            i += 1
            time.sleep(interval)
        except Exception as e:  # noqa: BLE001 - every failure is retried, and reported
            print(f"err {type(e).__name__}", flush=True)
            time.sleep(RETRY_PAUSE_S)


if __name__ == "__main__":
    main()
