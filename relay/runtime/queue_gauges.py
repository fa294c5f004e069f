"""What /metrics reads from Redis at scrape time: the queue's depth, the oldest waiting age,
retries, dead letters (and those dropped), the product outbox, the last event of each
platform. Every process and every restart agrees on them, because Redis holds them.

`render` puts them after this process's (or, under `relay run`, every process's) counters.
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
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from redis import Redis, RedisError

from relay import stats, sync_signals
from relay.delivery.deadletters import DROP_REASONS, DROPPED
from relay.event_queue import QUEUE_NAME
from relay.inbox import INBOX, Entry, inflight_depths, inflight_key


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
        yield from _store_families(self.redis)


def _store_families(redis: Redis) -> Iterable[Any]:
    """What the store's side found (relay/sync/): counted in Redis by whichever process."""
    found = CounterMetricFamily(
        "relay_reconcile_found",
        "Entities of reconcile runs that delivery really sent (the entity rules let them "
        "through): changes the store's webhooks had missed.",
        labels=["platform", "kind"],
    )
    for (platform, kind), count in sorted(sync_signals.found_totals(redis).items()):
        found.add_metric([platform, kind], count)
    yield found
    reenabled = CounterMetricFamily(
        "relay_store_webhooks_reenabled",
        "Webhooks the relay found disabled or paused at the store and re-enabled.",
        labels=["platform"],
    )
    for platform, count in sorted(sync_signals.reenabled_totals(redis).items()):
        reenabled.add_metric([platform], count)
    yield reenabled
    missing = GaugeMetricFamily(
        "relay_store_webhooks_missing",
        "Topics without an active webhook to the relay at the last check (0: healthy).",
        labels=["platform"],
    )
    for platform, health in sorted(sync_signals.webhook_health(redis).items()):
        missing.add_metric([platform], len(health.get("missing") or []))
    yield missing


def render(redis: Redis, platforms: list[str]) -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        counters = CollectorRegistry()
        multiprocess.MultiProcessCollector(counters)
    else:  # one process (tests, a plain `flask run`): this process's own registry
        counters = REGISTRY
    queue = CollectorRegistry()
    queue.register(QueueCollector(redis, platforms))
    return generate_latest(counters) + generate_latest(queue), CONTENT_TYPE_LATEST
