"""Product batching: product writes wait in an outbox and go out together, up to 100 per
`POST /api/v1/products`.

    worker ── put_many() ──▶ relay:outbox:products (hash: product id -> newest write)
                                   │ flush when 100 wait, when nothing else is queued,
                                   │ or when the oldest has waited a second
                                   ▼
    flush job ── take(batch id) ──▶ relay:batch:<id> ──▶ API, 100 per request

Writes to the same product coalesce (the newer snapshot wins), so a burst of updates to one
product costs one request. A lone update is flushed at once: the queue is empty behind it.
A flush job names its batch before it takes it, so a worker killed mid-flush leaves a batch
that the re-run of the same job finds and finishes.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from redis import Redis

OUTBOX = "relay:outbox:products"
SINCE = "relay:outbox:products:since"  # when the oldest waiting write arrived
FLUSH_PENDING = "relay:outbox:products:flush-pending"  # a flush job is queued
SAFETY_SCHEDULED = "relay:outbox:products:safety"  # a delayed flush is scheduled
BATCH_SIZE = 100  # the API's limit per request
MAX_WAIT_SECONDS = 1.0

_PUT = """
local current = redis.call('hget', KEYS[1], ARGV[1])
if current and ARGV[3] ~= '' then
  local stored = cjson.decode(current)['modified']
  if stored ~= cjson.null and stored ~= nil and tonumber(stored) > tonumber(ARGV[3]) then
    return -1
  end
end
redis.call('hset', KEYS[1], ARGV[1], ARGV[2])
redis.call('set', KEYS[2], ARGV[4], 'NX')
return redis.call('hlen', KEYS[1])
"""
_TAKE = """
if redis.call('exists', KEYS[2]) == 1 then return 1 end
if redis.call('exists', KEYS[1]) == 0 then return 0 end
redis.call('rename', KEYS[1], KEYS[2])
redis.call('del', KEYS[3])
return 1
"""


def batch_key(batch_id: str) -> str:
    return f"relay:batch:{batch_id}"


@dataclass(frozen=True)
class ProductWrite:
    """One product upsert or delete, with the raw event it came from (for dead letters)."""

    product_id: str
    op: str  # "upsert" | "delete"
    payload: dict[str, Any] | None  # the ProductInput for an upsert
    guard: dict[str, Any]
    event: dict[str, Any]
    modified: float | None = None
    seq: float = 0.0  # arrival order, for deletes and upserts of one batch

    def to_json(self) -> str:
        return json.dumps(self.__dict__, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> ProductWrite:
        return cls(**json.loads(raw))


class ProductOutbox:
    def __init__(self, redis: Redis):
        self.redis = redis
        self._put = redis.register_script(_PUT)
        self._take = redis.register_script(_TAKE)

    def put_many(self, writes: list[ProductWrite]) -> None:
        """Queue several writes in one round trip (in arrival order: a later write of the
        same product replaces an earlier one unless it is older)."""
        pipe = self.redis.pipeline(transaction=False)
        now = time.time()
        for n, write in enumerate(writes):
            modified = (
                "" if write.op == "delete" or write.modified is None else repr(write.modified)
            )
            stamped = ProductWrite(**{**write.__dict__, "seq": now + n * 1e-6})
            self._put(
                keys=[OUTBOX, SINCE],
                args=[write.product_id, stamped.to_json(), modified, repr(now)],
                client=pipe,
            )
        pipe.execute()

    def discard(self, product_id: str) -> None:
        self.redis.hdel(OUTBOX, product_id)

    def waiting(self) -> int:
        return int(self.redis.hlen(OUTBOX))

    def oldest_age(self) -> float:
        since = self.redis.get(SINCE)
        return time.time() - float(since) if since else 0.0

    def flush_due(self, queued_jobs: int) -> bool:
        """Flush now: a full batch waits, nothing else is queued, or the oldest waited long."""
        waiting = self.waiting()
        if not waiting:
            return False
        return waiting >= BATCH_SIZE or queued_jobs == 0 or self.oldest_age() >= MAX_WAIT_SECONDS

    def claim_flush(self) -> bool:
        """True for the one caller that should queue a flush job now."""
        return bool(self.redis.set(FLUSH_PENDING, "1", nx=True, ex=30))

    def claim_safety_flush(self) -> bool:
        return bool(self.redis.set(SAFETY_SCHEDULED, "1", nx=True, ex=5))

    def take(self, batch_id: str) -> bool:
        """Move the outbox into this batch (or find the batch a killed run left behind)."""
        self.redis.delete(FLUSH_PENDING)
        return bool(self._take(keys=[OUTBOX, batch_key(batch_id), SINCE]))

    def batch(self, batch_id: str) -> list[ProductWrite]:
        writes = [ProductWrite.from_json(raw) for raw in self.redis.hvals(batch_key(batch_id))]
        return sorted(writes, key=lambda w: w.seq)

    def done(self, batch_id: str, product_ids: list[str]) -> None:
        if product_ids:
            self.redis.hdel(batch_key(batch_id), *product_ids)

    def drop(self, batch_id: str) -> None:
        self.redis.delete(batch_key(batch_id))
