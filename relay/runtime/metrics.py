"""Prometheus counters and histograms, safe across gunicorn's and the workers' processes.

They are kept per process in PROMETHEUS_MULTIPROC_DIR (set by `relay run`, or by `relay web`
and `relay worker` for themselves) and summed at scrape time. The gauges that describe the
queue are read from Redis at scrape time instead (relay/runtime/queue_gauges.py).

Imported by the web process and the workers alike, so it imports nothing of theirs.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    multiprocess,
    start_http_server,
)

WEBHOOKS = Counter(
    "relay_webhooks",
    "Webhooks received, by platform and outcome (accepted, duplicate, ignored, rejected).",
    ["platform", "outcome", "reason"],
)
SECRET_MATCHES = Counter(
    "relay_webhook_secret_matches",
    "Genuine webhooks by the position of the secret or token value that proved them (1 is "
    "the first in its setting). Counted only for a setting that holds several values: when "
    "a position stops growing, that value can go.",
    ["platform", "secret"],
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
STOREFRONT_REQUESTS = Counter(
    "relay_storefront_requests",
    "Back-in-stock requests posted from shop pages (/storefront/back-in-stock), by outcome: "
    "accepted, duplicate, invalid, honeypot, origin_not_allowed, rate_limited_address, "
    "rate_limited_email, body_too_large, unsupported_media_type, unavailable.",
    ["outcome"],
)


def endpoint(path: str) -> str:
    """orders, products, checkouts, back-in-stock (never an id)."""
    parts = path.split("/")
    return parts[3] if len(parts) > 3 else path


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
