"""A shopper's request, read and checked (relay/storefront/validation.py): the schemas'
own bounds, both body kinds, the honeypot."""

from __future__ import annotations

import json

import pytest

from relay.schemas import MAX_EMAIL, MAX_EMAIL_LOCAL, MAX_ID, MAX_TITLE
from relay.storefront.validation import (
    FORM,
    JSON,
    Invalid,
    back_in_stock_request,
    check_honeypot,
    read_fields,
)

GOOD = {"email": "ann@example.com", "productId": "42"}


def errors_of(fields: dict) -> dict:
    with pytest.raises(Invalid) as refused:
        back_in_stock_request(fields)
    assert refused.value.code == "invalid_request"
    return refused.value.details


def test_the_least_a_request_needs_and_everything_it_may_carry():
    assert back_in_stock_request(GOOD) == GOOD
    full = {**GOOD, "variantId": 44, "productTitle": " Linen shirt ", "variantTitle": "Sand"}
    assert back_in_stock_request({**full, "colour": "ignored", "utm_source": "mail"}) == {
        **GOOD,
        "variantId": "44",
        "productTitle": "Linen shirt",
        "variantTitle": "Sand",
    }
    # Empty optional fields are absent, not empty strings the API would store.
    assert back_in_stock_request({**GOOD, "variantId": "", "variantTitle": "  "}) == GOOD


def test_each_wrong_field_is_named():
    assert set(errors_of({})) == {"email", "productId"}
    assert set(errors_of({**GOOD, "email": "ann@example"})) == {"email"}
    assert set(errors_of({**GOOD, "productId": True})) == {"productId"}
    assert set(errors_of({**GOOD, "productId": 4.2})) == {"productId"}
    assert set(errors_of({**GOOD, "variantId": {"id": 1}})) == {"variantId"}
    assert set(errors_of({**GOOD, "productTitle": ["a"]})) == {"productTitle"}


def test_the_bounds_are_the_schemas():
    local = "a" * MAX_EMAIL_LOCAL
    domain = "b" * 63 + "." + "c" * 63 + "." + "d" * 63 + ".com"
    assert back_in_stock_request({**GOOD, "email": f"{local}@example.com"})
    assert "email" in errors_of({**GOOD, "email": f"a{local}@example.com"})
    long_address = f"{local}@{domain}"
    assert len(long_address) > MAX_EMAIL
    assert "email" in errors_of({**GOOD, "email": long_address})
    assert back_in_stock_request({**GOOD, "productId": "9" * MAX_ID})
    assert "productId" in errors_of({**GOOD, "productId": "9" * (MAX_ID + 1)})
    assert back_in_stock_request({**GOOD, "variantTitle": "t" * MAX_TITLE})
    assert "variantTitle" in errors_of({**GOOD, "variantTitle": "t" * (MAX_TITLE + 1)})


def test_json_and_form_bodies_read_alike():
    as_json = read_fields(json.dumps(GOOD).encode(), JSON)
    as_form = read_fields(b"email=ann%40example.com&productId=41&productId=42", FORM)
    assert as_json == as_form == GOOD  # a repeated form field: the last wins, as in JSON
    for body, kind in ((b"{", JSON), (b"[]", JSON), (b"\xff=1", FORM), (b"[" * 5000, JSON)):
        with pytest.raises(Invalid) as refused:
            read_fields(body, kind)
        assert refused.value.code == "malformed_body"


def test_the_honeypot_must_be_empty():
    check_honeypot(GOOD)
    check_honeypot({**GOOD, "leave_this_empty": ""})
    check_honeypot({**GOOD, "leave_this_empty": " \n"})
    for filled in ("http://spam.example", 1, ["x"]):
        with pytest.raises(Invalid) as refused:
            check_honeypot({**GOOD, "leave_this_empty": filled})
        assert refused.value.code == "honeypot"
        assert refused.value.details == {"leave_this_empty": ["Must be empty."]}
