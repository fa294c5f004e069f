"""Liveness and readiness for orchestrators."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify
from redis import RedisError

from relay import metrics
from relay.web_context import WebContext

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """The process is up and answering. Never touches Redis: a Redis outage is not a reason
    to restart the web server."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """Ready to accept webhooks: the configuration loaded (the app would not exist
    otherwise) and Redis answers. Lists the enabled platforms, without their secrets."""
    ctx: WebContext = current_app.extensions["relay"]
    enabled = [p.name for p in ctx.registry if ctx.settings.secret_for(p.name)]
    try:
        ctx.redis.ping()
    except RedisError:
        return jsonify(
            status="unavailable",
            checks={"redis": "unreachable", "configuration": "ok"},
            platforms=enabled,
        ), 503
    return jsonify(
        status="ok",
        checks={"redis": "ok", "configuration": "ok"},
        platforms=enabled,
        mode="sandbox" if ctx.settings.sandbox else "live",
    )


@bp.get("/metrics")
def prometheus():
    """Prometheus text format: webhooks and deliveries by outcome, API latency, and the
    queue as Redis sees it (depth, oldest waiting age, retries, dead letters, last event
    per platform)."""
    ctx: WebContext = current_app.extensions["relay"]
    body, content_type = metrics.render(ctx.redis, ctx.registry.names())
    return Response(body, content_type=content_type)
