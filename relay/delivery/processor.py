"""What a worker does with stored events: map, validate, plan, deliver, retry or give up.

    events --mapper--> records --schemas--> valid records --planner--> guarded requests
           --rules + client (relay/delivery/batch.py)--> delivered | skipped | retry | dead
           product writes --> outbox --> batches of 100 (relay/delivery/product_flush.py)

Every way out is recorded (relay/delivery/endings.py): a mapping bug or an invalid record is
a dead letter (replayable after the fix), a transient API failure is a retry on the schedule
(in Redis, so restarts keep it), a permanent one or the last attempt is a dead letter with
the API's answer.

Each event has its own exception boundary, from mapping to the last send: an unexpected
exception dead-letters that event as `processing_error` and its chunk goes on. Only what no
single event caused stops a chunk: Redis failing (`RedisError`) and RQ's job timeout (the
drain, relay/delivery/drain.py, then fails and its re-run tries the events one at a time).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence

from relay.delivery.batch import DeliveryBatch, Item, Result
from relay.delivery.commerce_api import ApiRequest, Client, Outcome
from relay.delivery.endings import Endings, log_fields, retry_delay
from relay.delivery.entity_state import EntityStore, LockTimeout
from relay.delivery.failures import describe, not_ours
from relay.delivery.planning import Plan, Planner
from relay.delivery.product_flush import ProductFlush
from relay.delivery.product_outbox import ProductOutbox, ProductWrite
from relay.event_queue import EventQueue
from relay.events import RawEvent
from relay.inbox import Entry, Inbox
from relay.mapping import IgnoreEvent
from relay.registry import Registry
from relay.runtime import metrics
from relay.schemas import record_errors
from relay.settings import Settings

log = logging.getLogger("relay.worker")


class EventProcessor:
    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        client: Client,
        events: EventQueue,
        store: EntityStore,
        planner: Planner,
        outbox: ProductOutbox,
        inbox: Inbox,
        endings: Endings,
        products: ProductFlush,
        rng: random.Random | None = None,
    ):
        self.settings = settings
        self.registry = registry
        self.client = client
        self.events = events
        self.store = store
        self.planner = planner
        self.outbox = outbox
        self.inbox = inbox
        self.endings = endings
        self.products = products
        self.rng = rng or random.Random()
        self.batch = DeliveryBatch(store, client, self._delivered)

    def process(self, event: RawEvent, dedup_mark: str | None = None) -> str:
        """One event (tests, and jobs queued by an older relay)."""
        outcome = self.process_chunk([Entry(event.to_dict(), dedup_mark)])[0]
        self.products.schedule_flush()
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
                outcomes[event.id] = self.endings.done(event, "duplicate")
                continue
            try:
                plan = self._plan(event, outcomes)
            except LockTimeout as exc:  # another worker holds a product: not this event's fault
                self.inbox.defer(entry)
                outcomes[event.id] = self.endings.done(event, "deferred", reason=f"{exc} is busy")
                continue
            except Exception as exc:
                if not_ours(exc):
                    raise
                outcomes[event.id] = self.endings.dead(event, "processing_error", describe(exc))
                continue
            if plan is None:
                continue
            if plan.products:
                writes.extend(plan.products)
                raw_events[event.id] = event
            if plan.requests:
                items.append(Item(event, plan.requests, 1, now))
            else:
                outcomes[event.id] = self.endings.done(
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
        platform = self.registry.mapper_of(event.platform)  # a platform or the storefront
        if platform is None:
            outcomes[event.id] = self.endings.dead(
                event, "unknown_platform", f"no mapper for {event.platform!r}"
            )
            return None
        try:
            records = platform.map_event(event, self.settings.options_for(event.platform))
        except IgnoreEvent as exc:
            outcomes[event.id] = self.endings.done(event, "ignored", reason=exc.reason)
            return None
        except Exception as exc:  # a mapper bug must cost a dead letter, not the event
            if not_ours(exc):
                raise
            outcomes[event.id] = self.endings.dead(event, "mapping_error", describe(exc, frames=3))
            return None
        invalid = {i: errs for i, record in enumerate(records) if (errs := record_errors(record))}
        if invalid:
            outcomes[event.id] = self.endings.dead(
                event, "invalid_record", f"records failed validation: {invalid}", records=records
            )
            return None
        plan = self.planner.plan(event, records)
        for note in plan.held:
            log.info("held", extra=log_fields(event, reason=note))
        return plan

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
                outcomes[event.id] = self.endings.dead(
                    event, "processing_error", describe(exc), attempts=result.item.attempt
                )
        return outcomes

    def _delivered(
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

    def _settle(self, result: Result) -> str:
        item, event = result.item, result.item.event
        if result.delivered:
            metrics.EVENT_DELAY.observe(max(time.time() - event.received_at, 0.0))
            return self.endings.done(event, "delivered")
        remaining = [r.to_dict() for r in result.remaining]
        if result.error is not None:  # an exception while deciding or sending this event
            return self.endings.dead(
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
                extra=log_fields(
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
        return self.endings.dead(
            event,
            reason,
            outcome.error,
            pending=remaining,
            response=outcome.to_dict(),
            attempts=item.attempt,
            first_attempt_at=item.first_attempt_at,
        )
