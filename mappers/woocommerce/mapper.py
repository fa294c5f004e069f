"""WooCommerce webhook bodies (REST API v3 resources) -> Commerce API records.

Pure: the raw event and the merchant's options in, records out. Rules (DESIGN.md section 6):
- orders by status: processing/on-hold -> placed; completed -> placed, fulfilled;
  cancelled -> cancelled; refunded, or any refunds[] -> refunded with the cumulative amount;
  pending/failed/checkout-draft with an email -> a checkout, never an order;
- guests (customer_id 0) are keyed by billing email (no externalId);
- customers (customer.created/updated, or the REST resource on backfill) -> a subscriber
  snapshot keyed by externalId = the customer id, with createdAt when not new;
- simple products -> a product; variable -> a product whose variants the worker fills in from
  what it knows (the webhook lists only variation ids); variation -> one variant of its parent;
  product.deleted ({"id": N}) -> delete; stock_status instock/onbackorder -> in stock;
- a product is a full snapshot: an optional field it no longer has is sent as null (the API
  keeps what is omitted); a product that is not published (draft, pending, private, trash)
  -> delete, with its modified time, so that only a newer snapshot brings it back;

Records the relay fetched from the store itself (the event carries `x-relay-origin`, which
no webhook can: ingest keeps only WooCommerce's own headers; mappers/woocommerce/store.py):
- a variable product with `relay_variations`, the objects of GET /products/{id}/variations
  (a smaller shape than a variation webhook's: no type, parent_id or name) -> the product
  and each variation as a variant, its complete list at once;
- `guest.seen`, a guest buyer known from their orders: {"email", "first_name",
  "last_name" (of their newest order), "first_order_gmt", "last_order_gmt"} -> a subscriber
  without externalId, with createdAt = the first order when that is not new.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from relay.events import RawEvent
from relay.mapping import IgnoreEvent, MappingError, Record, id_text
from relay.money import MoneyError, parse_decimal, to_minor_units, unit_price_minor
from relay.store_api import ORIGIN_HEADER

ORDER_STATUS_EVENTS: dict[str, tuple[str, ...]] = {
    "processing": ("placed",),
    "on-hold": ("placed",),
    "completed": ("placed", "fulfilled"),
    "cancelled": ("cancelled",),
    "refunded": ("refunded",),
}
CHECKOUT_STATUSES = frozenset({"pending", "failed", "checkout-draft"})
IN_STOCK = frozenset({"instock", "onbackorder"})


def map_event(event: RawEvent, options: Mapping[str, str]) -> list[Record]:
    resource, _, action = event.topic.partition(".")
    try:
        payload = event.json()
    except ValueError as exc:
        raise MappingError(f"body is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise MappingError("body is not a JSON object")
    fetched = bool(event.header(ORIGIN_HEADER))  # by the relay from the store, not pushed
    try:
        if resource == "order":
            return map_order(payload)
        if resource == "product":
            return map_product(payload, action, options.get("currency"), fetched)
        if resource == "customer":
            return map_customer(payload, action, event.received_at)
        if event.topic == GUEST_TOPIC and fetched:
            return map_guest(payload, event.received_at)
    except MoneyError as exc:
        raise MappingError(str(exc)) from None
    raise IgnoreEvent(f"topic {event.topic} is not mapped")


# --- orders -------------------------------------------------------------------------------


def map_order(order: dict[str, Any]) -> list[Record]:
    status = str(order.get("status") or "")
    order_id = _id(order.get("id"), "order id")
    currency = _text(order.get("currency"))
    if status in CHECKOUT_STATUSES:
        return [_checkout(order, order_id, currency)]
    events = ORDER_STATUS_EVENTS.get(status)
    if events is None:
        raise IgnoreEvent(f"order status {status!r} is not an order lifecycle event")
    if not currency:
        raise MappingError(f"order {order_id} has no currency")
    customer = _customer(order)
    if customer is None:
        raise IgnoreEvent(f"order {order_id} has no billing email")

    base: dict[str, Any] = {
        "orderId": order_id,
        "totalCents": to_minor_units(order.get("total") or "0", currency),
        "currency": currency,
        "customer": customer,
    }
    number = _text(order.get("number"))
    if number and number != order_id:
        base["orderNumber"] = number
    ordered_at = _utc(order.get("date_created_gmt"))
    if ordered_at:
        base["orderedAt"] = ordered_at
    items = _items(order.get("line_items"), currency)
    if items:
        base["items"] = items
    properties = _order_properties(order)
    if properties:
        base["properties"] = properties

    refunded = _refunded_total(order.get("refunds"))
    if status == "refunded" and not refunded:
        refunded = parse_decimal(order.get("total")) or Decimal(0)
    if refunded and "refunded" not in events:
        events = (*events, "refunded")

    modified_at = _utc(order.get("date_modified_gmt"))
    # An unpaid order that is cancelled (stock hold timed out) was never an order: the
    # worker drops its cancellation unless the relay announced it (on-hold, for example).
    hints = {"neverPaid": True} if status == "cancelled" and not order.get("date_paid_gmt") else {}
    records = []
    for lifecycle_status in events:
        data = {**base, "status": lifecycle_status}
        if lifecycle_status == "refunded":
            data["refundAmountCents"] = to_minor_units(refunded, currency)
        records.append(Record("order", data, modified_at=modified_at, hints=hints))
    return records


def _checkout(order: dict[str, Any], order_id: str, currency: str | None) -> Record:
    customer = _customer(order)
    if customer is None:
        raise IgnoreEvent(f"unpaid order {order_id} has no email yet")
    data: dict[str, Any] = {"checkoutId": order_id, "customer": customer}
    url = _text(order.get("payment_url"))
    if url:
        data["checkoutUrl"] = url
    if currency:
        data["currency"] = currency
        total = to_minor_units(order.get("total"), currency)
        if total is not None:
            data["totalCents"] = total
    items = _items(order.get("line_items"), currency)
    if items:
        data["items"] = items
    return Record("checkout", data, modified_at=_utc(order.get("date_modified_gmt")))


def _customer(order: dict[str, Any]) -> dict[str, Any] | None:
    billing = order.get("billing") or {}
    email = _text(billing.get("email"))
    if not email:
        return None
    customer: dict[str, Any] = {"email": email}
    first, last = _text(billing.get("first_name")), _text(billing.get("last_name"))
    if first:
        customer["firstName"] = first
    if last:
        customer["lastName"] = last
    customer_id = _optional_id(order.get("customer_id"), "customer_id")
    if customer_id:  # 0 = guest, keyed by email alone
        customer["externalId"] = customer_id
    return customer


def _items(line_items: Any, currency: str | None) -> list[dict[str, Any]]:
    items = []
    for line in line_items or []:
        product_id = _optional_id(line.get("product_id"), "line item product_id")
        if not product_id:
            continue  # a line for a product that no longer exists: nothing to match it to
        quantity = int(line.get("quantity") or 0)
        name = _text(line.get("name")) or f"Product {product_id}"
        item: dict[str, Any] = {"productId": product_id, "title": name, "quantity": quantity}
        variation_id = _optional_id(line.get("variation_id"), "line item variation_id")
        if variation_id:
            item["variantId"] = variation_id
            parent_name = _text(line.get("parent_name"))
            if parent_name:
                item["title"] = parent_name
                variant_title = _strip_prefix(name, f"{parent_name} - ")
                if variant_title != parent_name:
                    item["variantTitle"] = variant_title
        sku = _text(line.get("sku"))
        if sku:
            item["sku"] = sku
        # WooCommerce's own `price` is a float (10.799999999999999); derive it from the
        # decimal line total instead.
        price = unit_price_minor(line.get("total"), quantity, currency)
        if price is not None:
            item["priceCents"] = price
        items.append(item)
    return items


def _refunded_total(refunds: Any) -> Decimal:
    """Cumulative refunded amount: refunds[].total are negative decimal strings."""
    total = Decimal(0)
    for refund in refunds or []:
        amount = parse_decimal(refund.get("total", refund.get("refund")))
        if amount is not None:
            total += abs(amount)
    return total


def _order_properties(order: dict[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    method = _text(order.get("payment_method_title"))
    if method:
        properties["paymentMethod"] = method
    coupons = [c.get("code") for c in order.get("coupon_lines") or [] if c.get("code")]
    if coupons:
        properties["couponCodes"] = coupons
    return properties


# --- customers ----------------------------------------------------------------------------

# A customer the relay first hears of this long after they registered is not new: a
# backfill, a store connected to the relay later, a first profile edit. They are sent with
# `createdAt`, which keeps them out of welcome sequences. Long enough that a webhook delayed
# by a stalled WordPress cron still counts as new (such delays last minutes to hours).
NEW_CUSTOMER_SECONDS = 24 * 3600


def map_customer(customer: dict[str, Any], action: str, received_at: float) -> list[Record]:
    """A customer.created/updated body, or the same REST resource from the store's API (a
    backfill), as a subscriber snapshot; see README.md for customer.deleted."""
    customer_id = _id(customer.get("id"), "customer id")
    if action == "deleted":
        raise IgnoreEvent("a deleted store account is not an unsubscribe (see README.md)")
    email = _text(customer.get("email"))
    if not email:
        raise IgnoreEvent(f"customer {customer_id} has no email")
    billing = customer.get("billing") if isinstance(customer.get("billing"), dict) else {}
    # The account's names; a customer who registered at checkout may only have billing ones.
    first = _text(customer.get("first_name")) or _text(billing.get("first_name"))
    last = _text(customer.get("last_name")) or _text(billing.get("last_name"))
    created = _utc(customer.get("date_created_gmt"))
    # externalId right after email: the field order of the body as before (its digest is
    # part of the request's Idempotency-Key).
    data = {"email": email, "externalId": customer_id} | _subscriber(
        email, first, last, created, received_at
    )
    # Never modified: the snapshot is the one it was created as.
    modified_at = _utc(customer.get("date_modified_gmt")) or created
    return [Record("subscriber", data, modified_at=modified_at)]


def _subscriber(
    email: str, first: str, last: str, since: str | None, received_at: float
) -> dict[str, Any]:
    """A subscriber's fields: names when known, and `createdAt` when they have been one for
    more than a day (so they skip welcome sequences)."""
    data: dict[str, Any] = {"email": email}
    if first:
        data["firstName"] = first
    if last:
        data["lastName"] = last
    since_epoch = _epoch(since)
    if since and since_epoch is not None and since_epoch < received_at - NEW_CUSTOMER_SECONDS:
        data["createdAt"] = since
    return data


# A guest buyer (customer_id 0) as the relay's sync knows them from their orders; never a
# webhook topic (WooCommerce has no such event, and intake answers it `ignored`).
GUEST_TOPIC = "guest.seen"


def map_guest(guest: dict[str, Any], received_at: float) -> list[Record]:
    """A guest buyer as a subscriber keyed by email alone (no store account, no externalId):
    created once, with the names of their newest order."""
    email = _text(guest.get("email"))
    if not email:
        raise IgnoreEvent("a guest without an email")
    first, last = _text(guest.get("first_name")), _text(guest.get("last_name"))
    first_order = _utc(guest.get("first_order_gmt"))  # a buyer since then: no welcome sequence
    data = _subscriber(email, first, last, first_order, received_at)
    modified_at = _utc(guest.get("last_order_gmt")) or first_order
    return [Record("subscriber", data, modified_at=modified_at)]


# --- products -----------------------------------------------------------------------------


def map_product(
    product: dict[str, Any], action: str, currency: str | None, fetched: bool = False
) -> list[Record]:
    product_id = _id(product.get("id"), "product id")
    if action == "deleted":
        # The body is {"id": N}. A variation id here deletes nothing at the API (404 is fine).
        return [Record("product_delete", {"productId": product_id})]
    modified_at = _utc(product.get("date_modified_gmt"))
    if product.get("type") == "variation":
        return [_variant(product, product_id, currency, modified_at)]
    if product.get("status") != "publish":
        # Draft, pending, private, trashed: not for sale, so not in emails either. Removed
        # from the catalog until a newer snapshot publishes it again (see README.md).
        return [Record("product_delete", {"productId": product_id}, modified_at=modified_at)]
    title = _text(product.get("name"))
    if not title:
        raise MappingError(f"product {product_id} has no name")

    # A full snapshot: what the product no longer has is sent as null, because the API keeps
    # an omitted field's old value (an ended sale would keep its "was" price for ever).
    data: dict[str, Any] = {
        "productId": product_id,
        "title": title,
        "description": _plain_text(product.get("short_description"))
        or _plain_text(product.get("description")),
        "imageUrl": _first_image(product),
        "url": _text(product.get("permalink")),
        **_prices(product, currency),
    }
    if currency:
        data["currency"] = currency
    data["inStock"] = product.get("stock_status") in IN_STOCK
    # Omitted, never null, when absent: a saved product always has a creation time, so its
    # absence says nothing about the product (null would clear the stored one).
    created = _utc(product.get("date_created_gmt"))
    if created:
        data["providerCreatedAt"] = created

    hints: dict[str, Any] = {}
    variants: list[Record] = []
    if product.get("type") == "variable":
        embedded = product.get("relay_variations")
        if fetched and isinstance(embedded, list):
            # Fetched with its variations (one snapshot of the list): the product first, so
            # that the worker knows the list when the variants arrive in the same event.
            for variation in embedded:
                if not isinstance(variation, dict):
                    raise MappingError("relay_variations holds a non-object")
                variation_id = _id(variation.get("id"), "variation id")
                with_parent = {**variation, "parent_id": product_id}
                variants.append(
                    _variant(
                        with_parent,
                        variation_id,
                        currency,
                        _utc(variation.get("date_modified_gmt")),
                    )
                )
            hints["variantIds"] = [v.data["variant"]["variantId"] for v in variants]
        else:
            # Only ids: the variants themselves arrive as variation events (or are fetched).
            hints["variantIds"] = [
                _id(v.get("id") if isinstance(v, dict) else v, "variation id")
                for v in product.get("variations") or []
            ]
    return [Record("product", data, modified_at=modified_at, hints=hints), *variants]


def _variant(
    variation: dict[str, Any], variation_id: str, currency: str | None, modified_at: str | None
) -> Record:
    parent_id = _optional_id(variation.get("parent_id"), "parent_id")
    if not parent_id:
        raise MappingError(f"variation {variation_id} has no parent_id")
    options = [
        {"name": str(a["name"]), "value": str(a["option"])}
        for a in variation.get("attributes") or []
        if a.get("name") and a.get("option") not in (None, "")
    ]
    title = " / ".join(o["value"] for o in options) or _text(variation.get("name"))
    quantity = variation.get("stock_quantity")
    # Null for what the variation does not have, as for products (the API replaces the whole
    # list, so omitting would do as well, but one rule for both is easier to check). Options
    # are a list: [] when none (null has no documented meaning for lists).
    variant: dict[str, Any] = {
        "variantId": variation_id,
        "title": title or variation_id,
        "sku": _text(variation.get("sku")),
        **_prices(variation, currency),
        "imageUrl": _first_image(variation),
        "inventoryQuantity": quantity
        if variation.get("manage_stock") is True and isinstance(quantity, int)
        else None,
        "inStock": variation.get("stock_status") in IN_STOCK,
        "options": options,
    }
    hints = {} if variation.get("status", "publish") == "publish" else {"disabled": True}
    return Record(
        "variant",
        {"productId": parent_id, "variant": variant},
        modified_at=modified_at,
        hints=hints,
    )


def _prices(item: dict[str, Any], currency: str | None) -> dict[str, int | None]:
    """priceCents from `price` (the current, sale-aware price); compareAtPriceCents from
    `regular_price` while the item is on sale below it. Both always present: null clears."""
    price = to_minor_units(item.get("price"), currency)
    regular = to_minor_units(item.get("regular_price"), currency)
    on_sale = item.get("on_sale") and price is not None and regular is not None and regular > price
    return {"priceCents": price, "compareAtPriceCents": regular if on_sale else None}


def _first_image(item: dict[str, Any]) -> str | None:
    images = item.get("images") or []
    if images and isinstance(images[0], dict):
        return _text(images[0].get("src"))
    image = item.get("image")  # the variations endpoint has a single `image`
    return _text(image.get("src")) if isinstance(image, dict) else None


# --- small helpers ------------------------------------------------------------------------

# `[^<>]`, not `[^>]`: a run of "<" without ">" would be rescanned from each "<" (O(n²)).
_TAG = re.compile(r"<[^<>]+>")
_SPACE = re.compile(r"\s+")


def _plain_text(value: Any) -> str | None:
    """Product descriptions are HTML; emails want text."""
    text = _text(value)
    if not text:
        return None
    return _text(_SPACE.sub(" ", html.unescape(_TAG.sub(" ", text))))


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _optional_id(value: Any, what: str) -> str | None:
    """An id, or None when absent (WooCommerce writes 0 for "none")."""
    text = id_text(value, what)
    return None if text == "0" else text


def _id(value: Any, what: str) -> str:
    text = _optional_id(value, what)
    if not text:
        raise MappingError(f"missing {what}")
    return text


def _utc(value: Any) -> str | None:
    """WooCommerce's *_gmt times are UTC without an offset: add the Z."""
    text = _text(value)
    if not text:
        return None
    return text if text.endswith("Z") or "+" in text[10:] else f"{text}Z"


def _epoch(utc: str | None) -> float | None:
    try:
        return datetime.fromisoformat(utc.replace("Z", "+00:00")).timestamp() if utc else None
    except ValueError:
        return None


def _strip_prefix(text: str, prefix: str) -> str:
    return text[len(prefix) :] if text.startswith(prefix) else text
