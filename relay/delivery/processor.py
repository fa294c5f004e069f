"""What a worker does with stored events: map, validate, plan; and what it makes of answers.

    entry --mapper--> records --schemas--> valid records --planner--> requests, product writes
          requests --grouped by entity lock--> tasks (relay/delivery/task.py), run by the
          dispatcher (relay/delivery/dispatcher.py); product writes --> outbox --> batches of
          100 (relay/delivery/product_flush.py)

Every way out is recorded (relay/delivery/endings.py): a mapping bug or an invalid record is
a dead letter (replayable after the fix), a transient API failure is a retry on the schedule
(in Redis, so restarts keep it), a permanent one or the last attempt is a dead letter with
the API's answer. A rate limit is none of these: the dispatcher's gate pauses and the task
goes again (relay/delivery/api_gate.py).

Each event has its own exception boundary, from mapping to the last send: an unexpected
exception dead-letters that event as `processing_error` and the others go on. Only what no
single event caused stops the dispatcher: Redis failing (`RedisError`).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from relay import sync_signals
from relay.delivery.commerce_api import ApiRequest, Outcome
from relay.delivery.endings import Endings, log_fields, retry_delay
from relay.delivery.entity_state import LockTimeout
from relay.delivery.failures import describe, not_ours
from relay.delivery.planning import Plan, Planner
from relay.delivery.product_outbox import ProductOutbox, ProductWrite
from relay.delivery.task import Task, TaskResult, lock_of
from relay.event_queue import EventQueue
from relay.events import RawEvent
from relay.inbox import Entry, Inbox
from relay.mapping import IgnoreEvent
from relay.registry import Registry
from relay.runtime import metrics
from relay.schemas import record_errors
from relay.settings import Settings

log = logging.getLogger("relay.worker")


@dataclass
class Dead:
    reason: str
    error: str
    pending: list[dict[str, Any]]
    response: dict[str, Any] | None
    attempts: int
    first_attempt_at: float | None


@dataclass
class Prepared:
    """An inbox entry made ready: done already (`outcome`), or tasks to run."""

    entry: Entry
    event: RawEvent
    tasks: list[Task] = field(default_factory=list)
    outcome: str = ""  # set when nothing is left to send
    deferred: bool = False  # put back in the inbox (another worker holds a product)
    # What became of the tasks so far (the dispatcher settles them one by one).
    retrying: bool = False
    dead: list[Dead] = field(default_factory=list)


def tasks_of(
    event: RawEvent, requests: Sequence[ApiRequest], attempt: int, first_attempt_at: float
) -> list[Task]:
    """The requests of one event, grouped by the lock they need, each group in order."""
    by_lock: dict[str, list[ApiRequest]] = {}
    for request in requests:
        by_lock.setdefault(lock_of(request), []).append(request)
    return [Task(event, group, lock, attempt, first_attempt_at) for lock, group in by_lock.items()]


class EventProcessor:
    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        events: EventQueue,
        planner: Planner,
        outbox: ProductOutbox,
        inbox: Inbox,
        endings: Endings,
        rng: random.Random | None = None,
    ):
        self.settings = settings
        self.registry = registry
        self.events = events
        self.planner = planner
        self.outbox = outbox
        self.inbox = inbox
        self.endings = endings
        self.rng = rng or random.Random()

    # --- entries into tasks -----------------------------------------------------------------

    def prepare(self, entries: Sequence[Entry]) -> list[Prepared]:
        events = [RawEvent.from_dict(entry.event) for entry in entries]
        owners = self.events.mark_owners([entry.mark for entry in entries])
        prepared: list[Prepared] = []
        writes: list[ProductWrite] = []
        raw_events: dict[str, RawEvent] = {}
        now = time.time()
        for entry, event, owner in zip(entries, events, owners, strict=True):
            one = Prepared(entry, event)
            prepared.append(one)
            if entry.retry is not None:  # a scheduled retry: its requests, as they were
                retry = entry.retry
                pending = [ApiRequest.from_dict(r) for r in retry.get("pending") or []]
                one.tasks = tasks_of(
                    event, pending, int(retry.get("attempt", 1)), retry.get("first_attempt_at", now)
                )
                continue
            if owner is not None and owner != event.id:  # lost a race with its twin
                one.outcome = self.endings.done(event, "duplicate")
                continue
            try:
                plan = self._plan(event, one)
            except LockTimeout as exc:  # another worker holds a product: not this event's fault
                self.inbox.defer(entry)
                one.deferred = True
                one.outcome = self.endings.done(event, "deferred", reason=f"{exc} is busy")
                continue
            except Exception as exc:
                if not_ours(exc):
                    raise
                one.outcome = self.endings.dead(event, "processing_error", describe(exc))
                continue
            if plan is None:
                continue
            if plan.products:
                writes.extend(plan.products)
                raw_events[event.id] = event
            if plan.requests:
                one.tasks = tasks_of(event, plan.requests, 1, now)
            else:
                one.outcome = self.endings.done(
                    event,
                    "products_queued"
                    if plan.products
                    else ("held" if plan.held else "nothing_to_send"),
                )
        if writes:
            self.outbox.put_many(writes, list(raw_events.values()))  # the dispatcher flushes
        return prepared

    def _plan(self, event: RawEvent, one: Prepared) -> Plan | None:
        platform = self.registry.mapper_of(event.platform)  # a platform or the storefront
        if platform is None:
            one.outcome = self.endings.dead(
                event, "unknown_platform", f"no mapper for {event.platform!r}"
            )
            return None
        try:
            records = platform.map_event(event, self.settings.options_for(event.platform))
        except IgnoreEvent as exc:
            one.outcome = self.endings.done(event, "ignored", reason=exc.reason)
            return None
        except Exception as exc:  # a mapper bug must cost a dead letter, not the event
            if not_ours(exc):
                raise
            one.outcome = self.endings.dead(event, "mapping_error", describe(exc, frames=3))
            return None
        invalid = {i: errs for i, record in enumerate(records) if (errs := record_errors(record))}
        if invalid:
            one.outcome = self.endings.dead(
                event, "invalid_record", f"records failed validation: {invalid}", records=records
            )
            return None
        plan = self.planner.plan(event, records)
        for note in plan.held:
            log.info("held", extra=log_fields(event, reason=note))
        return plan

    # --- answers ------------------------------------------------------------------------------

    def delivered(
        self, event: RawEvent, request: ApiRequest, outcome: Outcome, attempt: int
    ) -> None:
        metrics.DELIVERIES.labels(metrics.endpoint(request.path), "delivered").inc()
        log.info(
            "delivered",
            extra=log_fields(
                event,
                request=request,
                status=outcome.status,
                duration=outcome.duration,
                attempt=attempt,
            ),
        )

    def settle(self, one: Prepared, result: TaskResult) -> None:
        """A task that ended (not one that waits for its lock or for the gate): a retry on
        the schedule, or what its dead letter will say."""
        task = result.task
        if result.sent:
            self._count_found(task, result)
        if result.delivered:
            return
        remaining = [r.to_dict() for r in result.remaining]
        if result.error is not None:  # an exception while deciding or sending this task
            one.dead.append(
                Dead(
                    "processing_error",
                    result.error,
                    remaining,
                    None,
                    task.attempt,
                    task.first_attempt_at,
                )
            )
            return
        outcome = result.outcome
        assert outcome is not None
        path = metrics.endpoint(result.remaining[0].path)
        if outcome.transient and task.attempt < self.settings.retry.max_attempts:
            delay = retry_delay(self.settings.retry, task.attempt, outcome.retry_after, self.rng)
            self.events.schedule_delivery(
                task.event, remaining, task.attempt + 1, task.first_attempt_at, delay
            )
            one.retrying = True
            metrics.DELIVERIES.labels(path, "retry").inc()
            log.warning(
                "retry scheduled",
                extra=log_fields(
                    task.event,
                    request=result.remaining[0],
                    status=outcome.status,
                    error=outcome.error,
                    attempt=task.attempt,
                    retry_in=round(delay, 1),
                ),
            )
            return
        reason = "retries_exhausted" if outcome.transient else "permanent_error"
        metrics.DELIVERIES.labels(path, "dead_letter").inc()
        one.dead.append(
            Dead(
                reason,
                outcome.error,
                remaining,
                outcome.to_dict(),
                task.attempt,
                task.first_attempt_at,
            )
        )

    def _count_found(self, task: Task, result: TaskResult) -> None:
        """A reconciled event's entity that was really sent (not skipped by the rules):
        something webhooks had missed. One per task: a task is one entity's requests."""
        origin = sync_signals.reconciled(task.event)
        if origin is None:
            return
        kind = sync_signals.found_kind(task.requests[0].entity)
        pipe = self.events.redis.pipeline(transaction=False)
        sync_signals.count_found(pipe, origin[0], origin[1], kind)
        pipe.execute()

    def postpone(self, one: Prepared, task: Task, delay: float) -> None:
        """The API paused sending for longer than a worker holds a task in memory: the task
        goes on the schedule, due when the pause ends. Not a failed attempt: its number
        stays."""
        self.events.schedule_delivery(
            task.event,
            [r.to_dict() for r in task.requests],
            task.attempt,
            task.first_attempt_at,
            delay,
        )
        one.retrying = True
        metrics.DELIVERIES.labels(metrics.endpoint(task.requests[0].path), "paused").inc()

    def finish(self, one: Prepared) -> str:
        """Every task of the event has ended: its outcome, and one dead letter for whatever
        failed (the pending requests of all its failed tasks)."""
        event = one.event
        if one.dead:
            first = one.dead[0]
            error = first.error if len(one.dead) == 1 else "; ".join(d.error for d in one.dead)
            return self.endings.dead(
                event,
                first.reason,
                error,
                pending=[p for d in one.dead for p in d.pending],
                response=first.response,
                attempts=first.attempts,
                first_attempt_at=first.first_attempt_at,
            )
        if one.retrying:
            return "retrying"
        metrics.EVENT_DELAY.observe(max(time.time() - event.received_at, 0.0))
        return self.endings.done(event, "delivered")
