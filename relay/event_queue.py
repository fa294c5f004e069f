"""The durable hand-off between ingest and the workers: an RQ queue in Redis.

Ingest writes the dedup mark and the job in one transaction (one round trip), so a 2xx always
means the event is stored, and a stored mark always has its event. When two identical
deliveries race, both may be written; the mark names the winner and the worker drops the
other (`is_duplicate`).

Jobs carry JSON (not pickles), so queued events survive an upgrade of the relay's code.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from redis import Redis
from rq import Queue, Retry
from rq.job import JobStatus
from rq.serializers import JSONSerializer

from relay import stats
from relay.events import RawEvent

QUEUE_NAME = "relay"
PROCESS_EVENT = "relay.jobs.process_event"
DELIVER_PENDING = "relay.jobs.deliver_pending"
FLUSH_PRODUCTS = "relay.jobs.flush_products"
# A worker killed mid-job (SIGKILL, OOM) leaves its job "started"; RQ's maintenance notices
# and re-runs it this many times. Failures the relay understands never get here: they are
# retried on the relay's own schedule or dead-lettered.
ABANDONED_JOB_RETRIES = Retry(max=5, interval=[5, 30, 60, 120, 300])


def dedup_mark_key(platform: str, key: str) -> str:
    return f"relay:seen:{platform}:{key}"


def make_queue(redis: Redis) -> Queue:
    return Queue(QUEUE_NAME, connection=redis, serializer=JSONSerializer)


class EventQueue:
    def __init__(self, redis: Redis, dedup_window_seconds: int = 24 * 3600, job_timeout: int = 120):
        self.redis = redis
        self.queue = make_queue(redis)
        self.dedup_window_seconds = dedup_window_seconds
        self.job_timeout = job_timeout

    def _job_options(self, job_id: str, event: RawEvent) -> dict[str, Any]:
        return {
            "job_id": job_id,
            # RQ shows the description in its logs and tools; the default is the call with
            # its arguments, which would print customer data.
            "description": f"{event.platform} {event.topic} {event.id}",
            "timeout": self.job_timeout,
            "result_ttl": 0,  # nothing to keep once done; dead letters keep failures
            "ttl": None,  # never discard a waiting event
            "retry": ABANDONED_JOB_RETRIES,
        }

    def accept(self, event: RawEvent, dedup_key: str) -> bool:
        """Store the event unless its dedup key was seen within the window.

        Returns False for a duplicate. Raises redis.RedisError when Redis is unreachable.
        """
        mark = dedup_mark_key(event.platform, dedup_key)
        pipe = self.redis.pipeline(transaction=True)
        pipe.multi()  # RQ joins an explicit MULTI instead of starting its own
        pipe.set(mark, event.id, nx=True, ex=self.dedup_window_seconds)
        stats.record_stored(pipe, event.platform, event.received_at)
        self.queue.enqueue_call(
            PROCESS_EVENT,
            args=(event.to_dict(), mark),
            pipeline=pipe,
            **self._job_options(event.id, event),
        )
        first_sighting = pipe.execute()[0]
        return bool(first_sighting)

    def is_duplicate(self, event_id: str, mark: str | None) -> bool:
        """True when the dedup mark belongs to another event (this one lost a race)."""
        if not mark:
            return False
        owner = self.redis.get(mark)
        return owner is not None and owner.decode() != event_id

    def requeue(self, event: RawEvent, pipe: Any = None) -> None:
        """Put a raw event back to be mapped again (replay). No dedup mark: it is wanted.

        A caller's `pipe` must already be in MULTI mode (`pipe.multi()`)."""
        self.queue.enqueue_call(
            PROCESS_EVENT,
            args=(event.to_dict(), None),
            pipeline=pipe,
            **self._job_options(f"{event.id}-replay", event),
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
            **self._job_options(f"{event.id}-attempt{attempt}", event),
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
