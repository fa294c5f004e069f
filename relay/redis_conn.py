"""Redis connections, with timeouts short enough that a dead Redis is an answer, not a hang."""

from __future__ import annotations

from redis import Redis

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
    )
