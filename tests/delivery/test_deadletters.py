"""Dead letters: kept whole for replay, but bounded (retention time and cap)."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

from relay.delivery.deadletters import INDEX, DeadLetters
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
