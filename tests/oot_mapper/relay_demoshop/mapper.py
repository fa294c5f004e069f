"""Demo Shop sales -> Commerce API orders (pure)."""

from __future__ import annotations

from collections.abc import Mapping

from relay.events import RawEvent
from relay.mapping import IgnoreEvent, Record
from relay.money import to_minor_units


def map_event(event: RawEvent, options: Mapping[str, str]) -> list[Record]:
    sale = event.json()["sale"]
    if not sale.get("buyer_email"):
        raise IgnoreEvent("sale has no buyer email")
    currency = sale["currency"]
    return [
        Record(
            "order",
            {
                "orderId": str(sale["id"]),
                "status": "placed",
                "totalCents": to_minor_units(sale["amount"], currency),
                "currency": currency,
                "customer": {"email": sale["buyer_email"]},
                "items": [
                    {
                        "productId": str(line["sku"]),
                        "title": line["name"],
                        "quantity": int(line["qty"]),
                    }
                    for line in sale.get("lines", [])
                ],
            },
        )
    ]
