"""POST /storefront/back-in-stock and GET /storefront/notify-me.js.

Order of checks for a POST: the storefront is on (404 storefront_disabled), the Origin is
one of the shop's (403 origin_not_allowed), the client address is within its limit (429),
the content type (415) and size (413), the body (400 malformed_body), the honeypot (400
honeypot), the fields (400 invalid_request, with `details` per field), the email within its
limit (429), a variant the relay knows is not one of the product's (400 unknown_variant),
then stored (202) or already asked within the dedup window (200 duplicate). Redis down at
any step is 503: nothing was stored, and the widget says "try again later".

Every POST is counted once in relay_storefront_requests_total{outcome}; preflights are not.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from dataclasses import dataclass

import orjson
from flask import Blueprint, Response, current_app, request
from redis import Redis, RedisError
from werkzeug.exceptions import RequestEntityTooLarge

from mappers.storefront.mapper import NAME, TOPIC
from relay import stats
from relay.errors import ApiError
from relay.events import RawEvent, new_event_id
from relay.intake.web_context import WebContext
from relay.runtime import metrics
from relay.storefront import cors, widget
from relay.storefront.catalog import Catalog
from relay.storefront.limits import StorefrontLimits
from relay.storefront.recent import RecentRequests
from relay.storefront.validation import (
    CONTENT_TYPES,
    MAX_BODY_BYTES,
    Invalid,
    back_in_stock_request,
    check_honeypot,
    read_fields,
)

bp = Blueprint("storefront", __name__, url_prefix="/storefront")
log = logging.getLogger("relay.storefront")
BACK_IN_STOCK = "storefront.back_in_stock"


@dataclass
class Storefront:
    """What the endpoint keeps per app, beside the web context."""

    redis: Redis
    limits: StorefrontLimits
    catalog: Catalog
    recent: RecentRequests

    @classmethod
    def on(cls, redis: Redis) -> Storefront:
        return cls(redis, StorefrontLimits(redis), Catalog(redis), RecentRequests(redis))


@bp.record_once
def _install(state) -> None:
    ctx: WebContext = state.app.extensions["relay"]
    state.app.extensions["relay.storefront"] = Storefront.on(ctx.redis)


def _context() -> tuple[WebContext, Storefront]:
    ctx: WebContext = current_app.extensions["relay"]
    if not ctx.settings.storefront_origins:
        raise ApiError(
            404,
            "storefront_disabled",
            "the storefront endpoints are off on this relay (RELAY_STOREFRONT_ORIGINS is unset)",
        )
    return ctx, current_app.extensions["relay.storefront"]


@bp.after_request
def _cors(response: Response) -> Response:
    if request.endpoint == BACK_IN_STOCK:
        ctx: WebContext = current_app.extensions["relay"]
        origins = ctx.settings.storefront_origins
        cors.add_cors_headers(response.headers, request.headers.get("Origin"), origins)
    return response


class Refused(ApiError):
    """A refusal, with the outcome it is counted under."""

    def __init__(self, outcome: str, status: int, code: str, message: str, **kwargs):
        super().__init__(status, code, message, **kwargs)
        self.outcome = outcome


def _unavailable() -> Refused:
    return Refused(
        "unavailable",
        503,
        "queue_unavailable",
        "the relay cannot take requests right now; nothing was stored: try again later",
        headers={"Retry-After": "30"},
    )


def _rate_limited(outcome: str, retry_after: int, message: str) -> Refused:
    return Refused(outcome, 429, "rate_limited", message, headers={"Retry-After": str(retry_after)})


@dataclass
class Seen:
    """What a POST was about, as far as it got: for the admin's list of recent requests."""

    listed: bool = False  # past the address limit (a flood stopped there is not listed)
    email: str | None = None
    product_id: str | None = None
    variant_id: str | None = None


@bp.route("/back-in-stock", methods=["POST", "OPTIONS"], provide_automatic_options=False)
def back_in_stock() -> Response:
    ctx, storefront = _context()
    origin = request.headers.get("Origin")
    if request.method == "OPTIONS":
        if not cors.allowed(origin, ctx.settings.storefront_origins):
            raise _origin_refusal(origin)
        answer = Response(status=204, headers=cors.preflight_headers())
        del answer.headers["Content-Type"]  # no body
        return answer
    seen = Seen()
    try:
        outcome, answer = _take(ctx, storefront, origin, seen)
    except Refused as refused:
        _settle(storefront, refused.outcome, seen, refused.code)
        raise
    _settle(storefront, outcome, seen, "")
    return answer


def _origin_refusal(origin: str | None) -> Refused:
    if origin is None:
        message = "no Origin header: this endpoint takes requests from the shop's own pages"
    else:
        message = "this origin may not post here (see RELAY_STOREFRONT_ORIGINS)"
    return Refused("origin_not_allowed", 403, "origin_not_allowed", message)


def _take(
    ctx: WebContext, storefront: Storefront, origin: str | None, seen: Seen
) -> tuple[str, Response]:
    """(outcome, answer) of one POST, or Refused."""
    if not cors.allowed(origin, ctx.settings.storefront_origins):
        raise _origin_refusal(origin)
    try:
        verdict = storefront.limits.address(request.remote_addr or "")
    except RedisError:
        raise _unavailable() from None
    if not verdict.allowed:
        raise _rate_limited(
            "rate_limited_address",
            verdict.retry_after,
            "too many requests from this address: try again later",
        )
    seen.listed = True
    body = _body()
    try:
        raw = read_fields(body, request.mimetype)
    except Invalid as exc:
        raise Refused("invalid", 400, exc.code, exc.message) from None
    seen.email, seen.product_id, seen.variant_id = (
        _text(raw.get("email")),
        _text(raw.get("productId")),
        _text(raw.get("variantId")),
    )
    try:
        check_honeypot(raw)
        checked = back_in_stock_request(raw)
    except Invalid as exc:
        outcome = "honeypot" if exc.code == "honeypot" else "invalid"
        raise Refused(outcome, 400, exc.code, exc.message, details=exc.details) from None
    try:
        verdict = storefront.limits.email(checked["email"])
        problem = storefront.catalog.variant_problem(checked["productId"], checked.get("variantId"))
    except RedisError:
        raise _unavailable() from None
    if not verdict.allowed:
        raise _rate_limited(
            "rate_limited_email",
            verdict.retry_after,
            "too many requests for this email address: try again later",
        )
    if problem:
        raise Refused("invalid", 400, "unknown_variant", problem, details={"variantId": [problem]})
    return _store(ctx, checked, origin or "")


def _body() -> bytes:
    """The body, or Refused when its type or size is not what the endpoint takes."""
    if request.mimetype not in CONTENT_TYPES:
        raise Refused(
            "unsupported_media_type",
            415,
            "unsupported_media_type",
            f"send {' or '.join(CONTENT_TYPES)}",
        )
    # One byte past the limit: a body without Content-Length (chunked) shows it that way.
    request.max_content_length = MAX_BODY_BYTES + 1
    try:
        body: bytes | None = request.get_data(cache=False)
    except RequestEntityTooLarge:  # its Content-Length says so: not read
        body = None
    if body is None or len(body) > MAX_BODY_BYTES:
        raise Refused(
            "body_too_large", 413, "body_too_large", f"the body is over {MAX_BODY_BYTES} bytes"
        )
    return body


def _text(value: object) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value.strip() if isinstance(value, str) else None


def dedup_key(request_: dict[str, str]) -> str:
    """One request per email, product and variant within the dedup window (a second click
    is a duplicate, whatever its titles)."""
    who = [request_["productId"], request_.get("variantId") or "", request_["email"].lower()]
    return "r:" + hashlib.sha256(json.dumps(who).encode()).hexdigest()


def _store(ctx: WebContext, checked: dict[str, str], origin: str) -> tuple[str, Response]:
    event = RawEvent(
        id=new_event_id(),
        platform=NAME,
        topic=TOPIC,
        received_at=time.time(),
        body=orjson.dumps(checked),
        content_type="application/json",
        headers={"origin": origin},
    )
    try:
        stored = ctx.acceptor.accept(event, dedup_key(checked))
    except RedisError:
        raise _unavailable() from None
    if not stored:
        return "duplicate", _json({"status": "duplicate"}, 200)
    return "accepted", _json({"status": "accepted", "id": event.id}, 202)


def _json(body: dict, status: int) -> Response:
    return Response(orjson.dumps(body), status, mimetype="application/json")


def _settle(storefront: Storefront, outcome: str, seen: Seen, code: str) -> None:
    """Count, log (no email), and keep the storefront's stats and recent requests for the
    admin page."""
    metrics.STOREFRONT_REQUESTS.labels(outcome).inc()
    level = logging.INFO if outcome in ("accepted", "duplicate") else logging.WARNING
    log.log(
        level,
        "storefront request",
        extra={
            "platform": NAME,
            "outcome": outcome,
            "code": code or None,
            "remote": request.remote_addr,
        },
    )
    if not seen.listed:
        return  # a flood stopped by the address limit writes nothing more
    # Best effort: the answer does not change, these are only for people. The accept
    # counted a duplicate as stored: stats subtract it (as for webhooks).
    with contextlib.suppress(RedisError):
        if outcome == "duplicate":
            stats.record(storefront.redis, NAME, "duplicate")
        elif outcome != "accepted":
            stats.record(storefront.redis, NAME, "rejected", code=code)
        storefront.recent.add(outcome, seen.email, seen.product_id, seen.variant_id)


@bp.get("/notify-me.js")
def notify_me() -> Response:
    _context()
    return widget.response(request)
