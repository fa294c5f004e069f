"""The product outbox: what waits for a batch, and what that costs Redis."""

from __future__ import annotations

import json

from relay.delivery.deadletters import DeadLetters
from relay.event_queue import EventQueue
from relay.events import RawEvent, new_event_id
from relay.intake.acceptor import Acceptor

PRODUCTS = 100


def _stored_bytes(redis) -> int:
    return sum(redis.memory_usage(key) or 0 for key in redis.scan_iter(count=1000))


def test_f7_a_many_product_webhook_is_stored_once_not_once_per_product(
    redis, settings, fake_api, worker
):
    products = [
        {"productId": f"p{n}", "title": f"Product {n}", "description": "d" * 2000}
        for n in range(PRODUCTS)
    ]
    body = json.dumps({"type": "product", "data": products}).encode()
    event = RawEvent(new_event_id(), "custom", "product", 0.0, body, "application/json")
    fake_api.fail("/api/v1/products", status=503)  # the batch waits for its retry
    Acceptor(EventQueue(redis)).accept(event, event.id)
    worker.run()
    assert redis.keys("relay:batch:*"), "the products wait in their batch"

    # The payloads (about the body's size) and the raw event once: not one per product.
    assert _stored_bytes(redis) < 3 * len(body)
    # And a job that fails for good is not kept (its arguments with it) for RQ's year.
    [(job_id, _)] = worker.scheduled()
    assert 0 < worker.queue.fetch_job(job_id).failure_ttl <= 7 * 86400

    # The raw event is still there for a write that is dead-lettered, then goes with the
    # last write that needed it.
    fake_api.fail(
        "/api/v1/products",
        status=422,
        times=2,  # its batch, then itself alone
        match=lambda sent: any(p["productId"] == "p7" for p in sent["products"]),
    )
    worker.release_scheduled()
    worker.run()
    letter = DeadLetters(redis).get(event.id)
    assert letter.reason == "permanent_error"
    assert letter.event["body"] == body.decode()
    assert [p["body"]["products"][0]["productId"] for p in letter.pending] == ["p7"]
    assert redis.keys("relay:batch:*") == [] and redis.keys("relay:outbox:*") == []
