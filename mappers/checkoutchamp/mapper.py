"""CheckoutChamp postbacks (merchant-mapped flat fields) -> Commerce API records.

Pure: the raw event and the merchant's options (`currency`, `timezone`) in, records out.
Rules (DESIGN.md section 6, README.md in this folder):
- Partial -> a checkout (checkoutId = the partial order's orderId), unless the order has
  been paid meanwhile;
- New Sale, Capture, Upsell, Recurring -> order placed; refunds -> refunded; Cancel ->
  cancelled; Fulfillment Shipped/Delivered -> fulfilled; declines and the like -> ignored;
- orderId is CheckoutChamp's numeric orderId, clientOrderId is the orderNumber;
- money is read as Decimal (numbers or strings) into minor units of the currency;
- dates carry no time zone: orderedAt only when the `timezone` option names it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from mappers.checkoutchamp.events import (
    CHECKOUT_TOPICS,
    IGNORED_TOPICS,
    ORDER_TOPICS,
    billing_cycle,
    identifier,
    scalar,
    text,
    upper,
)
from relay import localtime
from relay.events import RawEvent
from relay.localtime import utc_iso
from relay.mapping import IgnoreEvent, MappingError, Record
from relay.money import MoneyError, is_currency_code, parse_decimal, to_minor_units

TOTAL_FIELDS = ("orderTotal", "totalAmount")
EMAIL_FIELDS = ("emailAddress", "email")
# Symbols that name one currency only. "$", "¥", "kr" and the like are refused: they need
# currencyCode or the `currency` option.
CURRENCY_SYMBOLS: dict[str, str] = {
    "€": "EUR",
    "£": "GBP",
    "₹": "INR",
    "₺": "TRY",
    "₽": "RUB",
    "₪": "ILS",
    "₴": "UAH",
    "₫": "VND",
    "zł": "PLN",
    "R$": "BRL",
    "US$": "USD",
    "CA$": "CAD",
    "A$": "AUD",
    "AU$": "AUD",
    "NZ$": "NZD",
    "HK$": "HKD",
    "MX$": "MXN",
}
# A Partial postback goes out up to ~15 minutes late; by then the order may be paid, and a
# checkout announced after its order would start an abandoned-checkout flow for a buyer.
PAID_STATUSES = frozenset({"PENDING", "COD_PENDING", "COMPLETE", "REFUNDED"})
FULFILLMENT_TOPICS = frozenset({"fulfillment_shipped", "fulfillment_delivered"})
_PRODUCT_FIELD = re.compile(r"^product(\d+)_(id|name|qty|price|sku)$")
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def map_event(event: RawEvent, options: Mapping[str, str]) -> list[Record]:
    topic = event.topic
    if topic in IGNORED_TOPICS:
        raise IgnoreEvent(IGNORED_TOPICS[topic])
    if topic not in CHECKOUT_TOPICS and topic not in ORDER_TOPICS:
        raise IgnoreEvent(f"topic {topic!r} is not used")
    try:
        fields = event.fields()
    except ValueError as exc:
        raise MappingError(f"postback fields cannot be read: {exc}") from None
    try:
        if topic in CHECKOUT_TOPICS:
            return [map_checkout(fields, options)]
        return [map_order(fields, options, topic)]
    except MoneyError as exc:
        raise MappingError(str(exc)) from None


# --- records --------------------------------------------------------------------------------


def map_checkout(fields: Mapping[str, Any], options: Mapping[str, str]) -> Record:
    checkout_id = order_id(fields)
    status = upper(text(fields, "orderStatus"))
    if status in PAID_STATUSES:
        raise IgnoreEvent(
            f"partial order {checkout_id} is already {status}: no checkout to recover"
        )
    customer = map_customer(fields)
    if customer is None:
        raise IgnoreEvent(f"partial order {checkout_id} has no emailAddress yet")
    data: dict[str, Any] = {"checkoutId": checkout_id, "customer": customer}
    currency = currency_of(fields, options)
    if currency:
        data["currency"] = currency
        total = to_minor_units(scalar(fields, *TOTAL_FIELDS), currency)
        if total is not None:
            data["totalCents"] = total
    items = map_items(fields, currency)
    if items:
        data["items"] = items
    data["properties"] = properties(fields, "partial")
    return Record("checkout", data)


def map_order(fields: Mapping[str, Any], options: Mapping[str, str], topic: str) -> Record:
    oid = order_id(fields)
    customer = map_customer(fields)
    if customer is None:
        raise IgnoreEvent(f"order {oid} has no emailAddress")
    currency = currency_of(fields, options)
    if currency is None:
        raise MappingError(f"order {oid} has no currency: {_currency_hint(fields)}")
    total = to_minor_units(scalar(fields, *TOTAL_FIELDS), currency)
    if total is None:
        raise MappingError(f"order {oid} has no orderTotal: map orderTotal in the Export Profile")

    status = ORDER_TOPICS[topic]
    data: dict[str, Any] = {
        "orderId": oid,
        "status": status,
        "totalCents": total,
        "currency": currency,
        "customer": customer,
    }
    number = text(fields, "clientOrderId")
    if number and number != oid:
        data["orderNumber"] = number
    zone = _zone(options["timezone"]) if options.get("timezone") else None
    ordered_at = ordered_at_utc(fields, zone)
    if ordered_at:
        data["orderedAt"] = ordered_at
    items = map_items(fields, currency)
    if items:
        data["items"] = items
    if status == "refunded":
        refunded = refund_minor_units(fields, topic, currency, total)
        if refunded is not None:
            data["refundAmountCents"] = refunded
    data["properties"] = properties(fields, topic)
    return Record("order", data)


def refund_minor_units(
    fields: Mapping[str, Any], topic: str, currency: str, total: int
) -> int | None:
    """The refunded amount: the merchant's refundAmount field when mapped; else the order
    total when the whole order is refunded; else unknown (postbacks carry only orderTotal)."""
    mapped = to_minor_units(scalar(fields, "refundAmount"), currency)
    if mapped is not None:
        return mapped
    if topic == "full_refund":
        return total
    if topic == "refund" and upper(text(fields, "orderStatus")) == "REFUNDED":
        return total
    return None


def map_customer(fields: Mapping[str, Any]) -> dict[str, Any] | None:
    email = text(fields, *EMAIL_FIELDS)
    if not email:
        return None
    customer: dict[str, Any] = {"email": email}
    for name in ("firstName", "lastName"):
        value = text(fields, name)
        if value:
            customer[name] = value
    customer_id = identifier(fields, "customerId")
    if customer_id:
        customer["externalId"] = customer_id
    return customer


def map_items(fields: Mapping[str, Any], currency: str | None) -> list[dict[str, Any]]:
    """productN_id/_name/_qty/_price/_sku (N = 1, 2, ...) in N order; a line without an id
    cannot be matched to a product and is left out. productN_price is the unit price."""
    lines: dict[int, dict[str, str]] = {}
    for key in fields:
        match = _PRODUCT_FIELD.match(key)
        if not match:
            continue
        value = identifier(fields, key) if match[2] == "id" else text(fields, key)
        if value:
            lines.setdefault(int(match[1]), {})[match[2]] = value
    items = []
    for _, line in sorted(lines.items()):
        product_id = line.get("id")
        if not product_id:
            continue
        item: dict[str, Any] = {
            "productId": product_id,
            "title": line.get("name") or f"Product {product_id}",
            "quantity": _quantity(line.get("qty"), product_id),
        }
        if line.get("sku"):
            item["sku"] = line["sku"]
        if currency:
            price = to_minor_units(line.get("price"), currency)
            if price is not None:
                item["priceCents"] = price
        items.append(item)
    return items


def properties(fields: Mapping[str, Any], topic: str) -> dict[str, Any]:
    """Extra event properties for email flows: which CheckoutChamp event, and a few facts."""
    props: dict[str, Any] = {"checkoutChampEvent": topic}
    names = ["campaignName", "couponCode", "refundReason"]
    if topic in FULFILLMENT_TOPICS:
        names += ["trackingNumber", "shipCarrier"]
    for name in names:
        value = text(fields, name)
        if value:
            props[name] = value
    cycle = text(fields, "billingCycleNumber")
    if cycle and cycle.isdigit():
        props["billingCycle"] = billing_cycle(fields)
    return props


# --- small readers --------------------------------------------------------------------------


def order_id(fields: Mapping[str, Any]) -> str:
    """CheckoutChamp's numeric orderId as a decimal string (never clientOrderId)."""
    value = identifier(fields, "orderId")
    if not value:
        raise MappingError("no orderId: map orderId in the Export Profile")
    if not value.isdigit() or int(value) == 0:
        raise MappingError(
            f"orderId {value!r} is not CheckoutChamp's numeric orderId "
            "(map the field orderId, not clientOrderId)"
        )
    return str(int(value))


def currency_of(fields: Mapping[str, Any], options: Mapping[str, str]) -> str | None:
    """currencyCode, else an unambiguous currencySymbol, else the `currency` option."""
    code = text(fields, "currencyCode")
    if code:
        if not is_currency_code(code.upper()):
            raise MappingError(f"currencyCode {code!r} is not an ISO 4217 code")
        return code.upper()
    symbol = text(fields, "currencySymbol")
    if symbol:
        if is_currency_code(symbol.upper()):
            return symbol.upper()
        if symbol in CURRENCY_SYMBOLS:
            return CURRENCY_SYMBOLS[symbol]
    option = (options.get("currency") or "").strip().upper()
    if option:
        if not is_currency_code(option):
            raise MappingError(f"RELAY_CHECKOUTCHAMP_CURRENCY {option!r} is not an ISO 4217 code")
        return option
    return None


def _currency_hint(fields: Mapping[str, Any]) -> str:
    symbol = text(fields, "currencySymbol")
    why = f"currencySymbol {symbol!r} names several currencies; " if symbol else ""
    return f"{why}map currencyCode in the Export Profile, or set RELAY_CHECKOUTCHAMP_CURRENCY"


def ordered_at_utc(fields: Mapping[str, Any], zone: ZoneInfo | None) -> str | None:
    """dateCreated (plus timeCreated when dateCreated is only a date) in UTC. CheckoutChamp
    sends account-local times without an offset: without the `timezone` option, None."""
    created = text(fields, "dateCreated")
    if not created:
        return None
    if _DATE_ONLY.match(created):
        time_of_day = text(fields, "timeCreated")
        if not time_of_day:
            return None  # a date alone is no time of ordering
        created = f"{created} {time_of_day}"
    try:
        moment = datetime.fromisoformat(created)
    except ValueError:
        return None  # an unreadable date costs the date, not the order
    if moment.tzinfo is None and zone is None:
        return None
    return utc_iso(moment, zone or ZoneInfo("UTC"))


def _zone(name: str) -> ZoneInfo:
    return localtime.zone(name, "RELAY_CHECKOUTCHAMP_TIMEZONE")


def _quantity(value: str | None, product_id: str) -> int:
    """productN_qty, 1 when not mapped (CheckoutChamp lines default to one)."""
    if value is None:
        return 1
    quantity = parse_decimal(value)
    if quantity is None or quantity < 0 or quantity != quantity.to_integral_value():
        raise MappingError(f"product {product_id} has quantity {value!r}")
    return int(quantity)
