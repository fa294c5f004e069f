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

The raw event a write came from (needed only if the write is dead-lettered) is kept once
per event, not once per write: `relay:outbox:event:<id>` holds it with a count of the writes
that still refer to it, and goes when the last of them is done (or replaced by a newer
write of its product). A 1,000-product webhook of 2 MB costs 2 MB, not 2 GB. Its expiry is
only a backstop for a count that a crash left too high: longer than the retry schedule.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import orjson
from redis import Redis

from relay import sync_signals
from relay.events import RawEvent
from relay.store_api import ORIGIN_HEADER, RUN_HEADER

OUTBOX = "relay:outbox:products"
SINCE = "relay:outbox:products:since"  # when the oldest waiting write arrived
FLUSH_PENDING = "relay:outbox:products:flush-pending"  # a flush job is queued
SAFETY_SCHEDULED = "relay:outbox:products:safety"  # a delayed flush is scheduled
EVENT_PREFIX = "relay:outbox:event:"  # + event id: hash {raw, refs}
BATCH_SIZE = 100  # the API's limit per request
MAX_WAIT_SECONDS = 1.0

# One write of an event no longer waits: its event's count goes down, and the raw event
# goes with the last write. (Writes stored by an older relay carry their event whole.)
_RELEASE = """
local function release(write)
  local event = cjson.decode(write)['event']
  if type(event) ~= 'table' or event['body'] ~= nil or event['body_base64'] ~= nil then
    return
  end
  local key = ARGV[1] .. event['id']
  if redis.call('exists', key) == 1 and redis.call('hincrby', key, 'refs', -1) <= 0 then
    redis.call('del', key)
  end
end
"""
# ARGV: event prefix, product id, write, modified ('' = none), now
_PUT = (
    _RELEASE
    + """
local current = redis.call('hget', KEYS[1], ARGV[2])
if current and ARGV[4] ~= '' then
  local stored = cjson.decode(current)['modified']
  if stored ~= cjson.null and stored ~= nil and tonumber(stored) > tonumber(ARGV[4]) then
    release(ARGV[3])
    return -1
  end
end
if current then release(current) end
redis.call('hset', KEYS[1], ARGV[2], ARGV[3])
redis.call('set', KEYS[2], ARGV[5], 'NX')
return redis.call('hlen', KEYS[1])
"""
)
# ARGV: event prefix, product ids...
_DONE = (
    _RELEASE
    + """
for i = 2, #ARGV do
  local write = redis.call('hget', KEYS[1], ARGV[i])
  if write then
    release(write)
    redis.call('hdel', KEYS[1], ARGV[i])
  end
end
"""
)
# ARGV: event prefix
_DROP = (
    _RELEASE
    + """
for _, write in ipairs(redis.call('hvals', KEYS[1])) do release(write) end
redis.call('del', KEYS[1])
"""
)
_TAKE = """
if redis.call('exists', KEYS[2]) == 1 then return 1 end
if redis.call('exists', KEYS[1]) == 0 then return 0 end
redis.call('rename', KEYS[1], KEYS[2])
redis.call('del', KEYS[3])
return 1
"""


def batch_key(batch_id: str) -> str:
    return f"relay:batch:{batch_id}"


def event_ref(event: RawEvent) -> dict[str, Any]:
    """What a write says about its event: who it is, not what it carried (and, for a record
    a reconcile run fetched, that run: delivery counts what it found)."""
    ref: dict[str, Any] = {
        "id": event.id,
        "platform": event.platform,
        "topic": event.topic,
        "received_at": event.received_at,
    }
    if sync_signals.reconciled(event) is not None:
        ref["origin"] = event.header(ORIGIN_HEADER)
        ref["run"] = event.header(RUN_HEADER) or ""
    return ref


@dataclass(frozen=True)
class ProductWrite:
    """One product upsert or delete, and which event it came from (`event_ref`; the raw
    event itself is kept once per event, for dead letters)."""

    product_id: str
    op: str  # "upsert" | "delete"
    payload: dict[str, Any] | None  # the ProductInput for an upsert
    guard: dict[str, Any]
    event: dict[str, Any]  # event_ref(); a whole RawEvent.to_dict() from an older relay
    modified: float | None = None
    seq: float = 0.0  # arrival order, for deletes and upserts of one batch

    def to_json(self) -> str:
        return json.dumps(self.__dict__, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> ProductWrite:
        return cls(**json.loads(raw))


class ProductOutbox:
    def __init__(self, redis: Redis, event_ttl_seconds: int = 7 * 86400):
        self.redis = redis
        self.event_ttl_seconds = event_ttl_seconds
        self._put = redis.register_script(_PUT)
        self._take = redis.register_script(_TAKE)
        self._done = redis.register_script(_DONE)
        self._drop = redis.register_script(_DROP)

    def put_many(self, writes: list[ProductWrite], events: list[RawEvent]) -> None:
        """Queue several writes in one round trip (in arrival order: a later write of the
        same product replaces an earlier one unless it is older), and keep the raw event of
        each once (`events`: those the writes came from)."""
        pipe = self.redis.pipeline(transaction=False)
        refs: dict[str, int] = {}
        for write in writes:
            refs[write.event["id"]] = refs.get(write.event["id"], 0) + 1
        for event in events:
            key = EVENT_PREFIX + event.id
            pipe.hset(key, "raw", orjson.dumps(event.to_dict()))
            pipe.hincrby(key, "refs", refs.get(event.id, 0))
            pipe.expire(key, self.event_ttl_seconds)
        now = time.time()
        for n, write in enumerate(writes):
            # A delete without a time (product.deleted) replaces whatever waits; an
            # unpublished snapshot's delete is ordered by its time like an upsert.
            modified = "" if write.modified is None else repr(write.modified)
            stamped = ProductWrite(**{**write.__dict__, "seq": now + n * 1e-6})
            self._put(
                keys=[OUTBOX, SINCE],
                args=[EVENT_PREFIX, write.product_id, stamped.to_json(), modified, repr(now)],
                client=pipe,
            )
        pipe.execute()

    def raw_event(self, write: ProductWrite) -> tuple[RawEvent, str]:
        """The raw event a write came from, and a note for its dead letter if it is gone
        (then its id, platform and topic, with an empty body)."""
        if "body" in write.event or "body_base64" in write.event:  # an older relay's write
            return RawEvent.from_dict(write.event), ""
        raw = self.redis.hget(EVENT_PREFIX + write.event["id"], "raw")
        if raw is not None:
            return RawEvent.from_dict(orjson.loads(raw)), ""
        return RawEvent.from_dict(write.event), " (the raw event had expired: not kept)"

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
            self._done(keys=[batch_key(batch_id)], args=[EVENT_PREFIX, *product_ids])

    def drop(self, batch_id: str) -> None:
        self._drop(keys=[batch_key(batch_id)], args=[EVENT_PREFIX])
