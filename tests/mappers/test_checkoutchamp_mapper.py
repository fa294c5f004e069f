"""CheckoutChamp: how postbacks are told apart, and the mapping errors fixtures cannot show.

The golden test (test_mapper_fixtures.py) checks records; it takes each fixture's topic from
its expected file. Here `describe` must derive that same topic from the fixture itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlencode

import pytest

from mappers.checkoutchamp import PLATFORM, describe
from mappers.checkoutchamp.events import IGNORED_TOPICS, TOPICS, UnknownEvent, topic_of
from relay.events import RawEvent
from relay.mapping import BadRequest, IgnoreEvent, IncomingRequest, MappingError

FIXTURES = Path(__file__).parents[2] / "mappers/checkoutchamp/fixtures"
EXPECTED = ".expected.json"
CONTENT_TYPES = {".json": "application/json", ".form": "application/x-www-form-urlencoded"}
SALE = {
    "customerType": "New Sale",
    "orderId": "13",
    "orderTotal": "10.00",
    "currencyCode": "USD",
    "emailAddress": "a@example.com",
}


def incoming(path: Path) -> IncomingRequest:
    raw = path.read_bytes()
    if path.suffix == ".query":
        return IncomingRequest(method="GET", headers={}, body=b"", query=raw.decode().strip())
    return IncomingRequest(
        method="POST", headers={}, body=raw, content_type=CONTENT_TYPES[path.suffix]
    )


def fixture_bodies() -> list[Path]:
    return sorted(p for p in FIXTURES.iterdir() if not p.name.endswith(EXPECTED))


@pytest.mark.parametrize("path", fixture_bodies(), ids=lambda p: p.name)
def test_describe_derives_the_topic_each_fixture_declares(path: Path):
    expected = json.loads(path.with_name(path.name.rsplit(".", 1)[0] + EXPECTED).read_text())
    assert describe(incoming(path)).topic == expected["topic"]


def event(fields: dict, topic: str = "new_sale") -> RawEvent:
    body = json.dumps(fields).encode()
    return RawEvent("t", "checkoutchamp", topic, 0.0, body=body, content_type="application/json")


def map_fields(fields: dict, topic: str = "new_sale", **options: str):
    return PLATFORM.map_event(event(fields, topic), options)


# --- telling events apart -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "topic"),
    [
        ("New Sale", "new_sale"),
        ("NEW_SALE", "new_sale"),
        ("new sale", "new_sale"),
        (" New-Sale ", "new_sale"),
        ("Partial", "partial"),
        ("Capture", "capture"),
        ("Upsell", "upsell"),
        ("Recurring Order", "recurring"),
        ("Rebill", "recurring"),
        ("All refunds", "refund"),
        ("Refunded", "refund"),
        ("Partial refunds", "partial_refund"),
        ("Full refunds", "full_refund"),
        ("Cancel", "cancel"),
        ("Fulfillment Shipped", "fulfillment_shipped"),
        ("FULFILLMENT_DELIVERED", "fulfillment_delivered"),
        ("Decline", "decline"),
        ("Rebill Decline", "rebill_decline"),
        ("Recycle Failed", "recycle_failed"),
        ("Chargeback", "chargeback"),
        ("RMA Received", "rma_received"),  # unknown labels are their own (ignored) topic
    ],
)
def test_customer_type_labels_are_normalized(label, topic):
    assert topic_of({"customerType": label, "orderStatus": "COMPLETE"}) == topic


@pytest.mark.parametrize(
    ("fields", "topic"),
    [
        ({"orderStatus": "PARTIAL"}, "partial"),
        ({"orderStatus": "PENDING", "responseType": "SUCCESS"}, "new_sale"),
        ({"orderStatus": "COMPLETE", "billingCycleNumber": "1"}, "capture"),
        ({"orderStatus": "COMPLETE", "billingCycleNumber": "ONE_TIME"}, "capture"),
        ({"orderStatus": "COMPLETE", "billingCycleNumber": "2"}, "recurring"),
        ({"orderStatus": "COMPLETE", "billingCycleNumber": 12}, "recurring"),
        ({"orderStatus": "COMPLETE", "fulfillmentStatus": "SHIPPED"}, "fulfillment_shipped"),
        ({"orderStatus": "complete", "fulfillmentStatus": "Delivered"}, "fulfillment_delivered"),
        ({"orderStatus": "COMPLETE", "fulfillmentStatus": "CANCELLED"}, "capture"),
        ({"orderStatus": "REFUNDED"}, "refund"),
        ({"orderStatus": "CANCELLED"}, "cancel"),
        ({"orderStatus": "DECLINED"}, "decline"),
        ({"orderStatus": "DECLINED", "fulfillmentStatus": "HOLD"}, "decline"),
        ({"orderStatus": "DECLINED", "fulfillmentStatus": "CANCELLED"}, "cancel"),
        ({"orderStatus": "DECLINED", "recurringStatus": "CANCELLED"}, "cancel"),
        ({"customerType": "", "orderStatus": "PARTIAL"}, "partial"),  # empty = not mapped
    ],
)
def test_without_customer_type_the_order_statuses_tell(fields, topic):
    assert topic_of(fields) == topic


def test_a_decline_label_with_cancelled_fulfilment_is_a_cancel():
    cancelled = {"orderStatus": "DECLINED", "fulfillmentStatus": "CANCELLED"}
    assert topic_of({"customerType": "Declined", **cancelled}) == "cancel"
    # A rebill decline stays a decline even when the subscription ends with it.
    assert topic_of({"customerType": "Rebill Decline", **cancelled}) == "rebill_decline"


@pytest.mark.parametrize(
    "fields", [{}, {"orderId": 1}, {"orderStatus": "WEIRD"}, {"customerType": "  "}]
)
def test_postbacks_that_say_no_event_are_unknown(fields):
    with pytest.raises(UnknownEvent, match="customerType"):
        topic_of(fields)


def test_describe_turns_unknown_events_and_bad_json_into_400():
    with pytest.raises(BadRequest) as unknown:
        describe(IncomingRequest(method="GET", headers={}, body=b"", query="orderId=1"))
    assert (unknown.value.status, unknown.value.code) == (400, "unknown_event")
    with pytest.raises(BadRequest) as malformed:
        describe(IncomingRequest("POST", {}, b"{oops", content_type="application/json"))
    assert (malformed.value.status, malformed.value.code) == (400, "malformed_body")


def test_the_platform_declaration():
    assert PLATFORM.name == "checkoutchamp"
    assert PLATFORM.secret_kind == "token"
    assert PLATFORM.token_in_path is True
    assert PLATFORM.methods == ("GET", "POST", "PUT")
    assert PLATFORM.options == ("currency", "timezone")
    assert PLATFORM.url_template == "{relay}/webhooks/checkoutchamp/{token}"
    assert PLATFORM.topics == TOPICS
    assert not set(IGNORED_TOPICS) & TOPICS


# --- the mapper ---------------------------------------------------------------------------------


@pytest.mark.parametrize("topic", sorted(IGNORED_TOPICS))
def test_ignored_topics_are_ignored_with_their_reason(topic):
    with pytest.raises(IgnoreEvent) as ignored:
        map_fields(SALE, topic)
    assert ignored.value.reason == IGNORED_TOPICS[topic]


def test_an_unknown_topic_is_ignored():
    with pytest.raises(IgnoreEvent, match="rma_received"):
        map_fields(SALE, "rma_received")


def test_query_and_form_postbacks_map_alike():
    query = urlencode(SALE)
    as_query = RawEvent("q", "checkoutchamp", "new_sale", 0.0, query=query)
    as_form = RawEvent(
        "f", "checkoutchamp", "new_sale", 0.0, body=query.encode(), content_type="x-www-form"
    )
    assert PLATFORM.map_event(as_query, {}) == PLATFORM.map_event(as_form, {}) == map_fields(SALE)


def test_a_date_with_an_offset_needs_no_timezone_option():
    [record] = map_fields({**SALE, "dateCreated": "2026-05-28T18:04:03-04:00"})
    assert record.data["orderedAt"] == "2026-05-28T22:04:03Z"


@pytest.mark.parametrize("created", ["2026-05-28", "28/05/2026 18:04", "yesterday"])
def test_a_date_without_a_time_or_unreadable_gives_no_ordered_at(created):
    [record] = map_fields({**SALE, "dateCreated": created}, timezone="America/New_York")
    assert "orderedAt" not in record.data


def test_an_object_where_text_is_expected_is_skipped():
    [record] = map_fields({**SALE, "firstName": {"first": "Ada"}, "cardExpiryDate": {"d": 1}})
    assert "firstName" not in record.data["customer"]


@pytest.mark.parametrize(
    ("fields", "options", "message"),
    [
        ({"currencyCode": None, "currencySymbol": "$"}, {}, "RELAY_CHECKOUTCHAMP_CURRENCY"),
        ({"currencyCode": None}, {}, "map currencyCode"),
        ({"currencyCode": "Dollars"}, {}, "not an ISO 4217 code"),
        ({"currencyCode": None}, {"currency": "dollar"}, "RELAY_CHECKOUTCHAMP_CURRENCY"),
        ({"orderTotal": ""}, {}, "no orderTotal"),
        ({"orderTotal": "1,299.00"}, {}, "not an amount"),
        ({"orderId": None}, {}, "no orderId"),
        ({"orderId": "19C35976D3"}, {}, "not clientOrderId"),
        ({"product1_id": "3", "product1_qty": "two"}, {}, "not an amount"),
        ({"product1_id": "3", "product1_qty": "1.5"}, {}, "quantity '1.5'"),
        ({}, {"timezone": "Mars/Olympus"}, "RELAY_CHECKOUTCHAMP_TIMEZONE"),
    ],
)
def test_what_cannot_be_mapped_is_a_mapping_error_saying_what_to_fix(fields, options, message):
    with pytest.raises(MappingError, match=message):
        map_fields({**SALE, **fields}, **options)


def test_an_unambiguous_symbol_beats_the_currency_option():
    fields = {**SALE, "currencyCode": None, "currencySymbol": "£"}
    [record] = map_fields(fields, currency="USD")
    assert record.data["currency"] == "GBP"


def test_a_checkout_without_a_currency_is_still_sent_without_money():
    fields = {**SALE, "currencyCode": None, "customerType": "Partial"}
    [record] = map_fields(fields, "partial")
    assert record.kind == "checkout"
    assert "totalCents" not in record.data
    assert "currency" not in record.data


@pytest.mark.parametrize("status", ["PENDING", "COMPLETE", "REFUNDED"])
def test_a_partial_that_was_paid_meanwhile_is_not_a_checkout(status):
    with pytest.raises(IgnoreEvent, match=f"already {status}"):
        map_fields({**SALE, "orderStatus": status}, "partial")


def test_a_declined_partial_is_still_a_checkout_to_recover():
    [record] = map_fields({**SALE, "orderStatus": "DECLINED"}, "partial")
    assert record.kind == "checkout"


@pytest.mark.parametrize(
    "change",
    [
        {"customerId": {"a": 1}},
        {"customerId": [7]},
        {"customerId": 7.5},
        {"product1_id": {"a": 1}, "product1_name": "Mug"},
        {"product1_id": True, "product1_name": "Mug"},
    ],
    ids=["object customerId", "list customerId", "float customerId", "object line id", "bool"],
)
def test_f16_an_id_that_is_not_a_string_or_an_integer_is_a_mapping_error(change):
    with pytest.raises(MappingError, match="not a string or an integer"):
        map_fields({**SALE, **change})
    assert map_fields({**SALE, "customerId": 7})[0].data["customer"]["externalId"] == "7"
