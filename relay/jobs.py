"""RQ job entry points. RQ imports these by name ("relay.jobs.flush_products"), so this module
keeps its name and place whatever moves behind it: jobs queued by an older relay still run.

Each worker process builds its context once (settings, Redis, one keep-alive HTTP session,
the mapper registry) and reuses it for every job.
"""

from __future__ import annotations

from typing import Any

from relay.delivery.context import current


def deliver_pending(
    event: dict[str, Any], pending: list[dict[str, Any]], attempt: int, first_attempt_at: float
) -> str:
    """A retry whose time has come: its requests go back through the inbox, where the
    dispatcher sends them with everything else (relay/delivery/dispatcher.py)."""
    current().events.requeue_retry(event, pending, attempt, first_attempt_at)
    return "requeued"


def flush_products(batch_id: str, attempt: int = 1, first_attempt_at: float | None = None) -> str:
    return current().products.flush_products(batch_id, attempt, first_attempt_at)


def drain_inbox(drain_id: str) -> str:
    """Queued by relays before the dispatcher: the dispatcher now takes the inbox itself, and
    the worker's start gives back what such a drain job held."""
    return "the dispatcher drains the inbox"
