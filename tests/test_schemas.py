"""The normalized model refuses what the Commerce API would refuse."""

from __future__ import annotations

from relay.mapping import Record
from relay.schemas import record_errors

CUSTOMER = {"email": "ada@example.com"}


def errors(kind: str, data: dict) -> dict:
    return record_errors(Record(kind, data))


def test_minimal_valid_records():
    assert errors("product", {"productId": "1", "title": "Mug"}) == {}
    assert (
        errors("order", {"orderId": "1", "totalCents": 0, "currency": "USD", "customer": CUSTOMER})
        == {}
    )
    assert errors("checkout", {"checkoutId": "c1", "customer": CUSTOMER}) == {}
    assert errors("back_in_stock", {"productId": "1", "customer": CUSTOMER}) == {}
    assert errors("product_delete", {"productId": "1"}) == {}
    assert errors("variant", {"productId": "1", "variant": {"variantId": "2", "title": "S"}}) == {}


def test_required_fields():
    assert set(errors("product", {"productId": "1"})) == {"title"}
    assert set(errors("order", {"orderId": "1"})) == {"totalCents", "currency", "customer"}
    assert set(errors("checkout", {"checkoutId": "1"})) == {"customer"}


def test_money_is_integer_minor_units():
    order = {"orderId": "1", "currency": "USD", "customer": CUSTOMER}
    assert "totalCents" in errors("order", {**order, "totalCents": "1999"})
    assert "totalCents" in errors("order", {**order, "totalCents": 19.99})
    assert "totalCents" in errors("order", {**order, "totalCents": -1})
    assert errors("order", {**order, "totalCents": 1999}) == {}


def test_field_names_are_the_api_names():
    # compareAtPrice is a response field; requests use compareAtPriceCents.
    assert "compareAtPrice" in errors(
        "product", {"productId": "1", "title": "M", "compareAtPrice": 100}
    )


def test_enums_emails_currencies_booleans():
    base = {"orderId": "1", "totalCents": 1, "currency": "USD", "customer": CUSTOMER}
    assert "status" in errors("order", {**base, "status": "shipped"})
    assert "currency" in errors("order", {**base, "currency": "usd"})
    assert "customer" in errors("order", {**base, "customer": {"email": "nope"}})
    assert "inStock" in errors("product", {"productId": "1", "title": "M", "inStock": "false"})


def test_nested_items_and_variants():
    item = {"productId": "1", "title": "Mug", "quantity": 1}
    checkout = {"checkoutId": "c", "customer": CUSTOMER, "items": [item, {"productId": "2"}]}
    assert set(errors("checkout", checkout)["items"][1]) == {"title", "quantity"}
    variant = {"variantId": "v", "title": "S", "options": [{"name": "Size"}]}
    assert "variants" in errors("product", {"productId": "1", "title": "T", "variants": [variant]})


def test_unknown_kind():
    assert errors("coupon", {}) == {"kind": ["unknown record kind 'coupon'"]}
