"""Custom stores: a merchant's own backend posts Commerce API objects, signed with Standard
Webhooks (see README.md in this folder)."""

from __future__ import annotations

from mappers.custom.mapper import TYPES, map_event, parse_body, validation_errors
from relay.mapping import BadRequest, IncomingRequest, Intake, Platform
from relay.verifiers import StandardWebhooksSignature, check_standard_webhooks_secret


def describe(request: IncomingRequest) -> Intake:
    """Senders are developers: validate now and answer 422 with field errors, so a mistake
    shows up in their response instead of in the relay's dead letters."""
    if request.content_type and "json" not in request.content_type:
        raise BadRequest("unsupported_media_type", "send application/json", status=415)
    kind, items, single = parse_body(request.body)
    errors = validation_errors(kind, items, single)
    if errors:
        raise BadRequest(
            "invalid_records",
            "the data does not match the Commerce API contract",
            status=422,
            details=errors,
        )
    # webhook-id is unique per message (and reused by the sender's retries): dedupe on it.
    message_id = request.header("webhook-id")
    return Intake(topic=kind, delivery_id=message_id, headers={"webhook-id": message_id or ""})


PLATFORM = Platform(
    name="custom",
    title="Custom store",
    verifier=StandardWebhooksSignature(),
    describe=describe,
    map_event=map_event,
    topics=frozenset(TYPES),
    secret_kind="secret",
    methods=("POST",),
    check_secret=check_standard_webhooks_secret,
)
