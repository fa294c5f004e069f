"""Group commit: writes per second and each caller's wait, many OS threads on one Redis.

The delivery worker's sender threads share their Redis writes through relay/group_commit.py
(one sender at a time), and so do ingest's webhooks (four senders). This measures the group
commit itself: threads that each write 200 bytes and wait for the answer, for a few
seconds, against a real redis-server with `appendfsync always` (every batch waits for a
disk flush). The comparison is the same threads each paying their own round trip on a
connection of their own (a pool as large as the threads). Rounds alternate; the figure is
the median of the per-round ratios.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from redis import BlockingConnectionPool, Redis

from bench.common import redis_server
from relay.group_commit import GroupCommit

ROUNDS = 3
SECONDS = 3.0
CONFIGS = ((16, 1), (64, 4))  # (threads, senders): the delivery worker's, ingest's
ITEM = b"x" * 200


def _run(threads: int, write: Callable[[], Any]) -> dict[str, float]:
    waits: list[float] = []
    stop = time.monotonic() + SECONDS

    def caller() -> None:
        mine = []
        while time.monotonic() < stop:
            started = time.perf_counter()
            write()
            mine.append(time.perf_counter() - started)
        waits.extend(mine)

    started = time.perf_counter()
    callers = [threading.Thread(target=caller) for _ in range(threads)]
    for thread in callers:
        thread.start()
    for thread in callers:
        thread.join()
    elapsed = time.perf_counter() - started
    waits.sort()
    return {
        "writes_per_second": round(len(waits) / elapsed),
        "p50_ms": round(waits[len(waits) // 2] * 1000, 2),
        "p99_ms": round(waits[int(len(waits) * 0.99)] * 1000, 2),
        "max_ms": round(waits[-1] * 1000, 1),
    }


def _grouped(redis: Redis, threads: int, senders: int) -> dict[str, float]:
    def run_batch(items: Any) -> list[Any]:
        pipe = redis.pipeline(transaction=False)
        for item in items:
            pipe.lpush("bench:group-commit", item)
        return pipe.execute()

    commit: GroupCommit[bytes, Any] = GroupCommit(
        run_batch, lambda: RuntimeError("interrupted"), senders=senders
    )
    return _run(threads, lambda: commit.submit(ITEM))


def _own_round_trips(url: str, threads: int) -> dict[str, float]:
    redis = Redis(connection_pool=BlockingConnectionPool.from_url(url, max_connections=threads))
    return _run(threads, lambda: redis.lpush("bench:group-commit", ITEM))


def measure(workdir: Path) -> dict[str, Any]:
    configs = {}
    with redis_server(workdir, fsync="always") as server:
        redis = Redis.from_url(server.url, max_connections=8)
        for threads, senders in CONFIGS:
            rounds = []
            for _ in range(ROUNDS):
                redis.delete("bench:group-commit")
                grouped = _grouped(redis, threads, senders)
                redis.delete("bench:group-commit")
                own = _own_round_trips(server.url, threads)
                rounds.append((grouped, own))
            ratios = [g["writes_per_second"] / o["writes_per_second"] for g, o in rounds]
            configs[f"{threads}/{senders}"] = {
                "threads": threads,
                "senders": senders,
                "grouped": [g for g, _ in rounds],
                "own_round_trips": [o for _, o in rounds],
                "ratio": round(statistics.median(ratios), 2),
            }
    return {"seconds": SECONDS, "redis_fsync": "always", "configs": configs}
