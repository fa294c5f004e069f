"""Ingest's write: the dedup mark, the platform's stats and the event in the inbox, in one
atomic script, shared by the webhooks in flight (group commit), and never late.

A 2xx means this write ran. When Redis is dead or hung the webhook is answered 503 within
about a second, and the script's deadline (checked against Redis's own clock) makes sure a
write that Redis runs only later stores nothing: what was answered 503 is not stored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from relay import inbox, stats
from relay.event_queue import EventQueue, dedup_mark_key
from relay.events import RawEvent
from relay.group_commit import GroupCommit

log = logging.getLogger("relay.ingest")

# Ingest's whole write, atomic and in one command (a script, where a MULTI pipeline would
# cost the client more commands to encode and parse on every webhook): the dedup mark, the
# platform's stats, the event in the inbox (where a waiting worker picks it up at once).
# Unless Redis runs it after its deadline (ARGV[5], in Redis's own clock): then the webhook
# has been answered 503, or soon will be, and nothing may be stored. Redis's time comes back
# either way, to keep this process's estimate of the offset between the two clocks fresh.
_ACCEPT = """
local now = redis.call('time')
if tonumber(now[1]) + tonumber(now[2]) / 1000000 > tonumber(ARGV[5]) then
  return {-1, now[1], now[2]}
end
local first = redis.call('set', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2])
redis.call('hincrby', KEYS[2], 'stored', 1)
redis.call('hset', KEYS[2], 'last_seen', ARGV[3])
redis.call('lpush', KEYS[3], ARGV[4])
return {first and 1 or 0, now[1], now[2]}
"""
# How long a webhook may wait for its write to run. Below the web process's socket timeout
# (relay/redis_conn.py), so a write that Redis runs only after ingest gave up (503) is
# always past its deadline, with room for the error of the clock offset.
ACCEPT_DEADLINE_SECONDS = 0.75
# Batches of accepts on the wire at once, each on its own connection. One at a time, under
# `appendfsync always` every other batch held one webhook (those answered come back only
# after the next batch has left) and keep-alive ingest got half the store ceiling; with
# several, webhooks arriving while batches wait for the fsync go out at once and Redis
# flushes them together (bench/, README "Performance"; 2 and 8 measured alike).
ACCEPT_SENDERS = 4
# The clock offset is taken from answers that came back this fast (its error is half of it).
OFFSET_MAX_ROUND_TRIP = 0.05


def _interrupted() -> BaseException:
    return RedisConnectionError("the write this webhook shared with others was interrupted")


def _late() -> BaseException:
    return RedisTimeoutError("Redis did not run the write in time: nothing was stored")


def _answer(result: Any) -> Any:
    """1 (stored) or 0 (a duplicate) from the accept script's answer, or the error to raise
    for it."""
    if not isinstance(result, list):
        return result  # an error of this one write
    if int(result[0]) < 0:
        return _late()
    return int(result[0])


class Acceptor:
    def __init__(self, events: EventQueue):
        self.events = events
        self.redis = events.redis
        self.dedup_window_seconds = events.dedup_window_seconds
        self._accept = self.redis.register_script(_ACCEPT)
        self._accepts = GroupCommit(self.store_batch, _interrupted, _late, senders=ACCEPT_SENDERS)
        self._clock_offset: float | None = None  # Redis's clock minus this host's

    def accept(self, event: RawEvent, dedup_key: str) -> bool:
        """Store the event unless its dedup key was seen within the window.

        One transaction, one round trip: the dedup mark, the event in the inbox, the
        platform's stats. Returns False for a duplicate. Raises redis.RedisError when Redis
        is unreachable, or does not run the write within ACCEPT_DEADLINE_SECONDS (dead or
        hung): nothing was stored then, and nothing will be.
        """
        deadline = time.monotonic() + ACCEPT_DEADLINE_SECONDS
        write = self.accept_write(event, dedup_key)
        return bool(self._accepts.submit(write, deadline))

    def accept_write(self, event: RawEvent, dedup_key: str) -> tuple[list, list]:
        """The accept script's keys and arguments for one event, due within the deadline."""
        mark = dedup_mark_key(event.platform, dedup_key)
        keys = [mark, stats.key(event.platform), inbox.INBOX]
        args = [
            event.id,
            self.dedup_window_seconds,
            repr(event.received_at),
            inbox.Entry(event.to_dict(), mark).to_json(),
            repr(time.time() + self._offset() + ACCEPT_DEADLINE_SECONDS),
        ]
        return keys, args

    def _offset(self) -> float:
        """Redis's clock minus this host's, measured once (one TIME) and then kept fresh by
        every accept's answer."""
        if self._clock_offset is None:
            sent = time.time()
            seconds, micros = self.redis.time()
            self._clock_offset = seconds + micros / 1e6 - (sent + time.time()) / 2
        return self._clock_offset

    def store_batch(self, batch: Sequence[tuple[list, list]]) -> list[Any]:
        """The accept script for each webhook of a group commit (relay/group_commit.py), in
        one round trip: 1 (stored) or 0 (duplicate) per write, or the error for that write."""
        sent = time.time()
        if len(batch) == 1:
            keys, args = batch[0]
            results: list[Any] = [self._accept(keys=keys, args=args)]
        else:
            results = self._pipeline(batch)
        self._observe_clock(results, sent, time.time())
        missing = [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]
        if missing:  # Redis restarted and forgot the script: none of those ran
            self.redis.script_load(_ACCEPT)
            retried = self._pipeline([batch[i] for i in missing])
            for i, result in zip(missing, retried, strict=True):
                results[i] = result
        return [_answer(result) for result in results]

    def _observe_clock(self, results: list[Any], sent: float, received: float) -> None:
        if received - sent > OFFSET_MAX_ROUND_TRIP:
            return
        for result in results:
            if isinstance(result, list):
                redis_now = int(result[1]) + int(result[2]) / 1e6
                self._clock_offset = redis_now - (sent + received) / 2
                return

    def _pipeline(self, batch: Sequence[tuple[list, list]]) -> list[Any]:
        pipe = self.redis.pipeline(transaction=False)
        for keys, args in batch:
            pipe.evalsha(self._accept.sha, len(keys), *keys, *args)
        return pipe.execute(raise_on_error=False)
