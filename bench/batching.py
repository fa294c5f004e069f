"""Batching: how many API requests 10,000 product updates (10,000 distinct products, the
case where nothing coalesces) need on their way through the real worker."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.common import product_body, worker_bench
from relay.delivery.worker import run_worker
from relay.event_queue import EventQueue
from relay.events import RawEvent, new_event_id
from relay.intake.acceptor import Acceptor
from relay.registry import default_registry

UPDATES = 10_000


def measure(workdir: Path) -> dict[str, Any]:
    with worker_bench(workdir) as (settings, redis, api):
        queue = Acceptor(EventQueue(redis))
        for n in range(UPDATES):
            event = RawEvent(
                new_event_id(),
                "woocommerce",
                "product.updated",
                time.time(),
                product_body(n),
                "application/json",
            )
            queue.accept(event, event.id)
        started = time.perf_counter()
        run_worker(settings, default_registry(), burst=True)
        # A flush may still be scheduled a second ahead: let it come due.
        deadline = time.monotonic() + 10
        while redis.hlen("relay:outbox:products") and time.monotonic() < deadline:
            time.sleep(1.1)
            run_worker(settings, default_registry(), burst=True)
        elapsed = time.perf_counter() - started
        received = [r for r in api.requests() if r["path"] == "/api/v1/products"]
    products = [pid for r in received for pid in r["ids"]]
    assert len(set(products)) == UPDATES, f"{len(set(products))} of {UPDATES} products arrived"
    return {
        "updates": UPDATES,
        "requests": len(received),
        "largest_batch": max(len(r["ids"]) for r in received),
        "seconds": round(elapsed, 1),
    }
