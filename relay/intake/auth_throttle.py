"""Clients that keep failing webhook authentication are refused for a while, unchecked.

Every wrong signature or token counts against its client (`request.remote_addr`, the
proxy's `X-Forwarded-For` under RELAY_TRUST_PROXY=yes) in a fixed window shared through
Redis (relay/rate_limits.py), so every web process and restart agrees on the count. Past
`LIMIT` failures in a window the client is answered 429 until the window ends, without its
requests being read or checked.

A genuine webhook pays nothing for this: the check is a lookup in this process's own
"blocked until" map, fed by the counts that failures return, and only a failure writes to
Redis. When Redis is down a failure is not counted, and answers stay what they were.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from redis import Redis, RedisError

from relay.rate_limits import RateLimit

log = logging.getLogger("relay.ingest")
# A store whose webhook has a wrong secret fails a few times before the platform gives up
# on it (WooCommerce disables a webhook after 5 failures in a row); a guesser tries far more.
LIMIT = 60
WINDOW_SECONDS = 60
# Blocked clients remembered by one process; beyond it, the oldest are forgotten (a client
# forgotten early is counted again by Redis, and blocked again at its next failure).
MAX_BLOCKED = 10_000


class AuthThrottle:
    def __init__(
        self,
        redis: Redis,
        limit: int = LIMIT,
        window_seconds: int = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._failures = RateLimit(redis, "webhook-auth", limit, window_seconds)
        self._clock = clock
        self._blocked: dict[str, float] = {}  # client -> until (this process's clock)

    def retry_after(self, client: str) -> int | None:
        """Whole seconds until `client` may try again, or None when it is not blocked."""
        until = self._blocked.get(client)
        if until is None:
            return None
        left = until - self._clock()
        if left <= 0:
            del self._blocked[client]
            return None
        return math.ceil(left)

    def failed(self, client: str) -> None:
        """Count one failed authentication of `client` (best effort)."""
        try:
            verdict = self._failures.hit(client)
        except RedisError:
            return  # uncounted; the answer (401) does not change
        if verdict.allowed:
            return
        if client not in self._blocked:
            log.warning(
                "authentication failures: client blocked",
                extra={
                    "remote": client,
                    "code": "too_many_failures",
                    "retry_in": verdict.retry_after,
                },
            )
        self._block(client, self._clock() + verdict.retry_after)

    def _block(self, client: str, until: float) -> None:
        self._blocked.pop(client, None)  # re-inserted last: the dict stays oldest first
        if len(self._blocked) >= MAX_BLOCKED:
            now = self._clock()
            for stale in [c for c, t in self._blocked.items() if t <= now]:
                del self._blocked[stale]
            while len(self._blocked) >= MAX_BLOCKED:
                del self._blocked[next(iter(self._blocked))]
        self._blocked[client] = until
