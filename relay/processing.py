"""What a worker does with one stored event: map, validate, plan, deliver, retry or give up.

    raw event --mapper--> records --schemas--> valid records --planner--> API requests
              --client--> delivered | retry scheduled in Redis | dead letter

Every way out is recorded: a mapping bug or an invalid record is a dead letter (replayable
after the fix), a transient API failure is a retry on the schedule, a permanent one or the
last attempt is a dead letter with the API's answer.
"""

from __future__ import annotations

import logging
import random
import time
import traceback
from collections.abc import Sequence
from typing import Any

from relay.commerce_api import ApiRequest, Client
from relay.deadletters import DeadLetter, DeadLetters
from relay.event_queue import EventQueue
from relay.events import RawEvent
from relay.mapping import IgnoreEvent, Record
from relay.planning import Planner
from relay.registry import Registry
from relay.schemas import record_errors
from relay.settings import RetryPolicy, Settings

log = logging.getLogger("relay.worker")


class EventProcessor:
    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        client: Client,
        events: EventQueue,
        dead_letters: DeadLetters,
        planner: Planner | None = None,
        rng: random.Random | None = None,
    ):
        self.settings = settings
        self.registry = registry
        self.client = client
        self.events = events
        self.dead_letters = dead_letters
        self.planner = planner or Planner()
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
        requests = self.planner.plan(event.platform, records)
        if not requests:
            return self._done(event, "nothing_to_send")
        return self.deliver(event, requests, attempt=1, first_attempt_at=time.time())

    # --- every attempt: deliver what is still pending ----------------------------------

    def deliver(
        self,
        event: RawEvent,
        pending: Sequence[ApiRequest],
        attempt: int,
        first_attempt_at: float,
    ) -> str:
        for index, request in enumerate(pending):
            outcome = self.client.send(request, event.id)
            if outcome.ok:
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
            return self._dead(
                event,
                reason,
                outcome.error,
                pending=remaining,
                response=outcome.to_dict(),
                attempts=attempt,
                first_attempt_at=first_attempt_at,
            )
        return self._done(event, "delivered")

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
