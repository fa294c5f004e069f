"""The worker end of the pipe: stored events through the real RQ worker to the fake API."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from rq.timeouts import JobTimeoutException

from relay.delivery.deadletters import DeadLetters, replay
from relay.delivery.leases import lease_key
from relay.event_queue import EventQueue, make_queue
from relay.events import RawEvent, new_event_id
from relay.inbox import MAX_FAILED_DRAINS, Inbox
from relay.intake.acceptor import Acceptor
from relay.registry import Registry, default_registry
from tests.conftest import API_KEY, WorkerHarness, live_client

FIXTURES = Path(__file__).parents[2] / "mappers/woocommerce/fixtures"


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
    acceptor = Acceptor(EventQueue(redis, settings.dedup_window_seconds))
    assert acceptor.accept(event, f"test:{event.id}")


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
    queue = Acceptor(EventQueue(redis, settings.dedup_window_seconds))
    first = woo_event("order.processing.guest.json")
    twin = replace(first, id=new_event_id())
    assert queue.accept(first, "same-content") is True
    assert queue.accept(twin, "same-content") is False  # answered "duplicate" at ingest
    worker.run()
    assert len(fake_api.requests) == 1


def test_sandbox_records_instead_of_sending(redis, settings, fake_api, sandbox_worker):
    from relay.delivery.commerce_api import SandboxClient

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


# --- F1: one bad event must never stop the others ------------------------------------------


def _order_body(order_id: int, **changes) -> bytes:
    return json.dumps({**_order_base(), "id": order_id, **changes}).encode()


def _deep_coupon_order(order_id: int, depth: int) -> bytes:
    """The review's poison: a coupon code nested `depth` lists deep (orjson at ingest takes
    up to 1,024; WooCommerce's mapper copies coupon codes into the order's properties)."""
    body = _order_body(order_id, coupon_lines=[{"code": "__DEEP__"}])
    return body.replace(b'"__DEEP__"', b"[" * depth + b"1" + b"]" * depth)


def _deepest_body_the_mapper_parses(redis, settings, fake_api, worker) -> int:
    """How deep Python's json gives up depends on the stack depth where it runs, so find
    the deepest coupon the worker's mapper still parses (the review's worker: 970). On the
    old code that body parsed, then failed in json.dumps at send time, deeper in the stack."""

    def parsed(depth: int) -> bool:
        event = woo_event("x", body=_deep_coupon_order(9000 + depth, depth))
        enqueue(redis, event, settings)
        worker.run()
        letter = DeadLetters(redis).get(event.id)
        redis.flushdb()  # each probe on its own: a failed drain leaves things behind
        return not (letter and letter.reason == "mapping_error" and "Recursion" in letter.error)

    low, high = 1, sys.getrecursionlimit()  # parsed(low); not parsed(high)
    assert parsed(low) and not parsed(high)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if parsed(middle) else (low, middle)
    fake_api.reset()
    return low


def _orders_sent(fake_api) -> list[str]:
    return [r.body["orderId"] for r in fake_api.requests if r.path == "/api/v1/orders"]


def test_f1_a_poison_pill_costs_a_dead_letter_not_its_chunk(redis, settings, fake_api, worker):
    depth = _deepest_body_the_mapper_parses(redis, settings, fake_api, worker)
    burst = [woo_event("x", body=_order_body(n)) for n in (1, 2)]
    poison = woo_event("x", body=_deep_coupon_order(3, depth))
    burst += [poison] + [woo_event("x", body=_order_body(n)) for n in (4, 5)]
    for event in burst:  # all five wait for one drain job: one chunk
        enqueue(redis, event, settings)
    worker.run()
    worker.release_scheduled()  # a failed drain's retry, if there were one
    worker.run()

    assert sorted(_orders_sent(fake_api)) == ["1", "2", "4", "5"]  # each exactly once
    [letter] = DeadLetters(redis).list()
    assert letter.id == poison.id
    assert letter.reason in ("invalid_record", "processing_error")
    assert "properties" in letter.error or "RecursionError" in letter.error
    assert letter.event["body"] == poison.body.decode()  # the raw event, for a replay
    assert redis.keys("relay:inflight:*") == []
    assert make_queue(redis).failed_job_registry.count == 0


class RaisingClient:
    """The real client, except that one order's request raises (as json.dumps did on the
    review's poison): a narrow stand-in for any exception while sending."""

    def __init__(self, client, order_id: str):
        self.client, self.order_id = client, order_id

    def send(self, request, event_id: str = ""):
        body = request.body or {}
        products = [p.get("productId") for p in body.get("products", [])]
        if body.get("orderId") == self.order_id or self.order_id in products:
            raise RecursionError("maximum recursion depth exceeded while encoding")
        return self.client.send(request, event_id)


def test_f1_an_exception_while_sending_one_event_spares_its_chunk(redis, settings, fake_api):
    harness = WorkerHarness(settings, redis, client=RaisingClient(live_client(settings), "3"))
    events = [woo_event("x", body=_order_body(n)) for n in range(1, 6)]
    for event in events:
        enqueue(redis, event, settings)
    harness.run()
    assert sorted(_orders_sent(fake_api)) == ["1", "2", "4", "5"]
    [letter] = DeadLetters(redis).list()
    assert (letter.id, letter.reason) == (events[2].id, "processing_error")
    assert letter.error.startswith("RecursionError: maximum recursion depth")
    assert [p["body"]["orderId"] for p in letter.pending] == ["3"]
    assert redis.keys("relay:inflight:*") == []


def test_f1_an_exception_while_flushing_one_product_spares_its_batch(redis, settings, fake_api):
    harness = WorkerHarness(settings, redis, client=RaisingClient(live_client(settings), "41"))
    product = json.loads((FIXTURES / "product.simple.on-sale.json").read_bytes())
    events = [
        woo_event("x", "product.updated", json.dumps({**product, "id": n}).encode())
        for n in (40, 41, 42)
    ]
    for event in events:
        enqueue(redis, event, settings)
    harness.run()
    sent = [p["productId"] for r in fake_api.requests for p in r.body["products"]]
    assert sorted(sent) == ["40", "42"]
    [letter] = DeadLetters(redis).list()
    assert (letter.id, letter.reason) == (events[1].id, "processing_error")
    assert letter.event["body"] == events[1].body.decode()
    assert redis.keys("relay:batch:*") == [] and redis.keys("relay:outbox:*") == []


class TimingOutPlanner:
    """The real planner, except that one order takes the drain job past RQ's timeout every
    time it is planned (the alarm raises wherever the job is at that moment)."""

    def __init__(self, planner, order_id: str):
        self.planner, self.order_id = planner, order_id

    def plan(self, event, records):
        if any(r.data.get("orderId") == self.order_id for r in records):
            raise JobTimeoutException("Task exceeded maximum timeout value (90 seconds)")
        return self.planner.plan(event, records)


def _timing_out_on(harness: WorkerHarness, order_id: str) -> WorkerHarness:
    processor = harness.context.processor
    processor.planner = TimingOutPlanner(processor.planner, order_id)
    return harness


def _crashes(harness: WorkerHarness) -> None:
    """Run the worker until the poison stops it, then let it die: its lease goes, as a
    killed worker's does after LEASE_TTL_SECONDS."""
    with pytest.raises(JobTimeoutException):
        harness.run()
    harness.redis.delete(lease_key(harness.owner))


def test_f1_an_event_whose_worker_dies_three_times_is_dead_lettered(redis, settings, fake_api):
    # The poison takes every worker that plans it past RQ's job timeout (a stand-in for
    # anything that kills the process: the alarm raises wherever the worker is).
    workers = [_timing_out_on(WorkerHarness(settings, redis), "2") for _ in range(4)]
    events = [woo_event("x", body=_order_body(n)) for n in (1, 2, 3)]
    for event in events:
        enqueue(redis, event, settings)
    _crashes(workers[0])  # took all three, died on the poison: they count one try each
    _crashes(workers[1])  # took them over, died again: all three are now suspects
    _crashes(workers[2])  # handles suspects alone: order 1 goes out, the poison kills it
    workers[3].run()  # the poison's third try: a dead letter, then order 3 alone

    assert sorted(_orders_sent(fake_api)) == ["1", "3"]  # each once, the poison aside
    [letter] = DeadLetters(redis).list()
    assert (letter.id, letter.reason) == (events[1].id, "worker_crashed")
    assert f"died {MAX_FAILED_DRAINS} times" in letter.error
    assert redis.keys("relay:inflight:*") == [] and redis.keys("relay:inbox:tries:*") == []
    assert Inbox(redis).waiting() == 0


def test_f1_a_worker_that_died_holds_up_nothing(redis, settings, fake_api):
    dying = _timing_out_on(WorkerHarness(settings, redis), "1")
    enqueue(redis, woo_event("x", body=_order_body(1)), settings)
    with pytest.raises(JobTimeoutException):
        dying.run()  # dies holding order 1; its lease still runs (10 s in production)

    enqueue(redis, woo_event("x", body=_order_body(2)), settings)
    other = WorkerHarness(settings, redis)
    other.run()  # a new webhook does not wait for the dead worker's lease
    assert _orders_sent(fake_api) == ["2"]

    redis.delete(lease_key(dying.owner))  # the lease expires
    other.run()  # its event is taken over and delivered (by a worker whose planner is fine)
    assert _orders_sent(fake_api) == ["2", "1"]
    assert Inbox(redis).waiting() == 0


def test_f1_a_product_another_worker_holds_waits_its_turn_without_failing_the_chunk(
    redis, settings, fake_api, worker
):
    # Another worker (on another host) holds product 41 a little longer than the planner
    # waits for it (5 s): the event goes back to the inbox, its chunk-mate goes on.
    redis.set("relay:lock:product:41", "elsewhere:1:1:held", px=6000)
    enqueue(redis, woo_event("product.simple.on-sale.json", "product.updated"), settings)
    enqueue(redis, woo_event("x", body=_order_body(7)), settings)
    worker.run()
    assert _orders_sent(fake_api) == ["7"]
    assert [r.path for r in fake_api.requests].count("/api/v1/products") == 1
    assert DeadLetters(redis).count() == 0
    assert redis.keys("relay:inflight:*") == []
