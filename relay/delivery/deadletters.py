"""Dead letters: events the relay gave up on, kept whole so they can be fixed and replayed.

One entry per event id: the raw event, what it mapped to (if it got that far), the requests
still unsent, the last error and API answer (its code, message and issues kept apart), the
attempt count and times, and what the event was about (`about`: entity, masked customer,
amount; relay/delivery/letter_context.py), computed when the letter is written so that a
list can say which order a letter belongs to. Replay puts the raw event back on the queue,
where it is mapped again with today's code.

They are bounded, since each holds a whole raw body (up to RELAY_MAX_BODY_BYTES) on a Redis
that never evicts: a letter older than RELAY_DLQ_RETENTION_DAYS, or the oldest beyond
RELAY_DLQ_MAX, is dropped (when a letter is added, and at each worker's maintenance pass),
and every drop is counted in Redis (`relay_dead_letters_dropped_total` on /metrics, by
reason: expired, over_limit). Replay and purge of all letters work a page at a time.

Redis layout: `relay:dlq:<id>` holds the entry as JSON; `relay:dlq` (all) and
`relay:dlq:p:<platform>` are sorted sets of ids scored by when they died;
`relay:dlq:platforms` names the platforms that have an index; `relay:dlq:dropped` counts
the drops (a hash: reason -> count). Event ids are hex, so no id collides with these.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from redis import Redis, WatchError

from relay.delivery import letter_context
from relay.event_queue import EventQueue
from relay.events import RawEvent

log = logging.getLogger("relay.worker")

INDEX = "relay:dlq"
PLATFORMS = "relay:dlq:platforms"
DROPPED = "relay:dlq:dropped"  # reason (expired | over_limit) -> letters dropped
DROP_REASONS = ("expired", "over_limit")
ENTRY_PREFIX = "relay:dlq:"
PLATFORM_INDEX_PREFIX = "relay:dlq:p:"
# Letters loaded at once by replay-all (and ids removed at once by purge-all and the trim):
# each letter may hold a 2 MB body, so never all of them.
PAGE_SIZE = 50
# Defaults of RELAY_DLQ_RETENTION_DAYS and RELAY_DLQ_MAX (README, Configuration).
DEFAULT_RETENTION_DAYS = 14
DEFAULT_MAX_LETTERS = 10_000

# Drop, atomically, letters that died at or before ARGV[1] and the oldest beyond ARGV[2]
# letters, at most ARGV[3] in one call (Redis serves nothing else meanwhile), and count
# them. Atomic, so two workers trimming at once never drop or count a letter twice.
_TRIM = """
local expired = redis.call('zrangebyscore', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
local over = redis.call('zcard', KEYS[1]) - #expired - tonumber(ARGV[2])
local room = tonumber(ARGV[3]) - #expired
local excess = {}
if over > 0 and room > 0 then
  excess = redis.call('zrange', KEYS[1], #expired, #expired + math.min(over, room) - 1)
end
local platforms = redis.call('smembers', KEYS[3])
local function drop(ids, reason)
  for _, id in ipairs(ids) do
    redis.call('unlink', ARGV[4] .. id)
    redis.call('zrem', KEYS[1], id)
    for _, platform in ipairs(platforms) do redis.call('zrem', ARGV[5] .. platform, id) end
  end
  if #ids > 0 then redis.call('hincrby', KEYS[2], reason, #ids) end
end
drop(expired, 'expired')
drop(excess, 'over_limit')
return #expired + #excess
"""


def _entry_key(event_id: str) -> str:
    return f"{ENTRY_PREFIX}{event_id}"


def _platform_index(platform: str) -> str:
    return f"{PLATFORM_INDEX_PREFIX}{platform}"


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


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
    # Last API answer: status, error, body (cut), and the API's code, message, issues[]
    # and retryable (relay/delivery/commerce_api.py Outcome.to_dict).
    response: dict[str, Any] | None = None
    # What the event was about: entity, id, number, masked customer, amount, currency
    # (relay/delivery/letter_context.py). None in letters written before it existed.
    about: dict[str, Any] | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> DeadLetter:
        data = json.loads(raw)
        known = {f.name for f in fields(cls)}  # a newer relay's letter stays readable
        return cls(**{k: v for k, v in data.items() if k in known})

    def context(self) -> dict[str, Any]:
        """What the event was about: as stored, or (a letter from before) worked out now."""
        return self.about if self.about is not None else describe(self)

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "platform": self.platform,
            "topic": self.topic,
            "reason": self.reason,
            "error": self.error,
            "attempts": self.attempts,
            "dead_at": self.dead_at,
            "about": self.context(),
        }


def describe(letter: DeadLetter) -> dict[str, Any]:
    """The letter's `about`, never an exception: a letter is stored whatever its content."""
    try:
        return letter_context.describe(letter.records, letter.pending, letter.event)
    except Exception:  # what cannot be described is still kept whole
        log.warning("could not describe a dead letter", extra={"event_id": letter.id})
        return {}


class DeadLetters:
    def __init__(
        self,
        redis: Redis,
        retention_days: int = DEFAULT_RETENTION_DAYS,
        max_letters: int = DEFAULT_MAX_LETTERS,
    ):
        self.redis = redis
        self.retention_seconds = retention_days * 86400
        self.max_letters = max_letters
        self._trim = redis.register_script(_TRIM)
        self._platforms_checked = False

    def add(self, letter: DeadLetter) -> None:
        if letter.about is None:
            letter = replace(letter, about=describe(letter))
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(_entry_key(letter.id), letter.to_json())
        pipe.zadd(INDEX, {letter.id: letter.dead_at})
        pipe.zadd(_platform_index(letter.platform), {letter.id: letter.dead_at})
        pipe.sadd(PLATFORMS, letter.platform)
        pipe.execute()
        self.trim()

    def trim(self, now: float | None = None) -> int:
        """Drop the letters past the retention time and the oldest beyond the cap; returns
        how many this call dropped (workers call it on every add and maintenance pass)."""
        if not self._platforms_checked:  # letters stored by an older relay: their indexes too
            self._known_platforms()
            self._platforms_checked = True
        cutoff = (time.time() if now is None else now) - self.retention_seconds
        dropped = 0
        while True:
            n = int(
                self._trim(
                    keys=[INDEX, DROPPED, PLATFORMS],
                    args=[
                        repr(cutoff),
                        self.max_letters,
                        PAGE_SIZE,
                        ENTRY_PREFIX,
                        PLATFORM_INDEX_PREFIX,
                    ],
                )
            )
            dropped += n
            if n < PAGE_SIZE:
                return dropped

    def dropped(self) -> dict[str, int]:
        """Letters dropped so far, by reason (every process's drops: they count in Redis)."""
        raw = self.redis.hgetall(DROPPED)
        counts = {_text(k): int(v) for k, v in raw.items()}
        return {reason: counts.get(reason, 0) for reason in DROP_REASONS}

    def get(self, event_id: str) -> DeadLetter | None:
        raw = self.redis.get(_entry_key(event_id))
        return None if raw is None else DeadLetter.from_json(raw)

    def count(self, platform: str | None = None) -> int:
        return int(self.redis.zcard(_platform_index(platform) if platform else INDEX))

    def ids(self, platform: str | None = None, limit: int | None = None) -> list[str]:
        """Newest first."""
        end = -1 if limit is None else max(limit, 1) - 1
        index = _platform_index(platform) if platform else INDEX
        return [_text(i) for i in self.redis.zrevrange(index, 0, end)]

    def newest_dead_at(self, platform: str | None = None) -> float | None:
        """When the newest letter died (a purge-all confirmation purges up to it)."""
        index = _platform_index(platform) if platform else INDEX
        newest = self.redis.zrevrange(index, 0, 0, withscores=True)
        return float(newest[0][1]) if newest else None

    def list(self, platform: str | None = None, limit: int | None = 50) -> list[DeadLetter]:
        return self._load(self.ids(platform, limit))

    def _load(self, ids: list[str]) -> list[DeadLetter]:
        if not ids:
            return []
        raws = self.redis.mget([_entry_key(i) for i in ids])
        return [DeadLetter.from_json(raw) for raw in raws if raw is not None]

    def _ids_upto(self, platform: str | None, upto: float | None) -> list[str]:
        """Ids (oldest first) of the letters that died at or before `upto` (all: None). Only
        ids: a few dozen bytes each, and the cap bounds how many."""
        index = _platform_index(platform) if platform else INDEX
        top = "+inf" if upto is None else repr(upto)
        return [_text(i) for i in self.redis.zrangebyscore(index, "-inf", top)]

    def pages(
        self, platform: str | None = None, upto: float | None = None, size: int = PAGE_SIZE
    ) -> Iterator[list[DeadLetter]]:
        """Every letter (of `platform`, dead by `upto`), oldest first, `size` at a time. The
        ids are taken at the start: a letter that dies meanwhile waits for the next run."""
        ids = self._ids_upto(platform, upto)
        for start in range(0, len(ids), size):
            page = self._load(ids[start : start + size])
            if page:
                yield page

    def purge(self, platform: str | None = None, upto: float | None = None) -> int:
        """Delete every letter (of `platform`, dead by `upto`) without loading any; returns
        how many this call deleted."""
        ids = self._ids_upto(platform, upto)
        platforms = [platform] if platform else self._known_platforms()
        purged = 0
        for start in range(0, len(ids), PAGE_SIZE):
            pipe = self.redis.pipeline(transaction=True)
            for event_id in ids[start : start + PAGE_SIZE]:
                pipe.unlink(_entry_key(event_id))
                pipe.zrem(INDEX, event_id)
                for name in platforms:
                    pipe.zrem(_platform_index(name), event_id)
            results = pipe.execute()
            purged += sum(results[1 :: 2 + len(platforms)])  # the ZREMs from the index
        return purged

    def _known_platforms(self) -> list[str]:
        """Platforms with an index. Letters stored before relay:dlq:platforms existed have
        indexes it does not name: found once, by a scan, while it is missing."""
        names = [_text(n) for n in self.redis.smembers(PLATFORMS)]
        if names or not self.redis.exists(INDEX):
            return names
        found = {
            _text(key).removeprefix(PLATFORM_INDEX_PREFIX)
            for key in self.redis.scan_iter(f"{PLATFORM_INDEX_PREFIX}*", count=1000)
        }
        if found:
            self.redis.sadd(PLATFORMS, *found)
        return sorted(found)

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
    return sum(_requeue(events, store, letter) for letter in letters)


def replay_all(events: EventQueue, platform: str | None = None) -> int:
    """Replay every dead letter (of `platform`), a page at a time. Returns how many."""
    store = DeadLetters(events.redis)
    return sum(
        _requeue(events, store, letter) for page in store.pages(platform) for letter in page
    )


def _requeue(events: EventQueue, store: DeadLetters, letter: DeadLetter) -> bool:
    with events.redis.pipeline(transaction=True) as pipe:
        # Two replays of one letter at once: only the one that still finds it replays.
        pipe.watch(_entry_key(letter.id))
        if not pipe.exists(_entry_key(letter.id)):
            return False
        pipe.multi()
        events.requeue(RawEvent.from_dict(letter.event), pipe=pipe)
        store.remove([letter], pipe=pipe)
        try:
            pipe.execute()
        except WatchError:
            return False
    return True
