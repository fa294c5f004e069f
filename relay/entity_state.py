"""Where the entity rules keep their memory: one Redis hash per API entity, with expiry,
and a lock per entity so two workers never decide about the same order at once."""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterator

from redis import Redis

from relay.processes import owner_dead, owner_tag

# How long the relay remembers an entity after its last change. Refunds and cancellations
# can come months after an order; a forgotten order is announced `placed` again, which the
# API treats as a repeat (orders are idempotent by orderId).
TTL_SECONDS = {
    "order": 400 * 86400,
    "product": 400 * 86400,
    "checkout": 30 * 86400,
    "once": 30 * 86400,
}
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class LockTimeout(Exception):
    """Another worker holds the entity too long; the caller retries a little later."""


def _key(entity: str) -> str:
    return f"relay:state:{entity}"


class EntityStore:
    def __init__(self, redis: Redis, lock_ttl_seconds: float = 60.0):
        self.redis = redis
        self.lock_ttl_ms = int(lock_ttl_seconds * 1000)
        self._release = redis.register_script(_RELEASE)

    def load(self, entity: str) -> dict[str, str]:
        raw = self.redis.hgetall(_key(entity))
        return {k.decode(): v.decode() for k, v in raw.items()}

    def update(self, entity: str, fields: dict[str, str]) -> None:
        if not fields:
            return
        kind = entity.split(":", 1)[0]
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(_key(entity), mapping=fields)
        pipe.expire(_key(entity), TTL_SECONDS.get(kind, 30 * 86400))
        pipe.execute()

    @contextlib.contextmanager
    def lock(self, name: str, wait_seconds: float = 5.0) -> Iterator[None]:
        """Hold `relay:lock:<name>`. It expires by itself if its holder dies; a holder that
        died on this host (a killed worker) is noticed at once and its lock taken over."""
        key, token = f"relay:lock:{name}", f"{owner_tag()}:{secrets.token_hex(6)}"
        deadline = time.monotonic() + wait_seconds
        while not self.redis.set(key, token, nx=True, px=self.lock_ttl_ms):
            holder = self.redis.get(key)
            if holder is not None and owner_dead(holder.decode()):
                self._release(keys=[key], args=[holder])
                continue
            if time.monotonic() > deadline:
                raise LockTimeout(name)
            time.sleep(0.01)
        try:
            yield
        finally:
            self._release(keys=[key], args=[token])
