"""Prometheus metrics, safe across gunicorn's and the workers' processes.

Counters and histograms are kept per process in PROMETHEUS_MULTIPROC_DIR (set by `relay
run`, or by `relay web` and `relay worker` for themselves) and summed at scrape time.
Gauges that describe the queue (depth, oldest waiting age, retries, dead letters, the last
event of each platform) are read from Redis when /metrics is scraped, so every process and
every restart agrees on them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from redis import Redis, RedisError

from relay import stats
from relay.deadletters import DROP_REASONS, DROPPED
from relay.event_queue import QUEUE_NAME
from relay.inbox import INBOX, Entry, inflight_depths, inflight_key

WEBHOOKS = Counter(
    "relay_webhooks",
    "Webhooks received, by platform and outcome (accepted, duplicate, ignored, rejected).",
    ["platform", "outcome", "reason"],
)
DELIVERIES = Counter(
    "relay_deliveries",
    "Commerce API requests by endpoint and outcome (delivered, skipped, retry, dead_letter).",
    ["endpoint", "outcome"],
)
API_RESULTS = Counter(
    "relay_api_requests",
    "Commerce API requests by endpoint and result (ok, transient, permanent).",
    ["endpoint", "result"],
)
API_SECONDS = Histogram(
    "relay_api_request_seconds",
    "Duration of Commerce API requests.",
    ["endpoint"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
EVENT_DELAY = Histogram(
    "relay_event_delivery_delay_seconds",
    "From a webhook's arrival to the last of its requests delivered.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 60, 300, 1800, 3600, 21600, 86400),
)


def endpoint(path: str) -> str:
    """orders, products, checkouts, back-in-stock (never an id)."""
    parts = path.split("/")
    return parts[3] if len(parts) > 3 else path


class QueueCollector:
    """Gauges read from Redis at scrape time."""

    def __init__(self, redis: Redis, platforms: list[str]):
        self.redis = redis
        self.platforms = platforms

    def collect(self) -> Iterable[Any]:
        try:
            yield from self._collect()
        except RedisError:
            up = GaugeMetricFamily("relay_redis_up", "Whether Redis answered the scrape.")
            up.add_metric([], 0)
            yield up

    def _collect(self) -> Iterable[Any]:
        pipe = self.redis.pipeline(transaction=False)
        pipe.llen(INBOX)
        pipe.llen(f"rq:queue:{QUEUE_NAME}")
        pipe.zcard(f"rq:scheduled:{QUEUE_NAME}")
        pipe.zcard("relay:dlq")
        pipe.hlen("relay:outbox:products")
        pipe.lindex(INBOX, -1)  # the oldest waiting event
        pipe.hgetall(DROPPED)  # dead letters dropped by the workers (retention, cap)
        depth, jobs, scheduled, dead, outbox, oldest, dropped = pipe.execute()
        # Events a drain job holds wait too (a failed drain's until RQ runs it again).
        taken = inflight_depths(self.redis)
        depth += sum(taken.values())
        oldest_entries = [oldest] if oldest is not None else []
        if taken:
            pipe = self.redis.pipeline(transaction=False)
            for drain_id in taken:
                pipe.lindex(inflight_key(drain_id), -1)
            oldest_entries += [raw for raw in pipe.execute() if raw is not None]
        oldest_age = 0.0
        for raw in oldest_entries:
            received = Entry.from_json(raw).event.get("received_at", time.time())
            oldest_age = max(oldest_age, time.time() - float(received))

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            family = GaugeMetricFamily(name, doc)
            family.add_metric([], value)
            return family

        yield gauge("relay_redis_up", "Whether Redis answered the scrape.", 1)
        yield gauge(
            "relay_queue_depth",
            "Webhooks stored and not yet handled (in the inbox or taken by a drain job).",
            depth,
        )
        yield gauge(
            "relay_oldest_waiting_seconds", "Age of the oldest waiting webhook.", oldest_age
        )
        yield gauge(
            "relay_jobs_waiting", "Worker jobs queued (drains, flushes, retries due).", jobs
        )
        yield gauge(
            "relay_scheduled_retries", "Deliveries waiting for their retry time.", scheduled
        )
        yield gauge("relay_dead_letters", "Events the relay gave up on (relay dlq list).", dead)
        dropped_family = CounterMetricFamily(
            "relay_dead_letters_dropped",
            "Dead letters dropped unreplayed: older than RELAY_DLQ_RETENTION_DAYS (expired) "
            "or beyond RELAY_DLQ_MAX (over_limit).",
            labels=["reason"],
        )
        counts = {k.decode() if isinstance(k, bytes) else k: int(v) for k, v in dropped.items()}
        for reason in DROP_REASONS:
            dropped_family.add_metric([reason], counts.get(reason, 0))
        yield dropped_family
        yield gauge("relay_product_outbox", "Product writes waiting for their batch.", outbox)
        last = GaugeMetricFamily(
            "relay_last_event_timestamp_seconds",
            "When each platform last sent a genuine event (a silent store: a disabled webhook?).",
            labels=["platform"],
        )
        for platform_stats in stats.read(self.redis, self.platforms):
            if platform_stats.last_seen is not None:
                last.add_metric([platform_stats.platform], platform_stats.last_seen)
        yield last


def render(redis: Redis, platforms: list[str]) -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        counters = CollectorRegistry()
        multiprocess.MultiProcessCollector(counters)
    else:  # one process (tests, a plain `flask run`): this process's own registry
        counters = REGISTRY
    queue = CollectorRegistry()
    queue.register(QueueCollector(redis, platforms))
    return generate_latest(counters) + generate_latest(queue), CONTENT_TYPE_LATEST


def serve_worker_metrics(bind: str) -> None:
    """A `relay worker` run alone (compose's second worker, the Kubernetes worker Deployment)
    has no web server, so nobody would scrape its delivery counters: serve them, this process
    and the scheduler it forks, on their own port from a background thread. The queue's
    gauges are left to the web servers' /metrics, which read them from Redis; repeating them
    here would double every alert on them. Raises OSError when the address is taken."""
    host, _, port = bind.rpartition(":")
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    start_http_server(int(port), addr=host.strip("[]"), registry=registry)


class InstrumentedClient:
    """Wraps a Commerce API client: every request's duration and outcome are counted."""

    def __init__(self, client: Any):
        self.client = client

    def send(self, request: Any, event_id: str = "") -> Any:
        outcome = self.client.send(request, event_id)
        name = endpoint(request.path)
        if outcome.duration:
            API_SECONDS.labels(name).observe(outcome.duration)
        result = "ok" if outcome.ok else ("transient" if outcome.transient else "permanent")
        API_RESULTS.labels(name, result).inc()
        return outcome
