"""The admin's JSON API for scripts (/admin/api/...): bearer token only, the same things the
`relay dlq` and `relay sandbox` commands do."""

from __future__ import annotations

import time
from dataclasses import dataclass

from flask import jsonify, request
from werkzeug.wrappers import Response

from relay import workspace
from relay.admin.blueprint import (
    DEAD_LETTERS_SHOWN,
    SANDBOX_RECORDS_SHOWN,
    Refused,
    bp,
    context,
    letter_dict,
    platform_arg,
    queue_state,
    sandbox_records,
)
from relay.admin.view import platform_rows
from relay.delivery.deadletters import DeadLetter, DeadLetters, replay, replay_all
from relay.redaction import redact, secrets_of

API_MAX_LIMIT = 1000


def _limit_arg(default: int) -> int:
    limit = request.args.get("limit", default=default, type=int)
    if limit is None or not 1 <= limit <= API_MAX_LIMIT:
        raise Refused(400, "bad_request", f"limit: a whole number from 1 to {API_MAX_LIMIT}")
    return limit


@dataclass(frozen=True)
class Selection:
    """What a replay or purge request names: some letters, or all (of a platform)."""

    letters: list[DeadLetter]
    all: bool = False
    platform: str | None = None


def _api_selection() -> Selection:
    """{"ids": [...]} or {"all": true, "platform": P}: the CLI's `ID... | --all [-p P]`.
    Every id is checked before anything is done, as the CLI does."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise Refused(400, "bad_request", 'send JSON {"ids": [...]} or {"all": true}')
    ids, all_, platform = data.get("ids") or [], data.get("all") is True, data.get("platform")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise Refused(400, "bad_request", "ids: a list of dead letter ids")
    if platform is not None and not isinstance(platform, str):
        raise Refused(400, "bad_request", "platform: a platform name")
    if ids and all_:
        raise Refused(400, "bad_request", "give dead letter ids or all, not both")
    if all_:  # paged through by the action itself: never all loaded at once
        return Selection([], all=True, platform=platform or None)
    if not ids:
        raise Refused(400, "bad_request", "give dead letter ids, or all")
    store = DeadLetters(context().redis)
    letters = []
    for event_id in ids:
        letter = store.get(event_id)
        if letter is None:
            raise Refused(404, "not_found", f"no dead letter {event_id!r}")
        letters.append(letter)
    return Selection(letters)


@bp.get("/api/status")
def api_status() -> Response:
    ctx = context()
    return jsonify(
        sandbox=ctx.settings.sandbox,
        workspace=workspace.status(ctx.settings, workspace.load(ctx.redis)),
        queue=queue_state().to_dict(),
        platforms=[row.to_dict() for row in platform_rows(ctx.redis, ctx.registry, ctx.settings)],
        at=time.time(),
    )


@bp.get("/api/dead-letters")
def api_dead_letters() -> Response:
    """`relay dlq list --json`, with the total."""
    platform, limit = platform_arg(request.args), _limit_arg(DEAD_LETTERS_SHOWN)
    store = DeadLetters(context().redis)
    letters = store.list(platform, limit)
    secrets = secrets_of(context().settings)
    return jsonify(
        total=store.count(platform),
        dead_letters=[redact(letter.summary(), secrets) for letter in letters],
    )


@bp.get("/api/dead-letters/<event_id>")
def api_dead_letter(event_id: str) -> Response:
    """`relay dlq show ID`."""
    letter = DeadLetters(context().redis).get(event_id)
    if letter is None:
        raise Refused(404, "not_found", f"no dead letter {event_id!r}")
    return jsonify(letter_dict(letter))


@bp.post("/api/dead-letters/<event_id>/replay")
def api_replay_one(event_id: str) -> Response:
    letter = DeadLetters(context().redis).get(event_id)
    if letter is None:
        raise Refused(404, "not_found", f"no dead letter {event_id!r}")
    return jsonify(replayed=replay(context().events, [letter]))


@bp.post("/api/dead-letters/replay")
def api_replay() -> Response:
    """`relay dlq replay ID... | --all [--platform P]`."""
    chosen = _api_selection()
    if chosen.all:
        return jsonify(replayed=replay_all(context().events, chosen.platform))
    return jsonify(replayed=replay(context().events, chosen.letters))


@bp.post("/api/dead-letters/purge")
def api_purge() -> Response:
    """`relay dlq purge ID... | --all [--platform P] --yes`."""
    chosen = _api_selection()
    store = DeadLetters(context().redis)
    if chosen.all:
        return jsonify(purged=store.purge(chosen.platform))
    store.remove(chosen.letters)
    return jsonify(purged=len(chosen.letters))


@bp.get("/api/sandbox")
def api_sandbox() -> Response:
    """`relay sandbox --json`, and whether the relay is in sandbox mode now."""
    return jsonify(
        sandbox=context().settings.sandbox,
        records=sandbox_records(_limit_arg(SANDBOX_RECORDS_SHOWN)),
    )
