"""Which CheckoutChamp event a postback is, and how to read its merchant-named fields.

Postbacks carry whatever the merchant mapped in the Export Profile. The event is named by
`customerType` when it is mapped (the routing label: "New Sale", "NEW_SALE", "new sale" all
mean one thing); otherwise it is told from `orderStatus` and its companions, as observed in
real postbacks (reference/platform-webhooks.md section 2.2). Both ingest (`describe`) and the
mapper use this module, so an event is read the same way on arrival and on replay.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from relay.mapping import id_text

# Routing labels (normalized) -> topic. Unknown labels become their own topic, ignored.
CUSTOMER_TYPES: dict[str, str] = {
    "partial": "partial",
    "new_sale": "new_sale",
    "capture": "capture",
    "upsell": "upsell",
    "recurring": "recurring",
    "recurring_order": "recurring",
    "rebill": "recurring",
    "all_refunds": "refund",
    "refund": "refund",
    "refunded": "refund",
    "partial_refunds": "partial_refund",
    "partial_refund": "partial_refund",
    "full_refunds": "full_refund",
    "full_refund": "full_refund",
    "cancel": "cancel",
    "cancelled": "cancel",
    "canceled": "cancel",
    "cancel_order": "cancel",
    "fulfillment_shipped": "fulfillment_shipped",
    "fulfillment_delivered": "fulfillment_delivered",
    "decline": "decline",
    "declined": "decline",
    "rebill_decline": "rebill_decline",
    "recycle_failed": "recycle_failed",
    "chargeback": "chargeback",
    "subscription_started": "subscription_started",
    "pre_billing": "pre_billing",
    "pause": "pause",
    "reactivate": "reactivate",
    "qa_pending": "qa_pending",
    "rma_issued": "rma_issued",
}

CHECKOUT_TOPICS = frozenset({"partial"})
# Topic -> the Commerce API order status it announces.
ORDER_TOPICS: dict[str, str] = {
    "new_sale": "placed",
    "capture": "placed",
    "upsell": "placed",
    "recurring": "placed",
    "refund": "refunded",
    "partial_refund": "refunded",
    "full_refund": "refunded",
    "cancel": "cancelled",
    "fulfillment_shipped": "fulfilled",
    "fulfillment_delivered": "fulfilled",
}
TOPICS = frozenset(CHECKOUT_TOPICS | ORDER_TOPICS.keys())

_SUBSCRIPTION = "subscription events are not sent; the orders they bill are"
IGNORED_TOPICS: dict[str, str] = {
    "decline": "a declined payment is not an order",
    "rebill_decline": "a declined rebill is not an order",
    "recycle_failed": "a failed retry of a declined payment is not an order",
    "chargeback": "chargebacks are not an order status of the Commerce API",
    "subscription_started": _SUBSCRIPTION,
    "pre_billing": _SUBSCRIPTION,
    "pause": _SUBSCRIPTION,
    "reactivate": _SUBSCRIPTION,
    "qa_pending": "an order awaiting QA is announced by its New Sale or Capture postback",
    "rma_issued": "returns are not an order status of the Commerce API",
}

EVENT_FIELDS = ("customerType", "event")
MAP_CUSTOMER_TYPE = (
    "add a Field Mapping with Export Name customerType and Field customerType to the "
    "CheckoutChamp Export Profile"
)


class UnknownEvent(ValueError):
    """The postback does not say which event it is."""


def topic_of(fields: Mapping[str, Any]) -> str:
    """The topic of a postback, from `customerType` or else from the order's statuses."""
    label = slug(text(fields, *EVENT_FIELDS))
    if label:
        topic = CUSTOMER_TYPES.get(label, label)
        # A Cancel Order in the UI reaches the "Decline" routing as a declined order.
        return "cancel" if topic == "decline" and looks_cancelled(fields) else topic
    return _topic_from_status(fields)


def _topic_from_status(fields: Mapping[str, Any]) -> str:
    status = upper(text(fields, "orderStatus"))
    if not status:
        raise UnknownEvent(
            f"cannot tell which CheckoutChamp event this is (no customerType, no "
            f"orderStatus): {MAP_CUSTOMER_TYPE}"
        )
    if status == "PARTIAL":
        return "partial"
    if status in ("PENDING", "COD_PENDING"):
        return "recurring" if billing_cycle(fields) >= 2 else "new_sale"
    if status == "COMPLETE":
        fulfillment = upper(text(fields, "fulfillmentStatus"))
        if fulfillment == "SHIPPED":
            return "fulfillment_shipped"
        if fulfillment == "DELIVERED":
            return "fulfillment_delivered"
        return "recurring" if billing_cycle(fields) >= 2 else "capture"
    if status == "REFUNDED":
        return "refund"
    if status in ("CANCELLED", "CANCELED"):
        return "cancel"
    if status == "DECLINED":
        return "cancel" if looks_cancelled(fields) else "decline"
    raise UnknownEvent(
        f"orderStatus {status!r} does not tell which CheckoutChamp event this is: "
        f"{MAP_CUSTOMER_TYPE}"
    )


def looks_cancelled(fields: Mapping[str, Any]) -> bool:
    """A declined order whose fulfilment or subscription was cancelled: CheckoutChamp's
    Cancel Order. Either is enough: a one-time order keeps recurringStatus ONE_TIME."""
    if upper(text(fields, "orderStatus")) != "DECLINED":
        return False
    cancelled = ("CANCELLED", "CANCELED")
    return (
        upper(text(fields, "fulfillmentStatus")) in cancelled
        or upper(text(fields, "recurringStatus")) in cancelled
    )


def billing_cycle(fields: Mapping[str, Any]) -> int:
    """billingCycleNumber as a number: "ONE_TIME" and absent count as the first cycle."""
    cycle = text(fields, "billingCycleNumber")
    return int(cycle) if cycle and cycle.isdigit() else 1


# --- reading fields -------------------------------------------------------------------------


def text(fields: Mapping[str, Any], *names: str) -> str | None:
    """The first of `names` with a non-empty scalar value, as stripped text. Objects and
    lists (cardExpiryDate arrives as one) are not text and are skipped."""
    for name in names:
        value = fields.get(name)
        if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
            continue
        stripped = str(value).strip()
        if stripped:
            return stripped
    return None


def identifier(fields: Mapping[str, Any], name: str) -> str | None:
    """An id field as text; an object, a list, a boolean or a float is no id (MappingError)."""
    return id_text(fields.get(name), name)


def scalar(fields: Mapping[str, Any], *names: str) -> str | int | float | None:
    """The first of `names` with a non-empty number or string, as sent (for amounts: a
    JSON number keeps its value, a string its digits)."""
    for name in names:
        value = fields.get(name)
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float) or (isinstance(value, str) and value.strip()):
            return value
    return None


def slug(value: str | None) -> str:
    """ "New Sale", "NEW_SALE", "new-sale" -> "new_sale"."""
    return re.sub(r"[^a-z0-9]+", "_", (value or "").lower()).strip("_")


def upper(value: str | None) -> str:
    return (value or "").upper().replace(" ", "_")
