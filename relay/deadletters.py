"""Dead letters: events the relay gave up on, kept whole so they can be fixed and replayed.

One entry per event id: the raw event, what it mapped to (if it got that far), the requests
still unsent, the last error and API answer, the attempt count and times. Replay puts the raw
event back on the queue, where it is mapped again with today's code.

Redis layout: `relay:dlq:<id>` holds the entry as JSON; `relay:dlq` (all) and
`relay:dlq:p:<platform>` are sorted sets of ids scored by when they died.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from redis import Redis, WatchError

from relay.event_queue import EventQueue
from relay.events import RawEvent

INDEX = "relay:dlq"


def _entry_key(event_id: str) -> str:
    return f"relay:dlq:{event_id}"


def _platform_index(platform: str) -> str:
    return f"relay:dlq:p:{platform}"


@dataclass
class DeadLetter:
    id: str  # the event id
    platform: str
    topic: str
    reason: str  # mapping_error | invalid_record | permanent_error | retries_exhausted | ...
    error: str
    event: dict[str, Any]  # RawEvent.to_dict()
    attempts: int = 0
    first_attempt_at: float | None = None
    dead_at: float = field(default_factory=time.time)
    records: list[dict[str, Any]] | None = None  # normalized records, when mapping succeeded
    pending: list[dict[str, Any]] | None = None  # requests not yet delivered
    response: dict[str, Any] | None = None  # last API answer: status, body

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> DeadLetter:
        return cls(**json.loads(raw))

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "platform": self.platform,
            "topic": self.topic,
            "reason": self.reason,
            "error": self.error,
            "attempts": self.attempts,
            "dead_at": self.dead_at,
        }


class DeadLetters:
    def __init__(self, redis: Redis):
        self.redis = redis

    def add(self, letter: DeadLetter) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(_entry_key(letter.id), letter.to_json())
        pipe.zadd(INDEX, {letter.id: letter.dead_at})
        pipe.zadd(_platform_index(letter.platform), {letter.id: letter.dead_at})
        pipe.execute()

    def get(self, event_id: str) -> DeadLetter | None:
        raw = self.redis.get(_entry_key(event_id))
        return None if raw is None else DeadLetter.from_json(raw)

    def count(self, platform: str | None = None) -> int:
        return int(self.redis.zcard(_platform_index(platform) if platform else INDEX))

    def ids(self, platform: str | None = None, limit: int | None = None) -> list[str]:
        """Newest first."""
        end = -1 if limit is None else max(limit, 1) - 1
        index = _platform_index(platform) if platform else INDEX
        return [
            i.decode() if isinstance(i, bytes) else i for i in self.redis.zrevrange(index, 0, end)
        ]

    def list(self, platform: str | None = None, limit: int | None = 50) -> list[DeadLetter]:
        ids = self.ids(platform, limit)
        if not ids:
            return []
        raws = self.redis.mget([_entry_key(i) for i in ids])
        return [DeadLetter.from_json(raw) for raw in raws if raw is not None]

    def remove(self, letters: Iterable[DeadLetter], pipe: Any = None) -> None:
        """Delete entries (inside the caller's transaction when `pipe` is given)."""
        own = pipe is None
        pipe = self.redis.pipeline(transaction=True) if own else pipe
        for letter in letters:
            pipe.delete(_entry_key(letter.id))
            pipe.zrem(INDEX, letter.id)
            pipe.zrem(_platform_index(letter.platform), letter.id)
        if own:
            pipe.execute()


def replay(events: EventQueue, letters: Iterable[DeadLetter]) -> int:
    """Put each dead letter's raw event back on the queue (it will be mapped again with
    today's code) and remove the entry, atomically per letter. Returns how many."""
    store = DeadLetters(events.redis)
    count = 0
    for letter in letters:
        with events.redis.pipeline(transaction=True) as pipe:
            # Two replays of one letter at once: only the one that still finds it replays.
            pipe.watch(_entry_key(letter.id))
            if not pipe.exists(_entry_key(letter.id)):
                continue
            pipe.multi()
            events.requeue(RawEvent.from_dict(letter.event), pipe=pipe)
            store.remove([letter], pipe=pipe)
            try:
                pipe.execute()
            except WatchError:
                continue
        count += 1
    if count:
        events.enqueue_drain()
    return count
