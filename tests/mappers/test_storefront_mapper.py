"""The storefront's mapper (mappers/storefront/): a stored shopper's request becomes the
Commerce API's back-in-stock request."""

from __future__ import annotations

import json

import pytest

from mappers.storefront import SOURCE
from relay.events import RawEvent
from relay.mapping import MappingError
from relay.schemas import record_errors


def stored(body: bytes) -> RawEvent:
    return RawEvent("e1", "storefront", "back_in_stock", 0.0, body, "application/json")


def test_a_stored_request_maps_to_one_back_in_stock_record():
    request = {
        "email": "ann@example.com",
        "productId": "42",
        "variantId": "44",
        "productTitle": "Linen shirt",
        "variantTitle": "Sand",
    }
    [record] = SOURCE.map_event(stored(json.dumps(request).encode()), {})
    assert record.kind == "back_in_stock"
    assert record.data == {
        "productId": "42",
        "variantId": "44",
        "productTitle": "Linen shirt",
        "variantTitle": "Sand",
        "customer": {"email": "ann@example.com"},
    }
    assert record_errors(record) == {}


def test_what_the_shopper_left_out_stays_out():
    body = b'{"email": "ann@example.com", "productId": "41"}'
    [record] = SOURCE.map_event(stored(body), {})
    assert record.data == {"productId": "41", "customer": {"email": "ann@example.com"}}


def test_a_body_that_is_not_a_stored_request_is_a_mapping_error():
    for body in (b"{", b"[]"):
        with pytest.raises(MappingError):
            SOURCE.map_event(stored(body), {})
