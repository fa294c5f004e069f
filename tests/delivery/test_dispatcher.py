"""The dispatcher (relay/delivery/dispatcher.py): many requests in flight, one per entity, a
shared gate for rate limits, a dead worker's events taken over. Real Redis, the real fake API
serving concurrently with a latency, real `relay worker` processes where processes matter."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from relay.delivery.deadletters import DeadLetters
from relay.delivery.leases import lease_key
from relay.events import RawEvent
from relay.inbox import Inbox
from relay.runtime.processes import HOST
from tests.conftest import WorkerHarness, wait_until, worker_env
from tests.delivery.test_processor import _order_base, enqueue, woo_event

ROOT = Path(__file__).resolve().parents[2]


def order(order_id: int, **changes) -> RawEvent:
    body = json.dumps({**_order_base(), "id": order_id, "number": str(order_id), **changes})
    return woo_event("x", body=body.encode())


def orders_sent(fake_api) -> list[tuple[str, str]]:
    return [
        (r.body["orderId"], r.body.get("status", "placed"))
        for r in fake_api.requests
        if r.path == "/api/v1/orders"
    ]


def test_many_entities_are_in_flight_at_once_never_more_than_the_concurrency(
    redis, settings, fake_api
):
    fake_api.latency = 0.2
    harness = WorkerHarness(replace(settings, delivery_concurrency=4), redis)
    for n in range(1, 21):
        enqueue(redis, order(n), settings)
    harness.run()
    assert sorted(int(i) for i, _ in orders_sent(fake_api)) == list(range(1, 21))
    assert fake_api.max_in_flight == 4  # one worker process, four requests at a time
    assert fake_api.max_in_flight_per_entity == 1


def test_one_entity_at_a_time_and_in_order(redis, settings, fake_api):
    # The same order, processing then completed, among other orders: its requests go one
    # after the other (placed, then fulfilled), never both in flight.
    fake_api.latency = 0.1
    harness = WorkerHarness(replace(settings, delivery_concurrency=8), redis)
    enqueue(redis, order(7, status="processing"), settings)
    for n in range(100, 110):
        enqueue(redis, order(n), settings)
    enqueue(redis, order(7, status="completed", date_modified_gmt="2024-03-05T14:00:00"), settings)
    harness.run()
    seven = [status for order_id, status in orders_sent(fake_api) if order_id == "7"]
    assert seven == ["placed", "fulfilled"]
    assert fake_api.max_in_flight_per_entity == 1
    assert fake_api.max_in_flight > 1  # the others went alongside


def test_a_products_many_updates_go_one_batch_at_a_time(redis, settings, fake_api):
    fake_api.latency = 0.1
    harness = WorkerHarness(replace(settings, delivery_concurrency=8), redis)
    product = json.loads(
        (ROOT / "mappers/woocommerce/fixtures/product.simple.on-sale.json").read_bytes()
    )
    for minute in range(10):
        body = {**product, "price": f"{10 + minute}.00", "regular_price": "30.00"}
        body["date_modified_gmt"] = f"2024-03-01T11:{minute:02d}:00"
        enqueue(redis, woo_event("x", "product.updated", json.dumps(body).encode()), settings)
    harness.run()
    prices = [
        p["priceCents"]
        for r in fake_api.requests
        if r.path == "/api/v1/products"
        for p in r.body["products"]
    ]
    assert prices[-1] == 1900  # the newest snapshot is the last one sent
    assert prices == sorted(prices)  # never an older one after a newer one
    assert fake_api.max_in_flight_per_entity == 1


def test_a_rate_limit_pauses_sending_for_retry_after_then_resumes(redis, settings, fake_api):
    harness = WorkerHarness(replace(settings, delivery_concurrency=4), redis)
    fake_api.fail("/api/v1/orders", status=429, headers={"Retry-After": "1"})
    for n in range(1, 9):
        enqueue(redis, order(n), settings)
    harness.run()
    arrivals = [r.at for r in fake_api.requests if r.path == "/api/v1/orders"]
    refused = arrivals[0]
    after = [at for at in arrivals if at > refused]
    # Nothing is sent while the gate is closed (up to 4 were already in flight with the
    # refused one), and sending resumes once it opens: not after a per-event backoff (the
    # test settings' first retry would come after 10 s).
    resumed = min(at for at in after if at - refused > 0.5)
    assert 0.9 <= resumed - refused < 5.0
    applied = sorted(int(r.body["orderId"]) for r in fake_api.applied)
    assert applied == list(range(1, 9))  # the refused one too, once the gate opened
    assert harness.scheduled() == []  # waited in place: not a failed attempt
    assert DeadLetters(redis).count() == 0


def test_a_long_rate_limit_goes_on_the_schedule_without_counting_an_attempt(
    redis, settings, fake_api
):
    harness = WorkerHarness(settings, redis)
    fake_api.fail("/api/v1/orders", status=429, headers={"Retry-After": "600"})
    enqueue(redis, order(1), settings)
    harness.run()
    [(job_id, delay)] = harness.scheduled()
    assert 590 <= delay <= 601
    assert "-attempt1-" in job_id  # the same attempt: the API paused, the event did not fail


def test_waiting_events_stay_in_redis_not_in_memory(redis, settings, fake_api):
    """A backlog is streamed: the dispatcher holds a bounded number of events."""
    harness = WorkerHarness(replace(settings, delivery_concurrency=2), redis)
    for n in range(1, 301):
        enqueue(redis, order(n), settings)
    dispatcher = harness.context.dispatcher
    taken = []
    original = dispatcher._admit

    def admit(entries):
        taken.append(len(dispatcher._held) + len(entries))
        original(entries)

    dispatcher._admit = admit
    harness.run()
    assert len(orders_sent(fake_api)) == 300
    assert max(taken) <= dispatcher.max_held


# --- a worker killed mid-flight --------------------------------------------------------------


def _worker(settings, redis_url: str, fake_api, concurrency: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "relay", "worker"],
        env=worker_env(redis_url, fake_api.url, RELAY_DELIVERY_CONCURRENCY=str(concurrency)),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.e2e
def test_a_killed_worker_resends_at_most_what_was_in_flight(
    redis_server, redis, settings, fake_api
):
    fake_api.latency = 0.3
    concurrency, count = 4, 40
    first = _worker(settings, redis_server.url, fake_api, concurrency)
    try:
        for n in range(1, count + 1):
            enqueue(redis, order(n), settings)
        wait_until(lambda: len(fake_api.requests) >= 10, timeout=60, what="deliveries")
        first.send_signal(signal.SIGKILL)
        first.wait()
        killed_at = time.monotonic()
        second = _worker(settings, redis_server.url, fake_api, concurrency)
        try:
            wait_until(
                lambda: len({i for i, _ in orders_sent(fake_api)}) == count,
                timeout=90,
                what="every order delivered after the kill",
            )
            taken_over_after = time.monotonic() - killed_at
            wait_until(lambda: Inbox(redis).waiting() == 0, timeout=30, what="nothing held")
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(60)
    finally:
        if first.poll() is None:
            first.kill()
    # Deliveries only (each worker also asks the API which workspace it writes to).
    keys = Counter(r.header("idempotency-key") for r in fake_api.requests if r.method == "POST")
    resent = sum(n - 1 for n in keys.values())
    assert resent <= concurrency  # only what was in flight when the worker died
    assert fake_api.max_in_flight_per_entity == 1
    # The new worker took the dead one's events over once its lease expired (10 s), not
    # after RQ's job timeout (90 s and more): generous, far from the old 85 s.
    assert taken_over_after < 60


def test_a_dead_worker_on_this_host_is_taken_over_without_waiting_for_its_lease(
    redis, settings, fake_api
):
    """`relay run` restarts a killed worker on the same host: its process is gone, so its
    events and locks need not wait for its lease to expire (10 s)."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    owner = f"{HOST}:{gone.pid}:123"
    redis.set(lease_key(owner), "1", px=60_000)  # still "alive" for a minute
    enqueue(redis, order(1), settings)
    Inbox(redis).take(owner)  # the dead worker took it
    redis.set("relay:lock:order:1", f"{owner}|token", px=60_000)  # and held its lock
    WorkerHarness(settings, redis).run()
    assert orders_sent(fake_api) == [("1", "placed")]
    assert not redis.exists(lease_key(owner))


class KilledMidFlush(Exception):
    pass


def test_a_product_batch_a_killed_worker_was_flushing_is_finished_by_another(
    redis, settings, fake_api
):
    """A worker flushes the product outbox itself; killed mid-flush (slow API, SIGKILL), it
    leaves a taken batch that no RQ job would run again. Another worker finishes it."""
    from relay.delivery.dispatcher import FLUSHING
    from relay.delivery.product_outbox import batch_key

    product = json.loads(
        (ROOT / "mappers/woocommerce/fixtures/product.simple.on-sale.json").read_bytes()
    )
    enqueue(redis, woo_event("x", "product.updated", json.dumps(product).encode()), settings)
    harness = WorkerHarness(settings, redis)
    products = harness.context.dispatcher.products

    def killed(batch_id: str, *args) -> str:
        products.outbox.take(batch_id)  # taken, and then the process died
        raise KilledMidFlush

    products.flush_products = killed
    with pytest.raises(KilledMidFlush):
        harness.run()
    [batch_id] = [key.decode() for key in redis.hkeys(FLUSHING)]
    redis.hset(FLUSHING, batch_id, "another-host:4242:1")  # that worker: its lease is gone
    assert redis.exists(batch_key(batch_id))
    assert not [r for r in fake_api.requests if r.path == "/api/v1/products"]

    WorkerHarness(settings, redis).run()
    sent = [
        p["productId"]
        for r in fake_api.requests
        if r.path == "/api/v1/products"
        for p in r.body["products"]
    ]
    assert sent == [str(product["id"])]
    assert not redis.exists(batch_key(batch_id))
    assert not redis.hlen(FLUSHING)
