"""Where the entity rules keep their memory: one Redis hash per API entity, with expiry,
and a lock per entity so two workers never decide about the same order at once.

A lock's value names its holder's lease (relay/delivery/leases.py): `<owner>|<token>`. A lock
whose holder's lease is gone (a worker killed on any host) is taken over at once; otherwise it
expires by itself after its TTL.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterable, Iterator
from typing import Any

from redis import Redis

from relay.runtime.processes import owner_tag

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
# Take a free lock, or one whose holder's lease is gone; 0 when a live holder has it.
_ACQUIRE = """
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
local holder = redis.call('get', KEYS[1])
if not holder then return 0 end
local owner = string.match(holder, '^(.+)|[^|]*$')
if owner and redis.call('exists', 'relay:lease:' .. owner) == 0 then
  redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
return 0
"""


# A sender's first round trip: take the lock (as _ACQUIRE), write the attempt marks of the
# entities it is about to send for, and read their state. Marks are the entity rules'
# `attempting()` fields, which are safe before the decision: `modified` only grows (the
# newest seen stays), and `placing` on an order. ARGV: token, lock TTL (ms), then per state
# key KEYS[1 + i]: its TTL (s), the attempt's modified time or '', '1' to mark placing.
_TAKE_AND_MARK = """
local taken = 0
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  taken = 1
else
  local holder = redis.call('get', KEYS[1])
  if holder then
    local owner = string.match(holder, '^(.+)|[^|]*$')
    if owner and redis.call('exists', 'relay:lease:' .. owner) == 0 then
      redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
      taken = 2
    end
  end
end
if taken == 0 then return {0} end
local out = {taken}
for i = 2, #KEYS do
  local base = 3 + (i - 2) * 3
  local modified, placing = ARGV[base + 1], ARGV[base + 2]
  local wrote = false
  if modified ~= '' then
    local current = redis.call('hget', KEYS[i], 'modified')
    if not current or tonumber(modified) > tonumber(current) then
      redis.call('hset', KEYS[i], 'modified', modified)
    end
    wrote = true
  end
  if placing == '1' then
    redis.call('hset', KEYS[i], 'placing', '1')
    wrote = true
  end
  if wrote then redis.call('expire', KEYS[i], ARGV[base]) end
  out[#out + 1] = redis.call('hgetall', KEYS[i])
end
return out
"""


class LockTimeout(Exception):
    """Another worker holds the entity too long; the caller retries a little later."""


def state_key(entity: str) -> str:
    return f"relay:state:{entity}"


def ttl_for(entity: str) -> int:
    return TTL_SECONDS.get(entity.split(":", 1)[0], 30 * 86400)


def lock_key(name: str) -> str:
    return f"relay:lock:{name}"


class EntityStore:
    def __init__(self, redis: Redis, lock_ttl_seconds: float = 60.0, owner: str | None = None):
        self.redis = redis
        self.lock_ttl_ms = int(lock_ttl_seconds * 1000)
        # The lease the locks name (the worker's); without one, locks are never taken over
        # from this holder, only expire.
        self.owner = owner or owner_tag()
        self._release = self.release = redis.register_script(_RELEASE)
        self._acquire = redis.register_script(_ACQUIRE)
        self.take_and_mark = redis.register_script(_TAKE_AND_MARK)

    def load(self, entity: str) -> dict[str, str]:
        raw = self.redis.hgetall(state_key(entity))
        return {k.decode(): v.decode() for k, v in raw.items()}

    def update(self, entity: str, fields: dict[str, str]) -> None:
        self.update_many({entity: fields})

    # --- batches: one round trip for many entities (each write costs an fsync) ----------

    def load_many(self, entities: Iterable[str]) -> dict[str, dict[str, str]]:
        names = sorted(set(entities))
        pipe = self.redis.pipeline(transaction=False)
        for entity in names:
            pipe.hgetall(state_key(entity))
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
                pipe.hset(state_key(entity), mapping=fields)
                pipe.expire(state_key(entity), ttl_for(entity))
        if own and pipe.command_stack:
            pipe.execute()

    def new_token(self) -> str:
        return f"{self.owner}|{secrets.token_hex(6)}"

    def acquire_script(self, name: str, token: str, pipe: Any) -> None:
        """Queue the take of one lock in the caller's pipeline (its answer: 0 busy, 1 taken,
        2 taken over from a dead holder)."""
        self._acquire(keys=[lock_key(name)], args=[token, self.lock_ttl_ms], client=pipe)

    def release_script(self, name: str, token: str, pipe: Any) -> None:
        self._release(keys=[lock_key(name)], args=[token], client=pipe)

    def acquire_many(self, names: Iterable[str]) -> dict[str, str]:
        """Take the free locks among `names` at once; returns name -> token of those taken.
        A lock whose holder's lease is gone (a killed worker, on any host) is taken over."""
        names = sorted(set(names))
        token = self.new_token()
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            self.acquire_script(name, token, pipe)
        return {n: token for n, ok in zip(names, pipe.execute(), strict=True) if ok}

    def release_many(self, tokens: dict[str, str], pipe: Any = None) -> None:
        own = pipe is None
        pipe = self.redis.pipeline(transaction=False) if own else pipe
        for name, token in tokens.items():
            self.release_script(name, token, pipe)
        if own and pipe.command_stack:
            pipe.execute()

    @contextlib.contextmanager
    def lock(self, name: str, wait_seconds: float = 5.0) -> Iterator[None]:
        """Hold `relay:lock:<name>`, waiting for it up to `wait_seconds`. It expires by
        itself if its holder dies; a holder whose lease is gone is taken over at once."""
        deadline = time.monotonic() + wait_seconds
        while not (taken := self.acquire_many([name])):
            if time.monotonic() > deadline:
                raise LockTimeout(name)
            time.sleep(0.01)
        try:
            yield
        finally:
            self.release_many(taken)
