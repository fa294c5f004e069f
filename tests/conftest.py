"""Shared fixtures: a real redis-server per test run, a real fake Commerce API, app and
worker helpers. Nothing here mocks Redis or HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC
from typing import Any

import pytest
from redis import Redis
from rq import SimpleWorker
from rq.registry import ScheduledJobRegistry
from rq.serializers import JSONSerializer

from relay.app import create_app
from relay.delivery import context as worker_context
from relay.delivery.commerce_api import CommerceClient
from relay.delivery.leases import lease_key
from relay.event_queue import make_queue
from relay.events import RawEvent
from relay.inbox import INBOX, Entry
from relay.registry import default_registry
from relay.runtime.processes import HOST
from relay.settings import RetryPolicy, Settings
from tests.fakeapi import FakeCommerceApi
from tests.redis_server import RedisServer

# The real-browser fixture (tests/browser.py), for the admin and storefront browser tests.
pytest_plugins = ["tests.browser"]

WOO_SECRET = "test-woo-secret"
API_KEY = "test-api-key"


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(interval)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis(redis_server) -> Iterator[Redis]:
    client = Redis.from_url(redis_server.url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def fake_api() -> Iterator[FakeCommerceApi]:
    api = FakeCommerceApi(api_key=API_KEY).start()
    yield api
    api.stop()
    api.assert_contract_kept()


@pytest.fixture
def settings(redis_server, fake_api, tmp_path) -> Settings:
    """Live mode against the fake API, fast retries, WooCommerce enabled."""
    return Settings(
        commerce_api_url=fake_api.url,
        commerce_api_key=API_KEY,
        redis_url=redis_server.url,
        data_dir=tmp_path / "data",
        platform_secrets={"woocommerce": WOO_SECRET},
        max_body_bytes=64 * 1024,
        retry=RetryPolicy(max_attempts=4, base_seconds=10.0, max_delay_seconds=300.0),
        api_timeout_seconds=2.0,
    )


@pytest.fixture
def app(settings, redis):
    app = create_app(settings, redis=redis)
    app.testing = True
    return app


@pytest.fixture
def client(app):
    return app.test_client()


def stored_events(redis: Redis) -> list[RawEvent]:
    """The raw events waiting in the inbox, oldest first (what ingest stored)."""
    return [
        RawEvent.from_dict(Entry.from_json(raw).event)
        for raw in reversed(redis.lrange(INBOX, 0, -1))
    ]


# --- signing -----------------------------------------------------------------------------


def woo_signature(body: bytes, secret: str = WOO_SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def woo_headers(body: bytes, topic: str, secret: str = WOO_SECRET, **extra: str) -> dict:
    headers = {
        "Content-Type": "application/json",
        "X-WC-Webhook-Topic": topic,
        "X-WC-Webhook-Signature": woo_signature(body, secret),
        "X-WC-Webhook-Source": "https://shop.example.com/",
        "X-WC-Webhook-ID": "7",
        "X-WC-Webhook-Delivery-ID": hashlib.md5(body).hexdigest(),
    }
    headers.update(extra)
    return headers


def as_body(payload: Any) -> bytes:
    return payload if isinstance(payload, bytes) else json.dumps(payload).encode()


# --- running the worker in this process --------------------------------------------------


class WorkerHarness:
    """Runs the real worker code in-process: the dispatcher over the inbox (burst mode) and
    RQ's SimpleWorker over the jobs due now, until neither has anything left."""

    def __init__(self, settings: Settings, redis: Redis, client=None):
        self.settings = settings
        self.redis = redis
        registry = default_registry()
        self.owner = f"test-{HOST}:{os.getpid()}:{secrets.token_hex(4)}"
        self.context = worker_context.build(
            settings, redis, registry, client=client, owner=self.owner
        )
        self.queue = make_queue(redis)

    def run(self, rounds: int = 20) -> None:
        """Process everything queued now (not what is scheduled for later)."""
        worker_context.install(self.context)
        # The lease a real worker renews from a thread; a test's run is short.
        self.redis.set(lease_key(self.owner), "1", px=600_000)
        try:
            for _ in range(rounds):
                taken = self.context.dispatcher.run(burst=True)
                worker = SimpleWorker(
                    [self.queue], connection=self.redis, serializer=JSONSerializer
                )
                worked = worker.work(burst=True, logging_level="WARNING")
                if not taken and not worked:
                    return
        finally:
            worker_context.install(None)

    def scheduled(self) -> list[tuple[str, float]]:
        """(job id, delay) of scheduled retries: how long after it was scheduled each one
        runs. Measured from the job's creation, not from now, so that it does not shrink
        by however long the test took to get here on a busy machine."""
        registry = ScheduledJobRegistry(queue=self.queue)
        out = []
        for raw_id, score in self.redis.zrange(registry.key, 0, -1, withscores=True):
            job_id = raw_id.decode() if isinstance(raw_id, bytes) else raw_id
            created = self.queue.fetch_job(job_id).created_at
            if created.tzinfo is None:
                created = created.replace(tzinfo=UTC)
            out.append((job_id, score - created.timestamp()))
        return out

    def release_scheduled(self) -> int:
        """Make every scheduled retry due now (as if its time had come) and enqueue it."""
        registry = ScheduledJobRegistry(queue=self.queue)
        ids = registry.get_job_ids()
        for job_id in ids:
            job = self.queue.fetch_job(job_id)
            registry.remove(job)
            self.queue.enqueue_job(job)
        return len(ids)


@pytest.fixture
def worker(settings, redis) -> WorkerHarness:
    return WorkerHarness(settings, redis)


@pytest.fixture
def sandbox_worker(settings, redis) -> WorkerHarness:
    return WorkerHarness(replace(settings, commerce_api_key=None), redis)


def worker_env(redis_url: str, api_url: str, **settings: str) -> dict[str, str]:
    """The environment of a real `relay worker` process on the test Redis and the fake API
    (none of this process's own RELAY_ settings leak into it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "PROMETHEUS_"))}
    env.update(
        RELAY_REDIS_URL=redis_url,
        RELAY_COMMERCE_API_URL=api_url,
        RELAY_COMMERCE_API_KEY=API_KEY,
        RELAY_WOOCOMMERCE_SECRET="test-woo-secret",
        RELAY_LOG_LEVEL="WARNING",
    )
    env.update(settings)
    return env


def live_client(settings: Settings) -> CommerceClient:
    return CommerceClient.from_settings(settings)
