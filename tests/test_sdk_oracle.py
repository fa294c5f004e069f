"""tests/sdk_oracle.py: it catches what the SDK alone lets through, and every body the
golden fixtures produce conforms to it."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from relay.delivery.planning import requests_for
from relay.fixtures import fixtures
from relay.mapping import Record
from relay.registry import default_registry
from tests import sdk_oracle
from tests.fakeapi import OTHER_COMPANY_ID, SUCCESS, account_answers

ORDER: dict[str, Any] = {
    "orderId": "1042",
    "status": "placed",
    "totalCents": 6138,
    "currency": "EUR",
    "orderedAt": "2026-11-30T10:00:00Z",
    "customer": {"email": "grace@example.com", "firstName": "Grace", "externalId": "7"},
    "items": [{"productId": "41", "title": "Mug", "quantity": 2, "priceCents": 1620}],
    "customerTotals": {"ordersCount": 3, "totalSpentCents": 18000},
}
PRODUCT: dict[str, Any] = {
    "productId": "41",
    "title": "Mug",
    "priceCents": 1620,
    "compareAtPriceCents": None,  # explicit null clears a stored value: allowed
    "inStock": True,
    "variants": [
        {"variantId": "42", "title": "Blue", "options": [{"name": "Color", "value": "Blue"}]}
    ],
}


def _with(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `base` with the dotted `path` set to `value` (or removed for ...)."""
    body = copy.deepcopy(base)
    *parents, last = path.split(".")
    target: Any = body
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    return body


def test_a_conforming_order_and_product_pass():
    assert sdk_oracle.check_request("POST", "orders", "", ORDER) == []
    assert sdk_oracle.check_request("POST", "products", "", {"products": [PRODUCT]}) == []


@pytest.mark.parametrize(
    ("path", "value", "complaint"),
    [
        ("currency", ..., "currency: missing required field"),
        ("customer.email", ..., "customer.email: missing required field"),
        ("status", "paid", "'paid' is not one of"),
        ("totalCents", "61.38", "totalCents: expected an integer"),
        ("totalCents", True, "totalCents: expected an integer"),
        ("orderedAt", "2026-11-30T10:00:00", "without an offset"),
        ("customer.phone", "+15550100", "customer.phone: unknown field"),
        ("items.0.priceCents", "1620", "priceCents: expected an integer"),
        ("compareAtPrice", 1, "compareAtPrice: unknown field"),
    ],
)
def test_the_oracle_refuses_what_the_sdk_would_send_on(path, value, complaint):
    problems = sdk_oracle.check_request("POST", "orders", "", _with(ORDER, path, value))
    assert any(complaint in p for p in problems), problems


@pytest.mark.parametrize(
    ("path", "value", "complaint"),
    [
        ("inStock", "false", "inStock: expected a boolean"),
        ("inventoryQuantity", 3, "inventoryQuantity: unknown field"),
        ("variants.0.title", ..., "variants[0].title: missing required field"),
        ("variants.0.options.0.value", ..., "value: missing required field"),
    ],
)
def test_the_oracle_refuses_bad_products(path, value, complaint):
    body = {"products": [_with(PRODUCT, path, value)]}
    problems = sdk_oracle.check_request("POST", "products", "", body)
    assert any(complaint in p for p in problems), problems


def test_the_documented_list_limit():
    body = {"products": [{**PRODUCT, "productId": str(i)} for i in range(101)]}
    assert sdk_oracle.check_request("POST", "products", "", body) == [
        "POST products body.products: 101 items, the API takes 1 to 100"
    ]
    assert sdk_oracle.check_request("POST", "products", "", {"products": []})


def test_paths_and_queries_are_checked():
    assert sdk_oracle.check_request("DELETE", "products/41", "", None) == []
    assert sdk_oracle.check_request("POST", "ordres", "", ORDER) == [
        "POST /api/v1/ordres: no such endpoint in the SDK"
    ]
    patch = sdk_oracle.check_request("PATCH", "subscribers/external", "", {"firstName": "G"})
    assert any("externalId: missing required field" in p for p in patch)
    assert sdk_oracle.check_request(
        "PATCH", "subscribers/external", "externalId=7", {"firstName": None}
    ) == ["PATCH subscribers/external body.firstName: null is not accepted here"]


def _bodies(record: Record) -> list[tuple[str, str, str, Any]]:
    """The request(s) the relay makes of one record (variants go inside their product):
    method, path, query, body."""
    if record.kind == "product":
        return [("POST", "products", "", {"products": [record.data]})]
    if record.kind == "variant":
        product = {"productId": record.data["productId"], "title": "parent"}
        variants = [record.data["variant"]]
        return [("POST", "products", "", {"products": [{**product, "variants": variants}]})]
    if record.kind == "product_delete":
        return [("DELETE", f"products/{record.data['productId']}", "", None)]
    return [
        (request.method, *sdk_oracle.split(request.path), request.body)
        for request in requests_for(record)
    ]


def _fixture_records() -> list:
    cases = []
    for platform in default_registry():
        for fixture in fixtures(platform):
            for n, raw in enumerate(fixture.expected().get("records", [])):
                cases.append(
                    pytest.param(Record.from_dict(raw), id=f"{platform.name}/{fixture.name}/{n}")
                )
    return cases


@pytest.mark.parametrize("record", _fixture_records())
def test_every_golden_fixture_body_conforms(record):
    for method, path, query, body in _bodies(record):
        assert sdk_oracle.check_request(method, path, query, body) == []


# The method of each answer the fake gives (it answers by path); POST unless listed.
ANSWER_METHODS = {
    "/api/v1/account": "GET",
    "/api/v1/subscribers/me": "GET",
    "/api/v1/subscribers/external": "PATCH",
}


ANSWERS = [
    *SUCCESS.items(),
    *account_answers("company", None).items(),
    *account_answers("personal", None).items(),
    *account_answers("personal", OTHER_COMPANY_ID).items(),
]


@pytest.mark.parametrize(("path", "answer"), ANSWERS)
def test_the_fake_api_answers_as_the_sdk_expects(path, answer):
    method = ANSWER_METHODS.get(path, "POST")
    status, body = answer
    assert 200 <= status < 300
    assert sdk_oracle.check_response(method, path.removeprefix("/api/v1/"), body) == []


def test_the_fake_api_lists_a_request_that_breaks_the_contract(fake_api):
    """The hook every test runs through: a wrong body reaching the fake is a violation, and
    the `fake_api` fixture would fail the test (checked here by hand, then cleared)."""
    import requests

    bad = {**ORDER, "status": "paid"}
    requests.post(
        f"{fake_api.url}/api/v1/orders",
        json=bad,
        headers={"Authorization": f"Bearer {fake_api.api_key}"},
        timeout=5,
    )
    assert [line for line, _ in fake_api.violations] == ["POST /api/v1/orders"]
    with pytest.raises(AssertionError, match="'paid' is not one of"):
        fake_api.assert_contract_kept()
    fake_api.violations.clear()
