"""Demo Shop: posts {"event": "sale", "sale": {...}} with a shared token header."""

from __future__ import annotations

import json

from relay.mapping import BadRequest, IncomingRequest, Intake, Platform
from relay.verifiers import SharedToken
from relay_demoshop.mapper import map_event


def describe(request: IncomingRequest) -> Intake:
    try:
        body = json.loads(request.body)
    except ValueError:
        raise BadRequest("malformed_json", "the body is not valid JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("event"), str):
        raise BadRequest("missing_event", 'the body needs an "event" field')
    return Intake(topic=body["event"], delivery_id=body.get("delivery"))


PLATFORM = Platform(
    name="demoshop",
    title="Demo Shop",
    verifier=SharedToken(),
    describe=describe,
    map_event=map_event,
    topics=frozenset({"sale"}),
    secret_kind="token",
    ignored_topics={"ping": "a connectivity check"},
)
