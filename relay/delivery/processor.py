"""What a worker does with stored events: map, validate, plan, deliver, retry or give up.

    inbox chunk --mapper--> records --schemas--> valid records --planner--> guarded requests
                --rules + client (relay/delivery.py)--> delivered | skipped | retry | dead
                product writes --> outbox --> batches of 100

Every way out is recorded: a mapping bug or an invalid record is a dead letter (replayable
after the fix), a transient API failure is a retry on the schedule (in Redis, so restarts
keep it), a permanent one or the last attempt is a dead letter with the API's answer.

Each event has its own exception boundary, from mapping to the last send (and each product
write in a flush): an unexpected exception dead-letters that event as `processing_error`
and its chunk goes on. Only what no single event caused stops a chunk: Redis failing
(`RedisError`) and RQ's job timeout. The drain then fails, RQ runs it again, and the
re-run tries its left-over events one at a time (relay/inbox.py, `worker_crashed`).
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from redis import RedisError

from relay import metrics
from relay.commerce_api import ApiRequest, Client, Outcome, product_path
from relay.deadletters import DeadLetter, DeadLetters
from relay.delivery import DeliveryBatch, Item, Result
from relay.entity_rules import Guard, attempting, decide, delivered, fingerprint, skipped
from relay.entity_state import EntityStore, LockTimeout
from relay.event_queue import EventQueue
from relay.events import RawEvent, new_event_id
from relay.failures import describe, not_ours
from relay.inbox import MAX_FAILED_DRAINS, Entry, Inbox
from relay.mapping import IgnoreEvent, Record
from relay.planning import Plan, Planner
from relay.product_outbox import BATCH_SIZE, ProductOutbox, ProductWrite
from relay.registry import Registry
from relay.schemas import record_errors
from relay.settings import RetryPolicy, Settings

log = logging.getLogger("relay.worker")
DRAIN_BUDGET_SECONDS = 5.0  # then let RQ run what else waits (retries), and continue


class EventProcessor:
    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        client: Client,
        events: EventQueue,
        dead_letters: DeadLetters,
        store: EntityStore,
        planner: Planner,
        outbox: ProductOutbox,
        inbox: Inbox | None = None,
        rng: random.Random | None = None,
    ):
        self.settings = settings
        self.registry = registry
        self.client = client
        self.events = events
        self.dead_letters = dead_letters
        self.store = store
        self.planner = planner
        self.outbox = outbox
        self.inbox = inbox or Inbox(events.redis)
        self.rng = rng or random.Random()
        self.batch = DeliveryBatch(store, client, self._delivered)

    # --- the inbox: events in chunks ---------------------------------------------------

    def drain(self, drain_id: str) -> str:
        """Handle inbox events chunk by chunk until it is empty (or the budget is spent:
        then a continuation job is queued, so retries waiting in RQ get their turn)."""
        try:
            return self._drain(drain_id)
        except BaseException:
            self._after_failed_drain()
            raise

    def _drain(self, drain_id: str) -> str:
        handled, started = 0, time.monotonic()
        leftovers = self.inbox.inflight(drain_id)  # a failed or killed run of this job left these
        if leftovers:
            handled += self._retry_leftovers(drain_id, leftovers)
            self.inbox.done(drain_id)
            self.schedule_flush(inline=True)
        while True:
            entries = self.inbox.take(drain_id)
            if not entries:
                if self.inbox.sleep():
                    break
                continue
            self.process_chunk(entries)
            self.inbox.done(drain_id)
            handled += len(entries)
            self.inbox.keep_awake()
            self.schedule_flush(inline=True)
            if time.monotonic() - started > DRAIN_BUDGET_SECONDS and self.inbox.depth():
                self.events.enqueue_drain()
                break
        return f"{handled} events"

    def _retry_leftovers(self, drain_id: str, entries: Sequence[Entry]) -> int:
        """The events a failed run of this drain held, one at a time, each out of the list
        once handled: if the drain fails again, the event being handled is the suspect."""
        for entry in entries:
            failed = self.inbox.note_try(entry)
            if failed >= MAX_FAILED_DRAINS:
                event = RawEvent.from_dict(entry.event)
                self._dead(
                    event,
                    "worker_crashed",
                    f"the drain handling this event failed {failed} times (the worker died "
                    "or the job ran out of time), the last times with this event alone",
                    attempts=failed,
                )
            else:
                self.process_chunk([entry])
            self.inbox.finish_one(drain_id, entry)
            self.inbox.keep_awake()
        return len(entries)

    def _after_failed_drain(self) -> None:
        """A drain that fails leaves its events in-flight for RQ's retry of the job; the
        events still in the inbox must not wait for that retry (or for the wake flag to
        expire): let the next webhook, or a fresh drain now, take them."""
        with contextlib.suppress(RedisError):  # Redis is gone: the flag expires by itself
            self.inbox.release_wake()
            if self.inbox.depth() and self.inbox.wake():
                self.events.enqueue_drain()

    def process(self, event: RawEvent, dedup_mark: str | None = None) -> str:
        """One event (tests, and jobs queued by an older relay)."""
        outcome = self.process_chunk([Entry(event.to_dict(), dedup_mark)])[0]
        self.schedule_flush()
        return outcome

    def process_chunk(self, entries: Sequence[Entry]) -> list[str]:
        events = [RawEvent.from_dict(entry.event) for entry in entries]
        owners = self.events.mark_owners([entry.mark for entry in entries])
        outcomes: dict[str, str] = {}
        items: list[Item] = []
        writes: list[ProductWrite] = []
        raw_events: dict[str, RawEvent] = {}
        now = time.time()
        for entry, event, owner in zip(entries, events, owners, strict=True):
            if owner is not None and owner != event.id:  # lost a race with its twin
                outcomes[event.id] = self._done(event, "duplicate")
                continue
            try:
                plan = self._plan(event, outcomes)
            except LockTimeout as exc:  # another worker holds a product: not this event's fault
                self.inbox.defer(entry)
                outcomes[event.id] = self._done(event, "deferred", reason=f"{exc} is busy")
                continue
            except Exception as exc:
                if not_ours(exc):
                    raise
                outcomes[event.id] = self._dead(event, "processing_error", describe(exc))
                continue
            if plan is None:
                continue
            if plan.products:
                writes.extend(plan.products)
                raw_events[event.id] = event
            if plan.requests:
                items.append(Item(event, plan.requests, 1, now))
            else:
                outcomes[event.id] = self._done(
                    event,
                    "products_queued"
                    if plan.products
                    else ("held" if plan.held else "nothing_to_send"),
                )
        if writes:
            self.outbox.put_many(writes, list(raw_events.values()))  # the caller flushes
        if items:
            outcomes.update(self._deliver(items))
        return [outcomes.get(event.id, "") for event in events]

    def _plan(self, event: RawEvent, outcomes: dict[str, str]) -> Plan | None:
        platform = self.registry.get(event.platform)
        if platform is None:
            outcomes[event.id] = self._dead(
                event, "unknown_platform", f"no mapper for {event.platform!r}"
            )
            return None
        try:
            records = platform.map_event(event, self.settings.options_for(event.platform))
        except IgnoreEvent as exc:
            outcomes[event.id] = self._done(event, "ignored", reason=exc.reason)
            return None
        except Exception as exc:  # a mapper bug must cost a dead letter, not the event
            if not_ours(exc):
                raise
            outcomes[event.id] = self._dead(event, "mapping_error", describe(exc, frames=3))
            return None
        invalid = {i: errs for i, record in enumerate(records) if (errs := record_errors(record))}
        if invalid:
            outcomes[event.id] = self._dead(
                event, "invalid_record", f"records failed validation: {invalid}", records=records
            )
            return None
        plan = self.planner.plan(event, records)
        for note in plan.held:
            log.info("held", extra=_fields(event, reason=note))
        return plan

    # --- every attempt ---------------------------------------------------------------

    def deliver(
        self,
        event: RawEvent,
        pending: Sequence[ApiRequest],
        attempt: int,
        first_attempt_at: float,
    ) -> str:
        """A scheduled retry of one event's remaining requests."""
        return self._deliver([Item(event, list(pending), attempt, first_attempt_at)])[event.id]

    def _deliver(self, items: list[Item]) -> dict[str, str]:
        outcomes = {}
        for result in self.batch.run(items):
            event = result.item.event
            try:
                outcomes[event.id] = self._settle(result)
            except Exception as exc:
                if not_ours(exc):
                    raise
                outcomes[event.id] = self._dead(
                    event, "processing_error", describe(exc), attempts=result.item.attempt
                )
        return outcomes

    def _delivered(
        self, event: RawEvent, request: ApiRequest, outcome: Outcome, attempt: int
    ) -> None:
        metrics.DELIVERIES.labels(metrics.endpoint(request.path), "delivered").inc()
        log.info(
            "delivered",
            extra=_fields(
                event,
                request=request,
                status=outcome.status,
                duration=outcome.duration,
                attempt=attempt,
            ),
        )

    def _settle(self, result: Result) -> str:
        item, event = result.item, result.item.event
        if result.delivered:
            metrics.EVENT_DELAY.observe(max(time.time() - event.received_at, 0.0))
            return self._done(event, "delivered")
        remaining = [r.to_dict() for r in result.remaining]
        if result.error is not None:  # an exception while deciding or sending this event
            return self._dead(
                event,
                "processing_error",
                result.error,
                pending=remaining,
                attempts=item.attempt,
                first_attempt_at=item.first_attempt_at,
            )
        path = metrics.endpoint(result.remaining[0].path)
        outcome = result.outcome
        if outcome is None:  # decided again shortly: not a failed attempt
            delay = result.retry_after or 1.0
            self.events.schedule_delivery(
                event, remaining, item.attempt, item.first_attempt_at, delay
            )
            return "rechecking"
        if outcome.transient and item.attempt < self.settings.retry.max_attempts:
            delay = retry_delay(self.settings.retry, item.attempt, outcome.retry_after, self.rng)
            self.events.schedule_delivery(
                event, remaining, item.attempt + 1, item.first_attempt_at, delay
            )
            metrics.DELIVERIES.labels(path, "retry").inc()
            log.warning(
                "retry scheduled",
                extra=_fields(
                    event,
                    request=result.remaining[0],
                    status=outcome.status,
                    error=outcome.error,
                    attempt=item.attempt,
                    retry_in=round(delay, 1),
                ),
            )
            return "retrying"
        reason = "retries_exhausted" if outcome.transient else "permanent_error"
        metrics.DELIVERIES.labels(path, "dead_letter").inc()
        return self._dead(
            event,
            reason,
            outcome.error,
            pending=remaining,
            response=outcome.to_dict(),
            attempts=item.attempt,
            first_attempt_at=item.first_attempt_at,
        )

    # --- products: the outbox and its batches ------------------------------------------

    def schedule_flush(self, inline: bool = False) -> None:
        """Flush now when due (inline in a drain job, else as a job at the queue's front);
        otherwise make sure a flush comes within about a second."""
        # Inline, only the inbox counts: RQ jobs behind a drain carry no product writes.
        waiting = self.inbox.depth() + (0 if inline else self.events.depth())
        if self.outbox.flush_due(queued_jobs=waiting):
            if inline:
                self.flush_products(new_event_id())
            elif self.outbox.claim_flush():
                self.events.enqueue_flush(new_event_id(), at_front=True)
        elif self.outbox.waiting() and self.outbox.claim_safety_flush():
            # Nothing else guarantees a flush if no more events come: the oldest write
            # waits about a second at most (the scheduler looks every second).
            self.events.enqueue_flush(new_event_id(), delay_seconds=1.0)

    def flush_products(
        self, batch_id: str, attempt: int = 1, first_attempt_at: float | None = None
    ) -> str:
        first_attempt_at = first_attempt_at or time.time()
        if not self.outbox.take(batch_id):
            return "nothing_to_flush"
        try:
            with self.store.lock("products", wait_seconds=10.0):
                failure = self._flush(batch_id, self.outbox.batch(batch_id))
        except LockTimeout:
            failure = Outcome(
                ok=False, transient=True, retry_after=1.0, error="another flush holds the products"
            )
        left = self.outbox.batch(batch_id)
        if not left:
            self.outbox.drop(batch_id)
            return "delivered"
        assert failure is not None
        if attempt < self.settings.retry.max_attempts:
            delay = retry_delay(self.settings.retry, attempt, failure.retry_after, self.rng)
            self.events.enqueue_flush(batch_id, attempt + 1, first_attempt_at, delay_seconds=delay)
            metrics.DELIVERIES.labels("products", "retry").inc(len(left))
            log.warning(
                "product batch retry scheduled",
                extra={
                    "batch": batch_id,
                    "products": len(left),
                    "error": failure.error,
                    "attempt": attempt,
                    "retry_in": round(delay, 1),
                },
            )
            return "retrying"
        self._dead_writes(left, "retries_exhausted", failure, attempt, first_attempt_at)
        self.outbox.drop(batch_id)
        return "dead_letter"

    def _flush(self, batch_id: str, writes: list[ProductWrite]) -> Outcome | None:
        """Send a batch; returns the transient failure that stopped it, if any. State is
        read and written for the whole batch at once (each write is an fsync). A write
        that raises while it is decided or sent is dead-lettered alone."""
        guards: dict[str, Guard] = {}
        for write in writes:
            try:
                guards[write.product_id] = Guard.from_dict(write.guard)
            except Exception as exc:
                self._broken_writes(batch_id, [write], exc)
        state = self.store.load_many(g.entity for g in guards.values())
        kept: dict[str, dict[str, str]] = {}
        skipped_ids, deletes, upserts = [], [], []
        for write in writes:
            guard = guards.get(write.product_id)
            if guard is None:
                continue
            try:
                decision = decide(guard, state[guard.entity])
                if not decision.send:
                    kept[guard.entity] = skipped(guard, decision, state[guard.entity])
            except Exception as exc:
                self._broken_writes(batch_id, [write], exc)
                continue
            if not decision.send:
                skipped_ids.append(write.product_id)
                metrics.DELIVERIES.labels("products", "skipped").inc()
                log.info(
                    "skipped",
                    extra={
                        "event_id": write.event["id"],
                        "entity": guard.entity,
                        "reason": decision.reason,
                    },
                )
            else:
                (deletes if write.op == "delete" else upserts).append(write)
        self.store.update_many(kept)
        self.outbox.done(batch_id, skipped_ids)
        for write in deletes:
            guard = guards[write.product_id]
            try:
                outcome = self.client.send(
                    ApiRequest("DELETE", product_path(write.product_id), None, guard.entity)
                )
            except Exception as exc:
                self._broken_writes(batch_id, [write], exc)
                continue
            if outcome.transient:
                return outcome
            if outcome.ok:
                self.store.update(guard.entity, delivered(guard, state[guard.entity]))
            else:
                self._dead_writes([write], "permanent_error", outcome, 1, None)
            self.outbox.done(batch_id, [write.product_id])
        for start in range(0, len(upserts), BATCH_SIZE):
            failure = self._send_products(batch_id, upserts[start : start + BATCH_SIZE], state)
            if failure is not None:
                return failure
        return None

    def _send_products(
        self, batch_id: str, chunk: list[ProductWrite], state: dict[str, dict[str, str]]
    ) -> Outcome | None:
        guards = [Guard.from_dict(w.guard) for w in chunk]  # read once already in _flush
        try:
            request = products_request(chunk)
            self.store.update_many({g.entity: attempting(g, state[g.entity]) for g in guards})
            outcome = self.client.send(request)
        except Exception as exc:
            if not_ours(exc):
                raise
            if len(chunk) > 1:  # find the write that raises; the others go out
                return self._one_by_one(batch_id, chunk, state)
            self._broken_writes(batch_id, chunk, exc)
            return None
        if outcome.ok:
            self.store.update_many({g.entity: delivered(g, state[g.entity]) for g in guards})
            self.outbox.done(batch_id, [w.product_id for w in chunk])
            metrics.DELIVERIES.labels("products", "delivered").inc(len(chunk))
            now = time.time()
            for write in chunk:
                metrics.EVENT_DELAY.observe(max(now - write.event["received_at"], 0.0))
            log.info(
                "products delivered",
                extra={
                    "products": len(chunk),
                    "status": outcome.status,
                    "duration": outcome.duration,
                },
            )
            return None
        if outcome.transient:
            return outcome
        if len(chunk) > 1:  # one bad product must not sink the other 99: find it
            return self._one_by_one(batch_id, chunk, state)
        self._dead_writes(chunk, "permanent_error", outcome, 1, None)
        self.outbox.done(batch_id, [chunk[0].product_id])
        return None

    def _one_by_one(
        self, batch_id: str, chunk: list[ProductWrite], state: dict[str, dict[str, str]]
    ) -> Outcome | None:
        for write in chunk:
            failure = self._send_products(batch_id, [write], state)
            if failure is not None:
                return failure
        return None

    def _broken_writes(self, batch_id: str, writes: Sequence[ProductWrite], exc: Exception) -> None:
        """Writes that raised (not an answer of the API): dead letters, out of the batch."""
        if not_ours(exc):
            raise exc
        failure = Outcome(ok=False, error=describe(exc))
        self._dead_writes(writes, "processing_error", failure, 1, None)
        self.outbox.done(batch_id, [w.product_id for w in writes])

    def _dead_writes(
        self,
        writes: Sequence[ProductWrite],
        reason: str,
        outcome: Outcome,
        attempts: int,
        first_attempt_at: float | None,
    ) -> None:
        metrics.DELIVERIES.labels("products", "dead_letter").inc(len(writes))
        by_event: dict[str, list[ProductWrite]] = defaultdict(list)
        for write in writes:
            by_event[write.event["id"]].append(write)
        for group in by_event.values():
            event, note = self.outbox.raw_event(group[0])
            self._dead(
                event,
                reason,
                outcome.error + note,
                pending=[_pending(w) for w in group],
                response=outcome.to_dict(),
                attempts=attempts,
                first_attempt_at=first_attempt_at,
            )

    # --- endings -------------------------------------------------------------------------

    def _done(self, event: RawEvent, outcome: str, reason: str = "") -> str:
        extra = _fields(event, outcome=outcome)
        if reason:
            extra["reason"] = reason
        log.info(outcome, extra=extra)
        return outcome

    def _dead(
        self,
        event: RawEvent,
        reason: str,
        error: str,
        records: Sequence[Record] | None = None,
        pending: list[dict[str, Any]] | None = None,
        response: dict[str, Any] | None = None,
        attempts: int = 0,
        first_attempt_at: float | None = None,
    ) -> str:
        letter = DeadLetter(
            id=event.id,
            platform=event.platform,
            topic=event.topic,
            reason=reason,
            error=error,
            event=event.to_dict(),
            attempts=attempts,
            first_attempt_at=first_attempt_at,
            records=[r.to_dict() for r in records] if records is not None else None,
            pending=pending,
            response=response,
        )
        try:
            self.dead_letters.add(letter)
        except (RecursionError, TypeError, ValueError) as exc:
            # Records or requests that JSON cannot hold (nested too deep: what made the
            # event fail, often). The raw event is text: keep it, and say what was dropped.
            error += f" (records and requests not kept: {type(exc).__name__})"
            self.dead_letters.add(replace(letter, error=error, records=None, pending=None))
        log.error(
            "dead-lettered",
            extra=_fields(
                event, outcome="dead_letter", reason=reason, error=error[:300], attempts=attempts
            ),
        )
        return "dead_letter"


def _pending(write: ProductWrite) -> dict[str, Any]:
    """A write as a dead letter's pending request (nothing computed: it may be the one
    that raised)."""
    upsert = write.op == "upsert"
    return {
        "method": "POST" if upsert else "DELETE",
        "path": "/api/v1/products" if upsert else product_path(write.product_id),
        "body": {"products": [write.payload]} if upsert else None,
        "entity": f"product:{write.product_id}",
        "guard": write.guard,
        "key": "",
    }


def products_request(writes: Sequence[ProductWrite]) -> ApiRequest:
    payloads = [w.payload for w in writes]
    return ApiRequest(
        "POST",
        "/api/v1/products",
        {"products": payloads},
        f"products:{len(payloads)}",
        key=f"products.{fingerprint(payloads)}",
    )


def retry_delay(
    policy: RetryPolicy, attempt: int, retry_after: float | None, rng: random.Random
) -> float:
    """Exponential backoff with jitter; the API's Retry-After wins when it asks for longer."""
    nominal = policy.nominal_delay(attempt)
    delay = nominal * rng.uniform(1 - policy.jitter, 1 + policy.jitter)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, policy.max_delay_seconds)


def _fields(event: RawEvent, request: ApiRequest | None = None, **more: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "event_id": event.id,
        "platform": event.platform,
        "topic": event.topic,
    }
    if request is not None:
        fields["entity"] = request.entity
        fields["api_path"] = request.path
    fields.update({k: v for k, v in more.items() if v is not None})
    return fields
