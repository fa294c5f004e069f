"""What delivery tells the sync side, through Redis (delivery never talks to a store):

relay:sync:wanted:<platform>   sorted set: product id -> when to fetch it. Planning adds
                               a product whose variation arrived while the relay does not
                               know the product's variant list (the variation is held);
                               the sync side fetches the product whole and pushes it
                               (relay/sync/completion.py)
relay:sync:found               hash "<platform>:<kind>" -> count: entities of reconciled
                               events that delivery really sent (the entity rules let
                               them through: webhooks had missed them), for
                               relay_reconcile_found_total{platform,kind}
relay:sync:found:<run>         the same, per reconcile run, for the admin page

And what the workers' scheduling and /metrics share with the sync side:

relay:sync:<platform>:reconcile:slot:<n>   claimed (SET NX) by the one worker that starts
                               reconcile run n (n = time // RELAY_RECONCILE_INTERVAL)
relay:sync:<platform>:completion:claim     a completion job is queued or running
relay:sync:webhooks            hash "<platform>" -> JSON: the store's webhooks as the last
                               check found them (relay/sync/webhooks.py)
relay:sync:webhooks:reenabled  hash "<platform>" -> webhooks the relay re-enabled, ever
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from redis import Redis

from relay.events import RawEvent
from relay.store_api import ORIGIN_HEADER, ORIGIN_RECONCILE, RUN_HEADER

FOUND = "relay:sync:found"
WEBHOOK_HEALTH = "relay:sync:webhooks"
WEBHOOKS_REENABLED = "relay:sync:webhooks:reenabled"
COMPLETION_CLAIM_SECONDS = 300  # a job that died holding it: the claim expires
RUN_FOUND_TTL_SECONDS = 30 * 86400
WANTED_MAX = 10_000  # a bound, should a store never answer


def wanted_key(platform: str) -> str:
    return f"relay:sync:wanted:{platform}"


def run_found_key(run_id: str) -> str:
    return f"relay:sync:found:{run_id}"


class WantedProducts:
    """Products whose variant list the relay wants from the store, for the platforms whose
    store API is configured (for the others nobody would fetch them)."""

    def __init__(self, redis: Redis, platforms: Iterable[str]):
        self.redis = redis
        self.platforms = frozenset(platforms)

    def want(self, platform: str, product_ids: Iterable[str]) -> int:
        ids = sorted(set(product_ids))
        if platform not in self.platforms or not ids:
            return 0
        key = wanted_key(platform)
        if self.redis.zcard(key) >= WANTED_MAX:
            return 0
        # NX: a product already wanted keeps its time (and its backoff).
        return int(self.redis.zadd(key, dict.fromkeys(ids, time.time()), nx=True))


def found_kind(entity: str) -> str:
    """order, checkout, subscriber, product: the entity's kind ("order:7" -> "order")."""
    return entity.split(":", 1)[0]


def reconciled(event: RawEvent | dict[str, Any]) -> tuple[str, str] | None:
    """(platform, run id) of an event a reconcile run fetched, else None. Takes a RawEvent or
    the reference a product write keeps of its event (relay/delivery/product_outbox.py)."""
    if isinstance(event, RawEvent):
        if event.header(ORIGIN_HEADER) != ORIGIN_RECONCILE:
            return None
        return event.platform, event.header(RUN_HEADER) or ""
    if event.get("origin") != ORIGIN_RECONCILE:
        return None
    return str(event.get("platform", "")), str(event.get("run") or "")


def count_found(pipe: Any, platform: str, run_id: str, kind: str, count: int = 1) -> None:
    """In the caller's pipeline: `count` entities of a reconcile run were really sent."""
    pipe.hincrby(FOUND, f"{platform}:{kind}", count)
    if run_id:
        pipe.hincrby(run_found_key(run_id), kind, count)
        pipe.expire(run_found_key(run_id), RUN_FOUND_TTL_SECONDS)


def found_totals(redis: Redis) -> dict[tuple[str, str], int]:
    """(platform, kind) -> entities found by reconcile runs, ever."""
    out: dict[tuple[str, str], int] = {}
    for field_name, value in redis.hgetall(FOUND).items():
        platform, _, kind = field_name.decode().partition(":")
        out[(platform, kind)] = int(value)
    return out


def run_found(redis: Redis, run_id: str) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in redis.hgetall(run_found_key(run_id)).items()}


# --- scheduling (the workers claim, relay/jobs.py runs) --------------------------------------


def reconcile_slot_key(platform: str, slot: int) -> str:
    return f"relay:sync:{platform}:reconcile:slot:{slot}"


def claim_reconcile(redis: Redis, platform: str, interval: int, now: float | None = None) -> int:
    """The slot number when this caller won this interval's reconcile run, else 0: exactly
    one claim per interval whatever the number of workers asking (SET NX)."""
    if interval <= 0:
        return 0
    slot = int((time.time() if now is None else now) // interval)
    won = redis.set(reconcile_slot_key(platform, slot), "1", nx=True, ex=max(interval * 3, 60))
    return slot if won else 0


def completion_claim_key(platform: str) -> str:
    return f"relay:sync:{platform}:completion:claim"


def claim_completion(redis: Redis, platform: str, now: float | None = None) -> bool:
    """True when products are wanted now and no completion job is queued or running."""
    if not redis.zcount(wanted_key(platform), "-inf", time.time() if now is None else now):
        return False
    return bool(
        redis.set(completion_claim_key(platform), "1", nx=True, ex=COMPLETION_CLAIM_SECONDS)
    )


def reenabled_totals(redis: Redis) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in redis.hgetall(WEBHOOKS_REENABLED).items()}


def webhook_health(redis: Redis) -> dict[str, dict[str, Any]]:
    """Platform -> the last webhook check's findings (relay/sync/webhooks.py Health)."""
    import json

    out = {}
    for platform, raw in redis.hgetall(WEBHOOK_HEALTH).items():
        try:
            out[platform.decode()] = json.loads(raw)
        except ValueError:
            continue
    return out
