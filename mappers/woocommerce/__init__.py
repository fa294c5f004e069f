"""WooCommerce: webhooks signed with the webhook secret (see README.md in this folder)."""

from __future__ import annotations

import re
import secrets

import orjson

from mappers.woocommerce.mapper import map_event
from relay.mapping import BadRequest, IncomingRequest, Intake, Platform
from relay.verifiers import WooCommerceSignature

TOPICS = frozenset(
    {
        "order.created",
        "order.updated",
        "order.restored",
        "product.created",
        "product.updated",
        "product.deleted",
        "product.restored",
    }
)
# Metadata worth keeping with the raw event; never the signature.
KEPT_HEADERS = (
    "x-wc-webhook-topic",
    "x-wc-webhook-source",
    "x-wc-webhook-id",
    "x-wc-webhook-delivery-id",
)
_PING = re.compile(rb"\s*webhook_id=\d+\s*")


def is_ping(request: IncomingRequest) -> bool:
    """WooCommerce's activation ping: unsigned form body `webhook_id=N`; it needs exactly 200."""
    return request.header("X-WC-Webhook-Signature") is None and bool(_PING.fullmatch(request.body))


def describe(request: IncomingRequest) -> Intake:
    topic = request.header("X-WC-Webhook-Topic")
    if not topic:
        raise BadRequest("missing_topic", "the X-WC-Webhook-Topic header is missing")
    if request.content_type and "json" not in request.content_type:
        raise BadRequest(
            "unsupported_media_type", "WooCommerce webhooks are application/json", status=415
        )
    try:
        body = orjson.loads(request.body)  # on every webhook: the fast parser
    except ValueError:
        raise BadRequest("malformed_json", "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("malformed_json", "the body is not a JSON object")
    headers = {name: value for name in KEPT_HEADERS if (value := request.header(name))}
    # No delivery id for deduplication: WooCommerce derives X-WC-Webhook-Delivery-ID from the
    # webhook id and the current second, so two different events of one webhook within the
    # same second share it. Duplicates are recognised by content instead.
    return Intake(topic=topic.strip().lower(), delivery_id=None, headers=headers)


def send_headers(topic: str, body: bytes) -> dict[str, str]:
    """What WooCommerce adds to a delivery besides the signature (for `relay send`)."""
    resource, _, event = topic.partition(".")
    return {
        "X-WC-Webhook-Topic": topic,
        "X-WC-Webhook-Resource": resource,
        "X-WC-Webhook-Event": event,
        "X-WC-Webhook-Source": "https://relay-send.invalid/",
        "X-WC-Webhook-ID": "0",
        "X-WC-Webhook-Delivery-ID": secrets.token_hex(16),
        "User-Agent": "WooCommerce/relay-send Hookshot",
    }


PLATFORM = Platform(
    name="woocommerce",
    title="WooCommerce",
    verifier=WooCommerceSignature(),
    describe=describe,
    map_event=map_event,
    topics=TOPICS,
    secret_kind="secret",
    options=("currency",),
    methods=("POST",),
    is_handshake=is_ping,
    send_headers=send_headers,
)
