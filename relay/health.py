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
    """Ready to accept webhooks: Redis answers."""
    ctx: WebContext = current_app.extensions["relay"]
    try:
        ctx.redis.ping()
    except RedisError:
        return jsonify(status="unavailable", checks={"redis": "unreachable"}), 503
    return jsonify(status="ok", checks={"redis": "ok"})


@bp.get("/metrics")
def prometheus():
    """Prometheus text format: webhooks and deliveries by outcome, API latency, and the
    queue as Redis sees it (depth, oldest waiting age, retries, dead letters, last event
    per platform)."""
    ctx: WebContext = current_app.extensions["relay"]
    body, content_type = metrics.render(ctx.redis, ctx.registry.names())
    return Response(body, content_type=content_type)
