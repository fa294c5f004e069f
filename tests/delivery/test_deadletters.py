"""Dead letters: kept whole for replay, but bounded (retention time and cap)."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

from relay.delivery.deadletters import INDEX, DeadLetter, DeadLetters
from relay.events import RawEvent
from tests.conftest import WorkerHarness, woo_headers

ORDER = Path(__file__).parents[2] / "mappers/woocommerce/fixtures/order.processing.guest.json"


def unmappable_order(order_id: int) -> bytes:
    """As in the review: a signed order the mapper refuses (no currency), padded."""
    payload = json.loads(ORDER.read_text())
    payload.update(id=order_id, number=order_id, currency=None, pad="x" * 30_000)
    return json.dumps(payload).encode()


def test_f7_retention_and_cap_drop_the_oldest_and_the_metric_counts_them(
    settings, redis, client
):
    """Review F7: dead letters were a plain SET with no TTL and no cap on a `noeviction`
    Redis: every signed junk event kept its whole body until someone purged it."""
    cap = 3
    worker = WorkerHarness(replace(settings, dlq_max=cap, dlq_retention_days=14), redis)
    ids = []
    for n in range(5):
        body = unmappable_order(7000 + n)
        response = client.post(
            "/webhooks/woocommerce", data=body, headers=woo_headers(body, "order.created")
        )
        assert response.status_code == 202
        ids.append(response.get_json()["id"])
        worker.run()  # one at a time: they die in the order they came
    store = DeadLetters(redis)
    # The worker dropped the two oldest, entry and indexes alike, and kept the newest three.
    assert sorted(store.ids()) == sorted(ids[-cap:])
    assert store.ids(platform="woocommerce") == store.ids()
    assert [redis.exists(f"relay:dlq:{i}") for i in ids] == [0, 0, 1, 1, 1]
    assert store.get(ids[-1]).reason == "mapping_error"

    # Retention: a worker's maintenance pass drops what outlived it, with no new letter.
    trim = worker.context.dead_letters.trim
    assert trim(now=time.time() + 13 * 86400) == 0
    assert trim(now=time.time() + 15 * 86400) == cap
    assert store.count() == 0 and redis.exists(INDEX, "relay:dlq:p:woocommerce") == 0

    # The web server's /metrics counts what the worker dropped (kept in Redis).
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'relay_dead_letters_dropped_total{reason="over_limit"} 2.0' in metrics
    assert f'relay_dead_letters_dropped_total{{reason="expired"}} {float(cap)}' in metrics
    assert "relay_dead_letters 0.0" in metrics


# --- issue 13: what a dead letter was about -------------------------------------------------


def _post(client, payload: dict, topic: str) -> str:
    body = json.dumps(payload).encode()
    response = client.post("/webhooks/woocommerce", data=body, headers=woo_headers(body, topic))
    assert response.status_code == 202
    return response.get_json()["id"]


def test_issue13_a_letter_says_which_order_customer_and_amount_it_was_about(
    settings, redis, client, fake_api
):
    """Issue 13: held-out acceptance runs could not tell which order a dead letter belonged
    to without `relay dlq show`. The letter now keeps what it was about, computed when it is
    written: from the requests when the API refused them (with the API's code and issues
    kept beside), and best effort from the raw event when mapping failed."""
    worker = WorkerHarness(settings, redis)
    refused = {**json.loads(ORDER.read_text()), "number": "WC-1042"}
    fake_api.fail(
        "/api/v1/orders",
        status=422,
        body={
            "success": False,
            "error": "Invalid order",
            "code": "VALIDATION_ERROR",
            "issues": [{"path": "customer.email", "message": "Blocked domain"}],
        },
    )
    permanent = _post(client, refused, "order.created")
    unmappable = _post(client, json.loads(unmappable_order(7042)), "order.created")
    worker.run()

    store = DeadLetters(redis)
    letter = store.get(permanent)
    assert letter.reason == "permanent_error"
    assert letter.about == {
        "entity": "order",
        "id": "1042",
        "number": "WC-1042",
        "customer": "a***@example.com",
        "amount": "61.38",
        "currency": "EUR",
    }
    assert letter.response["code"] == "VALIDATION_ERROR"
    assert letter.response["issues"] == [{"path": "customer.email", "message": "Blocked domain"}]

    mapped_not = store.get(unmappable)
    assert mapped_not.reason == "mapping_error" and mapped_not.records is None
    assert mapped_not.about == {
        "entity": "order",
        "id": "7042",
        "customer": "a***@example.com",
        "amount": "61.38",  # the currency is what was missing
        "source": "raw event",
    }
    # In the list: no full email anywhere.
    listed = json.dumps([summary["about"] for summary in map(DeadLetter.summary, store.list())])
    assert "ada@example.com" not in listed and "a***@example.com" in listed


def test_issue13_a_letter_from_before_is_read_and_described(redis):
    """Letters stored by an older relay have no `about` (and a newer relay's may have keys
    this one does not know): both stay readable, and the list describes the old one."""
    event = RawEvent("evt-old", "woocommerce", "order.created", 1.0, ORDER.read_bytes())
    stored = DeadLetter(
        id="evt-old",
        platform="woocommerce",
        topic="order.created",
        reason="mapping_error",
        error="KeyError",
        event=event.to_dict(),
    ).to_json()
    old = json.loads(stored)
    del old["about"]
    old["from_the_future"] = True
    redis.set("relay:dlq:evt-old", json.dumps(old))
    redis.zadd(INDEX, {"evt-old": time.time()})
    [letter] = DeadLetters(redis).list()
    assert letter.about is None
    assert letter.summary()["about"]["id"] == "1042"
