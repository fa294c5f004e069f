"""A fake WooCommerce store (tests/fakestore.py, a real HTTP server) and settings that point
the relay's store API at it, its pacing lifted and its backoff short."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from relay.registry import default_registry
from relay.settings import Settings, StoreConfig
from relay.sync.service import Store, open_store
from tests.fakeapi import FakeCommerceApi
from tests.fakestore import KEY, SECRET, FakeStore


@pytest.fixture
def fake_store() -> Iterator[FakeStore]:
    store = FakeStore(products=45, customers=20, orders=40).start()
    yield store
    store.stop()


def with_store(settings: Settings, fake_store: FakeStore, **changes: Any) -> Settings:
    config = StoreConfig(
        "woocommerce", fake_store.url, {"consumer_key": KEY, "consumer_secret": SECRET}, 1000.0
    )
    return replace(settings, stores={"woocommerce": config}, **changes)


@pytest.fixture
def store_settings(settings, fake_store) -> Settings:
    return with_store(settings, fake_store)


def open_fake(settings: Settings, redis) -> Store:
    store = open_store(settings, default_registry(), redis, "woocommerce")
    # Seconds, not minutes: the faults are injected.
    store.session.first_delay = 0.05
    store.session.server_error_delay = 0.01
    store.session.give_up_seconds = 5.0
    return store


def sent_products(api: FakeCommerceApi) -> dict[str, dict[str, Any]]:
    """productId -> the last payload the API applied for it."""
    out: dict[str, dict[str, Any]] = {}
    for received in api.applied:
        if received.method == "POST" and received.path == "/api/v1/products":
            for product in received.body["products"]:
                out[product["productId"]] = product
    return out


def sent_subscribers(api: FakeCommerceApi) -> list[dict[str, Any]]:
    return [r.body for r in api.applied if r.method == "POST" and r.path == "/api/v1/subscribers"]
