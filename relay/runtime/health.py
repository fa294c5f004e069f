"""Liveness and readiness for orchestrators.

- `/readyz`: ready to accept webhooks now. Fails at once when Redis does not answer, so a
  load balancer stops sending webhooks that would only get 503.
- `/healthz`: worth keeping alive. Fails once Redis has been unreachable for longer than
  RELAY_HEALTHZ_GRACE_SECONDS, so Docker (the image's HEALTHCHECK) or Kubernetes (the
  liveness probe) restart a relay that can no longer store anything. `relay run` restarts a
  crashed embedded Redis itself; this catches the rest (a hung Redis, one that cannot come
  back, a process that lost its way to it). The grace keeps a short outage, such as a
  restart or a failover of an external Redis, from restarting every relay at once: a
  restart does not bring an external Redis back sooner, and a restart loop would only delay
  the relay's return once Redis is back.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from flask import Blueprint, Response, current_app, jsonify
from redis import BusyLoadingError, Redis, RedisError
from redis.backoff import NoBackoff
from redis.retry import Retry

from relay import workspace
from relay.errors import error_response
from relay.intake.web_context import WebContext
from relay.runtime import queue_gauges

bp = Blueprint("health", __name__)

# Well inside the probes' own timeouts (Docker 5 s, Kubernetes 3 s): a hung Redis must count
# as unreachable, not make the probe itself time out and skip the grace.
PROBE_TIMEOUT_SECONDS = 1.0
_WATCH = "relay.redis_watch"


class RedisWatch:
    """Since when this process has found Redis unreachable. Per process: each gunicorn
    worker answers probes by itself, and each needs Redis."""

    def __init__(self, probe: Redis, clock: Callable[[], float] = time.monotonic):
        self.probe = probe
        self.clock = clock
        self.down_since: float | None = None

    def observe(self, reachable: bool) -> None:
        if reachable:
            self.down_since = None
        elif self.down_since is None:
            self.down_since = self.clock()

    def unreachable_for(self) -> float:
        """Ping Redis now; seconds it has been unreachable since first seen so (0: it answers).
        Two failed pings apart are needed to exceed a grace: one failed ping is a blip."""
        self.observe(redis_state(self.probe) != "unreachable")
        return 0.0 if self.down_since is None else self.clock() - self.down_since


def redis_state(client: Redis) -> str:
    """ok | loading (alive, reading its data after a restart) | unreachable."""
    try:
        client.ping()
    except BusyLoadingError:
        return "loading"
    except RedisError:
        return "unreachable"
    return "ok"


def _watch() -> RedisWatch:
    watch = current_app.extensions.get(_WATCH)
    if watch is None:
        ctx: WebContext = current_app.extensions["relay"]
        probe = ctx.redis
        if ctx.settings.redis_url:  # its own client: short timeouts, no retries
            probe = Redis.from_url(
                ctx.settings.redis_url,
                socket_timeout=PROBE_TIMEOUT_SECONDS,
                socket_connect_timeout=PROBE_TIMEOUT_SECONDS,
                retry=Retry(NoBackoff(), 0),
            )
        watch = current_app.extensions[_WATCH] = RedisWatch(probe)
    return watch


@bp.get("/healthz")
def healthz():
    """The process answers, and Redis has not been away for longer than the grace."""
    grace = current_app.extensions["relay"].settings.healthz_grace_seconds
    down = _watch().unreachable_for()
    if down > grace:
        return error_response(
            503,
            "redis_unreachable",
            f"Redis has not answered for {down:.0f} s (RELAY_HEALTHZ_GRACE_SECONDS={grace})",
        )
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """Ready to accept webhooks: the configuration loaded (the app would not exist
    otherwise) and Redis answers. Lists the enabled platforms, without their secrets, and
    the workspace the data lands in as a worker or `relay check` last found it (kept in
    Redis: a probe never calls the Commerce API). A workspace problem does not fail it:
    webhooks are still stored safely, and `relay check` and the admin page name it."""
    ctx: WebContext = current_app.extensions["relay"]
    enabled = [p.name for p in ctx.registry if ctx.settings.secret_for(p.name)]
    state = redis_state(ctx.redis)
    _watch().observe(state != "unreachable")
    if state != "ok":
        return jsonify(
            status="unavailable",
            checks={"redis": state, "configuration": "ok"},
            platforms=enabled,
        ), 503
    try:
        kept = None if ctx.settings.sandbox else workspace.load(ctx.redis)
    except RedisError:  # gone since the ping: still answered, without the workspace
        kept = None
    return jsonify(
        status="ok",
        checks={"redis": "ok", "configuration": "ok"},
        platforms=enabled,
        mode="sandbox" if ctx.settings.sandbox else "live",
        workspace=workspace.status(ctx.settings, kept),
    )


@bp.get("/metrics")
def prometheus():
    """Prometheus text format: webhooks and deliveries by outcome, API latency, and the
    queue as Redis sees it (depth, oldest waiting age, retries, dead letters, last event
    per platform)."""
    ctx: WebContext = current_app.extensions["relay"]
    body, content_type = queue_gauges.render(ctx.redis, ctx.registry.names())
    return Response(body, content_type=content_type)
