"""CheckoutChamp (formerly Konnektive): Export Profile postbacks, authenticated by a secret
token in the URL path (see README.md in this folder)."""

from __future__ import annotations

from mappers.checkoutchamp.events import IGNORED_TOPICS, TOPICS, UnknownEvent, topic_of
from mappers.checkoutchamp.mapper import map_event
from relay.mapping import BadRequest, IncomingRequest, Intake, Platform
from relay.verifiers import SharedToken, check_token


def describe(request: IncomingRequest) -> Intake:
    """The event of a postback sent as a query string, a form or a JSON body.

    No delivery id: CheckoutChamp has none, and a re-sent postback repeats its content.
    No headers are kept: the only interesting one would be X-Relay-Token.
    """
    try:
        fields = request.fields()
    except ValueError:
        raise BadRequest(
            "malformed_body", "the body is not a JSON object, a form or a query string"
        ) from None
    try:
        topic = topic_of(fields)
    except UnknownEvent as exc:
        raise BadRequest("unknown_event", str(exc)) from None
    return Intake(topic=topic)


PLATFORM = Platform(
    name="checkoutchamp",
    title="CheckoutChamp",
    verifier=SharedToken(),
    describe=describe,
    map_event=map_event,
    topics=TOPICS,
    secret_kind="token",
    options=("currency", "timezone"),
    methods=("GET", "POST", "PUT"),
    check_secret=check_token,  # the token is all that proves a postback genuine
    token_in_path=True,
    ignored_topics=IGNORED_TOPICS,
    url_template="{relay}/webhooks/checkoutchamp/{token}",
)
