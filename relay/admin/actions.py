"""The admin forms' POSTs: replay and purge, one dead letter or all of them (of a platform),
each ending back on the overview with a notice."""

from __future__ import annotations

from flask import request
from werkzeug.wrappers import Response

from relay.admin.blueprint import Refused, back, bp, context, platform_arg
from relay.delivery.deadletters import DeadLetters, replay, replay_all


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
