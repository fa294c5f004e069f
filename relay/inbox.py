"""The inbox: where ingest leaves raw events for the workers, in one Redis list.

    ingest ── one script: SET NX dedup mark, LPUSH relay:inbox ──▶ 202
    worker ── its dispatcher (relay/delivery/dispatcher.py) moves events, oldest first, into
              its own in-flight list relay:inflight:<owner> (blocking while the inbox is
              empty), delivers them concurrently, and removes each from the list in the same
              write that records its last answer

The owner is the worker's lease (relay/delivery/leases.py). A worker that dies leaves its
in-flight list behind; as soon as its lease has expired, any other worker takes the list
over (`take_over`): its events go back to the front of the inbox. Each event a dead worker
held counts a try (`relay:inbox:tries:<id>`). An event held by dead workers twice is a
suspect: it waits in `relay:inbox:suspects` and is handled alone, with nothing else in
flight, so that a third crash can only be its own doing; after MAX_FAILED_DRAINS it is
dead-lettered as `worker_crashed` instead of crashing worker after worker.

Why not one RQ job per event: with the append-only file fsynced on every write (a 2xx must
mean the event is on disk), each Redis write costs about 0.3 ms here, and RQ makes about
twenty writes per job. One list move per event and writes shared by the answers that arrive
together cost a fraction of that (bench/ measures it).

The owners with an in-flight list are kept in a set, so that the queue gauges and the
takeover find them without a key scan. Older relays used one list per drain job under the
same key names (their ids in `relay:inflight-drains`); a starting worker gives those back
(relay/delivery/worker.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from redis import Redis

INBOX = "relay:inbox"
SUSPECTS = "relay:inbox:suspects"
OWNERS = "relay:inflight-owners"  # workers (by lease owner) that hold an in-flight list
DRAINS = "relay:inflight-drains"  # the drain jobs of older relays that held one
# An event held by a worker that died counts a try; held by dead workers this often, it is
# dead-lettered: a crash that repeats is the event's doing.
MAX_FAILED_DRAINS = 3
SUSPECT_AFTER = 2  # tries after which an event is handled alone
TRIES_TTL_SECONDS = 7 * 86400
CHUNK = 50
# Older relays queued a drain job when this flag was newly set; kept only so that a relay
# upgraded with events waiting clears it (nothing sets it any more).
WAKE = "relay:inbox:wake"

# Move up to ARGV[1] events from the inbox's old end into the in-flight list, atomically.
_TAKE = """
local taken = {}
for i = 1, tonumber(ARGV[1]) do
  local item = redis.call('rpoplpush', KEYS[1], KEYS[2])
  if not item then break end
  taken[#taken + 1] = item
end
if #taken > 0 then redis.call('sadd', KEYS[3], ARGV[2]) end
return taken
"""

# The in-flight list holds the newest at index 0; pushing newest-first onto the inbox's
# taking end leaves the oldest to be taken first.
_GIVE_BACK = """
local items = redis.call('lrange', KEYS[1], 0, -1)
for i = 1, #items do redis.call('rpush', KEYS[2], items[i]) end
redis.call('del', KEYS[1])
redis.call('srem', KEYS[3], ARGV[1])
return #items
"""

# A dead owner's list: each event counts a try; suspects to their own list, the rest back
# to the front of the inbox, oldest first. Returns the number of events moved.
_TAKE_OVER = """
local items = redis.call('lrange', KEYS[1], 0, -1)
for i = 1, #items do
  local ok, entry = pcall(cjson.decode, items[i])
  local tries = 1
  if ok and type(entry) == 'table' and type(entry['event']) == 'table' then
    local key = 'relay:inbox:tries:' .. tostring(entry['event']['id'])
    tries = redis.call('incr', key)
    redis.call('expire', key, ARGV[2])
  end
  if tries >= tonumber(ARGV[1]) then
    redis.call('rpush', KEYS[3], items[i])
  else
    redis.call('rpush', KEYS[2], items[i])
  end
end
redis.call('del', KEYS[1])
redis.call('srem', KEYS[4], ARGV[3])
return #items
"""


def inflight_key(owner: str) -> str:
    return f"relay:inflight:{owner}"


def tries_key(event_id: str) -> str:
    return f"relay:inbox:tries:{event_id}"


@dataclass(frozen=True)
class Entry:
    event: dict[str, Any]  # RawEvent.to_dict()
    mark: str | None  # the dedup mark ingest set (None for a replay)
    # A retry: the requests still to send, and how far the attempts have come (then the
    # event is not mapped again: a scheduled retry hands its requests back this way).
    retry: dict[str, Any] | None = None
    raw: bytes | None = field(default=None, compare=False, repr=False)  # as stored

    def to_json(self) -> bytes:
        # orjson: this runs once per webhook on the ingest path, several times faster.
        data: dict[str, Any] = {"event": self.event, "mark": self.mark}
        if self.retry is not None:
            data["retry"] = self.retry
        return orjson.dumps(data)

    @classmethod
    def from_json(cls, raw: bytes | str) -> Entry:
        data = orjson.loads(raw)
        return cls(
            data["event"],
            data.get("mark"),
            data.get("retry"),
            raw if isinstance(raw, bytes) else raw.encode(),
        )

    def stored(self) -> bytes:
        return self.raw if self.raw is not None else self.to_json()

    @property
    def event_id(self) -> str:
        return str(self.event["id"])


def push(pipe: Any, entry: Entry) -> None:
    """Add to the caller's transaction (a replay, a retry that is due). Ingest stores events
    with its own script (relay/intake/acceptor.py)."""
    pipe.lpush(INBOX, entry.to_json())


class Inbox:
    def __init__(self, redis: Redis):
        self.redis = redis
        self._take = redis.register_script(_TAKE)
        self._give_back = redis.register_script(_GIVE_BACK)
        self._take_over = redis.register_script(_TAKE_OVER)

    # --- a worker's own list ------------------------------------------------------------

    def take(self, owner: str, count: int = CHUNK) -> list[Entry]:
        """Up to `count` events, oldest first, into `owner`'s in-flight list."""
        raws = self._take(keys=[INBOX, inflight_key(owner), OWNERS], args=[count, owner])
        return [Entry.from_json(raw) for raw in raws]

    def wait(self, owner: str, timeout: float) -> Entry | None:
        """Block up to `timeout` seconds for the next event (the worker is idle)."""
        self.redis.sadd(OWNERS, owner)  # first: an event moved below is always found
        raw = self.redis.blmove(INBOX, inflight_key(owner), timeout, "RIGHT", "LEFT")
        return None if raw is None else Entry.from_json(raw)

    def take_suspect(self, owner: str) -> Entry | None:
        self.redis.sadd(OWNERS, owner)
        raw = self.redis.lmove(SUSPECTS, inflight_key(owner), "RIGHT", "LEFT")
        return None if raw is None else Entry.from_json(raw)

    def inflight(self, owner: str) -> list[Entry]:
        """What `owner` holds, oldest first."""
        raws = self.redis.lrange(inflight_key(owner), 0, -1)
        return [Entry.from_json(raw) for raw in reversed(raws)]

    def finish(self, pipe: Any, owner: str, entry: Entry) -> None:
        """Out of the in-flight list, its tries forgotten: in the caller's pipeline, beside
        the write that records the event's last answer."""
        pipe.lrem(inflight_key(owner), 1, entry.stored())
        pipe.delete(tries_key(entry.event_id))

    def tries(self, entry: Entry) -> int:
        raw = self.redis.get(tries_key(entry.event_id))
        return int(raw or 0)

    def defer(self, entry: Entry) -> None:
        """Back into the inbox, at the end taken last (it waits for another worker)."""
        self.redis.lpush(INBOX, entry.stored())

    def give_back(self, owner: str) -> int:
        """A clean stop: what `owner` still holds goes back to the front of the inbox,
        oldest first (atomically). No try is counted: nothing failed. Also for the lists of
        older relays' drain jobs."""
        moved = int(self._give_back(keys=[inflight_key(owner), INBOX, OWNERS], args=[owner]))
        self.redis.srem(DRAINS, owner)
        return moved

    def take_over(self, owner: str) -> int:
        """A dead owner's list: each event counts a try; the suspects wait to be handled
        alone, the others go back to the front of the inbox (atomically)."""
        return int(
            self._take_over(
                keys=[inflight_key(owner), INBOX, SUSPECTS, OWNERS],
                args=[SUSPECT_AFTER, TRIES_TTL_SECONDS, owner],
            )
        )

    # --- what is waiting ------------------------------------------------------------------

    def depth(self) -> int:
        return int(self.redis.llen(INBOX))

    def suspects(self) -> int:
        return int(self.redis.llen(SUSPECTS))

    def owners(self) -> list[str]:
        """The workers that hold an in-flight list (live or dead)."""
        return _members(self.redis, OWNERS)

    def in_flight(self) -> int:
        """Events taken by workers and not yet handled (a dead worker's among them)."""
        return sum(inflight_depths(self.redis).values())

    def waiting(self) -> int:
        """Events stored and not yet handled: in the inbox, waiting alone, or in a worker's
        hands."""
        return self.depth() + self.suspects() + self.in_flight()

    def orphaned_inflight(self) -> list[str]:
        """Owners with an in-flight list. Also scans for lists an older relay left without
        registering them (at worker start only)."""
        ids = {k.decode().split(":", 2)[2] for k in self.redis.scan_iter("relay:inflight:*")}
        return sorted(ids | set(inflight_depths(self.redis)))


def _members(redis: Redis, key: str) -> list[str]:
    return sorted(i.decode() if isinstance(i, bytes) else i for i in redis.smembers(key))


def inflight_depths(redis: Redis) -> dict[str, int]:
    """Owner -> events in its in-flight list (a few workers at most: no key scan)."""
    ids = sorted(set(_members(redis, OWNERS)) | set(_members(redis, DRAINS)))
    if not ids:
        return {}
    pipe = redis.pipeline(transaction=False)
    for owner in ids:
        pipe.llen(inflight_key(owner))
    return dict(zip(ids, (int(n) for n in pipe.execute()), strict=True))
