"""Delivery: events delivered per second to a fake Commerce API that answers after a fixed
latency (the figure that matters: the API is across the internet), and at zero latency
against a plain loop (the CPU's figure).

At a distance (`--latency`, default 100 ms), real `relay worker` processes (1, 2 and 4) take
a backlog of orders from Redis and deliver it to the fake API in its own process; the rate is
measured from the first to the last order the API received. The ideal is `workers x
RELAY_DELIVERY_CONCURRENCY / latency`. Also: product updates per second (batches of 100), and
the time one worker takes to drain a backlog of 10,000 orders.

At zero latency, one worker in this process (the real dispatcher, inbox and rules) against a
plain loop posting the same requests with one requests.Session; runs alternate, the figure
is the median of the pair ratios. Also against a loop that sends through the relay's own
client (the same HTTP path, cheaper than `Session.request`): what the relay's own work per
event costs.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import requests
from redis import Redis

from bench.common import (
    API_KEY,
    FakeApiProcess,
    Workers,
    memory_mb,
    order_body,
    process_tree,
    product_body,
    redis_server,
    worker_bench,
)
from relay.delivery.commerce_api import ApiRequest, CommerceClient
from relay.delivery.worker import run_worker
from relay.events import RawEvent, new_event_id
from relay.inbox import INBOX, Entry
from relay.registry import default_registry
from relay.settings import Settings

EVENTS = 2000
PAIRS = 5
LATENCY = 0.1
CONCURRENCY = 32
WORKER_COUNTS = (1, 2, 4)
ORDERS_PER_WORKER = 3000
PRODUCTS = 3000
BACKLOG = 10_000
MEMORY_BACKLOG = 100_000
MEMORY_SECONDS = 30


def _events(offset: int, count: int = EVENTS, topic: str = "order.created") -> list[RawEvent]:
    body = order_body if topic.startswith("order") else product_body
    return [
        RawEvent(
            new_event_id(), "woocommerce", topic, time.time(), body(offset + n), "application/json"
        )
        for n in range(count)
    ]


def load_inbox(redis: Redis, events: list[RawEvent]) -> None:
    """Store events as ingest would (without dedup marks: these are all distinct)."""
    pipe = redis.pipeline(transaction=False)
    for n, event in enumerate(events, 1):
        pipe.lpush(INBOX, Entry(event.to_dict(), None).to_json())
        if n % 500 == 0:
            pipe.execute()
    pipe.execute()


# --- at a distance --------------------------------------------------------------------------


def _arrivals(api: FakeApiProcess, path: str, since: int) -> list[dict[str, Any]]:
    return [r for r in api.requests()[since:] if r["path"] == path]


def _wait_for(api: FakeApiProcess, path: str, since: int, count: int, timeout: float) -> list:
    """The requests to `path` that arrived after the first `since`, once their products or
    orders number `count`."""
    deadline = time.monotonic() + timeout
    while True:
        arrived = _arrivals(api, path, since)
        if sum(len(r["ids"]) for r in arrived) >= count:
            return arrived
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path}: {len(arrived)} requests after {timeout} s")
        time.sleep(0.5)


def _rate(arrived: list[dict[str, Any]]) -> float:
    items = sum(len(r["ids"]) for r in arrived)
    span = arrived[-1]["at"] - arrived[0]["at"]
    return (items - len(arrived[0]["ids"])) / span if span > 0 else float("nan")


def _orders_per_second(workdir: Path, count: int, latency: float, concurrency: int) -> float:
    with redis_server(workdir / f"orders-{count}") as server:
        redis = Redis.from_url(server.url)
        api = FakeApiProcess(latency)
        workers = Workers(workdir, count, server.url, api.url, concurrency)
        try:
            workers.wait_ready(redis)
            since = len(api.requests())
            total = ORDERS_PER_WORKER * count
            load_inbox(redis, _events(0, total))
            arrived = _wait_for(api, "/api/v1/orders", since, total, timeout=600)
            return _rate(arrived)
        finally:
            workers.stop()
            api.stop()


def _products_per_second(workdir: Path, latency: float, concurrency: int) -> dict[str, Any]:
    with redis_server(workdir / "products") as server:
        redis = Redis.from_url(server.url)
        api = FakeApiProcess(latency)
        workers = Workers(workdir, 1, server.url, api.url, concurrency)
        try:
            workers.wait_ready(redis)
            since = len(api.requests())
            load_inbox(redis, _events(0, PRODUCTS, topic="product.updated"))
            arrived = _wait_for(api, "/api/v1/products", since, PRODUCTS, timeout=600)
            return {"per_second": round(_rate(arrived)), "requests": len(arrived)}
        finally:
            workers.stop()
            api.stop()


def _backlog_seconds(workdir: Path, latency: float, concurrency: int) -> float:
    """A worker starting on a backlog: from its start to the last order delivered."""
    with redis_server(workdir / "backlog") as server:
        redis = Redis.from_url(server.url)
        api = FakeApiProcess(latency)
        load_inbox(redis, _events(0, BACKLOG))
        started = time.time()
        workers = Workers(workdir, 1, server.url, api.url, concurrency)
        try:
            arrived = _wait_for(api, "/api/v1/orders", 0, BACKLOG, timeout=1200)
            return arrived[-1]["at"] - started
        finally:
            workers.stop()
            api.stop()


def _memory_on_a_backlog(workdir: Path, latency: float, concurrency: int) -> dict[str, Any]:
    """One worker on a backlog of 100,000 orders: its memory while it delivers (it streams
    the inbox: a bounded number of events in memory, whatever waits in Redis)."""
    with redis_server(workdir / "memory") as server:
        redis = Redis.from_url(server.url)
        api = FakeApiProcess(latency)
        for start in range(0, MEMORY_BACKLOG, 10_000):
            load_inbox(redis, _events(start, 10_000))
        workers = Workers(workdir, 1, server.url, api.url, concurrency)
        try:
            workers.wait_ready(redis)
            peak, samples = 0.0, []
            for _ in range(MEMORY_SECONDS):
                time.sleep(1)
                rss = memory_mb(process_tree(workers.processes[0].pid))["rss_mb"]
                samples.append(rss)
                peak = max(peak, rss)
            delivered = len(_arrivals(api, "/api/v1/orders", 0))
            return {
                "backlog": MEMORY_BACKLOG,
                "seconds": MEMORY_SECONDS,
                "delivered_meanwhile": delivered,
                "worker_rss_mb_peak": round(peak, 1),
                "worker_rss_mb_first_last": [samples[0], samples[-1]],
            }
        finally:
            workers.stop()
            api.stop()


def at_distance(
    workdir: Path, latency: float = LATENCY, concurrency: int = CONCURRENCY
) -> dict[str, Any]:
    rates = {}
    for n in WORKER_COUNTS:
        rates[str(n)] = round(_orders_per_second(workdir, n, latency, concurrency))
        print(f"  ({n} worker(s) at {latency * 1000:.0f} ms: {rates[str(n)]} orders/s)", flush=True)
    ideal = concurrency / latency
    return {
        "latency_ms": round(latency * 1000),
        "concurrency": concurrency,
        "orders_per_second": rates,
        "ideal_per_worker": round(ideal),
        "ratio_one_worker": round(rates["1"] / ideal, 3),
        "scaling": {n: round(rate / rates["1"], 2) for n, rate in rates.items()},
        "products": _products_per_second(workdir, latency, concurrency),
        "backlog": {
            "orders": BACKLOG,
            "seconds": round(_backlog_seconds(workdir, latency, concurrency), 1),
        },
        "memory": _memory_on_a_backlog(workdir, latency, concurrency),
    }


# --- zero latency ---------------------------------------------------------------------------


def _relay_rate(settings: Settings, redis: Redis, api: FakeApiProcess, offset: int) -> float:
    load_inbox(redis, _events(offset))
    before = len(api.requests())
    started = time.perf_counter()
    run_worker(settings, default_registry(), burst=True)
    elapsed = time.perf_counter() - started
    # Orders only: a starting worker also asks the API which workspace it writes to.
    delivered = len(_arrivals(api, "/api/v1/orders", before))
    assert delivered == EVENTS, f"{delivered} of {EVENTS} delivered"
    return EVENTS / elapsed


def _plain_rate(api: FakeApiProcess, offset: int) -> float:
    woo = default_registry().get("woocommerce")
    bodies = [woo.map_event(e, {})[0].data for e in _events(offset)]
    session = requests.Session()
    session.headers.update(
        {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    )
    started = time.perf_counter()
    for body in bodies:
        assert session.post(f"{api.url}/api/v1/orders", json=body, timeout=10).ok
    return len(bodies) / (time.perf_counter() - started)


def _same_path_rate(api: FakeApiProcess, offset: int) -> float:
    woo = default_registry().get("woocommerce")
    requests_ = [
        ApiRequest("POST", "/api/v1/orders", woo.map_event(e, {})[0].data) for e in _events(offset)
    ]
    client = CommerceClient(api.url, API_KEY)
    started = time.perf_counter()
    for request in requests_:
        assert client.send(request).ok
    return len(requests_) / (time.perf_counter() - started)


def zero_latency(workdir: Path) -> dict[str, Any]:
    with worker_bench(workdir) as (settings, redis, api):
        # One unmeasured round of each first: a worker runs for days, so its first start
        # (imports, scripts loaded into Redis, the first connections) is not its rate.
        redis.flushall()
        _relay_rate(settings, redis, api, offset=3 * PAIRS * EVENTS)
        _plain_rate(api, offset=(3 * PAIRS + 1) * EVENTS)
        _same_path_rate(api, offset=(3 * PAIRS + 2) * EVENTS)
        rounds = []
        for n in range(PAIRS):
            redis.flushall()
            relay = _relay_rate(settings, redis, api, offset=3 * n * EVENTS)
            plain = _plain_rate(api, offset=(3 * n + 1) * EVENTS)
            same_path = _same_path_rate(api, offset=(3 * n + 2) * EVENTS)
            rounds.append((relay, plain, same_path))
    ratios = [r / p for r, p, _ in rounds]
    same_path_ratios = [r / s for r, _, s in rounds]
    return {
        "events": EVENTS,
        "concurrency": settings.delivery_concurrency,
        "relay_per_second": [round(r) for r, _, _ in rounds],
        "plain_loop_per_second": [round(p) for _, p, _ in rounds],
        "ratio": round(statistics.median(ratios), 3),
        "ratios": [round(x, 3) for x in ratios],
        "same_path_loop_per_second": [round(s) for _, _, s in rounds],
        "ratio_same_path": round(statistics.median(same_path_ratios), 3),
    }


def measure(workdir: Path, latency: float = LATENCY) -> dict[str, Any]:
    return {"at_distance": at_distance(workdir, latency), "zero_latency": zero_latency(workdir)}
