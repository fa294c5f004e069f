"""The admin forms' POSTs: replay and purge, one dead letter or all of them (of a platform),
each ending back on the overview with a notice."""

from __future__ import annotations

from flask import request
from werkzeug.wrappers import Response

from relay.admin.blueprint import Refused, back, bp, context, platform_arg
from relay.delivery.deadletters import DeadLetters, replay, replay_all
from relay.event_queue import RECONCILE_STORE, SYNC_STORE, enqueue_store_job


@bp.post("/dead-letters/<event_id>/replay")
def replay_one(event_id: str) -> Response:
    letter = DeadLetters(context().redis).get(event_id)
    if letter is None:  # a second click, or someone else was faster
        return back("gone")
    return back("replayed", replay(context().events, [letter]))


@bp.post("/dead-letters/replay", endpoint="replay_all")  # the name the pages use
def replay_every() -> Response:
    """Every dead letter, or every one of a platform (`relay dlq replay --all [-p P]`), a
    page at a time."""
    return back("replayed", replay_all(context().events, platform_arg(request.form)))


@bp.post("/dead-letters/<event_id>/purge")
def purge_one(event_id: str) -> Response:
    store = DeadLetters(context().redis)
    letter = store.get(event_id)
    if letter is None:
        return back("gone")
    store.remove([letter])
    return back("purged", 1)


@bp.post("/dead-letters/purge")
def purge_all() -> Response:
    try:
        # Only what the confirmation page counted: letters that died since are kept.
        upto = float(request.form["upto"])
    except (KeyError, ValueError):
        raise Refused(400, "bad_request", "confirm on the purge page first") from None
    purged = DeadLetters(context().redis).purge(platform_arg(request.form), upto)
    return back("purged", purged)


# --- the store (relay/sync/): a worker runs what these queue --------------------------------


def _configured(platform: str) -> str:
    if platform not in context().settings.stores:
        raise Refused(404, "not_found", "no store API is set up for that platform")
    return platform


@bp.post("/stores/<platform>/sync")
def sync_store(platform: str) -> Response:
    """ "Sync store": the backfill (or the one that stopped, resumed) as a worker's job."""
    enqueue_store_job(context().redis, SYNC_STORE, _configured(platform))
    return back("sync_queued")


@bp.post("/stores/<platform>/reconcile")
def reconcile_store(platform: str) -> Response:
    enqueue_store_job(context().redis, RECONCILE_STORE, _configured(platform), 0)
    return back("reconcile_queued")
