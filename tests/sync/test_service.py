"""Backfill and reconcile through the webhooks' pipeline: a fake WooCommerce store (a real
HTTP server), real Redis, the real workers and the fake Commerce API."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from relay import sync_signals
from relay.sync import service
from relay.sync.checkpoints import Checkpoints
from tests.conftest import WorkerHarness, woo_headers
from tests.fakestore import gmt
from tests.sync.conftest import open_fake, sent_products, sent_subscribers


def _ago(seconds: float) -> str:
    return gmt(datetime.now(UTC) - timedelta(seconds=seconds))


def test_a_backfill_sends_every_product_with_its_complete_variant_list(
    store_settings, redis, fake_store, fake_api
):
    run = service.backfill(open_fake(store_settings, redis))
    assert run.status == "done"
    WorkerHarness(store_settings, redis).run()

    products = sent_products(fake_api)
    assert set(products) == {str(p) for p in fake_store.published()}
    variable = [p for p in fake_store.variable_products() if str(p) in products]
    assert variable
    for product_id in variable:
        expected = sorted(str(v) for v in fake_store.products[product_id]["variations"])
        assert sorted(v["variantId"] for v in products[str(product_id)]["variants"]) == expected
    # The variations were never sent one by one (a partial list deletes the others).
    assert all(
        len(p["variants"]) == 3 for p in products.values() if int(p["productId"]) in variable
    )


def test_guest_buyers_become_one_subscriber_each_by_email_with_their_newest_orders_names(
    store_settings, redis, fake_store, fake_api
):
    service.backfill(open_fake(store_settings, redis))
    WorkerHarness(store_settings, redis).run()

    subscribers = sent_subscribers(fake_api)
    guests = [s for s in subscribers if "externalId" not in s]
    by_email = {s["email"].lower(): s for s in guests}
    assert len(guests) == len(by_email)  # once each, though some bought several times
    assert set(by_email) == fake_store.guest_emails()
    newest: dict[str, str] = {}
    for order in sorted(fake_store.orders.values(), key=lambda o: o["date_created_gmt"]):
        if order["customer_id"] == 0:
            newest[order["billing"]["email"].lower()] = order["billing"]["first_name"]
    assert {e: s["firstName"] for e, s in by_email.items()} == newest
    # Registered customers of every role (role=all), by their store id.
    registered = {s["externalId"] for s in subscribers if "externalId" in s}
    assert registered == {str(c) for c in fake_store.customers}


def test_reconcile_sends_what_the_store_changed_without_a_webhook_and_counts_it(
    store_settings, redis, fake_store, fake_api
):
    store = open_fake(store_settings, redis)
    service.backfill(store)
    worker = WorkerHarness(store_settings, redis)
    worker.run()
    before = len(fake_api.applied)
    product_id = fake_store.published()[0]
    fake_store.touch_product(product_id, at=_ago(3), name="Renamed in wp-admin")
    order_id = next(o for o, row in fake_store.orders.items() if row["status"] == "processing")
    fake_store.touch_order(order_id, at=_ago(3))

    result = service.reconcile(store)
    worker.run()

    assert result.run.status == "done"
    assert sent_products(fake_api)[str(product_id)]["title"] == "Renamed in wp-admin"
    later = fake_api.applied[before:]
    assert {r.path for r in later} == {"/api/v1/products", "/api/v1/orders"}
    assert [r.body["orderId"] for r in later if r.path == "/api/v1/orders"] == [str(order_id)]
    found = sync_signals.found_totals(redis)
    assert found == {("woocommerce", "product"): 1, ("woocommerce", "order"): 1}
    assert sync_signals.run_found(redis, result.run.run_id) == {"product": 1, "order": 1}

    # Run again: the overlap reads the same rows, and the entity rules find them unchanged.
    again = service.reconcile(store)
    worker.run()
    assert again.run.params["since"] < result.run.params["until"]
    assert len(fake_api.applied) == before + len(later)
    assert sync_signals.found_totals(redis) == found


def test_an_older_polled_snapshot_never_overwrites_a_newer_webhook(
    store_settings, redis, fake_store, fake_api, client
):
    product_id = fake_store.published()[0]
    polled = fake_store.products[product_id]
    pushed = {
        **json.loads(json.dumps(polled)),
        "name": "From the webhook",
        "date_modified_gmt": gmt(
            datetime.fromisoformat(polled["date_modified_gmt"]) + timedelta(days=1)
        ),
    }
    body = json.dumps(pushed).encode()
    assert (
        client.post(
            "/webhooks/woocommerce", data=body, headers=woo_headers(body, "product.updated")
        ).status_code
        == 202
    )
    worker = WorkerHarness(store_settings, redis)
    worker.run()
    assert sent_products(fake_api)[str(product_id)]["title"] == "From the webhook"
    writes = sum(
        1
        for r in fake_api.applied
        if r.path == "/api/v1/products"
        for p in r.body["products"]
        if p["productId"] == str(product_id)
    )

    service.backfill(open_fake(store_settings, redis))  # the store's older snapshot
    worker.run()

    assert sent_products(fake_api)[str(product_id)]["title"] == "From the webhook"
    assert writes == sum(
        1
        for r in fake_api.applied
        if r.path == "/api/v1/products"
        for p in r.body["products"]
        if p["productId"] == str(product_id)
    )
    assert len(sent_products(fake_api)) == len(fake_store.published())  # the others went


def test_reconcile_re_enables_the_relays_disabled_webhook_and_reports_it(
    store_settings, redis, fake_store
):
    ours = fake_store.add_webhook(
        "order.created", "https://relay.example.com/webhooks/woocommerce", status="disabled"
    )
    paused = fake_store.add_webhook(
        "order.updated", "https://relay.example.com/webhooks/woocommerce", status="paused"
    )
    other = fake_store.add_webhook("order.created", "https://crm.example.com/hook", "disabled")

    result = service.reconcile(open_fake(store_settings, redis))

    assert fake_store.webhooks[ours["id"]]["status"] == "active"
    assert fake_store.webhooks[paused["id"]]["status"] == "active"
    assert fake_store.webhooks[other["id"]]["status"] == "disabled"  # not the relay's
    assert sorted(result.health.reenabled) == sorted([str(ours["id"]), str(paused["id"])])
    assert sync_signals.reenabled_totals(redis) == {"woocommerce": 2}
    health = sync_signals.webhook_health(redis)["woocommerce"]
    assert "product.updated" in health["missing"]  # never created: connect would
    assert result.run.status == "done"


def test_a_read_only_key_cannot_re_enable_a_webhook_and_says_so(store_settings, redis, fake_store):
    fake_store.read_only = True
    hook = fake_store.add_webhook(
        "order.created", "https://relay.example.com/webhooks/woocommerce", status="disabled"
    )
    result = service.reconcile(open_fake(store_settings, redis))
    assert fake_store.webhooks[hook["id"]]["status"] == "disabled"
    assert any("may not write" in p for p in result.health.problems)
    assert result.run.status == "done"  # the reconcile itself covers the gap


def test_a_page_that_keeps_failing_is_retried_then_its_bad_row_skipped_and_the_run_incomplete(
    store_settings, redis, fake_store, fake_api
):
    bad = fake_store.published()[5]
    fake_store.broken.add(("product", bad))

    run = service.backfill(open_fake(store_settings, redis))

    assert run.status == "incomplete"
    state = Checkpoints(redis, "woocommerce", "backfill").phase("products")
    assert state.skipped_ids == [f"product {bad}"]
    failed_pages = [
        r
        for r in fake_store.requests
        if r.path == "/products" and r.status == 500 and "include" not in r.query
    ]
    assert len(failed_pages) >= 3  # the page, and the session's two more tries
    WorkerHarness(store_settings, redis).run()
    assert set(sent_products(fake_api)) == {str(p) for p in fake_store.published()} - {str(bad)}
    # A next run starts afresh (and reads the record if the store can render it by then).
    fake_store.broken.clear()
    assert service.backfill(open_fake(store_settings, redis)).status == "done"


def test_a_variation_of_an_unknown_product_makes_the_relay_fetch_the_product_whole(
    store_settings, redis, fake_store, fake_api, client
):
    from relay.delivery.worker import schedule_store_runs

    store_settings = replace(store_settings, reconcile_interval_seconds=0)
    product_id = next(p for p in fake_store.variable_products() if p in fake_store.published())
    variation_id = fake_store.products[product_id]["variations"][1]
    body = json.dumps(fake_store.as_product(variation_id)).encode()
    client.post("/webhooks/woocommerce", data=body, headers=woo_headers(body, "product.updated"))
    worker = WorkerHarness(store_settings, redis)
    worker.run()
    assert str(product_id) not in sent_products(fake_api)  # held: its list is unknown
    assert redis.zscore(sync_signals.wanted_key("woocommerce"), str(product_id)) is not None

    assert schedule_store_runs(redis, store_settings) == ["complete woocommerce"]
    assert schedule_store_runs(redis, store_settings) == []  # one job at a time
    worker.run()  # the job fetches the product with its variations; the workers send it

    sent = sent_products(fake_api)[str(product_id)]
    expected = sorted(str(v) for v in fake_store.products[product_id]["variations"])
    assert sorted(v["variantId"] for v in sent["variants"]) == expected
    assert redis.zcard(sync_signals.wanted_key("woocommerce")) == 0
    assert fake_store.count("GET", f"/products/{product_id}") == 2  # it, its variations


def test_a_stopped_backfill_resumes_where_it_stopped_and_pushes_nothing_twice(
    store_settings, redis, fake_store
):
    store = open_fake(store_settings, redis)
    pages = []

    def stop_after_two_pages(run, state, note):
        pages.append(state.scanned)
        if len(pages) == 2:
            store.stop.set()

    fake_store_products = len(fake_store.published())
    everything = fake_store_products + len(fake_store.customers) + len(fake_store.guest_emails())
    first = service.backfill(store, progress=stop_after_two_pages)
    assert first.status == "interrupted"
    pushed_before = redis.llen("relay:inbox")
    assert 0 < pushed_before < everything

    second = service.backfill(open_fake(store_settings, redis))
    assert second.status == "done" and second.run_id == first.run_id
    topics = [json.loads(raw)["event"]["topic"] for raw in redis.lrange("relay:inbox", 0, -1)]
    assert topics.count("product.updated") == fake_store_products
    assert topics.count("customer.updated") == len(fake_store.customers)
    assert len(topics) == everything
    assert time.time() - second.started_at < 600
