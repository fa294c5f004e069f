"""A stored storefront request -> the Commerce API's back-in-stock request.

The stored body is what the shopper asked for, checked and trimmed by the endpoint, under
the endpoint's own field names (which are the API's):

    {"email": "ann@example.com", "productId": "42", "variantId": "43",
     "productTitle": "Linen shirt", "variantTitle": "Blue, L"}

`variantId` and the titles may be absent. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from relay.events import RawEvent
from relay.mapping import MappingError, Record

NAME = "storefront"  # the events' `platform`
TOPIC = "back_in_stock"
OPTIONAL = ("variantId", "productTitle", "variantTitle")


def back_in_stock(request: Mapping[str, Any]) -> Record:
    """The record for one stored request (the endpoint validates with it, the worker sends
    it). Absent fields stay absent (the schema then names what is missing); the API uses
    the synced titles when none are given."""
    data: dict[str, Any] = {}
    if request.get("productId") is not None:
        data["productId"] = request["productId"]
    data.update({name: request[name] for name in OPTIONAL if request.get(name) is not None})
    data["customer"] = {"email": request["email"]} if request.get("email") is not None else {}
    return Record("back_in_stock", data)


def map_event(event: RawEvent, _options: Mapping[str, str]) -> list[Record]:
    try:
        request = event.json()
    except ValueError as exc:
        raise MappingError(f"the stored request is not JSON: {exc}") from None
    if not isinstance(request, dict):
        raise MappingError("the stored request is not a JSON object")
    return [back_in_stock(request)]
