"""The inbox: where ingest leaves raw events for the workers, in one Redis list.

    ingest ── one script: SET NX dedup mark, LPUSH relay:inbox, SET NX relay:inbox:wake ──▶ 202
                 └─ when the wake flag was newly set: queue one RQ `drain_inbox` job
    worker ── drain_inbox job: take up to 50 events at a time into relay:inflight:<drain id>,
              handle them together, clear the in-flight list; repeat until the inbox is empty

Why not one RQ job per event: with the append-only file fsynced on every write (a 2xx must
mean the event is on disk), each Redis write costs about 0.3 ms here, and RQ makes about
twenty writes per job. Taking events in chunks lets a worker batch its own Redis work, so
the fsync cost is paid per chunk instead of per event (bench/ measures it).

A drain job killed mid-chunk, or failed, leaves its in-flight list; the re-run of the same
job (RQ's retry, or a starting worker's recovery) handles those events first, and one at a
time: each is removed from the list once handled, so a second failure can only be the
event being handled. The relay counts such tries per event id (`relay:inbox:tries:<id>`);
an event whose drain failed `MAX_FAILED_DRAINS` times (its chunk's, then each try alone) is
dead-lettered as `worker_crashed` instead of being tried forever. The drain ids with an
in-flight list are kept in a set, so the queue gauges count those events as waiting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from redis import Redis

INBOX = "relay:inbox"
WAKE = "relay:inbox:wake"  # set while a drain job is queued or running
WAKE_TTL_SECONDS = 60  # a drain job that died for good lets the next webhook start another
CHUNK = 50
DRAINS = "relay:inflight-drains"  # ids of the drains that hold an in-flight list
# A drain that fails while it holds an event (the worker died, the job timed out) is
# retried by RQ; the third failure with the event is the last: a crash that repeats is the
# event's doing, and each try costs its chunk-mates one of RQ's retry delays (5 s, 30 s).
MAX_FAILED_DRAINS = 3
TRIES_TTL_SECONDS = 7 * 86400

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


def inflight_key(drain_id: str) -> str:
    return f"relay:inflight:{drain_id}"


def tries_key(event_id: str) -> str:
    return f"relay:inbox:tries:{event_id}"


@dataclass(frozen=True)
class Entry:
    event: dict[str, Any]  # RawEvent.to_dict()
    mark: str | None  # the dedup mark ingest set (None for a replay)
    raw: bytes | None = field(default=None, compare=False, repr=False)  # as stored

    def to_json(self) -> bytes:
        # orjson: this runs once per webhook on the ingest path, several times faster.
        return orjson.dumps({"event": self.event, "mark": self.mark})

    @classmethod
    def from_json(cls, raw: bytes | str) -> Entry:
        data = orjson.loads(raw)
        return cls(data["event"], data.get("mark"), raw if isinstance(raw, bytes) else None)

    def stored(self) -> bytes:
        return self.raw if self.raw is not None else self.to_json()


def push(pipe: Any, entry: Entry) -> None:
    """Add to the caller's transaction (a replay; the caller then queues a drain job).
    Ingest stores events with its own script, in relay/event_queue.py."""
    pipe.lpush(INBOX, entry.to_json())
    pipe.set(WAKE, "1", nx=True, ex=WAKE_TTL_SECONDS)


# The in-flight list holds the newest at index 0; pushing newest-first onto the inbox's
# taking end leaves the oldest to be taken first.
_GIVE_BACK = """
local items = redis.call('lrange', KEYS[1], 0, -1)
for i = 1, #items do redis.call('rpush', KEYS[2], items[i]) end
redis.call('del', KEYS[1])
redis.call('srem', KEYS[3], ARGV[1])
return #items
"""


class Inbox:
    def __init__(self, redis: Redis):
        self.redis = redis
        self._take = redis.register_script(_TAKE)
        self._give_back = redis.register_script(_GIVE_BACK)

    def inflight(self, drain_id: str) -> list[Entry]:
        """What a killed run of this drain job left, oldest first."""
        raws = self.redis.lrange(inflight_key(drain_id), 0, -1)
        return [Entry.from_json(raw) for raw in reversed(raws)]

    def take(self, drain_id: str, count: int = CHUNK) -> list[Entry]:
        raws = self._take(keys=[INBOX, inflight_key(drain_id), DRAINS], args=[count, drain_id])
        return [Entry.from_json(raw) for raw in raws]

    def done(self, drain_id: str) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(inflight_key(drain_id))
        pipe.srem(DRAINS, drain_id)
        pipe.execute()

    def note_try(self, entry: Entry) -> int:
        """A left-over event is about to be tried alone: how many drains failed holding it
        (its chunk's, then each earlier try alone, whose count was left behind)."""
        key = tries_key(entry.event["id"])
        pipe = self.redis.pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, TRIES_TTL_SECONDS)
        return int(pipe.execute()[0])

    def finish_one(self, drain_id: str, entry: Entry) -> None:
        """A left-over event is handled: out of the in-flight list, its tries forgotten."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.lrem(inflight_key(drain_id), 1, entry.stored())
        pipe.delete(tries_key(entry.event["id"]))
        pipe.execute()

    def defer(self, entry: Entry) -> None:
        """Back into the inbox, at the end taken last (it waits for another worker)."""
        self.redis.lpush(INBOX, entry.stored())

    def release_wake(self) -> None:
        self.redis.delete(WAKE)

    def sleep(self) -> bool:
        """Clear the wake flag; True when the inbox is really empty (else keep draining: an
        event pushed just before the flag was cleared found it set and queued no job)."""
        self.redis.delete(WAKE)
        return self.redis.llen(INBOX) == 0

    def keep_awake(self) -> None:
        """A running drain refreshes the flag, so webhooks meanwhile queue no extra job."""
        self.redis.set(WAKE, "1", ex=WAKE_TTL_SECONDS)

    def wake(self) -> bool:
        """True for the one caller that should queue a drain job now."""
        return bool(self.redis.set(WAKE, "1", nx=True, ex=WAKE_TTL_SECONDS))

    def depth(self) -> int:
        return int(self.redis.llen(INBOX))

    def in_flight(self) -> int:
        """Events taken by drain jobs and not yet handled (a failed drain's among them)."""
        return sum(inflight_depths(self.redis).values())

    def waiting(self) -> int:
        """Events stored and not yet handled: in the inbox or in a drain's hands."""
        return self.depth() + self.in_flight()

    def give_back(self, drain_id: str) -> int:
        """Return an in-flight list's events to the inbox, at the end taken next, oldest
        first (atomically)."""
        return int(self._give_back(keys=[inflight_key(drain_id), INBOX, DRAINS], args=[drain_id]))

    def orphaned_inflight(self) -> list[str]:
        """Drain ids with an in-flight list (a killed drain job's leftovers). Also scans
        for lists an older relay left without registering them (at worker start only)."""
        ids = {k.decode().rsplit(":", 1)[1] for k in self.redis.scan_iter("relay:inflight:*")}
        return sorted(ids | set(inflight_depths(self.redis)))


def inflight_depths(redis: Redis) -> dict[str, int]:
    """Drain id -> events in its in-flight list (a few drains at most: no key scan)."""
    ids = sorted(i.decode() if isinstance(i, bytes) else i for i in redis.smembers(DRAINS))
    if not ids:
        return {}
    pipe = redis.pipeline(transaction=False)
    for drain_id in ids:
        pipe.llen(inflight_key(drain_id))
    return dict(zip(ids, (int(n) for n in pipe.execute()), strict=True))
