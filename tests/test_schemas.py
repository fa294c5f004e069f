"""The normalized model refuses what the Commerce API would refuse."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relay.delivery.deadletters import DeadLetters
from relay.events import RawEvent
from relay.mapping import Record
from relay.schemas import SCHEMAS, passes, record_errors

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


# --- F16: bounds ----------------------------------------------------------------------------


def _order(**changes) -> dict:
    return {"orderId": "1", "totalCents": 1, "currency": "USD", "customer": CUSTOMER, **changes}


def _item(**changes) -> dict:
    return {"productId": "1", "title": "Mug", "quantity": 1, **changes}


def _domain(length: int) -> str:
    """A valid domain name this long (labels of at most 63 characters)."""
    labels = ["b" * 63, "c" * 63, "d" * 63]
    return ".".join([*labels, "e" * (length - 3 * 64 - 4)]) + ".com"


def _nested(depth: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"next": value}
    return value


@pytest.mark.parametrize(
    ("field", "fits", "too_much"),
    [
        ("customer", {"email": "a" * 64 + "@example.com"}, {"email": "a" * 65 + "@example.com"}),
        ("customer", {"email": "a@" + _domain(252)}, {"email": "a@" + _domain(253)}),
        ("customer", {**CUSTOMER, "firstName": "A" * 255}, {**CUSTOMER, "firstName": "A" * 256}),
        ("orderId", "1" * 255, "1" * 256),
        ("totalCents", 2**53 - 1, 2**53),
        ("items", [_item(quantity=1_000_000)], [_item(quantity=1_000_001)]),
        ("items", [_item(title="T" * 1000)], [_item(title="T" * 1001)]),
        ("items", [_item()] * 1000, [_item()] * 1001),
        ("properties", _nested(8), _nested(9)),
        ("properties", {"k": list(range(998))}, {"k": list(range(999))}),  # 1,000 values
        ("properties", {"k": "x" * 10_000}, {"k": "x" * 10_001}),
    ],
)
def test_f16_order_bounds(field, fits, too_much):
    assert errors("order", _order(**{field: fits})) == {}
    assert field in errors("order", _order(**{field: too_much}))


def test_f16_product_bounds():
    product = {"productId": "p", "title": "T"}
    assert "url" in errors("product", {**product, "url": "https://x/" + "a" * 2040})
    assert "description" in errors("product", {**product, "description": "d" * 100_001})
    variant = {"variantId": "v", "title": "S", "inventoryQuantity": -(2**53)}
    assert "variants" in errors("product", {**product, "variants": [variant]})
    assert "variants" in errors("product", {**product, "variants": [{"variantId": "v"}] * 2001})
    assert errors("product", {**product, "description": "d" * 100_000}) == {}


def test_f16_a_value_nested_1000_deep_is_refused_without_recursion():
    assert "properties" in errors("order", _order(properties=_nested(1000)))


def test_f16_the_reviews_absurd_orders_stop_at_the_worker(redis, settings, fake_api, worker):
    from tests.delivery.test_processor import _order_base, enqueue, woo_event

    def order(order_id, **changes) -> RawEvent:
        body = {**_order_base(), "id": order_id, **changes}
        return woo_event("x", body=json.dumps(body).encode())

    base = _order_base()
    long_email = order(1, billing={**base["billing"], "email": "a" * 10_240 + "@example.com"})
    huge_quantity = order(2, line_items=[{**base["line_items"][0], "quantity": 10**30}])
    object_id = order({"a": 1})
    good = order(4)
    for event in (long_email, huge_quantity, object_id, good):
        enqueue(redis, event, settings)
    worker.run()

    assert [r.body["orderId"] for r in fake_api.requests] == ["4"]
    letters = {letter.id: letter for letter in DeadLetters(redis).list()}
    assert letters[long_email.id].reason == "invalid_record"
    assert "Longer than an address can be" in letters[long_email.id].error
    assert letters[huge_quantity.id].reason == "invalid_record"
    assert "quantity" in letters[huge_quantity.id].error
    assert letters[object_id.id].reason == "mapping_error"
    assert "order id is not a string or an integer but a dict" in letters[object_id.id].error


# --- the quick yes (relay.schemas.passes) agrees with marshmallow ------------------------

FIXTURES = Path(__file__).parents[1] / "mappers"
ODD_VALUES = (None, "", "x" * 3000, "not an address", 0, -1, 2**60, True, 1.5, [], {}, [{}])


def _fixture_records() -> list[Record]:
    records = []
    for path in sorted(FIXTURES.glob("*/fixtures/*.expected.json")):
        for record in json.loads(path.read_text()).get("records", []):
            records.append(Record(record["kind"], record["data"]))
    return records


def _mutations(data: Any) -> Iterator[Any]:
    """The record with one place changed: each value replaced by odd ones, each key
    dropped, an unknown key added, at every depth."""
    if isinstance(data, dict):
        yield {**data, "unexpected": 1}
        for key, value in data.items():
            yield {k: v for k, v in data.items() if k != key}
            for odd in ODD_VALUES:
                yield {**data, key: odd}
            for changed in _mutations(value):
                yield {**data, key: changed}
    elif isinstance(data, list) and data:
        for changed in _mutations(data[0]):
            yield [changed, *data[1:]]


def test_the_quick_check_accepts_every_fixtures_records():
    records = _fixture_records()
    assert len(records) > 50
    for record in records:
        assert SCHEMAS[record.kind].validate(record.data) == {}, record
        assert passes(SCHEMAS[record.kind], record.data), record


def test_the_quick_check_never_accepts_what_marshmallow_refuses():
    refused = 0
    for record in _fixture_records():
        schema = SCHEMAS[record.kind]
        for changed in _mutations(record.data):
            errors_found = schema.validate(changed) if isinstance(changed, dict) else {"": 1}
            if errors_found:
                refused += 1
                assert not passes(schema, changed), (record.kind, changed, errors_found)
    assert refused > 1000  # the mutations do reach the refusals
