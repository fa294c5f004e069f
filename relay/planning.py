"""From normalized records to Commerce API requests: the worker's entity rules live here.

`plan()` is the one place that decides what a record means for the API. Today it is a direct
translation; the relay's memory across events (order lifecycle, last write wins, no-op
suppression, variant lists, product batching) belongs in this module's `Planner`, which is
given Redis for that purpose.
"""

from __future__ import annotations

from collections.abc import Sequence

from relay.commerce_api import ApiRequest, product_path
from relay.mapping import Record


def request_for(record: Record) -> ApiRequest | None:
    """The request that carries one record, or None for records that are never sent alone."""
    data = record.data
    if record.kind == "product":
        return ApiRequest(
            "POST", "/api/v1/products", {"products": [data]}, f"product:{data['productId']}"
        )
    if record.kind == "product_delete":
        return ApiRequest(
            "DELETE", product_path(data["productId"]), None, f"product:{data['productId']}"
        )
    if record.kind == "order":
        return ApiRequest("POST", "/api/v1/orders", data, f"order:{data['orderId']}")
    if record.kind == "checkout":
        return ApiRequest("POST", "/api/v1/checkouts", data, f"checkout:{data['checkoutId']}")
    if record.kind == "back_in_stock":
        return ApiRequest(
            "POST",
            "/api/v1/back-in-stock",
            data,
            f"back_in_stock:{data['productId']}:{data.get('variantId') or ''}",
        )
    # "variant": sending one variant would replace the product's whole variant list at the
    # API, deleting its siblings. It is held until the relay knows the complete list.
    return None


class Planner:
    def plan(self, platform: str, records: Sequence[Record]) -> list[ApiRequest]:
        return [r for r in (request_for(record) for record in records) if r is not None]
