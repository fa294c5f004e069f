"""Sticky.io rules the golden fixtures cannot state: configuration errors, the decline
reason's hygiene, time zones, JSON scalars, the token check and the merchant guide."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlencode

import pytest
from click.testing import CliRunner

from mappers.stickyio import (
    ORDER_URL_TEMPLATE,
    PLATFORM,
    PROSPECT_URL_TEMPLATE,
    TOPICS,
    check_token,
)
from relay.cli import main
from relay.events import RawEvent
from relay.mapping import IgnoreEvent, MappingError
from relay.registry import default_registry
from relay.schemas import record_errors
from relay.settings import ConfigError, Settings

README = Path(__file__).parents[2] / "mappers/stickyio/README.md"
ORDER = {
    "order_id": "10452",
    "order_status": "1",
    "order_total": "54.85",
    "currency_code": "USD",
    "email": "ada@example.com",
}


def event(fields: dict, topic: str = "order") -> RawEvent:
    return RawEvent("e", "stickyio", topic, 0.0, query=urlencode(fields))


def json_event(payload: dict, topic: str = "order") -> RawEvent:
    body = json.dumps(payload).encode()
    return RawEvent("e", "stickyio", topic, 0.0, body=body, content_type="application/json")


def placed(fields: dict, **options: str) -> dict:
    records = PLATFORM.map_event(event(fields), options)
    assert all(record_errors(r) == {} for r in records)
    return records[0].data


# --- declines -----------------------------------------------------------------------------


def test_decline_reason_keeps_the_gateway_text_but_no_card_numbers_or_addresses():
    fields = {
        **ORDER,
        "order_status": "0",
        "decline_reason": "Do Not Honor: card 4111111111111111 of ada@example.com",
    }
    with pytest.raises(IgnoreEvent) as ignored:
        PLATFORM.map_event(event(fields, "decline"), {})
    reason = ignored.value.reason
    assert reason.startswith("declined payment for order 10452: Do Not Honor")
    assert "4111" not in reason
    assert "ada@example.com" not in reason


def test_long_decline_reason_is_cut_short():
    fields = {**ORDER, "order_status": "0", "decline_reason": "Declined " * 40}
    with pytest.raises(IgnoreEvent) as ignored:
        PLATFORM.map_event(event(fields, "decline"), {})
    assert len(ignored.value.reason) < 120


# --- configuration errors are dead letters (replayable once the setting is fixed) ----------


def test_unknown_timezone_is_a_mapping_error_naming_the_setting():
    with pytest.raises(MappingError, match="RELAY_STICKYIO_TIMEZONE"):
        PLATFORM.map_event(
            event({**ORDER, "order_date_time": "03/14/2025 14:05:09"}),
            {"timezone": "Mars/Olympus_Mons"},
        )


def test_no_currency_anywhere_is_a_mapping_error_saying_what_to_add():
    fields = {k: v for k, v in ORDER.items() if k != "currency_code"}
    with pytest.raises(MappingError, match=r"currency_code=\{currency_code\}"):
        PLATFORM.map_event(event(fields), {})


def test_currency_option_is_only_a_fallback():
    assert placed(ORDER, currency="EUR")["currency"] == "USD"
    fields = {**ORDER, "currency_code": ""}
    assert placed(fields, currency="eur")["currency"] == "EUR"


def test_invalid_currency_code_is_a_mapping_error():
    with pytest.raises(MappingError, match="ISO 4217"):
        PLATFORM.map_event(event({**ORDER, "currency_code": "US$"}), {})


def test_missing_order_total_is_a_mapping_error():
    fields = {**ORDER, "order_total": ""}
    with pytest.raises(MappingError, match="order_total"):
        PLATFORM.map_event(event(fields), {})


def test_unreadable_refund_amount_is_a_mapping_error_not_a_silent_zero():
    with pytest.raises(MappingError):
        PLATFORM.map_event(event({**ORDER, "void_refund_amount": "ten"}), {})


# --- dates ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("local", "zone", "utc"),
    [
        ("03/14/2025 14:05:09", "America/New_York", "2025-03-14T18:05:09Z"),  # EDT
        ("01/14/2025 14:05:09", "America/New_York", "2025-01-14T19:05:09Z"),  # EST
        # An hour that happens twice when clocks go back: the first one (EDT) is taken.
        ("11/02/2025 01:30:00", "America/New_York", "2025-11-02T05:30:00Z"),
        ("12/31/2024 23:59:59", "UTC", "2024-12-31T23:59:59Z"),
    ],
)
def test_order_date_time_is_converted_from_the_account_zone(local, zone, utc):
    assert placed({**ORDER, "order_date_time": local}, timezone=zone)["orderedAt"] == utc


def test_without_a_timezone_there_is_no_ordered_at():
    assert "orderedAt" not in placed({**ORDER, "order_date_time": "03/14/2025 14:05:09"})


def test_unreadable_order_date_time_is_left_out():
    fields = {**ORDER, "order_date_time": "2025-03-14T14:05:09"}
    assert "orderedAt" not in placed(fields, timezone="America/New_York")


# --- values -----------------------------------------------------------------------------------


def test_json_scalars_are_read_like_strings():
    payload = {
        **ORDER,
        "order_status": 1,
        "order_total": 32.5,
        "customer_id": 0,
        "ischargeback": False,
        "void_refund_amount": 0,
        "product_id_csv": 52,
        "product_qtys_csv": 2,
    }
    [record] = PLATFORM.map_event(json_event(payload), {})
    assert record.data["totalCents"] == 3250
    assert "externalId" not in record.data["customer"]
    assert record.data["items"] == [{"productId": "52", "title": "Product 52", "quantity": 2}]


def test_unreadable_quantities_and_prices_fall_back_instead_of_failing():
    fields = {
        **ORDER,
        "product_id_csv": "17,23",
        "product_qtys_csv": "1.5,x",
        "product_prices_csv": "$24.95,14.95",
    }
    items = placed(fields)["items"]
    assert items == [
        {"productId": "17", "title": "Product 17", "quantity": 1},
        {"productId": "23", "title": "Product 23", "quantity": 1, "priceCents": 1495},
    ]


def test_kwd_prices_use_three_decimals():
    fields = {**ORDER, "currency_code": "KWD", "order_total": "12.345"}
    fields |= {"product_id_csv": "9", "product_prices_csv": "12.345"}
    data = placed(fields)
    assert data["totalCents"] == 12345
    assert data["items"][0]["priceCents"] == 12345


def test_partial_refund_then_full_refund_send_the_cumulative_amount():
    for amount, cents in (("0.01", 1), ("54.85", 5485)):
        records = PLATFORM.map_event(event({**ORDER, "void_refund_amount": amount}, "refund"), {})
        assert [r.data["status"] for r in records] == ["placed", "refunded"]
        assert records[1].data["refundAmountCents"] == cents


# --- the token --------------------------------------------------------------------------------


def test_token_check():
    assert check_token("0b9c1e7f3a5d48e2a6c4") is None
    assert "16 characters" in check_token("short")
    assert check_token("whsec_ZTJlLXNlY3JldC1mb3Itc3RhbmRhcmQtd2ViaG9va3M=") is None
    for broken in (
        "has/a/slash-in-it",
        "has?a-question-mark",
        "has a space in it",
        "{token}-pasted-twice",
    ):
        assert "no / ? # % { } or spaces" in check_token(broken), broken


def test_weak_token_stops_start_up_without_echoing_it():
    specs = default_registry().settings_specs()
    with pytest.raises(ConfigError) as error:
        Settings.from_env({"RELAY_STICKYIO_TOKEN": "hunter2"}, platforms=specs)
    assert str(error.value).startswith("RELAY_STICKYIO_TOKEN:")
    assert "hunter2" not in str(error.value)


def test_options_come_from_the_environment():
    environ = {
        "RELAY_STICKYIO_TOKEN": "0b9c1e7f3a5d48e2a6c4",
        "RELAY_STICKYIO_CURRENCY": "EUR",
        "RELAY_STICKYIO_TIMEZONE": "Europe/Berlin",
    }
    settings = Settings.from_env(environ, platforms=default_registry().settings_specs())
    assert settings.secret_for("stickyio") == "0b9c1e7f3a5d48e2a6c4"
    assert settings.options_for("stickyio") == {"currency": "EUR", "timezone": "Europe/Berlin"}


# --- what the merchant is told ----------------------------------------------------------------


def test_readme_gives_both_url_templates_verbatim():
    text = README.read_text()
    assert ORDER_URL_TEMPLATE.replace("{relay}", "https://<your relay>") in text
    assert PROSPECT_URL_TEMPLATE.replace("{relay}", "https://<your relay>") in text
    for topic in TOPICS:
        assert f"`{topic}`" in text


def test_relay_mappers_prints_the_template_and_never_the_token(redis_server, tmp_path):
    env = {
        "RELAY_REDIS_URL": redis_server.url,
        "RELAY_DATA_DIR": str(tmp_path / "data"),
        "RELAY_STICKYIO_TOKEN": "0b9c1e7f3a5d48e2a6c4",
    }
    result = CliRunner().invoke(main, ["mappers"], env=env, catch_exceptions=False)
    assert "http://127.0.0.1:8000/webhooks/stickyio/{token}?type=order&order_id={order_id}" in (
        result.output
    )
    assert "0b9c1e7f3a5d48e2a6c4" not in result.output


@pytest.mark.parametrize(
    "change",
    [
        {"order_id": {"a": 1}},
        {"customer_id": ["7"]},
        {"product_id_csv": {"a": 1}},
        {"campaign_id": 1.5},
        {"parent_order_id": False},
    ],
    ids=["object order_id", "list customer_id", "object product ids", "float", "bool"],
)
def test_f16_an_id_that_is_not_a_string_or_an_integer_is_a_mapping_error(change):
    with pytest.raises(MappingError, match="not a string or an integer"):
        PLATFORM.map_event(json_event({**ORDER, **change}), {})
    assert (
        PLATFORM.map_event(json_event({**ORDER, "order_id": 10452}), {})[0].data["orderId"]
        == "10452"
    )
