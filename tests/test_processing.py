"""The worker end of the pipe: stored events through the real RQ worker to the fake API."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from relay.deadletters import DeadLetters, replay
from relay.event_queue import EventQueue
from relay.events import RawEvent, new_event_id
from relay.registry import Registry, default_registry
from tests.conftest import API_KEY, WorkerHarness

FIXTURES = Path(__file__).parents[1] / "mappers/woocommerce/fixtures"


def woo_event(name: str, topic: str = "order.created", body: bytes | None = None) -> RawEvent:
    return RawEvent(
        id=new_event_id(),
        platform="woocommerce",
        topic=topic,
        received_at=0.0,
        body=body if body is not None else (FIXTURES / name).read_bytes(),
        content_type="application/json",
    )


def enqueue(redis, event: RawEvent, settings) -> None:
    assert EventQueue(redis, settings.dedup_window_seconds).accept(event, f"test:{event.id}")


def order_posts(api) -> list[dict]:
    return [r.body for r in api.requests if r.path == "/api/v1/orders"]


def test_order_event_reaches_the_api_as_the_contract_says(redis, settings, fake_api, worker):
    enqueue(redis, woo_event("order.processing.guest.json"), settings)
    worker.run()
    [received] = fake_api.requests
    assert (received.method, received.path) == ("POST", "/api/v1/orders")
    assert received.header("authorization") == f"Bearer {API_KEY}"
    assert received.header("content-type") == "application/json"
    assert received.body["orderId"] == "1042"
    assert received.body["status"] == "placed"
    assert received.body["totalCents"] == 6138
    assert DeadLetters(redis).count() == 0


def test_completed_order_sends_placed_then_fulfilled(redis, settings, fake_api, worker):
    enqueue(redis, woo_event("order.created.wc8.0.2.json"), settings)
    worker.run()
    assert [body["status"] for body in order_posts(fake_api)] == ["placed", "fulfilled"]


def test_product_upsert_then_delete(redis, settings, fake_api, worker):
    enqueue(redis, woo_event("product.simple.on-sale.json", "product.updated"), settings)
    worker.run()
    enqueue(redis, woo_event("product.deleted.json", "product.deleted"), settings)
    worker.run()
    assert fake_api.paths() == ["POST /api/v1/products", "DELETE /api/v1/products/41"]
    assert fake_api.requests[0].body["products"][0]["productId"] == "41"


def test_a_delete_waiting_with_an_upsert_of_the_same_product_wins(
    redis, settings, fake_api, worker
):
    # Both wait in the product outbox: only the newest write of a product goes out.
    enqueue(redis, woo_event("product.simple.on-sale.json", "product.updated"), settings)
    enqueue(redis, woo_event("product.deleted.json", "product.deleted"), settings)
    worker.run()
    assert fake_api.paths() == ["DELETE /api/v1/products/41"]


def test_delete_of_an_unknown_product_counts_as_done(redis, settings, fake_api, worker):
    fake_api.fail("/api/v1/products/41", status=404, body={"success": False})
    enqueue(redis, woo_event("product.deleted.json", "product.deleted"), settings)
    worker.run()
    assert fake_api.paths() == ["DELETE /api/v1/products/41"]
    assert DeadLetters(redis).count() == 0
    assert worker.scheduled() == []


def test_transient_failure_is_retried_on_schedule_until_delivered(
    redis, settings, fake_api, worker
):
    fake_api.fail("/api/v1/orders", status=503)
    enqueue(redis, woo_event("order.processing.guest.json"), settings)
    worker.run()
    [(job_id, delay)] = worker.scheduled()
    base = settings.retry.base_seconds
    assert base * 0.75 <= delay <= base * 1.25  # base delay, jitter within 20%
    assert "-attempt2-" in job_id
    assert len(fake_api.requests) == 1

    assert worker.release_scheduled() == 1
    worker.run()
    assert len(fake_api.requests) == 2
    assert fake_api.requests[1].body == fake_api.requests[0].body
    assert worker.scheduled() == []
    assert DeadLetters(redis).count() == 0


def test_backoff_grows_exponentially(redis, settings, fake_api, worker):
    fake_api.fail("/api/v1/orders", status=500, times=3)
    enqueue(redis, woo_event("order.processing.guest.json"), settings)
    delays = []
    worker.run()
    for _ in range(2):
        [(_, delay)] = worker.scheduled()
        delays.append(delay)
        worker.release_scheduled()
        worker.run()
    [(_, delay)] = worker.scheduled()
    delays.append(delay)
    base = settings.retry.base_seconds
    for attempt, delay in enumerate(delays, start=1):
        nominal = base * 2 ** (attempt - 1)
        assert nominal * 0.75 <= delay <= nominal * 1.25, (attempt, delay)


def test_retry_after_is_honoured(redis, settings, fake_api, worker):
    fake_api.fail("/api/v1/orders", status=429, headers={"Retry-After": "120"})
    enqueue(redis, woo_event("order.processing.guest.json"), settings)
    worker.run()
    [(_, delay)] = worker.scheduled()
    assert 115 <= delay <= 121


def test_timeout_is_transient(redis, settings, fake_api):
    harness = WorkerHarness(replace(settings, api_timeout_seconds=0.3), redis)
    fake_api.fail("/api/v1/orders", status=200, delay=1.0)
    enqueue(redis, woo_event("order.processing.guest.json"), settings)
    harness.run()
    assert len(harness.scheduled()) == 1
    assert DeadLetters(redis).count() == 0


def test_api_unreachable_is_transient(redis, settings, worker):
    harness = WorkerHarness(replace(settings, commerce_api_url="http://127.0.0.1:9"), redis)
    enqueue(redis, woo_event("order.processing.guest.json"), settings)
    harness.run()
    assert len(harness.scheduled()) == 1


def test_permanent_error_is_dead_lettered_with_the_api_answer(redis, settings, fake_api, worker):
    answer = {"success": False, "error": {"code": "VALIDATION_ERROR", "message": "bad email"}}
    fake_api.fail("/api/v1/orders", status=422, body=answer)
    event = woo_event("order.processing.guest.json")
    enqueue(redis, event, settings)
    worker.run()
    assert worker.scheduled() == []
    letter = DeadLetters(redis).get(event.id)
    assert letter is not None
    assert letter.reason == "permanent_error"
    assert letter.error == "HTTP 422: VALIDATION_ERROR bad email"
    assert letter.response["status"] == 422
    assert json.loads(letter.response["body"]) == answer
    assert letter.attempts == 1
    assert letter.pending[0]["path"] == "/api/v1/orders"
    assert RawEvent.from_dict(letter.event).body == event.body


def test_last_attempt_is_dead_lettered(redis, settings, fake_api, worker):
    fake_api.fail("/api/v1/orders", status=503, times=settings.retry.max_attempts)
    event = woo_event("order.processing.guest.json")
    enqueue(redis, event, settings)
    worker.run()
    for _ in range(settings.retry.max_attempts - 1):
        assert worker.release_scheduled() == 1
        worker.run()
    assert worker.scheduled() == []
    assert len(fake_api.requests) == settings.retry.max_attempts
    letter = DeadLetters(redis).get(event.id)
    assert letter.reason == "retries_exhausted"
    assert letter.attempts == settings.retry.max_attempts


def test_retry_resends_only_what_was_not_delivered(redis, settings, fake_api, worker):
    # placed goes through, fulfilled fails once: the retry sends fulfilled alone.
    fake_api.fail("/api/v1/orders", status=200)  # placed: a plain success
    fake_api.fail("/api/v1/orders", status=502)  # fulfilled: fails
    enqueue(redis, woo_event("order.created.wc8.0.2.json"), settings)
    worker.run()
    worker.release_scheduled()
    worker.run()
    assert [body["status"] for body in order_posts(fake_api)] == [
        "placed",
        "fulfilled",
        "fulfilled",
    ]


def test_mapping_error_is_dead_lettered_then_replayed_after_the_fix(
    redis, settings, fake_api, worker
):
    event = woo_event("x", "order.created", body=json.dumps({"status": "processing"}).encode())
    enqueue(redis, event, settings)
    worker.run()
    letter = DeadLetters(redis).get(event.id)
    assert letter.reason == "mapping_error"
    assert "missing order id" in letter.error
    assert fake_api.requests == []

    # "Fix the mapper": a mapper that understands this body. Replay maps the raw event again.
    woo = default_registry().get("woocommerce")

    def fixed(raw, options):
        body = raw.json()
        body.setdefault("id", 77)
        return woo.map_event(
            replace(raw, body=json.dumps({**_order_base(), **body}).encode()), options
        )

    fixed_registry = Registry({"woocommerce": replace(woo, map_event=fixed)})
    assert replay(EventQueue(redis), [letter]) == 1
    assert DeadLetters(redis).count() == 0
    harness = WorkerHarness(settings, redis)
    harness.context.processor.registry = fixed_registry
    harness.run()
    assert [r.body["orderId"] for r in fake_api.requests] == ["77"]
    assert DeadLetters(redis).count() == 0


def _order_base() -> dict:
    return json.loads((FIXTURES / "order.processing.guest.json").read_bytes())


def test_invalid_record_is_dead_lettered_with_field_errors(redis, settings, fake_api, worker):
    order = _order_base()
    order["billing"]["email"] = "not-an-email"
    event = woo_event("x", body=json.dumps(order).encode())
    enqueue(redis, event, settings)
    worker.run()
    letter = DeadLetters(redis).get(event.id)
    assert letter.reason == "invalid_record"
    assert "email" in letter.error
    assert letter.records[0]["data"]["customer"]["email"] == "not-an-email"
    assert fake_api.requests == []


def test_a_crashing_mapper_costs_a_dead_letter_not_the_event(redis, settings, fake_api):
    def broken(raw, options):
        raise KeyError("line_items")

    woo = default_registry().get("woocommerce")
    harness = WorkerHarness(settings, redis)
    harness.context.processor.registry = Registry({"woocommerce": replace(woo, map_event=broken)})
    event = woo_event("order.processing.guest.json")
    enqueue(redis, event, settings)
    harness.run()
    letter = DeadLetters(redis).get(event.id)
    assert letter.reason == "mapping_error"
    assert "KeyError" in letter.error


def test_ignored_event_sends_nothing_and_is_not_dead(redis, settings, fake_api, worker):
    enqueue(redis, woo_event("order.custom-status.json", "order.updated"), settings)
    worker.run()
    assert fake_api.requests == []
    assert DeadLetters(redis).count() == 0


def test_losing_twin_of_a_race_is_dropped(redis, settings, fake_api, worker):
    queue = EventQueue(redis, settings.dedup_window_seconds)
    first = woo_event("order.processing.guest.json")
    twin = replace(first, id=new_event_id())
    assert queue.accept(first, "same-content") is True
    assert queue.accept(twin, "same-content") is False  # answered "duplicate" at ingest
    worker.run()
    assert len(fake_api.requests) == 1


def test_sandbox_records_instead_of_sending(redis, settings, fake_api, sandbox_worker):
    from relay.commerce_api import SandboxClient

    enqueue(redis, woo_event("order.processing.guest.json"), settings)
    sandbox_worker.run()
    assert fake_api.requests == []
    [record] = SandboxClient(redis).latest()
    assert record["method"] == "POST"
    assert record["path"] == "/api/v1/orders"
    assert record["body"]["orderId"] == "1042"
    assert "Authorization" not in json.dumps(record)


def test_event_of_an_unknown_platform_is_dead_lettered(redis, settings, worker):
    event = replace(woo_event("order.processing.guest.json"), platform="retired-platform")
    enqueue(redis, event, settings)
    worker.run()
    assert DeadLetters(redis).get(event.id).reason == "unknown_platform"
