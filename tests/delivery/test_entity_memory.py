"""The relay's memory across events, through the real worker and Redis to the fake API:
order lifecycle, last write wins, no-op suppression, checkouts, variants, batching, and
retries that must not overwrite newer deliveries."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from relay.app import create_app
from relay.delivery.deadletters import DeadLetters
from relay.delivery.entity_rules import epoch
from relay.event_queue import EventQueue
from relay.events import RawEvent, new_event_id
from relay.intake.acceptor import Acceptor
from tests.conftest import as_body, wait_until, woo_headers

FIXTURES = Path(__file__).parents[2] / "mappers/woocommerce/fixtures"


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_bytes())


def event(
    payload: dict[str, Any], topic: str, platform: str = "woocommerce", received_at: float = 0.0
) -> RawEvent:
    return RawEvent(
        new_event_id(),
        platform,
        topic,
        received_at,
        json.dumps(payload).encode(),
        "application/json",
    )


def send(redis, *events: RawEvent) -> None:
    queue = Acceptor(EventQueue(redis))
    for e in events:
        assert queue.accept(e, f"test:{e.id}")


def woo_order(modified: str, **changes: Any) -> RawEvent:
    order = fixture("order.processing.guest.json")
    order.update(changes, date_modified_gmt=modified)
    return event(order, "order.updated")


def statuses(api, order_id: str = "1042") -> list[str]:
    return [
        f"{r.body['status']}:{r.body.get('refundAmountCents', '')}".rstrip(":")
        for r in api.requests
        if r.path == "/api/v1/orders" and r.body["orderId"] == order_id
    ]


# --- orders ------------------------------------------------------------------------------


def test_lifecycle_placed_once_then_forward_only(redis, fake_api, worker):
    send(redis, woo_order("2024-03-05T13:02:40", status="processing"))
    worker.run()
    send(redis, woo_order("2024-03-06T09:00:00", status="completed"))
    worker.run()
    # A stale "processing" snapshot and a repeat of "completed" change nothing.
    send(redis, woo_order("2024-03-05T13:02:40", status="processing"))
    send(redis, woo_order("2024-03-06T09:00:00", status="completed", customer_note="again"))
    worker.run()
    assert statuses(fake_api) == ["placed", "fulfilled"]


def test_first_sighting_of_a_completed_order_sends_placed_then_fulfilled(redis, fake_api, worker):
    send(redis, woo_order("2024-03-06T09:00:00", status="completed"))
    worker.run()
    assert statuses(fake_api) == ["placed", "fulfilled"]


def test_refunds_are_sent_when_the_cumulative_amount_grows(redis, fake_api, worker):
    one = [{"id": 1, "reason": "", "total": "-5.00"}]
    two = [*one, {"id": 2, "reason": "", "total": "-2.50"}]
    send(redis, woo_order("2024-03-06T09:00:00", status="processing", refunds=one))
    send(redis, woo_order("2024-03-06T10:00:00", status="processing", refunds=one))
    send(redis, woo_order("2024-03-06T11:00:00", status="processing", refunds=two))
    send(redis, woo_order("2024-03-06T12:00:00", status="processing", refunds=one))  # deleted
    worker.run()
    assert statuses(fake_api) == ["placed", "refunded:500", "refunded:750"]


def test_events_that_would_move_an_order_backwards_are_dropped(redis, fake_api, worker):
    send(
        redis,
        woo_order("2024-03-06T09:00:00", status="cancelled", date_paid_gmt="2024-03-05T13:02:40"),
    )
    worker.run()
    # Newer snapshot, but completing a cancelled order would move it backwards.
    send(redis, woo_order("2024-03-07T09:00:00", status="completed"))
    worker.run()
    assert statuses(fake_api) == ["placed", "cancelled"]


def test_unpaid_order_cancelled_before_it_was_placed_sends_nothing(redis, fake_api, worker):
    send(redis, woo_order("2024-03-06T09:00:00", status="cancelled", date_paid_gmt=None))
    worker.run()
    assert statuses(fake_api) == []


def test_on_hold_order_cancelled_unpaid_is_cancelled(redis, fake_api, worker):
    send(redis, woo_order("2024-03-06T09:00:00", status="on-hold", date_paid_gmt=None))
    send(redis, woo_order("2024-03-08T09:00:00", status="cancelled", date_paid_gmt=None))
    worker.run()
    assert statuses(fake_api) == ["placed", "cancelled"]


def test_retry_of_an_older_event_does_not_repeat_what_a_newer_one_delivered(
    redis, fake_api, worker
):
    fake_api.fail("/api/v1/orders", status=503)
    send(redis, woo_order("2024-03-05T13:02:40", status="processing"))
    worker.run()  # placed failed: retry scheduled
    send(redis, woo_order("2024-03-06T09:00:00", status="completed"))
    worker.run()  # the newer event announces placed itself, then fulfilled
    assert worker.release_scheduled() >= 1
    worker.run()  # the old retry finds placed already sent
    assert statuses(fake_api) == ["placed", "placed", "fulfilled"]  # the first one was a 503
    delivered = [r for r in fake_api.requests[1:] if r.path == "/api/v1/orders"]
    assert [r.body["status"] for r in delivered] == ["placed", "fulfilled"]


# --- checkouts -----------------------------------------------------------------------------


def test_checkout_once_per_content_and_never_after_its_order(redis, fake_api, worker):
    pending = fixture("order.pending.json")
    send(redis, event({**pending, "date_modified_gmt": "2024-03-05T13:20:00"}, "order.created"))
    send(redis, event({**pending, "date_modified_gmt": "2024-03-05T13:21:00"}, "order.updated"))
    worker.run()
    smaller = {
        **pending,
        "line_items": pending["line_items"][:1],
        "total": "43.20",
        "date_modified_gmt": "2024-03-05T13:25:00",
    }
    send(redis, event(smaller, "order.updated"))  # the cart changed: a new checkout event
    worker.run()
    paid = {
        **smaller,
        "status": "processing",
        "date_paid_gmt": "2024-03-05T13:30:00",
        "date_modified_gmt": "2024-03-05T13:30:00",
    }
    send(redis, event(paid, "order.updated"))  # paid after its checkout: an order, normally
    worker.run()
    late = {**pending, "date_modified_gmt": "2024-03-05T13:40:00", "customer_note": "x"}
    send(redis, event(late, "order.updated"))  # a checkout after the order: never
    worker.run()
    paths = [(r.path, len(r.body.get("items", []))) for r in fake_api.requests]
    assert paths == [("/api/v1/checkouts", 2), ("/api/v1/checkouts", 1), ("/api/v1/orders", 1)]


# --- products and variants ---------------------------------------------------------------


def product_requests(api) -> list[list[dict]]:
    return [r.body["products"] for r in api.requests if r.path == "/api/v1/products"]


def variation(variation_id: int, modified: str, **changes: Any) -> RawEvent:
    body = fixture("product.variation.json")
    body.update(id=variation_id, sku=f"TS-{variation_id}", date_modified_gmt=modified, **changes)
    return event(body, "product.updated")


def test_variants_are_sent_only_as_a_complete_list(redis, fake_api, worker):
    send(redis, event(fixture("product.variable.json"), "product.updated"))
    worker.run()
    [[parent]] = product_requests(fake_api)
    assert "variants" not in parent  # the list is not known yet: the API keeps its own

    send(redis, variation(192, "2018-02-09T10:00:00"), variation(194, "2018-02-09T10:00:00"))
    worker.run()
    assert len(product_requests(fake_api)) == 1  # held: 193 still unknown

    send(redis, variation(193, "2018-02-09T10:00:00", status="private"))
    worker.run()
    full = product_requests(fake_api)[-1][0]
    assert [v["variantId"] for v in full["variants"]] == ["192", "194"]  # 193 is disabled

    # One variation changes: the whole list goes again, siblings included.
    send(redis, variation(194, "2018-02-10T10:00:00", stock_quantity=0, stock_status="outofstock"))
    worker.run()
    latest = product_requests(fake_api)[-1][0]
    assert [v["variantId"] for v in latest["variants"]] == ["192", "194"]
    assert latest["variants"][1]["inStock"] is False
    assert all(len(p["variants"]) == 2 for [p] in product_requests(fake_api)[1:])


def test_deleted_variation_leaves_its_parent_list(redis, fake_api, worker):
    send(redis, event(fixture("product.variable.json"), "product.updated"))
    send(redis, *(variation(v, "2018-02-09T10:00:00") for v in (192, 193, 194)))
    worker.run()
    send(redis, event({"id": 193}, "product.deleted"))
    worker.run()
    latest = product_requests(fake_api)[-1][0]
    assert [v["variantId"] for v in latest["variants"]] == ["192", "194"]
    assert not any(r.method == "DELETE" for r in fake_api.requests)


def test_f4_a_captured_delete_replayed_after_the_dedup_window_deletes_nothing(
    settings, redis, fake_api, worker
):
    # Review: with RELAY_DEDUP_WINDOW_SECONDS=2 a captured `{"id": 41}` product.deleted was
    # answered 202, then duplicate, then 202 again once the window had passed: two DELETEs.
    client = create_app(replace(settings, dedup_window_seconds=1), redis=redis).test_client()

    def post(payload: Any, topic: str) -> int:
        body = as_body(payload)
        headers = woo_headers(body, topic)
        return client.post("/webhooks/woocommerce", data=body, headers=headers).status_code

    product = fixture("product.simple.on-sale.json")  # product 41
    assert post(product, "product.updated") == 202
    worker.run()
    assert post(b'{"id": 41}', "product.deleted") == 202
    worker.run()
    assert post(b'{"id": 41}', "product.deleted") == 200  # duplicate, within the window
    wait_until(
        lambda: not any(redis.scan_iter("relay:seen:*")), timeout=10, what="the window to pass"
    )
    # Replays of both captured bodies are new events to ingest once the window has passed.
    assert post(b'{"id": 41}', "product.deleted") == 202
    worker.run()
    assert post(product, "product.updated") == 202
    worker.run()
    assert fake_api.paths() == ["POST /api/v1/products", "DELETE /api/v1/products/41"]

    # A genuine restore is newer than the deletion: it goes, and a later delete goes again.
    assert post({**product, "date_modified_gmt": "2024-03-09T08:00:00"}, "product.restored") == 202
    worker.run()
    assert post(b'{"id":41}', "product.deleted") == 202
    worker.run()
    assert fake_api.paths()[2:] == ["POST /api/v1/products", "DELETE /api/v1/products/41"]


def test_an_ended_sale_clears_the_compare_at_price_once(redis, fake_api, worker):
    send(redis, event(fixture("product.simple.on-sale.json"), "product.updated"))
    worker.run()
    ended = fixture("product.simple.sale-ended.json")
    send(redis, event(ended, "product.updated"))
    worker.run()
    # The same snapshot again, stamped later (a re-save that changed nothing): not sent.
    send(redis, event({**ended, "date_modified_gmt": "2024-03-09T11:00:00"}, "product.updated"))
    worker.run()
    sent = [(p["priceCents"], p["compareAtPriceCents"]) for [p] in product_requests(fake_api)]
    assert sent == [(1125, 1250), (1250, None)]
    assert "compareAtPriceCents" in product_requests(fake_api)[1][0]  # explicitly null


def test_a_product_sent_without_its_nulls_is_sent_once_with_them(redis, fake_api, worker):
    # What a relay before explicit nulls delivered: the same product with the fields it did
    # not have left out. The first snapshot after the upgrade differs only in its nulls,
    # and must still go once: the API still holds whatever those fields held before.
    old_shape = {
        "productId": "42",
        "title": "Espresso Cup",
        "description": "Small & strong.",
        "url": "https://shop.example.com/product/espresso-cup/",
        "priceCents": 800,
        "inStock": False,
        "providerCreatedAt": "2023-11-02T09:15:00Z",
    }
    custom = {"type": "product", "data": old_shape}
    send(redis, event(custom, "product", platform="custom"))
    worker.run()
    cup = fixture("product.simple.out-of-stock.json")
    send(redis, event(cup, "product.updated"))
    worker.run()
    send(redis, event({**cup, "date_modified_gmt": "2024-03-03T08:00:00"}, "product.updated"))
    worker.run()
    bodies = [p for [p] in product_requests(fake_api)]
    assert len(bodies) == 2
    assert bodies[1] == {**old_shape, "imageUrl": None, "compareAtPriceCents": None}


def test_an_unpublished_product_is_deleted_and_comes_back_when_republished(redis, fake_api, worker):
    mug = fixture("product.simple.on-sale.json")  # product 41, modified 2024-03-01 11:00
    send(redis, event(mug, "product.updated"))
    worker.run()
    send(redis, event(fixture("product.simple.unpublished.json"), "product.updated"))  # 03-10
    worker.run()
    send(redis, event(mug, "product.updated"))  # the published snapshot again, older: stays gone
    worker.run()
    republished = {**mug, "date_modified_gmt": "2024-03-12T09:00:00"}
    send(redis, event(republished, "product.updated"))
    worker.run()
    # A draft snapshot older than the republished one arrives late: it deletes nothing.
    late = {**mug, "status": "draft", "date_modified_gmt": "2024-03-11T09:00:00"}
    send(redis, event(late, "product.updated"))
    worker.run()
    assert fake_api.paths() == [
        "POST /api/v1/products",
        "DELETE /api/v1/products/41",
        "POST /api/v1/products",
    ]
    assert product_requests(fake_api)[1][0]["priceCents"] == 1125


def test_snapshots_waiting_together_are_ordered_by_time_deletes_included(redis, fake_api, worker):
    mug = fixture("product.simple.on-sale.json")  # 2024-03-01
    unpublished = fixture("product.simple.unpublished.json")  # 2024-03-10
    send(redis, event(mug, "product.updated"))
    worker.run()
    # Each pair waits in the outbox together, the newer first: the older must not replace it.
    republished = {**mug, "price": "10.00", "date_modified_gmt": "2024-03-12T09:00:00"}
    send(redis, event(republished, "product.updated"), event(unpublished, "product.updated"))
    worker.run()
    later = {**unpublished, "date_modified_gmt": "2024-03-14T09:00:00"}
    send(redis, event(later, "product.updated"), event(republished, "product.updated"))
    worker.run()
    assert fake_api.paths() == [
        "POST /api/v1/products",
        "POST /api/v1/products",
        "DELETE /api/v1/products/41",
    ]
    assert product_requests(fake_api)[1][0]["priceCents"] == 1000


def test_an_unpublished_variable_product_comes_back_with_all_its_variants(redis, fake_api, worker):
    parent = fixture("product.variable.json")  # 36, variations 192, 194, 193
    send(redis, event(parent, "product.updated"))
    send(redis, *(variation(v, "2018-02-09T10:00:00") for v in (192, 193, 194)))
    worker.run()
    assert len(product_requests(fake_api)[-1][0]["variants"]) == 3
    send(
        redis,
        event(
            {**parent, "status": "draft", "date_modified_gmt": "2018-02-10T10:00:00"},
            "product.updated",
        ),
    )
    worker.run()
    # A variation edited while its product is a draft: nothing goes (it would recreate it).
    send(redis, variation(194, "2018-02-11T10:00:00", stock_status="outofstock"))
    worker.run()
    assert fake_api.paths()[-1] == "DELETE /api/v1/products/36"
    send(redis, event({**parent, "date_modified_gmt": "2018-02-12T10:00:00"}, "product.updated"))
    worker.run()
    back = product_requests(fake_api)[-1][0]
    assert fake_api.paths()[-1] == "POST /api/v1/products"
    assert [v["variantId"] for v in back["variants"]] == ["192", "194", "193"]
    assert back["variants"][1]["inStock"] is False  # the edit made while it was a draft


def test_older_product_snapshot_and_unchanged_repeats_are_not_sent(redis, fake_api, worker):
    product = fixture("product.simple.on-sale.json")
    newer = {**product, "price": "10.00", "date_modified_gmt": "2024-03-02T11:00:00"}
    send(redis, event(newer, "product.updated"))
    worker.run()
    send(redis, event(product, "product.updated"))  # older (2024-03-01)
    send(redis, event({**newer, "date_modified_gmt": "2024-03-03T11:00:00"}, "product.updated"))
    worker.run()
    assert [[p["priceCents"] for p in batch] for batch in product_requests(fake_api)] == [[1000]]


def test_product_retry_does_not_overwrite_a_newer_delivery(redis, fake_api, worker):
    product = fixture("product.simple.on-sale.json")
    fake_api.fail("/api/v1/products", status=503)
    send(redis, event(product, "product.updated"))
    worker.run()  # the batch failed: retry scheduled
    newer = {**product, "price": "9.00", "date_modified_gmt": "2024-03-05T11:00:00"}
    send(redis, event(newer, "product.updated"))
    worker.run()
    worker.release_scheduled()
    worker.run()
    delivered = product_requests(fake_api)[1:]  # after the 503
    assert [[p["priceCents"] for p in batch] for batch in delivered] == [[900]]


def test_products_go_in_batches_of_at_most_100(redis, fake_api, worker):
    base = fixture("product.simple.on-sale.json")
    send(
        redis,
        *(
            event({**base, "id": 1000 + n, "name": f"Mug {n}"}, "product.updated")
            for n in range(250)
        ),
    )
    worker.run()
    batches = product_requests(fake_api)
    assert len(batches) == 3
    assert all(len(batch) <= 100 for batch in batches)
    ids = [p["productId"] for batch in batches for p in batch]
    assert sorted(ids) == sorted(str(1000 + n) for n in range(250))


def test_a_lone_product_update_is_sent_at_once(redis, fake_api, worker):
    send(redis, event(fixture("product.simple.on-sale.json"), "product.updated"))
    worker.run()  # one burst: no waiting for a batch to fill
    assert len(product_requests(fake_api)) == 1


def test_one_bad_product_does_not_sink_its_batch(redis, fake_api, worker):
    base = fixture("product.simple.on-sale.json")
    events = [event({**base, "id": 2000 + n}, "product.updated") for n in range(3)]

    def has_bad(body):
        return any(p["productId"] == "2001" for p in body["products"])

    fake_api.fail(
        "/api/v1/products",
        status=422,
        times=2,
        match=has_bad,
        body={"success": False, "error": {"code": "BAD", "message": "no"}},
    )
    send(redis, *events)
    worker.run()
    delivered = [
        p["productId"]
        for r in fake_api.requests[1:]
        if r.path == "/api/v1/products"
        for p in r.body["products"]
        if not has_bad(r.body)
    ]
    assert sorted(delivered) == ["2000", "2002"]
    letter = DeadLetters(redis).get(events[1].id)
    assert letter.reason == "permanent_error"
    assert letter.pending[0]["body"]["products"][0]["productId"] == "2001"


# --- customers ---------------------------------------------------------------------------

GRACE = fixture("customer.created.json")  # customer 7, created 2024-03-05 09:42:11
JUST_AFTER = epoch("2024-03-05T09:42:20Z")


def customer(modified: str, **changes: Any) -> RawEvent:
    body = {**GRACE, **changes, "date_modified_gmt": modified}
    return event(body, "customer.updated", received_at=JUST_AFTER)


def subscriber_requests(api) -> list[tuple[str, Any]]:
    return [(f"{r.method} {r.path}", r.body) for r in api.requests if "/subscribers" in r.path]


def test_a_customer_created_then_updated_is_posted_then_patched(redis, fake_api, worker):
    send(redis, event(GRACE, "customer.created", received_at=JUST_AFTER))
    worker.run()
    no_last_name = {**GRACE["billing"], "last_name": ""}
    renamed = customer(
        "2024-03-06T08:00:00", first_name="Amazing Grace", last_name="", billing=no_last_name
    )
    send(redis, renamed)
    worker.run()
    assert subscriber_requests(fake_api) == [
        (
            "POST /api/v1/subscribers",
            {
                "email": "grace.hopper@example.com",
                "externalId": "7",
                "firstName": "Grace",
                "lastName": "Hopper",
                "duplicateStrategy": "merge",
            },
        ),
        (
            "PATCH /api/v1/subscribers/external?externalId=7",
            # The cleared last name is cleared ("", never null: the API refuses null).
            {"email": "grace.hopper@example.com", "firstName": "Amazing Grace", "lastName": ""},
        ),
    ]
    # Remembered as long as orders are: customers change rarely, and a subscriber the relay
    # forgot would be created (merged) again instead of updated.
    assert redis.ttl("relay:state:subscriber:7") > 365 * 86400


def test_an_older_or_unchanged_customer_snapshot_is_not_sent(redis, fake_api, worker):
    send(redis, event(GRACE, "customer.created", received_at=JUST_AFTER))
    send(redis, customer("2024-03-07T08:00:00", email="grace@example.org"))
    worker.run()
    send(redis, customer("2024-03-06T08:00:00", email="old@example.org"))  # older: dropped
    send(redis, customer("2024-03-08T08:00:00", email="grace@example.org"))  # the same again
    worker.run()
    assert [(line, body["email"]) for line, body in subscriber_requests(fake_api)] == [
        ("POST /api/v1/subscribers", "grace.hopper@example.com"),
        ("PATCH /api/v1/subscribers/external?externalId=7", "grace@example.org"),
    ]
    # The unchanged one moved the clock on: the older one is older still.
    send(redis, customer("2024-03-07T12:00:00", email="old@example.org"))
    worker.run()
    assert len(subscriber_requests(fake_api)) == 2


def test_a_customer_first_seen_long_after_registering_is_created_as_imported(
    redis, fake_api, worker
):
    # Ada registered in 2021, before the relay was connected; her first event is an update.
    ada = fixture("customer.updated.existing-customer.json")
    send(redis, event(ada, "customer.updated", received_at=epoch("2024-02-28T07:00:05Z")))
    worker.run()
    [(line, body)] = subscriber_requests(fake_api)  # the update is what the create carried
    assert line == "POST /api/v1/subscribers"
    assert body["createdAt"] == "2021-06-14T15:03:27Z"  # no welcome sequence for her


def test_an_update_that_finds_nobody_is_a_dead_letter_and_creates_no_one(redis, fake_api, worker):
    send(redis, event(GRACE, "customer.created", received_at=JUST_AFTER))
    worker.run()
    missing = {"success": False, "error": "Subscriber not found", "code": "NOT_FOUND"}
    fake_api.fail("/api/v1/subscribers/external", status=404, body=missing)
    update = customer("2024-03-06T08:00:00", last_name="Brewster")
    send(redis, update)
    worker.run()
    letter = DeadLetters(redis).get(update.id)
    assert letter.reason == "permanent_error"
    assert "404" in letter.error
    assert [line for line, _ in subscriber_requests(fake_api)] == [
        "POST /api/v1/subscribers",
        "PATCH /api/v1/subscribers/external?externalId=7",
    ]


# --- the rest ------------------------------------------------------------------------------


def test_idempotency_key_is_stable_across_attempts(redis, fake_api, worker):
    fake_api.fail("/api/v1/orders", status=500)
    send(redis, woo_order("2024-03-05T13:02:40", status="processing"))
    worker.run()
    worker.release_scheduled()
    worker.run()
    keys = [r.header("idempotency-key") for r in fake_api.requests]
    assert len(keys) == 2 and keys[0] == keys[1] and keys[0]


def test_state_expires(redis, fake_api, worker):
    send(redis, woo_order("2024-03-05T13:02:40", status="processing"))
    send(redis, event(fixture("product.variable.json"), "product.updated"))
    worker.run()
    keys = [*redis.scan_iter("relay:state:*"), *redis.scan_iter("relay:product:*")]
    assert keys
    assert all(redis.ttl(key) > 0 for key in keys)


def test_a_failed_announcement_does_not_lose_what_later_events_skipped_because_of_it(
    redis, fake_api, worker
):
    # One chunk: an older snapshot plans placed, fulfilled, refunded 5.00; a newer one skips
    # placed and fulfilled (the older will send them) and plans refunded 12.50. The older's
    # placed fails, and its retry is stale by then: the newer must carry all three.
    one = [{"id": 1, "reason": "", "total": "-5.00"}]
    two = [*one, {"id": 2, "reason": "", "total": "-7.50"}]
    send(
        redis,
        woo_order("2024-03-06T11:00:00", status="completed", refunds=one),
        woo_order("2024-03-06T12:00:00", status="completed", refunds=two),
    )
    fake_api.fail("/api/v1/orders", status=503)
    worker.run()
    for _ in range(5):
        if not worker.release_scheduled():
            break
        worker.run()
    delivered = statuses(fake_api)[1:]  # after the 503
    assert delivered[:2] == ["placed", "fulfilled"]
    assert delivered[-1] == "refunded:1250"
