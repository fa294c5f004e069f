"""The durable hand-off between ingest and the workers, and the RQ jobs around it.

Ingest writes the dedup mark and the event (into the inbox, relay/inbox.py) in one atomic
script (relay/intake/acceptor.py), so a 2xx always means the event is stored, and a stored
mark always has its event. When two identical deliveries race, both may be stored; the mark
names the winner and the worker drops the other (`mark_owners`). The workers take events
from the inbox themselves (relay/delivery/dispatcher.py); RQ carries the scheduled retries
(which hand their requests back through the inbox) and the product flushes.

Jobs carry JSON (not pickles), so queued work survives an upgrade of the relay's code.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from redis import Redis
from rq import Queue, Retry
from rq.job import JobStatus
from rq.serializers import JSONSerializer

from relay import inbox
from relay.events import RawEvent

log = logging.getLogger("relay.ingest")
QUEUE_NAME = "relay"
DELIVER_PENDING = "relay.jobs.deliver_pending"
FLUSH_PRODUCTS = "relay.jobs.flush_products"
DRAIN_INBOX = "relay.jobs.drain_inbox"  # queued only by older relays
# The store's runs (relay/sync/): a backfill, a reconcile, products fetched whole.
SYNC_STORE = "relay.jobs.sync_store"
RECONCILE_STORE = "relay.jobs.reconcile_store"
COMPLETE_PRODUCTS = "relay.jobs.complete_products"
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


def enqueue_store_job(redis: Redis, name: str, *args: Any, job_id: str | None = None) -> None:
    """A store job (SYNC_STORE, RECONCILE_STORE, COMPLETE_PRODUCTS): it starts its run in
    a thread of the worker and returns, so a short timeout is right."""
    make_queue(redis).enqueue_call(
        name,
        args=args,
        job_id=job_id,
        description=f"{name.rsplit('.', 1)[-1]} {' '.join(map(str, args))}",
        timeout=600,
        result_ttl=3600,
        failure_ttl=FAILED_JOB_TTL_SECONDS,
    )


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
            "failure_ttl": FAILED_JOB_TTL_SECONDS,
            "ttl": None,  # never discard a waiting event
            "retry": ABANDONED_JOB_RETRIES,
        }

    def mark_owners(self, marks: list[str | None]) -> list[str | None]:
        """The event id each dedup mark names (None for no mark, or an expired one). An
        event whose mark names another lost a race with its twin: the worker drops it."""
        present = [m for m in marks if m]
        owners = dict(zip(present, self.redis.mget(present), strict=True)) if present else {}
        return [owners[m].decode() if m and owners.get(m) else None for m in marks]

    def requeue(self, event: RawEvent, pipe: Any) -> None:
        """Put a raw event back in the inbox, to be mapped again (replay), in the caller's
        transaction; a waiting worker takes it once it is committed. No dedup mark:
        the event is wanted again."""
        inbox.push(pipe, inbox.Entry(event.to_dict(), None))

    def requeue_retry(
        self,
        event: dict[str, Any],
        pending: list[dict[str, Any]],
        attempt: int,
        first_attempt_at: float,
    ) -> None:
        """A retry whose time has come goes back through the inbox, so that the workers'
        dispatchers send it like any event (one entity at a time, many in flight). Its
        requests are not planned again; the entity rules decide them again."""
        retry = {"pending": pending, "attempt": attempt, "first_attempt_at": first_attempt_at}
        self.redis.lpush(inbox.INBOX, inbox.Entry(event, None, retry).to_json())

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
