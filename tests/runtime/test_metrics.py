"""Prometheus counters (relay/runtime/metrics.py), the queue gauges read from Redis
(relay/runtime/queue_gauges.py), per-platform stats, and a worker run alone serving its own."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import requests

from relay import stats
from relay.app import create_app
from relay.event_queue import EventQueue
from relay.events import RawEvent, new_event_id
from relay.inbox import Inbox
from relay.intake.acceptor import Acceptor
from tests.conftest import API_KEY, WOO_SECRET, as_body, wait_until, woo_headers
from tests.redis_server import free_port

FIXTURES = Path(__file__).parents[2] / "mappers" / "woocommerce" / "fixtures"

SECRET_TOKEN = "tok-should-never-leave-1234567890"


def test_metrics_count_webhooks_and_read_the_queue(client, redis):
    from tests.intake.test_webhooks import SAMPLE

    body = SAMPLE.read_bytes()
    client.post("/webhooks/woocommerce", data=body, headers=woo_headers(body, "order.created"))
    client.post("/webhooks/woocommerce", data=body, headers=woo_headers(body, "order.created"))
    client.post(
        "/webhooks/woocommerce",
        data=body,
        headers=woo_headers(body, "order.created", secret="wrong"),
    )
    text = client.get("/metrics").get_data(as_text=True)
    assert 'relay_webhooks_total{outcome="accepted",platform="woocommerce",reason=""}' in text
    assert 'outcome="duplicate",platform="woocommerce"' in text
    assert 'outcome="rejected",platform="woocommerce",reason="bad_signature"' in text
    assert "relay_queue_depth 2.0" in text  # the event and its losing twin
    assert 'relay_last_event_timestamp_seconds{platform="woocommerce"}' in text
    assert "relay_dead_letters 0.0" in text


def test_stats_per_platform(client, redis):
    body = as_body({"id": 1})
    client.post("/webhooks/woocommerce", data=body, headers=woo_headers(body, "coupon.created"))
    client.post(
        "/webhooks/woocommerce",
        data=body,
        headers=woo_headers(body, "order.created", secret=WOO_SECRET + "x"),
    )
    [woo] = stats.read(redis, ["woocommerce"])
    assert (woo.ignored, woo.rejected, woo.last_rejected_code) == (1, 1, "bad_signature")
    assert woo.last_seen is not None


def test_f1_events_held_by_a_failed_drain_count_as_waiting(settings, redis):
    queue = Acceptor(EventQueue(redis))
    events = [
        RawEvent(new_event_id(), "woocommerce", "order.created", time.time() - 300 + i, b"{}")
        for i in range(5)
    ]
    for event in events:
        queue.accept(event, event.id)
    Inbox(redis).take("failed-drain", 3)  # a drain took three, then failed: RQ retries it
    app = create_app(replace(settings, admin_token="a" * 32), redis=redis)
    web = app.test_client()

    text = web.get("/metrics").get_data(as_text=True)
    assert "relay_queue_depth 5.0" in text
    [age] = [line for line in text.splitlines() if line.startswith("relay_oldest_waiting_")]
    assert float(age.split()[1]) >= 299  # the oldest is one the failed drain holds
    status = web.get("/admin/api/status", headers={"Authorization": "Bearer " + "a" * 32})
    assert status.get_json()["queue"]["waiting"] == 5


# --- a worker run alone -------------------------------------------------------------------


class StandaloneWorker:
    """`relay worker` in its own process, as the Kubernetes worker Deployment runs it."""

    def __init__(self, tmp_path, redis_url: str, api_url: str, **env: str):
        base = {k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "PROMETHEUS_"))}
        self.log = tmp_path / "worker.log"
        self.env = {
            **base,
            "RELAY_REDIS_URL": redis_url,
            "RELAY_COMMERCE_API_URL": api_url,
            "RELAY_COMMERCE_API_KEY": API_KEY,
            "RELAY_DATA_DIR": str(tmp_path / "data"),
            **env,
        }

    def start(self) -> subprocess.Popen:
        with self.log.open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "relay", "worker"], env=self.env, stdout=log, stderr=log
            )


def _scrape(url: str) -> str | None:
    try:
        return requests.get(url, timeout=2).text
    except requests.ConnectionError:
        return None


@pytest.mark.e2e
def test_a_worker_run_alone_serves_its_delivery_counters(tmp_path, redis_server, redis, fake_api):
    port = free_port()
    worker = StandaloneWorker(
        tmp_path, redis_server.url, fake_api.url, RELAY_WORKER_METRICS_BIND=f"127.0.0.1:{port}"
    )
    process = worker.start()
    try:
        body = (FIXTURES / "order.processing.guest.json").read_bytes()
        event = RawEvent(
            id=new_event_id(),
            platform="woocommerce",
            topic="order.created",
            received_at=time.time(),
            body=body,
            content_type="application/json",
        )
        assert Acceptor(EventQueue(redis)).accept(event, "standalone-worker-test")
        # Its first requests may be its account reads (which workspace: at start).
        wait_until(
            lambda: any(r.path == "/api/v1/orders" for r in fake_api.requests),
            timeout=20,
            what="the order delivered",
        )

        url = f"http://127.0.0.1:{port}/metrics"
        delivered = 'relay_deliveries_total{endpoint="orders",outcome="delivered"} 1.0'
        text = wait_until(
            lambda: (t := _scrape(url)) and delivered in t and t, what=f"{delivered} at {url}"
        )
        assert 'relay_api_requests_total{endpoint="orders",result="ok"} 1.0' in text
        # The queue's gauges come from the web servers' /metrics only (read from Redis there):
        # repeated by every worker, each alert on them would fire once per worker.
        assert "relay_queue_depth" not in text
    finally:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:  # never left running: it would take other tests' jobs
            process.kill()
            process.wait()
            raise


def test_a_worker_whose_metrics_port_is_taken_says_so(tmp_path, redis_server, fake_api):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        worker = StandaloneWorker(
            tmp_path, redis_server.url, fake_api.url, RELAY_WORKER_METRICS_BIND=f"127.0.0.1:{port}"
        )
        process = worker.start()
        assert process.wait(30) == 2
    assert f"RELAY_WORKER_METRICS_BIND: cannot listen on 127.0.0.1:{port}" in worker.log.read_text()


def test_reconcile_finds_and_webhook_repairs_are_read_from_redis_by_metrics(client, redis):
    import json

    from relay import sync_signals

    pipe = redis.pipeline()
    sync_signals.count_found(pipe, "woocommerce", "reconcile-1", "order", 2)
    sync_signals.count_found(pipe, "woocommerce", "reconcile-2", "product")
    pipe.hincrby(sync_signals.WEBHOOKS_REENABLED, "woocommerce", 1)
    pipe.hset(
        sync_signals.WEBHOOK_HEALTH, "woocommerce", json.dumps({"missing": ["order.created"]})
    )
    pipe.execute()

    text = client.get("/metrics").get_data(as_text=True)

    assert 'relay_reconcile_found_total{kind="order",platform="woocommerce"} 2.0' in text
    assert 'relay_reconcile_found_total{kind="product",platform="woocommerce"} 1.0' in text
    assert 'relay_store_webhooks_reenabled_total{platform="woocommerce"} 1.0' in text
    assert 'relay_store_webhooks_missing{platform="woocommerce"} 1.0' in text
