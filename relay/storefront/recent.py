"""The last few storefront requests, for the admin page: a capped list in Redis, each with
its outcome, the product and the email masked (`a***@example.com`: never a full address).

    relay:storefront:recent   list, newest first, at most KEEP entries (JSON)

Written best effort after each answer that got past the address limit (a flood stopped by
that limit writes nothing more).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

from redis import Redis

KEY = "relay:storefront:recent"
KEEP = 20
MAX_SHOWN = 120  # characters of a product id or masked address kept


def masked(email: str | None) -> str:
    """`ann@example.com` -> `a***@example.com`; anything else -> `***`."""
    if not email:
        return ""
    local, at, domain = email.strip().rpartition("@")
    if not at or not local or not domain:
        return "***"
    return f"{local[0]}***@{domain}"[:MAX_SHOWN]


@dataclass(frozen=True)
class Recent:
    at: float
    outcome: str
    email: str  # masked
    product_id: str = ""
    variant_id: str = ""


class RecentRequests:
    def __init__(self, redis: Redis, keep: int = KEEP):
        self.redis = redis
        self.keep = keep

    def add(
        self,
        outcome: str,
        email: str | None,
        product_id: str | None,
        variant_id: str | None,
        at: float | None = None,
    ) -> None:
        entry = Recent(
            at=time.time() if at is None else at,
            outcome=outcome,
            email=masked(email),
            product_id=(product_id or "")[:MAX_SHOWN],
            variant_id=(variant_id or "")[:MAX_SHOWN],
        )
        pipe = self.redis.pipeline(transaction=True)
        pipe.lpush(KEY, json.dumps(asdict(entry)))
        pipe.ltrim(KEY, 0, self.keep - 1)
        pipe.execute()

    def latest(self, limit: int = KEEP) -> list[Recent]:
        return [Recent(**json.loads(raw)) for raw in self.redis.lrange(KEY, 0, limit - 1)]
