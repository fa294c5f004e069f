"""What a worker does with one stored event: map, validate, plan, deliver, retry or give up.

    raw event --mapper--> records --schemas--> valid records --planner--> guarded requests
              --rules + client--> delivered | skipped | retry scheduled in Redis | dead letter
                                  product writes --> outbox --> batches of 100 (flush job)

Every way out is recorded: a mapping bug or an invalid record is a dead letter (replayable
after the fix), a transient API failure is a retry on the schedule, a permanent one or the
last attempt is a dead letter with the API's answer. Before each attempt of each request,
the entity rules decide under the entity's lock whether it still should go.
"""

from __future__ import annotations

import logging
import random
import time
import traceback
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from relay import metrics
from relay.commerce_api import ApiRequest, Client, Outcome, product_path
from relay.deadletters import DeadLetter, DeadLetters
from relay.entity_rules import Guard, attempting, decide, delivered, fingerprint, skipped
from relay.entity_state import EntityStore, LockTimeout
from relay.event_queue import EventQueue
from relay.events import RawEvent, new_event_id
from relay.mapping import IgnoreEvent, Record
from relay.planning import Planner, effect_key
from relay.product_outbox import BATCH_SIZE, ProductOutbox, ProductWrite
from relay.registry import Registry
from relay.schemas import record_errors
from relay.settings import RetryPolicy, Settings

log = logging.getLogger("relay.worker")
SKIPPED = Outcome(ok=True, status=None)
BUSY_RETRY_SECONDS = 1.0  # another worker holds the entity: try again shortly


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
        self.rng = rng or random.Random()

    # --- first attempt: from the raw event ---------------------------------------------

    def process(self, event: RawEvent, dedup_mark: str | None = None) -> str:
        """Handle a freshly stored (or replayed) raw event. Returns the outcome's name."""
        if self.events.is_duplicate(event.id, dedup_mark):
            return self._done(event, "duplicate")
        platform = self.registry.get(event.platform)
        if platform is None:
            return self._dead(event, "unknown_platform", f"no mapper for {event.platform!r}")
        try:
            records = platform.map_event(event, self.settings.options_for(event.platform))
        except IgnoreEvent as exc:
            return self._done(event, "ignored", reason=exc.reason)
        except Exception as exc:  # a mapper bug must cost a dead letter, not the event
            return self._dead(event, "mapping_error", _describe(exc))
        invalid = {i: errs for i, record in enumerate(records) if (errs := record_errors(record))}
        if invalid:
            return self._dead(
                event, "invalid_record", f"records failed validation: {invalid}", records=records
            )
        plan = self.planner.plan(event, records)
        for note in plan.held:
            log.info("held", extra=_fields(event, reason=note))
        for write in plan.products:
            self.outbox.put(write)
        if plan.products:
            self.schedule_flush()
        if plan.requests:
            return self.deliver(event, plan.requests, attempt=1, first_attempt_at=time.time())
        if plan.products:
            return self._done(event, "products_queued")
        return self._done(event, "held" if plan.held else "nothing_to_send")

    # --- every attempt: deliver what is still pending ----------------------------------

    def deliver(
        self,
        event: RawEvent,
        pending: Sequence[ApiRequest],
        attempt: int,
        first_attempt_at: float,
    ) -> str:
        for index, request in enumerate(pending):
            outcome = self._send_guarded(event, request)
            if outcome.ok:
                metrics.DELIVERIES.labels(
                    metrics.endpoint(request.path),
                    "skipped" if outcome is SKIPPED else "delivered",
                ).inc()
                if outcome is not SKIPPED:
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
                continue
            remaining = [r.to_dict() for r in pending[index:]]
            if outcome.transient and attempt < self.settings.retry.max_attempts:
                delay = retry_delay(self.settings.retry, attempt, outcome.retry_after, self.rng)
                self.events.schedule_delivery(
                    event, remaining, attempt + 1, first_attempt_at, delay
                )
                metrics.DELIVERIES.labels(metrics.endpoint(request.path), "retry").inc()
                log.warning(
                    "retry scheduled",
                    extra=_fields(
                        event,
                        request=request,
                        status=outcome.status,
                        error=outcome.error,
                        attempt=attempt,
                        retry_in=round(delay, 1),
                    ),
                )
                return "retrying"
            reason = "retries_exhausted" if outcome.transient else "permanent_error"
            metrics.DELIVERIES.labels(metrics.endpoint(request.path), "dead_letter").inc()
            return self._dead(
                event,
                reason,
                outcome.error,
                pending=remaining,
                response=outcome.to_dict(),
                attempts=attempt,
                first_attempt_at=first_attempt_at,
            )
        metrics.EVENT_DELAY.observe(max(time.time() - event.received_at, 0.0))
        return self._done(event, "delivered")

    def _send_guarded(self, event: RawEvent, request: ApiRequest) -> Outcome:
        """Send unless the entity's rules say the API already has it (or something newer)."""
        if request.guard is None:
            return self.client.send(request, event.id)
        guard = Guard.from_dict(request.guard)
        try:
            with self.store.lock(guard.lock):
                state = self.store.load(guard.entity)
                related = self.store.load(guard.related) if guard.related else {}
                decision = decide(guard, state, related)
                if not decision.send:
                    self.store.update(guard.entity, skipped(guard, decision, state))
                    log.info(
                        "skipped", extra=_fields(event, request=request, reason=decision.reason)
                    )
                    return SKIPPED
                self.store.update(guard.entity, attempting(guard, state))
                if decision.announce_first:
                    placed = _announcement(request)
                    outcome = self.client.send(placed, event.id)
                    if not outcome.ok:
                        return outcome
                    announced = delivered(Guard.from_dict(placed.guard or {}), state)
                    self.store.update(guard.entity, announced)
                    state = {**state, **announced}
                outcome = self.client.send(request, event.id)
                if outcome.ok:
                    self.store.update(guard.entity, delivered(guard, state))
                return outcome
        except LockTimeout:
            return Outcome(
                ok=False,
                transient=True,
                retry_after=BUSY_RETRY_SECONDS,
                error=f"{guard.entity} is busy in another worker",
            )

    # --- products: the outbox and its batches ------------------------------------------

    def schedule_flush(self) -> None:
        if self.outbox.flush_due(queued_jobs=self.events.depth()):
            if self.outbox.claim_flush():
                self.events.enqueue_flush(new_batch_id(), at_front=True)
        elif self.outbox.claim_safety_flush():
            # Nothing else guarantees a flush if no more jobs come: the oldest write waits
            # about a second at most (the scheduler looks every second).
            self.events.enqueue_flush(new_batch_id(), delay_seconds=1.0)

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
                ok=False,
                transient=True,
                retry_after=BUSY_RETRY_SECONDS,
                error="another flush holds the products",
            )
        left = self.outbox.batch(batch_id)
        if not left:
            self.outbox.drop(batch_id)
            return "delivered"
        assert failure is not None
        if attempt < self.settings.retry.max_attempts:
            delay = retry_delay(self.settings.retry, attempt, failure.retry_after, self.rng)
            self.events.enqueue_flush(batch_id, attempt + 1, first_attempt_at, delay_seconds=delay)
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
        """Send a batch; returns the transient failure that stopped it, if any."""
        upserts: list[ProductWrite] = []
        for write in writes:
            guard = Guard.from_dict(write.guard)
            state = self.store.load(guard.entity)
            decision = decide(guard, state)
            if not decision.send:
                self.store.update(guard.entity, skipped(guard, decision, state))
                self.outbox.done(batch_id, [write.product_id])
            elif write.op == "delete":
                request = ApiRequest("DELETE", product_path(write.product_id), None, guard.entity)
                outcome = self.client.send(request)
                if outcome.ok:
                    self.store.update(guard.entity, delivered(guard, state))
                    self.outbox.done(batch_id, [write.product_id])
                elif outcome.transient:
                    return outcome
                else:
                    self._dead_writes([write], "permanent_error", outcome, 1, None)
                    self.outbox.done(batch_id, [write.product_id])
            else:
                upserts.append(write)
        for start in range(0, len(upserts), BATCH_SIZE):
            failure = self._send_products(batch_id, upserts[start : start + BATCH_SIZE])
            if failure is not None:
                return failure
        return None

    def _send_products(self, batch_id: str, chunk: list[ProductWrite]) -> Outcome | None:
        for write in chunk:
            guard = Guard.from_dict(write.guard)
            self.store.update(guard.entity, attempting(guard, self.store.load(guard.entity)))
        request = products_request(chunk)
        outcome = self.client.send(request)
        if outcome.ok:
            metrics.DELIVERIES.labels("products", "delivered").inc(len(chunk))
            now = time.time()
            for write in chunk:
                guard = Guard.from_dict(write.guard)
                self.store.update(guard.entity, delivered(guard, self.store.load(guard.entity)))
                metrics.EVENT_DELAY.observe(max(now - write.event["received_at"], 0.0))
            self.outbox.done(batch_id, [w.product_id for w in chunk])
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
            for write in chunk:
                failure = self._send_products(batch_id, [write])
                if failure is not None:
                    return failure
            return None
        self._dead_writes(chunk, "permanent_error", outcome, 1, None)
        self.outbox.done(batch_id, [chunk[0].product_id])
        return None

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
            event = RawEvent.from_dict(group[0].event)
            pending = [
                products_request([w]).to_dict()
                if w.op == "upsert"
                else ApiRequest("DELETE", product_path(w.product_id)).to_dict()
                for w in group
            ]
            self._dead(
                event,
                reason,
                outcome.error,
                pending=pending,
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
        self.dead_letters.add(
            DeadLetter(
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
        )
        log.error(
            "dead-lettered",
            extra=_fields(
                event, outcome="dead_letter", reason=reason, error=error[:300], attempts=attempts
            ),
        )
        return "dead_letter"


def products_request(writes: Sequence[ProductWrite]) -> ApiRequest:
    payloads = [w.payload for w in writes]
    return ApiRequest(
        "POST",
        "/api/v1/products",
        {"products": payloads},
        f"products:{len(payloads)}",
        key=f"products.{fingerprint(payloads)}",
    )


def new_batch_id() -> str:
    return new_event_id()


def _announcement(request: ApiRequest) -> ApiRequest:
    """The `placed` event an order needs before its first fulfilled/cancelled/refunded."""
    body = {k: v for k, v in (request.body or {}).items() if k != "refundAmountCents"}
    body["status"] = "placed"
    guard = {**(request.guard or {}), "status": "placed"}
    guard.pop("refund", None)
    return ApiRequest(
        request.method,
        request.path,
        body,
        request.entity,
        guard,
        effect_key(Guard.from_dict(guard)),
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


def _describe(exc: BaseException) -> str:
    """Exception type, message and the innermost frames: enough to find the mapper bug."""
    frames = traceback.extract_tb(exc.__traceback__)[-3:]
    where = "; ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} in {f.name}" for f in frames)
    return f"{type(exc).__name__}: {exc} (at {where})"


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
