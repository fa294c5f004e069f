"""Redis connections, with timeouts short enough that a dead Redis is an answer, not a hang."""

from __future__ import annotations

from redis import Redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

# Ingest answers 503 within about a second when Redis is gone, instead of holding the
# platform's connection open (WooCommerce waits 60 s and counts a failure anyway).
SOCKET_TIMEOUT = 2.0
CONNECT_TIMEOUT = 1.0


def connect(url: str, socket_timeout: float | None = SOCKET_TIMEOUT) -> Redis:
    return Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=CONNECT_TIMEOUT,
        health_check_interval=30,
        # A blip is retried twice within ~0.2 s; an outage is reported at once (redis-py's
        # default backs off for seconds, which a waiting platform would pay).
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), retries=2),
    )
