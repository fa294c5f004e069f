"""Sticky.io postbacks (flat token values) -> Commerce API records.

Pure: the raw event and the merchant's options (`currency`, `timezone`) in, records out.
Rules (DESIGN.md section 6, README.md in this folder):
- Prospect postback -> a checkout (checkoutId = prospect_id);
- Order postback, order_status 1 -> order `placed` (rebills are new orders: placed too);
  plus `refunded` with refundAmountCents = void_refund_amount when that is > 0 (Sticky.io
  sends the cumulative amount; the worker sends it only when it grows);
  ischargeback 1 -> `refunded` for the whole order total (no chargeback amount is sent);
- order_status 0 -> ignored (a declined payment is not an order);
- no email -> ignored; customer_id (when not 0) -> externalId;
- products from the parallel comma-separated lists, trusting a list only when it has one
  value per product id (names may contain commas).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from mappers.stickyio import tokens
from mappers.stickyio.tokens import Fields
from relay import localtime
from relay.events import RawEvent
from relay.localtime import utc_iso
from relay.mapping import IgnoreEvent, MappingError, Record
from relay.money import MoneyError, is_currency_code, parse_decimal, to_minor_units

ORDER_TOPICS = frozenset({"order", "refund", "chargeback", "decline"})
# order_date_time, in the Sticky.io account's own time zone (24 h clock).
DATE_TIME_FORMAT = "%m/%d/%Y %H:%M:%S"


def map_event(event: RawEvent, options: Mapping[str, str]) -> list[Record]:
    try:
        fields = event.fields()
    except ValueError as exc:
        raise MappingError(f"postback body is not readable: {exc}") from None
    try:
        if event.topic == "prospect":
            return [map_prospect(fields)]
        if event.topic in ORDER_TOPICS:
            return map_order(fields, options)
    except MoneyError as exc:
        raise MappingError(str(exc)) from None
    raise IgnoreEvent(f"topic {event.topic} is not mapped")


# --- orders -------------------------------------------------------------------------------


def map_order(fields: Fields, options: Mapping[str, str]) -> list[Record]:
    """One order snapshot -> placed, then refunded when money went back."""
    order_id = _required_id(fields, "order_id")
    status = tokens.text(fields, "order_status")
    if status == "0":
        raise IgnoreEvent(_decline_reason(order_id, tokens.text(fields, "decline_reason")))
    if status != "1":
        raise MappingError(f"order {order_id}: order_status {status!r} is neither 1 nor 0")
    customer = _customer(fields)
    if customer is None:
        raise IgnoreEvent(f"order {order_id} has no email")
    currency = _currency(fields, options)
    total = to_minor_units(tokens.text(fields, "order_total"), currency)
    if total is None:
        raise MappingError(
            f"order {order_id} has no order_total: add order_total={{order_total}} "
            "to the postback URL"
        )

    base: dict[str, Any] = {
        "orderId": order_id,
        "totalCents": total,
        "currency": currency,
        "customer": customer,
    }
    ordered_at = _ordered_at(tokens.text(fields, "order_date_time"), options.get("timezone"))
    if ordered_at:
        base["orderedAt"] = ordered_at
    items = _items(fields, currency)
    if items:
        base["items"] = items
    properties = _order_properties(fields, order_id)
    if properties:
        base["properties"] = properties

    records = [Record("order", {**base, "status": "placed"})]
    refunded = _refunded_cents(fields, currency, total)
    if refunded > 0:
        refund = {**base, "status": "refunded", "refundAmountCents": refunded}
        if tokens.flag(fields, "ischargeback"):
            refund["properties"] = {**properties, "chargeback": True}
        records.append(Record("order", refund))
    return records


def _refunded_cents(fields: Fields, currency: str, total: int) -> int:
    if tokens.flag(fields, "ischargeback"):
        # A chargeback takes the whole charge back; postbacks carry no chargeback amount.
        return total
    # Cumulative: everything voided or refunded against the order so far, not this event's.
    return to_minor_units(tokens.text(fields, "void_refund_amount"), currency) or 0


def _order_properties(fields: Fields, order_id: str) -> dict[str, Any]:
    properties = _campaign(fields)
    depth = _whole_number(tokens.text(fields, "rebill_depth"))
    if depth:
        properties["rebillDepth"] = depth
    parent = tokens.id_token(fields, "parent_order_id")
    if parent and parent != order_id:  # initial orders name themselves as parent
        properties["parentOrderId"] = parent
    if tokens.flag(fields, "is_test_cc"):
        properties["testOrder"] = True
    return properties


def _currency(fields: Fields, options: Mapping[str, str]) -> str:
    given, source = tokens.text(fields, "currency_code"), "currency_code"
    if given is None:
        given, source = (options.get("currency") or "").strip() or None, "RELAY_STICKYIO_CURRENCY"
    if given is None:
        raise MappingError(
            "no currency: add currency_code={currency_code} to the postback URL "
            "or set RELAY_STICKYIO_CURRENCY"
        )
    code = given.upper()
    if not is_currency_code(code):
        raise MappingError(f"{source} {given!r} is not an ISO 4217 currency code")
    return code


def _ordered_at(value: str | None, zone_name: str | None) -> str | None:
    """order_date_time in UTC, when the account's time zone is configured."""
    if not zone_name:
        return None  # a local time without its zone would be hours off: leave it to the API
    zone = _zone(zone_name)
    if not value:
        return None
    try:
        local = datetime.strptime(value, DATE_TIME_FORMAT)
    except ValueError:
        return None  # optional at the API (it defaults to now); never a reason to drop an order
    return utc_iso(local, zone)


def _zone(name: str) -> ZoneInfo:
    return localtime.zone(name, "RELAY_STICKYIO_TIMEZONE")


_CARD_LIKE = re.compile(r"\d{4,}")
_REASON_LENGTH = 80


def _decline_reason(order_id: str, gateway_text: str | None) -> str:
    """The gateway's decline text, trimmed for logs: no digit runs, no addresses, short."""
    reason = f"declined payment for order {order_id}"
    if not gateway_text:
        return reason
    words = [word for word in gateway_text.split() if "@" not in word]
    detail = _CARD_LIKE.sub("####", " ".join(words))
    if len(detail) > _REASON_LENGTH:
        detail = detail[: _REASON_LENGTH - 1] + "…"
    return f"{reason}: {detail}" if detail else reason


# --- prospects ----------------------------------------------------------------------------


def map_prospect(fields: Fields) -> Record:
    """A prospect is a started checkout: the shopper left an email, the order may follow."""
    prospect_id = _required_id(fields, "prospect_id")
    customer = _customer(fields)
    if customer is None:
        raise IgnoreEvent(f"prospect {prospect_id} has no email")
    data: dict[str, Any] = {"checkoutId": prospect_id, "customer": customer}
    properties = _campaign(fields)
    if properties:
        data["properties"] = properties
    return Record("checkout", data)


# --- shared -------------------------------------------------------------------------------


def _customer(fields: Fields) -> dict[str, Any] | None:
    email = tokens.text(fields, "email")
    if not email:
        return None
    customer: dict[str, Any] = {"email": email}
    first, last = tokens.text(fields, "first_name"), tokens.text(fields, "last_name")
    if first:
        customer["firstName"] = first
    if last:
        customer["lastName"] = last
    customer_id = tokens.id_token(fields, "customer_id")
    if customer_id:
        customer["externalId"] = customer_id
    return customer


def _campaign(fields: Fields) -> dict[str, Any]:
    campaign = tokens.id_token(fields, "campaign_id")
    return {"campaignId": campaign} if campaign else {}


def _items(fields: Fields, currency: str) -> list[dict[str, Any]]:
    ids = _split(tokens.id_token(fields, "product_id_csv"))
    count = len(ids)
    quantities = _aligned(fields, "product_qtys_csv", count)
    skus = _aligned(fields, "product_skus_csv", count)
    prices = _aligned(fields, "product_prices_csv", count)
    names = _aligned(fields, "product_names_csv", count)
    items = []
    for i, product_id in enumerate(ids):
        if not product_id or product_id == "0":
            continue
        item: dict[str, Any] = {
            "productId": product_id,
            "title": names[i] or f"Product {product_id}",
            "quantity": _whole_number(quantities[i], default=1),
        }
        if skus[i]:
            item["sku"] = skus[i]
        price = _unit_price(prices[i], currency)
        if price is not None:
            item["priceCents"] = price
        items.append(item)
    return items


def _aligned(fields: Fields, name: str, count: int) -> list[str | None]:
    """The list's values by product position, or all None when its length differs from the
    ids' (a comma inside a name shifts every value after it, so none can be trusted)."""
    value = tokens.text(fields, name)
    if value is None:
        return [None] * count
    if count == 1:
        return [value]  # one product: the whole value is its own, commas and all
    parts = _split(value)
    return parts if len(parts) == count else [None] * count


def _split(value: str | None) -> list[str | None]:
    if value is None:
        return []
    return [part.strip() or None for part in value.split(",")]


def _unit_price(value: str | None, currency: str) -> int | None:
    """Item prices are detail, not revenue: an unreadable one is left out, not fatal."""
    try:
        cents = to_minor_units(value, currency)
    except MoneyError:
        return None
    return cents if cents is not None and cents >= 0 else None


def _whole_number(value: str | None, default: int | None = None) -> int | None:
    try:
        number = parse_decimal(value)
    except MoneyError:
        return default
    if number is None or number < 0 or number != number.to_integral_value():
        return default
    return int(number)


def _required_id(fields: Fields, name: str) -> str:
    value = tokens.id_token(fields, name)
    if value is None:
        raise MappingError(f"the postback has no {name}")
    return value
