"""Delivery: events delivered per second by one worker process (in this process: the real
RQ worker, inbox and rules) to the fake Commerce API in its own process, against a plain
loop posting the same requests with one requests.Session. Runs alternate; the figure is the
median of the pair ratios."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import requests
from redis import Redis

from bench.common import API_KEY, FakeApiProcess, order_body, worker_bench
from relay.delivery.worker import run_worker
from relay.event_queue import EventQueue
from relay.events import RawEvent, new_event_id
from relay.intake.acceptor import Acceptor
from relay.registry import default_registry
from relay.settings import Settings

EVENTS = 2000
PAIRS = 3


def _events(offset: int) -> list[RawEvent]:
    return [
        RawEvent(
            new_event_id(),
            "woocommerce",
            "order.created",
            time.time(),
            order_body(offset + n),
            "application/json",
        )
        for n in range(EVENTS)
    ]


def _relay_rate(settings: Settings, redis: Redis, api: FakeApiProcess, offset: int) -> float:
    queue = Acceptor(EventQueue(redis))
    for event in _events(offset):
        assert queue.accept(event, event.id)
    before = len(api.requests())
    started = time.perf_counter()
    run_worker(settings, default_registry(), burst=True)
    elapsed = time.perf_counter() - started
    delivered = len(api.requests()) - before
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


def measure(workdir: Path) -> dict[str, Any]:
    with worker_bench(workdir) as (settings, redis, api):
        pairs = []
        for n in range(PAIRS):
            redis.flushall()
            relay = _relay_rate(settings, redis, api, offset=2 * n * EVENTS)
            plain = _plain_rate(api, offset=(2 * n + 1) * EVENTS)
            pairs.append((relay, plain))
    ratios = [r / p for r, p in pairs]
    return {
        "events": EVENTS,
        "relay_per_second": [round(r) for r, _ in pairs],
        "plain_loop_per_second": [round(p) for _, p in pairs],
        "ratio": round(statistics.median(ratios), 3),
        "ratios": [round(x, 3) for x in ratios],
    }
