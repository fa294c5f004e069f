"""RQ job entry points. RQ imports these by name ("relay.jobs.drain_inbox"), so this module
keeps its name and place whatever moves behind it: jobs queued by an older relay still run.

Each worker process builds its context once (settings, Redis, one keep-alive HTTP session,
the mapper registry) and reuses it for every job.
"""

from __future__ import annotations

from typing import Any

from relay.delivery.commerce_api import ApiRequest
from relay.delivery.context import current
from relay.events import RawEvent


def deliver_pending(
    event: dict[str, Any], pending: list[dict[str, Any]], attempt: int, first_attempt_at: float
) -> str:
    requests = [ApiRequest.from_dict(r) for r in pending]
    return current().processor.deliver(
        RawEvent.from_dict(event), requests, attempt, first_attempt_at
    )


def flush_products(batch_id: str, attempt: int = 1, first_attempt_at: float | None = None) -> str:
    return current().products.flush_products(batch_id, attempt, first_attempt_at)


def drain_inbox(drain_id: str) -> str:
    return current().drain.run(drain_id)
