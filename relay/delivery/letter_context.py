"""What a dead letter was about, in a line: the entity (order number and id, product,
checkout, customer), the customer (masked email), the amount with its currency.

Computed when the letter is written (relay/delivery/deadletters.py), from the best source
there is, and stored in it:
1. the mapped records, when mapping succeeded (the Commerce API's own shapes);
2. else the requests still pending (their bodies have the same shapes);
3. else, best effort, the raw event's fields by the names platforms commonly use (a
   mapping error has nothing better; no mapper runs for it, here or in the CLI).

Emails are masked (`g***@example.com`) and every value is cut short; secrets are redacted
and control characters escaped where it is shown, like the rest of the letter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import unquote

from relay.events import RawEvent
from relay.money import exponent, is_currency_code, parse_decimal
from relay.runtime.logs import mask_emails

MAX_VALUE_CHARS = 80

# Where a raw event keeps things, by the names platforms use (WooCommerce, CheckoutChamp,
# Sticky.io, and the normalized names of the custom platform).
_ORDER_IDS = ("orderId", "order_id")
_CHECKOUT_IDS = ("checkoutId", "checkout_id", "prospectId", "prospect_id")
_PRODUCT_IDS = ("productId", "product_id")
_CUSTOMER_IDS = ("customerId", "customer_id", "externalId")
_NUMBERS = ("orderNumber", "order_number", "number", "clientOrderId")
_EMAILS = (
    "email",
    "emailAddress",
    "email_address",
    "customer_email",
    "billing.email",
    "customer.email",
)
_TOTALS = ("total", "orderTotal", "order_total", "totalAmount", "amount")
_CURRENCIES = ("currency", "currencyCode", "currency_code")
_KINDS = ("order", "checkout", "product", "customer", "subscriber")


def _cut(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list | bool):
        return None
    text = mask_emails(str(value).strip())
    if not text:
        return None
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + "…"


def _get(data: Any, dotted: str) -> Any:
    for name in dotted.split("."):
        if not isinstance(data, Mapping):
            return None
        data = data.get(name)
    return data


def _first(data: Any, names: Iterable[str]) -> str | None:
    for name in names:
        found = _cut(_get(data, name))
        if found:
            return found
    return None


def _minor_to_text(cents: Any, currency: Any) -> str | None:
    if isinstance(cents, bool) or not isinstance(cents, int):
        return None
    places = exponent(currency if isinstance(currency, str) else None)
    return f"{Decimal(cents).scaleb(-places):.{places}f}"


def _context(kind: str, entity_id: str | None, **more: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"entity": kind}
    if entity_id:
        out["id"] = entity_id
    out.update({k: v for k, v in more.items() if v})
    return out


def _currency(value: Any) -> str | None:
    return value if isinstance(value, str) and is_currency_code(value) else None


def from_api_shape(kind: str, data: Any) -> dict[str, Any]:
    """From one normalized record's data, or a request body (the same shapes)."""
    if not isinstance(data, Mapping):
        return _context(kind, None)
    currency = _currency(data.get("currency"))
    customer = data.get("customer") if isinstance(data.get("customer"), Mapping) else data
    who = {
        "customer": _cut(_get(customer, "email")),
        "customer_id": _cut(_get(customer, "externalId")),
    }
    if kind == "order":
        return _context(
            "order",
            _cut(data.get("orderId")),
            number=_cut(data.get("orderNumber")),
            amount=_minor_to_text(data.get("totalCents"), currency),
            currency=currency,
            **who,
        )
    if kind == "checkout":
        return _context(
            "checkout",
            _cut(data.get("checkoutId")),
            amount=_minor_to_text(data.get("totalCents"), currency),
            currency=currency,
            **who,
        )
    if kind == "back_in_stock":
        variant = _cut(data.get("variantId"))
        return _context("back-in-stock", _cut(data.get("productId")), variant=variant, **who)
    if kind in ("product", "product_delete"):
        return _context(
            "product",
            _cut(data.get("productId")),
            title=_cut(data.get("title")),
            amount=_minor_to_text(data.get("priceCents"), currency),
            currency=currency,
        )
    if kind == "variant":
        variant = data.get("variant") if isinstance(data.get("variant"), Mapping) else {}
        return _context(
            "product", _cut(data.get("productId")), variant=_cut(variant.get("variantId"))
        )
    # Anything else (a customer, a subscriber): who it is.
    return _context(kind, _cut(data.get("externalId")) or _cut(data.get("id")), **who)


def _with_more(found: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not found:
        return None
    first = dict(found[0])
    if len(found) > 1:
        first["more"] = len(found) - 1
    return first


_PRIORITY = {"order": 0, "checkout": 1, "back_in_stock": 2, "product": 3, "product_delete": 3}


def from_records(records: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    listed = [r for r in records if isinstance(r, Mapping) and isinstance(r.get("kind"), str)]
    listed.sort(key=lambda r: _PRIORITY.get(r["kind"], 9))
    return _with_more([from_api_shape(r["kind"], r.get("data")) for r in listed])


def from_requests(requests: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    found = []
    for request in requests:
        if not isinstance(request, Mapping):
            continue
        path = str(request.get("path") or "")
        body = request.get("body")
        endpoint = path.removeprefix("/api/v1/").split("?")[0]
        if endpoint.startswith("products/") and request.get("method") == "DELETE":
            found.append(_context("product", _cut(unquote(endpoint.split("/", 1)[1]))))
        elif endpoint == "products" and isinstance(body, Mapping):
            products = body.get("products") if isinstance(body.get("products"), list) else []
            found.extend(from_api_shape("product", p) for p in products)
        elif endpoint in ("orders", "checkouts", "back-in-stock"):
            kind = {"orders": "order", "checkouts": "checkout"}.get(endpoint, "back_in_stock")
            found.append(from_api_shape(kind, body))
        elif endpoint.startswith("subscribers"):
            found.append(from_api_shape("customer", body))
    return _with_more(found)


def _kind_of_topic(topic: str) -> str | None:
    lowered = topic.lower()
    if any(word in lowered for word in ("partial", "prospect", "checkout", "cart")):
        return "checkout"
    for kind in _KINDS:
        if kind in lowered:
            return kind
    return None


def from_raw_event(event: Mapping[str, Any]) -> dict[str, Any] | None:
    """Best effort, from what the platform sent: no mapper runs."""
    try:
        raw = RawEvent.from_dict(dict(event))
        fields = raw.fields()
    except (KeyError, TypeError, ValueError):
        return None
    data = fields.get("data")
    if isinstance(fields.get("type"), str) and isinstance(data, dict | list):
        # The custom platform: already in the API's shapes.
        kind = {"back_in_stock": "back_in_stock"}.get(fields["type"], fields["type"])
        items = data if isinstance(data, list) else [data]
        return _with_more([from_api_shape(kind, item) for item in items[:100]])
    kind = _kind_of_topic(raw.topic)
    ids = {
        "order": _first(fields, _ORDER_IDS),
        "checkout": _first(fields, _CHECKOUT_IDS),
        "product": _first(fields, _PRODUCT_IDS),
        "customer": _first(fields, _CUSTOMER_IDS),
    }
    if kind is None:
        kind = next((k for k in ("order", "checkout", "product") if ids[k]), None)
    if kind is None:
        return None
    entity_id = ids.get(kind) or (ids["order"] if kind == "checkout" else None)
    entity_id = entity_id or _cut(fields.get("id"))
    currency = _currency(_first(fields, _CURRENCIES))
    total = _first(fields, _TOTALS)
    try:
        amount = str(parse_decimal(total)) if total is not None else None
    except ValueError:
        amount = None
    number = _first(fields, _NUMBERS) if kind == "order" else None
    return _context(
        kind,
        entity_id,
        number=number if number != entity_id else None,
        customer=_first(fields, _EMAILS),
        customer_id=ids["customer"] if kind != "customer" and ids["customer"] != "0" else None,
        amount=amount,
        currency=currency,
        source="raw event",
    )


def describe(
    records: list[dict[str, Any]] | None,
    pending: list[dict[str, Any]] | None,
    event: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The letter's context from its best source; {} when nothing can be told."""
    for found in (
        from_records(records) if records else None,
        from_requests(pending) if pending else None,
        from_raw_event(event) if event else None,
    ):
        if found:
            return found
    return {}


def as_text(about: Mapping[str, Any] | None) -> str:
    """`order 1042 #1042 · g***@example.com · 61.38 EUR (+1 more)`, or "" when unknown."""
    if not about:
        return ""
    head = " ".join(str(about[k]) for k in ("entity", "id") if about.get(k))
    if about.get("number") and about.get("number") != about.get("id"):
        head += f" #{about['number']}"
    if about.get("variant"):
        head += f" variant {about['variant']}"
    if about.get("title"):
        head += f" ({about['title']})"
    parts = [head, about.get("customer") or about.get("customer_id") or ""]
    if about.get("amount"):
        parts.append(f"{about['amount']} {about.get('currency') or ''}".strip())
    text = " · ".join(str(p) for p in parts if p)
    if about.get("more"):
        text += f" (+{about['more']} more)"
    return text
