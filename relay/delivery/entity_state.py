"""Where the entity rules keep their memory: one Redis hash per API entity, with expiry,
and a lock per entity so two workers never decide about the same order at once."""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterable, Iterator
from typing import Any

from redis import Redis

from relay.runtime.processes import owner_dead, owner_tag

# How long the relay remembers an entity after its last change. Refunds and cancellations
# can come months after an order; a forgotten order is announced `placed` again, which the
# API treats as a repeat (orders are idempotent by orderId).
TTL_SECONDS = {
    "order": 400 * 86400,
    "product": 400 * 86400,
    "checkout": 30 * 86400,
    "once": 30 * 86400,
    # Customers change rarely: forgotten, a subscriber is created again (a merge, which
    # leaves Sequenzy's values as they are) instead of updated.
    "subscriber": 400 * 86400,
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
        self.update_many({entity: fields})

    # --- batches: one round trip for many entities (each write costs an fsync) ----------

    def load_many(self, entities: Iterable[str]) -> dict[str, dict[str, str]]:
        names = sorted(set(entities))
        pipe = self.redis.pipeline(transaction=False)
        for entity in names:
            pipe.hgetall(_key(entity))
        return {
            entity: {k.decode(): v.decode() for k, v in raw.items()}
            for entity, raw in zip(names, pipe.execute(), strict=True)
        }

    def update_many(self, updates: dict[str, dict[str, str]], pipe: Any = None) -> None:
        """Write fields of many entities, in the caller's pipeline when given."""
        own = pipe is None
        pipe = self.redis.pipeline(transaction=False) if own else pipe
        for entity, fields in updates.items():
            if fields:
                kind = entity.split(":", 1)[0]
                pipe.hset(_key(entity), mapping=fields)
                pipe.expire(_key(entity), TTL_SECONDS.get(kind, 30 * 86400))
        if own and pipe.command_stack:
            pipe.execute()

    def acquire_many(self, names: Iterable[str]) -> dict[str, str]:
        """Take the free locks among `names` at once; returns name -> token of those taken.
        A lock whose holder died on this host (a killed worker) is taken over."""
        names = sorted(set(names))
        token = f"{owner_tag()}:{secrets.token_hex(6)}"
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.set(f"relay:lock:{name}", token, nx=True, px=self.lock_ttl_ms)
        taken = {n: token for n, ok in zip(names, pipe.execute(), strict=True) if ok}
        for name in names:
            if name not in taken:
                holder = self.redis.get(f"relay:lock:{name}")
                if holder is not None and owner_dead(holder.decode()):
                    self._release(keys=[f"relay:lock:{name}"], args=[holder])
                    if self.redis.set(f"relay:lock:{name}", token, nx=True, px=self.lock_ttl_ms):
                        taken[name] = token
        return taken

    def release_many(self, tokens: dict[str, str], pipe: Any = None) -> None:
        own = pipe is None
        pipe = self.redis.pipeline(transaction=False) if own else pipe
        for name, token in tokens.items():
            self._release(keys=[f"relay:lock:{name}"], args=[token], client=pipe)
        if own and pipe.command_stack:
            pipe.execute()

    @contextlib.contextmanager
    def lock(self, name: str, wait_seconds: float = 5.0) -> Iterator[None]:
        """Hold `relay:lock:<name>`, waiting for it up to `wait_seconds`. It expires by
        itself if its holder dies; a holder that died on this host (a killed worker) is
        noticed at once and its lock taken over (by `acquire_many`)."""
        deadline = time.monotonic() + wait_seconds
        while not (taken := self.acquire_many([name])):
            if time.monotonic() > deadline:
                raise LockTimeout(name)
            time.sleep(0.01)
        try:
            yield
        finally:
            self.release_many(taken)
