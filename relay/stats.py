"""What each platform has sent lately, kept in Redis so it survives restarts and every
process sees it: counts per outcome and when the last genuine event arrived.

A silent WooCommerce store is usually a webhook that WooCommerce disabled after failures;
`last_seen` is how the admin page and /metrics show it.

    relay:stats:<platform>   hash: stored, duplicate, ignored, rejected, last_seen,
                             last_rejected, last_rejected_code
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from redis import Redis


def key(platform: str) -> str:
    """Ingest's accept script writes `stored` and `last_seen` itself (relay/event_queue.py)."""
    return f"relay:stats:{platform}"


def record(redis: Redis, platform: str, outcome: str, code: str = "") -> None:
    """duplicate | ignored | rejected (with the error code); best effort."""
    pipe = redis.pipeline(transaction=False)
    pipe.hincrby(key(platform), outcome, 1)
    now = repr(time.time())
    if outcome == "rejected":
        pipe.hset(key(platform), mapping={"last_rejected": now, "last_rejected_code": code})
    else:
        pipe.hset(key(platform), "last_seen", now)
    pipe.execute()


@dataclass(frozen=True)
class PlatformStats:
    platform: str
    accepted: int = 0
    duplicate: int = 0
    ignored: int = 0
    rejected: int = 0
    last_seen: float | None = None
    last_rejected: float | None = None
    last_rejected_code: str = ""


def read(redis: Redis, platforms: list[str]) -> list[PlatformStats]:
    pipe = redis.pipeline(transaction=False)
    for platform in platforms:
        pipe.hgetall(key(platform))
    out = []
    for platform, raw in zip(platforms, pipe.execute(), strict=True):
        data = {k.decode(): v.decode() for k, v in raw.items()}
        stored, duplicate = int(data.get("stored", 0)), int(data.get("duplicate", 0))
        out.append(
            PlatformStats(
                platform=platform,
                accepted=max(stored - duplicate, 0),
                duplicate=duplicate,
                ignored=int(data.get("ignored", 0)),
                rejected=int(data.get("rejected", 0)),
                last_seen=float(data["last_seen"]) if "last_seen" in data else None,
                last_rejected=float(data["last_rejected"]) if "last_rejected" in data else None,
                last_rejected_code=data.get("last_rejected_code", ""),
            )
        )
    return out
