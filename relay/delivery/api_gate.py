"""Rate limiting as a shared gate, not a per-event backoff.

A 429 from the Commerce API (or a 503 that says when to come back) is about the API, not the
event: the gate pauses every send of this worker, and of every other worker on the same
Redis, for what the API asked (`Retry-After`, `retry-after-ms` or `X-RateLimit-Reset`), or,
for a 429 without it, for a backoff that grows with jitter (1 s, 2 s, 4 s … 30 s). A 503
without a time, a 500, a timeout are failures of the attempt: retried on the event's own
schedule (relay/delivery/processor.py). The requests that were refused wait in their
place and go again when the gate opens; they are not failed attempts.

It also finds the API's limit instead of hammering it (AIMD): each refusal halves how many
requests this worker keeps in flight, each success adds one back, up to
RELAY_DELIVERY_CONCURRENCY.

    relay:api:paused-until   epoch seconds until which every worker waits (expires with it)
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable

from redis import Redis, RedisError

log = logging.getLogger("relay.worker")
PAUSED_UNTIL = "relay:api:paused-until"
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 30.0
JITTER = 0.2

# Extend the shared pause, never shorten it.
_PAUSE = """
local current = tonumber(redis.call('get', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then
  redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 1
"""


def is_rate_limit(status: int | None, retry_after: float | None) -> bool:
    return status == 429 or (status == 503 and retry_after is not None)


class ApiGate:
    def __init__(
        self,
        redis: Redis,
        concurrency: int,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ):
        self.redis = redis
        self.concurrency = concurrency
        self.clock = clock
        self.rng = rng or random.Random()
        self._limit = float(concurrency)
        self._until = 0.0  # epoch seconds
        self._refusals = 0  # in a row, for the backoff without Retry-After
        self._lock = threading.Lock()
        self._pause = redis.register_script(_PAUSE)

    @property
    def limit(self) -> int:
        """Requests this worker may keep in flight now."""
        return max(1, int(self._limit))

    def paused_for(self) -> float:
        return max(0.0, self._until - self.clock())

    def refresh(self) -> None:
        """Learn of a pause another worker was told of (the dispatcher asks a few times a
        second)."""
        try:
            raw = self.redis.get(PAUSED_UNTIL)
        except RedisError:
            return
        if raw is not None:
            with self._lock:
                self._until = max(self._until, float(raw))

    def refused(self, retry_after: float | None) -> float:
        """The API said slow down: pause everyone, halve the concurrency; returns the pause."""
        with self._lock:
            self._refusals += 1
            self._limit = max(1.0, self._limit / 2)
            if retry_after is not None:
                pause = max(retry_after, 0.0)
            else:
                nominal = min(BACKOFF_BASE_SECONDS * 2 ** (self._refusals - 1), BACKOFF_MAX_SECONDS)
                pause = nominal * self.rng.uniform(1 - JITTER, 1 + JITTER)
            until = self.clock() + pause
            longer = until > self._until
            self._until = max(self._until, until)
        if longer:
            log.warning(
                "Commerce API rate limit: pausing",
                extra={"retry_in": round(pause, 2), "status": 429},
            )
            # This worker pauses all the same if Redis fails; the others learn of it themselves.
            with contextlib.suppress(RedisError):
                self._pause(keys=[PAUSED_UNTIL], args=[repr(until), max(int(pause * 1000), 1)])
        return pause

    def succeeded(self) -> None:
        with self._lock:
            self._refusals = 0
            if self._limit < self.concurrency:
                self._limit = min(float(self.concurrency), self._limit + 1)
