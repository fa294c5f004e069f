"""Fixed-window counters per client, kept in Redis so every process and restart agrees.

Used where a client may only try so often: wrong admin tokens, wrong webhook secrets, the
public storefront endpoint. One script call both counts and reports, so a burst of
concurrent attempts cannot slip past the limit between a check and a count (each attempt
takes its slot atomically; one that turns out fine may give it back with `release`).

    limit = RateLimit(redis, "admin-login", limit=20, window_seconds=60)
    verdict = limit.hit(client_address)
    if not verdict.allowed:
        answer 429 with Retry-After: verdict.retry_after
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from redis import Redis

# INCR, start the window on the first hit, and return the count with the seconds left.
_HIT = """
local count = redis.call('incr', KEYS[1])
if count == 1 then redis.call('expire', KEYS[1], ARGV[1]) end
local ttl = redis.call('ttl', KEYS[1])
if ttl < 0 then
  redis.call('expire', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""
_RELEASE = """
local count = tonumber(redis.call('get', KEYS[1]) or '0')
if count > 0 then redis.call('decr', KEYS[1]) end
return count
"""


@dataclass(frozen=True)
class Verdict:
    count: int  # attempts in this window, this one included
    allowed: bool
    retry_after: int  # seconds until the window ends


class RateLimit:
    def __init__(self, redis: Redis, name: str, limit: int, window_seconds: int):
        self.redis = redis
        self.name = name
        self.limit = limit
        self.window_seconds = window_seconds
        self._hit = redis.register_script(_HIT)
        self._release = redis.register_script(_RELEASE)

    def key(self, client: str) -> str:
        # A digest, not the address itself: Redis keys show up in dumps and `redis-cli keys`.
        digest = hashlib.sha256(client.encode("utf-8", "replace")).hexdigest()[:24]
        return f"relay:ratelimit:{self.name}:{digest}"

    def hit(self, client: str) -> Verdict:
        """Count one attempt of `client`; allowed while the count is within the limit."""
        count, ttl = self._hit(keys=[self.key(client)], args=[self.window_seconds])
        count, ttl = int(count), max(int(ttl), 1)
        return Verdict(count, count <= self.limit, ttl)

    def release(self, client: str) -> None:
        """Give back the slot of an attempt that turned out fine."""
        self._release(keys=[self.key(client)])

    def peek(self, client: str) -> Verdict:
        """The current count, without counting (for pages that only show it)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(self.key(client))
        pipe.ttl(self.key(client))
        raw, ttl = pipe.execute()
        count = int(raw or 0)
        return Verdict(count, count < self.limit, max(int(ttl), 1))
