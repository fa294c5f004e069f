"""Redis connections, with timeouts short enough that a dead Redis is an answer, not a hang."""

from __future__ import annotations

from redis import Redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

SOCKET_TIMEOUT = 2.0
CONNECT_TIMEOUT = 1.0
# The web process's: a webhook waiting on a Redis that is gone or hung gets its 503 within
# about a second, instead of holding the platform's connection open (WooCommerce waits 60 s
# and counts a failure anyway). See relay/event_queue.py for the accept's own deadline.
WEB_SOCKET_TIMEOUT = 1.0


def connect(
    url: str,
    socket_timeout: float | None = SOCKET_TIMEOUT,
    retry_timeouts: bool = True,
    max_connections: int | None = None,
) -> Redis:
    """A client whose commands are retried twice within ~0.2 s on a dropped connection (a
    blip), and, with `retry_timeouts`, on a timeout too. redis-py's default backs off for
    seconds, which a waiting platform would pay. The web process retries no timeout: a
    timed-out write may still be running in a hung Redis, and its retry would wait as long.
    `max_connections` sizes the pool for a worker's threads (redis-py refuses beyond it)."""
    errors: tuple[type[Exception], ...] = (RedisConnectionError,)
    if retry_timeouts:
        errors += (RedisTimeoutError, TimeoutError)
    return Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=CONNECT_TIMEOUT,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), retries=2, supported_errors=errors),
        **({"max_connections": max_connections} if max_connections else {}),
    )


def connect_web(url: str) -> Redis:
    return connect(url, socket_timeout=WEB_SOCKET_TIMEOUT, retry_timeouts=False)
