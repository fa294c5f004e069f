"""POST /webhooks/<platform>[/<token>]: prove, store, answer. Nothing more on this hot path.

Order of checks: known and enabled platform (404), method (405), a client refused after
repeated authentication failures (429, unchecked), size (413, with or without
Content-Length), a body that stops arriving (408), handshake (200), authentication (401),
content type and shape (415/400), topic (200 ignored), duplicate (200 duplicate), stored
(202) or Redis down (503). Mapping happens later, in the worker.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from typing import Any

import orjson
from flask import Blueprint, Response, current_app, jsonify, request
from redis import RedisError
from werkzeug.exceptions import ClientDisconnected

from relay import stats
from relay.errors import ApiError
from relay.events import RawEvent, new_event_id
from relay.intake.web_context import WebContext
from relay.mapping import (
    MAX_TOPIC_LENGTH,
    AuthError,
    BadRequest,
    IncomingRequest,
    Intake,
    Platform,
)
from relay.runtime import metrics
from relay.settings import secret_values
from relay.verifiers import verify_any

bp = Blueprint("ingest", __name__)
log = logging.getLogger("relay.ingest")
ANY_METHOD = ["GET", "POST", "PUT", "PATCH", "DELETE"]
JSON = "application/json"


def content_key(topic: str, body: bytes, query: str) -> str:
    """Dedup key for platforms without a unique delivery id: the same content is the same
    event (WooCommerce bodies carry date_modified, so a real change is new content)."""
    digest = hashlib.sha256(topic.encode() + b"\0" + query.encode() + b"\0" + body)
    return "c:" + digest.hexdigest()


def _platform(ctx: WebContext, name: str, token: str | None) -> tuple[Platform, str]:
    platform = ctx.registry.get(name)
    if platform is None:
        raise ApiError(404, "unknown_platform", f"this relay has no platform named {name!r}")
    secret = ctx.settings.secret_for(platform.name)
    if secret is None:
        raise ApiError(404, "platform_disabled", f"{platform.title} is not enabled on this relay")
    if token is not None and not platform.token_in_path:
        raise ApiError(
            404, "not_found", f"{platform.title} webhooks are posted to /webhooks/{name}"
        )
    if request.method not in platform.methods:
        raise ApiError(
            405,
            "method_not_allowed",
            f"{platform.title} webhooks use {', '.join(platform.methods)}",
            {"Allow": ", ".join(platform.methods)},
        )
    return platform, secret


@bp.route("/webhooks/<name>", methods=ANY_METHOD)
@bp.route("/webhooks/<name>/<token>", methods=ANY_METHOD)
def receive(name: str, token: str | None = None):
    ctx: WebContext = current_app.extensions["relay"]
    platform, secret = _platform(ctx, name, token)
    client = request.remote_addr or ""
    wait = ctx.auth_throttle.retry_after(client)  # no Redis: a dict lookup
    if wait is not None:
        metrics.WEBHOOKS.labels(platform.name, "rejected", "too_many_failures").inc()
        raise ApiError(
            429,
            "too_many_failures",
            "too many failed authentications from this address: try again later",
            {"Retry-After": str(wait)},
        )
    limit = ctx.settings.max_body_bytes
    # Read one byte past the limit: werkzeug stops quietly at the limit of a body that has
    # no Content-Length (chunked), so only that byte shows the body was too large.
    request.max_content_length = limit + 1
    try:
        body = request.get_data(cache=False)  # raises 413 past a Content-Length over it
    except ClientDisconnected as exc:
        # werkzeug reports any failed read as a disconnect (400); one that ran out of time
        # is a sender gone quiet, or too slow, mid-body (relay/intake/gevent_worker.py's deadlines).
        if isinstance(exc.__context__, TimeoutError):
            raise ApiError(
                408, "body_timeout", "the body did not arrive in time; nothing was accepted"
            ) from None
        raise
    if len(body) > limit:
        raise ApiError(413, "body_too_large", "the request body is larger than this relay accepts")
    query = request.query_string.decode("latin-1")
    incoming = IncomingRequest(
        method=request.method,
        headers=request.headers,
        body=body,
        query=query,
        content_type=request.mimetype,
        path_token=token,
    )
    if platform.is_handshake(incoming):
        log.info("handshake", extra={"platform": platform.name, "outcome": "handshake"})
        return jsonify(status="ok"), 200
    values = secret_values(secret)
    try:
        matched = verify_any(platform.verifier, incoming, values)
        intake = platform.describe(incoming)
    except AuthError as exc:
        ctx.auth_throttle.failed(client)
        _count(ctx, platform.name, "rejected", exc.code)
        raise ApiError(401, exc.code, exc.message) from None
    except BadRequest as exc:
        _count(ctx, platform.name, "rejected", exc.code)
        raise ApiError(exc.status, exc.code, exc.message, details=exc.details) from None
    if len(values) > 1:  # rotating: which value senders still use (never the value itself)
        metrics.SECRET_MATCHES.labels(platform.name, str(matched)).inc()
    if len(intake.topic) > MAX_TOPIC_LENGTH:  # any platform's: it is logged and counted
        _count(ctx, platform.name, "rejected", "topic_too_long")
        raise ApiError(400, "topic_too_long", f"the topic is over {MAX_TOPIC_LENGTH} characters")
    if intake.topic not in platform.topics:
        reason = platform.ignored_topics.get(intake.topic, f"topic {intake.topic!r} is not used")
        _count(ctx, platform.name, "ignored", "topic", topic=intake.topic)
        return jsonify(status="ignored", reason=reason), 200
    status, answer = store(ctx, platform, intake, incoming, request.content_type or "", client)
    return Response(answer, status, mimetype=JSON)


def is_stored_topic(platform: Platform, intake: Intake) -> bool:
    """A topic this relay stores (else it is answered 400 topic_too_long or 200 ignored)."""
    return len(intake.topic) <= MAX_TOPIC_LENGTH and intake.topic in platform.topics


def store(
    ctx: WebContext,
    platform: Platform,
    intake: Intake,
    incoming: IncomingRequest,
    content_type: str,
    remote: str,
) -> tuple[int, bytes]:
    """Store a proven webhook of a wanted topic: (202, the accepted answer) or (200, the
    duplicate answer); ApiError 503 when Redis cannot store it. Shared with the fast path
    (relay/intake/fast_path.py), which answers what this returns without Flask."""
    body, query = incoming.body, incoming.query
    event = RawEvent(
        id=new_event_id(),
        platform=platform.name,
        topic=intake.topic,
        received_at=time.time(),
        body=body,
        content_type=content_type,
        query=query,
        headers=intake.headers,
    )
    dedup_key = intake.delivery_id or content_key(intake.topic, body, query)
    try:
        stored = ctx.acceptor.accept(event, dedup_key)
    except RedisError:
        metrics.WEBHOOKS.labels(platform.name, "rejected", "queue_unavailable").inc()
        log.error(
            "queue unavailable",
            extra={
                "platform": platform.name,
                "topic": intake.topic,
                "outcome": "rejected",
                "code": "queue_unavailable",
            },
        )
        raise ApiError(
            503,
            "queue_unavailable",
            "the relay cannot store events right now; nothing was accepted",
            {"Retry-After": "30"},
        ) from None
    if not stored:
        _count(ctx, platform.name, "duplicate", "", topic=intake.topic, remote=remote)
        return 200, DUPLICATE
    _accepted(platform.name).inc()
    # DEBUG: the worker logs each event's outcome with its id; one more line per webhook
    # here would cost a tenth of ingest's time. Its fields are built only when it is on.
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "accepted",
            extra={
                "event_id": event.id,
                "platform": platform.name,
                "topic": intake.topic,
                "outcome": "accepted",
            },
        )
    # orjson, not jsonify: the one answer every stored webhook gets.
    return 202, orjson.dumps({"status": "accepted", "id": event.id})


# What jsonify(status="duplicate") answers, byte for byte.
DUPLICATE = orjson.dumps({"status": "duplicate"}) + b"\n"
_ACCEPTED: dict[str, Any] = {}


def _accepted(platform: str) -> Any:
    """The accepted counter of one platform, labelled once per process (labels() takes a
    lock and builds a key on every call)."""
    counter = _ACCEPTED.get(platform)
    if counter is None:
        counter = _ACCEPTED[platform] = metrics.WEBHOOKS.labels(platform, "accepted", "")
    return counter


def _count(
    ctx: WebContext,
    platform: str,
    outcome: str,
    reason: str,
    topic: str = "",
    remote: str | None = None,
) -> None:
    """Metrics, the per-platform stats in Redis (best effort: a Redis outage must not
    change the answer), and one log line."""
    metrics.WEBHOOKS.labels(platform, outcome, reason).inc()
    with contextlib.suppress(RedisError):
        stats.record(ctx.redis, platform, outcome, code=reason)
    level = logging.WARNING if outcome == "rejected" else logging.INFO
    log.log(
        level,
        outcome,
        extra={
            "platform": platform,
            "topic": topic or None,
            "outcome": outcome,
            "code": reason or None,
            "remote": request.remote_addr if remote is None else remote,
        },
    )
