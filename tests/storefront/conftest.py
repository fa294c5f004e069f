"""What the storefront tests share: an app whose storefront is on for one shop, and a
shopper's request."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest

from relay.app import create_app

ORIGIN = "https://shop.example.com"
ENDPOINT = "/storefront/back-in-stock"
SHOPPER = {
    "email": "ann@example.com",
    "productId": "42",
    "variantId": "44",
    "productTitle": "Linen shirt",
    "variantTitle": "Sand",
}


@pytest.fixture
def shop_settings(settings):
    return replace(settings, storefront_origins=(ORIGIN, "http://localhost:8080"))


@pytest.fixture
def shop_app(shop_settings, redis):
    app = create_app(shop_settings, redis=redis)
    app.testing = True
    return app


@pytest.fixture
def shop(shop_app):
    return shop_app.test_client()


def ask(
    client, body: Any = None, origin: str | None = ORIGIN, address: str = "203.0.113.7", **kwargs
):
    """POST a shopper's request as the widget does (JSON), or with `data=` as a form."""
    headers = dict(kwargs.pop("headers", {}))
    if origin is not None:
        headers["Origin"] = origin
    if "data" not in kwargs:
        kwargs["json"] = SHOPPER if body is None else body
    return client.post(ENDPOINT, headers=headers, environ_base={"REMOTE_ADDR": address}, **kwargs)


def outcome_count(client, outcome: str) -> float:
    """relay_storefront_requests_total{outcome} as /metrics shows it (0 before any)."""
    text = client.get("/metrics").get_data(as_text=True)
    line = 'relay_storefront_requests_total{outcome="' + outcome + '"} '
    found = re.search("^" + re.escape(line) + r"(\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0
