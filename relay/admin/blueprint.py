"""The admin blueprint and what its pages, actions and API share.

The admin page (/admin/) shows what each platform sent lately, the queue, dead letters with
replay and purge, and sandbox records; /admin/api/... is a small JSON API for scripts.

    relay/admin/guard.py    who may ask (bearer token or login session), CSRF, headers, errors
    relay/admin/pages.py    what a browser GETs: login, overview, a dead letter, confirmations
    relay/admin/actions.py  the forms' POSTs: replay, purge
    relay/admin/api.py      the JSON API (bearer only)
    relay/admin/auth.py     sessions, CSRF tokens, the failed-login count
    relay/admin/view.py     what the pages show, computed from Redis

Closed (404 admin_disabled) unless RELAY_ADMIN_TOKEN is set. Pages take the token as a
bearer header or a login session. The JSON API takes the bearer header only: a browser never
sends that by itself, so the API needs no CSRF token. GET never changes anything; replay,
purge and logout are POSTs, and with a session they carry the session's CSRF token.

Replay and purge mean what `relay dlq replay` and `relay dlq purge` mean.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from flask import Blueprint, current_app, redirect, request, url_for
from werkzeug.wrappers import Response

from relay.admin.auth import AdminSession, bearer_token
from relay.admin.view import QueueState
from relay.delivery.commerce_api import SandboxClient
from relay.delivery.deadletters import DeadLetter, DeadLetters
from relay.inbox import Inbox
from relay.intake.web_context import WebContext
from relay.redaction import redact, secrets_of

bp = Blueprint(
    "admin",
    "relay.admin",  # templates/ and static/ are found beside the package
    url_prefix="/admin",
    template_folder="templates",
    static_folder="static/admin",
    static_url_path="/static",  # served at /admin/static/<file>
)

COOKIE_PATH = "/admin"  # the session cookie never travels with webhooks or /metrics
DEAD_LETTERS_SHOWN = 50  # as `relay dlq list`
SANDBOX_RECORDS_SHOWN = 20  # as `relay sandbox`


@dataclass(frozen=True)
class Admin:
    """Who is asking: a script with the bearer token, or a browser with a session."""

    via: str  # "bearer" | "session"
    session: AdminSession | None = None


class Refused(Exception):
    """An admin request refused: a JSON error for scripts, a small page for browsers."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


def context() -> WebContext:
    return current_app.extensions["relay"]


def token() -> str:
    return context().settings.admin_token or ""


def is_api() -> bool:
    return (request.endpoint or "").startswith("admin.api_")


def wants_json() -> bool:
    # Scripts get JSON errors. Only a bearer header counts: a proxy's Basic auth in front of
    # the relay puts an Authorization header on every browser request too.
    return is_api() or bearer_token(request.headers.get("Authorization")) is not None


def client() -> str:
    # The proxy's X-Forwarded-For only with RELAY_TRUST_PROXY=yes (ProxyFix, relay/app.py);
    # otherwise the connection's address, which a client cannot choose.
    return request.remote_addr or "unknown"


def queue_state() -> QueueState:
    ctx = context()
    # ZCARD, not the registry's count: that one cleans the registry up first, and a GET
    # changes nothing.
    scheduled = ctx.redis.zcard(ctx.events.queue.scheduled_job_registry.key)
    waiting = Inbox(ctx.redis).waiting()  # webhooks stored, not yet handled by a worker
    return QueueState(waiting, int(scheduled), DeadLetters(ctx.redis).count())


def sandbox_records(limit: int) -> list[dict[str, Any]]:
    ctx = context()
    return redact(SandboxClient(ctx.redis).latest(limit), secrets_of(ctx.settings))


def letter_dict(letter: DeadLetter) -> dict[str, Any]:
    """Everything kept, redacted; `about` worked out for a letter from before it existed."""
    return redact({**asdict(letter), "about": letter.context()}, secrets_of(context().settings))


def platform_arg(source: Any) -> str | None:
    return (source.get("platform") or "").strip() or None


def back(notice: str, n: int = 0) -> Response:
    """Back to the overview (with the list filter the form came from) and a notice."""
    args: dict[str, Any] = {"notice": notice, "n": n}
    platform = platform_arg(request.form)
    if platform:
        args["platform"] = platform
    return redirect(url_for("admin.overview", **args), 303)
