"""The durable hand-off between ingest and the workers, and the RQ jobs around it.

Ingest writes the dedup mark and the event (into the inbox, relay/inbox.py) in one atomic
script, so a 2xx always means the event is stored, and a stored mark always has its event.
When two identical deliveries race, both may be stored; the mark names the winner and the
worker drops the other (`mark_owners`). RQ carries the drain jobs, the scheduled retries and
the product flushes.

Jobs carry JSON (not pickles), so queued work survives an upgrade of the relay's code.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from redis import Redis, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Queue, Retry
from rq.job import JobStatus
from rq.serializers import JSONSerializer

from relay import inbox, stats
from relay.events import RawEvent, new_event_id
from relay.group_commit import GroupCommit

log = logging.getLogger("relay.ingest")
QUEUE_NAME = "relay"
DELIVER_PENDING = "relay.jobs.deliver_pending"
FLUSH_PRODUCTS = "relay.jobs.flush_products"
DRAIN_INBOX = "relay.jobs.drain_inbox"
# A worker killed mid-job (SIGKILL, OOM) leaves its job "started"; RQ's maintenance notices
# and re-runs it this many times. Failures the relay understands never get here: they are
# retried on the relay's own schedule or dead-lettered.
ABANDONED_JOB_RETRIES = Retry(max=5, interval=[5, 30, 60, 120, 300])
# RQ keeps a failed job, arguments and all (a retry's raw event), for a year by default.
# What the relay gives up on is a dead letter; a failed job is only a clue: a week.
FAILED_JOB_TTL_SECONDS = 7 * 86400


def dedup_mark_key(platform: str, key: str) -> str:
    return f"relay:seen:{platform}:{key}"


def make_queue(redis: Redis) -> Queue:
    return Queue(QUEUE_NAME, connection=redis, serializer=JSONSerializer)


# Ingest's whole write, atomic and in one command (a script, where a MULTI pipeline would
# cost the client five more commands to encode and parse on every webhook): the dedup mark,
# the platform's stats, the event in the inbox, the drain wake-up flag. Unless Redis runs it
# after its deadline (ARGV[6], in Redis's own clock): then the webhook has been answered 503,
# or soon will be, and nothing may be stored. Redis's time comes back either way, to keep
# this process's estimate of the offset between the two clocks fresh.
_ACCEPT = """
local now = redis.call('time')
if tonumber(now[1]) + tonumber(now[2]) / 1000000 > tonumber(ARGV[6]) then
  return {-1, 0, now[1], now[2]}
end
local first = redis.call('set', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2])
redis.call('hincrby', KEYS[2], 'stored', 1)
redis.call('hset', KEYS[2], 'last_seen', ARGV[3])
redis.call('lpush', KEYS[3], ARGV[4])
local wake = redis.call('set', KEYS[4], '1', 'NX', 'EX', ARGV[5])
return {first and 1 or 0, wake and 1 or 0, now[1], now[2]}
"""
# How long a webhook may wait for its write to run. Below the web process's socket timeout
# (relay/redis_conn.py), so a write that Redis runs only after ingest gave up (503) is
# always past its deadline, with room for the error of the clock offset.
ACCEPT_DEADLINE_SECONDS = 0.75
# The clock offset is taken from answers that came back this fast (its error is half of it).
OFFSET_MAX_ROUND_TRIP = 0.05


def _interrupted() -> BaseException:
    return RedisConnectionError("the write this webhook shared with others was interrupted")


def _late() -> BaseException:
    return RedisTimeoutError("Redis did not run the write in time: nothing was stored")


def _answer(result: Any) -> Any:
    """(first, wake) from the accept script's answer, or the error to raise for it."""
    if not isinstance(result, list):
        return result  # an error of this one write
    if int(result[0]) < 0:
        return _late()
    return int(result[0]), int(result[1])


class EventQueue:
    def __init__(self, redis: Redis, dedup_window_seconds: int = 24 * 3600, job_timeout: int = 120):
        self.redis = redis
        self.queue = make_queue(redis)
        self.dedup_window_seconds = dedup_window_seconds
        self.job_timeout = job_timeout
        self._accept = redis.register_script(_ACCEPT)
        self._accepts = GroupCommit(self.store_batch, _interrupted, _late)
        self._clock_offset: float | None = None  # Redis's clock minus this host's

    def _job_options(self, job_id: str, event: RawEvent) -> dict[str, Any]:
        return {
            "job_id": job_id,
            # RQ shows the description in its logs and tools; the default is the call with
            # its arguments, which would print customer data.
            "description": f"{event.platform} {event.topic} {event.id}",
            "timeout": self.job_timeout,
            "result_ttl": 0,  # nothing to keep once done; dead letters keep failures
            "failure_ttl": FAILED_JOB_TTL_SECONDS,
            "ttl": None,  # never discard a waiting event
            "retry": ABANDONED_JOB_RETRIES,
        }

    def accept(self, event: RawEvent, dedup_key: str) -> bool:
        """Store the event unless its dedup key was seen within the window.

        One transaction, one round trip: the dedup mark, the event in the inbox, the
        platform's stats. Returns False for a duplicate. Raises redis.RedisError when Redis
        is unreachable, or does not run the write within ACCEPT_DEADLINE_SECONDS (dead or
        hung): nothing was stored then, and nothing will be.
        """
        deadline = time.monotonic() + ACCEPT_DEADLINE_SECONDS
        write = self.accept_write(event, dedup_key)
        first, wake = self._accepts.submit(write, deadline)
        if wake:
            try:
                self.enqueue_drain()
            except RedisError:
                # Stored all the same: the answer is 2xx. The wake flag expires, and the
                # next webhook after it queues the drain job.
                log.warning("drain job not queued", extra={"event_id": event.id})
        return bool(first)

    def accept_write(self, event: RawEvent, dedup_key: str) -> tuple[list, list]:
        """The accept script's keys and arguments for one event, due within the deadline."""
        mark = dedup_mark_key(event.platform, dedup_key)
        keys = [mark, stats.key(event.platform), inbox.INBOX, inbox.WAKE]
        args = [
            event.id,
            self.dedup_window_seconds,
            repr(event.received_at),
            inbox.Entry(event.to_dict(), mark).to_json(),
            inbox.WAKE_TTL_SECONDS,
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
        one round trip: (first, wake) per write, or the error for that write."""
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
                redis_now = int(result[2]) + int(result[3]) / 1e6
                self._clock_offset = redis_now - (sent + received) / 2
                return

    def _pipeline(self, batch: Sequence[tuple[list, list]]) -> list[Any]:
        pipe = self.redis.pipeline(transaction=False)
        for keys, args in batch:
            pipe.evalsha(self._accept.sha, len(keys), *keys, *args)
        return pipe.execute(raise_on_error=False)

    def mark_owners(self, marks: list[str | None]) -> list[str | None]:
        """The event id each dedup mark names (None for no mark, or an expired one). An
        event whose mark names another lost a race with its twin: the worker drops it."""
        present = [m for m in marks if m]
        owners = dict(zip(present, self.redis.mget(present), strict=True)) if present else {}
        return [owners[m].decode() if m and owners.get(m) else None for m in marks]

    def requeue(self, event: RawEvent, pipe: Any) -> None:
        """Put a raw event back in the inbox, to be mapped again (replay), in the caller's
        transaction; the caller queues a drain job once it is committed. No dedup mark:
        the event is wanted again."""
        inbox.push(pipe, inbox.Entry(event.to_dict(), None))

    def enqueue_drain(self) -> None:
        """A job that handles the inbox chunk by chunk (relay/inbox.py)."""
        drain_id = new_event_id()
        self.queue.enqueue_call(
            DRAIN_INBOX,
            args=(drain_id,),
            job_id=f"drain-{drain_id}",
            description=f"drain inbox {drain_id}",
            timeout=self.job_timeout,
            result_ttl=0,
            failure_ttl=FAILED_JOB_TTL_SECONDS,
            ttl=None,
            retry=ABANDONED_JOB_RETRIES,
        )

    def schedule_delivery(
        self,
        event: RawEvent,
        pending: Sequence[dict[str, Any]],
        attempt: int,
        first_attempt_at: float,
        delay_seconds: float,
    ) -> None:
        """Schedule the next delivery attempt of the requests still pending, in Redis.

        The scheduler runs inside the workers, so a scheduled retry survives any restart.
        """
        job = self.queue.create_job(
            DELIVER_PENDING,
            args=(event.to_dict(), list(pending), attempt, first_attempt_at),
            status=JobStatus.SCHEDULED,
            # Unique per scheduling: a re-check keeps the attempt number, and reusing the id
            # of the running job would let RQ delete the new one when the old one ends.
            **self._job_options(f"{event.id}-attempt{attempt}-{secrets.token_hex(4)}", event),
        )
        self.queue.schedule_job(job, datetime.now(UTC) + timedelta(seconds=delay_seconds))

    def enqueue_flush(
        self,
        batch_id: str,
        attempt: int = 1,
        first_attempt_at: float | None = None,
        at_front: bool = False,
        delay_seconds: float | None = None,
    ) -> None:
        """Queue a product flush: now (at the front, it is due) or after a delay."""
        options = {
            "job_id": f"flush-{batch_id}-{attempt}",
            "description": f"product batch {batch_id} attempt {attempt}",
            "timeout": self.job_timeout,
            "result_ttl": 0,
            "failure_ttl": FAILED_JOB_TTL_SECONDS,
            "ttl": None,
            "retry": ABANDONED_JOB_RETRIES,
        }
        args = (batch_id, attempt, first_attempt_at)
        if delay_seconds is None:
            self.queue.enqueue_call(FLUSH_PRODUCTS, args=args, at_front=at_front, **options)
            return
        job = self.queue.create_job(
            FLUSH_PRODUCTS, args=args, status=JobStatus.SCHEDULED, **options
        )
        self.queue.schedule_job(job, datetime.now(UTC) + timedelta(seconds=delay_seconds))

    def depth(self) -> int:
        return len(self.queue)
