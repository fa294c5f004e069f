"""How an event's handling ends, in one place: done (logged), or a dead letter (kept whole,
logged), and the backoff between attempts.

Dead letters keep what can be stored: a dead letter whose records cannot be held as JSON
(nested too deeply, what made the event fail, often) is kept without them, never lost.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from relay.delivery.commerce_api import ApiRequest
from relay.delivery.deadletters import DeadLetter, DeadLetters
from relay.events import RawEvent
from relay.mapping import Record
from relay.schemas import nested_deeper_than
from relay.settings import RetryPolicy

# Deeper than any valid record (free-form fields stop at 8 levels), far from the stack's limit.
KEPT_DEPTH = 64

log = logging.getLogger("relay.worker")


class Endings:
    def __init__(self, dead_letters: DeadLetters):
        self.dead_letters = dead_letters

    def done(self, event: RawEvent, outcome: str, reason: str = "") -> str:
        extra = log_fields(event, outcome=outcome)
        if reason:
            extra["reason"] = reason
        log.info(outcome, extra=extra)
        return outcome

    def dead(
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
        kept = [r.to_dict() for r in records] if records is not None else None
        if nested_deeper_than([kept, pending, response], KEPT_DEPTH):
            # Records or requests nested too deep to store (what made the event fail,
            # often): dropped before they are encoded, where the recursion would overflow
            # the stack, in a way that depends on how deep the stack already is.
            error += " (records and requests not kept: nested too deeply)"
            kept, pending = None, None
        letter = DeadLetter(
            id=event.id,
            platform=event.platform,
            topic=event.topic,
            reason=reason,
            error=error,
            event=event.to_dict(),
            attempts=attempts,
            first_attempt_at=first_attempt_at,
            records=kept,
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
            extra=log_fields(
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


def log_fields(event: RawEvent, request: ApiRequest | None = None, **more: Any) -> dict[str, Any]:
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
