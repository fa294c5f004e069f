"""Liveness and readiness for orchestrators."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from redis import RedisError

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
