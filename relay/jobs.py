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


# --- the store (relay/sync/): queued by the workers' scheduling and the admin page ----------
# Each runs its store work in a thread of the worker (relay/sync/service.py in_background):
# a run takes minutes to hours, and this worker's retries and product flushes go on.


def sync_store(platform: str, orders_since: str | None = None) -> str:
    """The admin's "Sync store": a backfill, or the one that stopped, resumed (with the
    --orders-since it was started with: a new run would drop its checkpoints)."""
    from relay.sync import service
    from relay.sync.checkpoints import RESUMABLE, Checkpoints

    context = current()
    previous = Checkpoints(context.redis, platform, "backfill").load()
    if orders_since is None and previous is not None and previous.status in RESUMABLE:
        orders_since = previous.params.get("orders_since")

    def work() -> None:
        store = service.open_store(context.settings, context.registry, context.redis, platform)
        try:
            service.backfill(store, orders_since=orders_since, lock_wait=30.0)
        finally:
            store.close()

    return "started" if service.in_background(f"sync-{platform}", work) else "already running"


def reconcile_store(platform: str, slot: int = 0) -> str:
    """One reconcile run (the interval's, claimed by one worker: relay/sync_signals.py)."""
    from relay.sync import service

    context = current()

    def work() -> None:
        store = service.open_store(context.settings, context.registry, context.redis, platform)
        try:
            service.reconcile(store, lock_wait=10.0, slot=slot)
        finally:
            store.close()

    started = service.in_background(f"reconcile-{platform}", work)
    return "started" if started else "already running"


def complete_products(platform: str) -> str:
    """Products wanted whole for their held variations (relay/sync/completion.py)."""
    from relay import sync_signals
    from relay.sync import completion, service
    from relay.sync.lock import StoreBusy

    context = current()
    try:
        store = service.open_store(context.settings, context.registry, context.redis, platform)
        try:
            with store.lock() as lock:
                lock.acquire(0)
                pushed = completion.complete(store)
        finally:
            store.close()
    except StoreBusy:
        pushed = -1  # a backfill or reconcile holds the store: the next claim tries again
    finally:
        context.redis.delete(sync_signals.completion_claim_key(platform))
    return "store busy" if pushed < 0 else f"pushed {pushed}"
