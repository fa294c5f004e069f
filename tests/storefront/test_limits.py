"""Rate limits per client address and per email (relay/storefront/limits.py), in Redis: a
429 with Retry-After that the widget shows, per address as RELAY_TRUST_PROXY says."""

from __future__ import annotations

from dataclasses import replace

from relay.app import create_app
from relay.storefront.limits import (
    ADDRESS_LIMIT,
    ADDRESS_WINDOW_SECONDS,
    EMAIL_LIMIT,
    EMAIL_WINDOW_SECONDS,
)
from tests.conftest import stored_events
from tests.storefront.conftest import ORIGIN, SHOPPER, ask, outcome_count


def test_an_address_past_its_limit_is_429_until_its_window_ends(shop, redis):
    before = outcome_count(shop, "rate_limited_address")
    # Junk counts too: a flood of bad requests pays like good ones.
    for i in range(ADDRESS_LIMIT):
        body = {"email": f"shopper{i}@example.com", "productId": str(i)} if i % 2 else {}
        assert ask(shop, body, address="198.51.100.1").status_code in (202, 400)
    refused = ask(shop, {"email": "late@example.com", "productId": "7"}, address="198.51.100.1")
    assert refused.status_code == 429
    assert refused.get_json()["error"]["code"] == "rate_limited"
    assert 0 < int(refused.headers["Retry-After"]) <= ADDRESS_WINDOW_SECONDS
    assert refused.headers["Access-Control-Allow-Origin"] == ORIGIN  # the widget reads it
    assert "Retry-After" in refused.headers["Access-Control-Expose-Headers"]
    # Another address is not held up, and nothing refused was stored.
    assert ask(shop, address="198.51.100.2").status_code == 202
    assert len(stored_events(redis)) == ADDRESS_LIMIT // 2 + 1
    assert outcome_count(shop, "rate_limited_address") == before + 1


def test_an_email_past_its_limit_is_429_from_any_address(shop, redis):
    for i in range(EMAIL_LIMIT):
        answer = ask(shop, {**SHOPPER, "productId": str(i)}, address=f"198.51.100.{i + 10}")
        assert answer.status_code == 202
    before = outcome_count(shop, "rate_limited_email")
    refused = ask(shop, {**SHOPPER, "email": "ANN@example.com", "productId": "99"}, address="::1")
    assert refused.status_code == 429
    assert refused.get_json()["error"]["code"] == "rate_limited"
    assert 0 < int(refused.headers["Retry-After"]) <= EMAIL_WINDOW_SECONDS
    assert ask(shop, {**SHOPPER, "email": "bob@example.com"}, address="::1").status_code == 202
    assert len(stored_events(redis)) == EMAIL_LIMIT + 1
    assert outcome_count(shop, "rate_limited_email") == before + 1


def test_behind_a_trusted_proxy_each_shopper_has_their_own_count(shop_settings, redis):
    behind = create_app(replace(shop_settings, trust_proxy=True), redis=redis).test_client()

    def via_proxy(client, shopper: str, i: int):
        body = {"email": f"s{i}@example.com", "productId": str(i)}
        return ask(client, body, address="10.0.0.2", headers={"X-Forwarded-For": shopper})

    for i in range(ADDRESS_LIMIT):
        assert via_proxy(behind, "198.51.100.20", i).status_code == 202
    assert via_proxy(behind, "198.51.100.20", 100).status_code == 429
    assert via_proxy(behind, "198.51.100.21", 101).status_code == 202  # another shopper
    # Without RELAY_TRUST_PROXY the header is anybody's to write: the connection counts.
    direct = create_app(shop_settings, redis=redis).test_client()
    redis.flushdb()
    for i in range(ADDRESS_LIMIT):
        assert via_proxy(direct, f"198.51.100.{i}", i).status_code == 202
    assert via_proxy(direct, "198.51.100.250", 200).status_code == 429
