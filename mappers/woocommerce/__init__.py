"""WooCommerce: webhooks signed with the webhook secret (see README.md in this folder)."""

from __future__ import annotations

import re
import secrets
from typing import Any

import orjson

from mappers.woocommerce.mapper import map_event
from mappers.woocommerce.store import KEY_HELP, make_client
from relay.mapping import MAX_TOPIC_LENGTH, BadRequest, IncomingRequest, Intake, Platform
from relay.store_api import StoreSpec
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
        "customer.created",
        "customer.updated",
    }
)
IGNORED_TOPICS = {
    "customer.deleted": "a deleted store account is not an unsubscribe: the subscriber stays",
}
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
    raw_topic = request.header("X-WC-Webhook-Topic")
    if not raw_topic:
        raise BadRequest("missing_topic", "the X-WC-Webhook-Topic header is missing")
    if len(raw_topic) > MAX_TOPIC_LENGTH:  # unsigned, and logged: bound it before anything
        raise BadRequest(
            "topic_too_long", f"X-WC-Webhook-Topic is longer than {MAX_TOPIC_LENGTH} characters"
        )
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
    topic = raw_topic.strip().lower()
    problem = topic_mismatch(topic, body, request)
    if problem:
        raise BadRequest("topic_mismatch", problem)
    headers = {name: value for name in KEPT_HEADERS if (value := request.header(name))}
    # No delivery id for deduplication: WooCommerce derives X-WC-Webhook-Delivery-ID from the
    # webhook id and the current second, so two different events of one webhook within the
    # same second share it. Duplicates are recognised by content instead.
    return Intake(topic=topic, delivery_id=None, headers=headers)


def topic_mismatch(topic: str, body: dict[str, Any], request: IncomingRequest) -> str | None:
    """Why the body cannot be what the topic says, or None.

    WooCommerce signs the body but not its headers, so a captured body could be replayed
    under another topic (an order's body as `product.deleted` would delete the product with
    the order's id). The body's own shape says what it is: WooCommerce sends a deleted
    resource as exactly `{"id": N}` (`WC_Webhook::build_payload`), an order as its REST
    resource (which always carries `order_key`), a product or variation as its REST
    resource (which always carries `type`, and never `order_key`) and a customer as its
    REST resource (which always carries `username`, and neither `type` nor `order_key`).
    """
    resource, _, event = topic.partition(".")
    for header, expected in (("X-WC-Webhook-Resource", resource), ("X-WC-Webhook-Event", event)):
        given = request.header(header)
        if given is not None and given.strip().lower() != expected:
            return f"{header} does not agree with X-WC-Webhook-Topic"
    if topic not in TOPICS:
        return None  # answered `ignored`: nothing is stored or sent
    if event == "deleted":
        if body.keys() != {"id"} or not _is_id(body["id"]):
            return f'a {topic} body is exactly {{"id": N}}'
    elif resource == "order":
        if "order_key" not in body:
            return f"the body is not an order, as {topic} says"
    elif resource == "customer":
        if "username" not in body or "type" in body or "order_key" in body:
            return f"the body is not a customer, as {topic} says"
    elif "type" not in body or "order_key" in body:
        return f"the body is not a product, as {topic} says"
    return None


def _is_id(value: Any) -> bool:
    """A WooCommerce post id: a positive integer (a digit string from some hooks)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value > 0
    return (
        isinstance(value, str)
        and 0 < len(value) <= 20
        and value.isascii()
        and value.isdigit()
        and value.strip("0") != ""
    )


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
    ignored_topics=IGNORED_TOPICS,
    send_headers=send_headers,
    # The REST API (mappers/woocommerce/store.py): RELAY_WOOCOMMERCE_STORE_URL,
    # RELAY_WOOCOMMERCE_CONSUMER_KEY and RELAY_WOOCOMMERCE_CONSUMER_SECRET.
    store=StoreSpec(
        credentials=("consumer_key", "consumer_secret"),
        client=make_client,
        key_help=KEY_HELP,
        webhook_topics=tuple(sorted(TOPICS)),
    ),
)
