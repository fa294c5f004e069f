"""The admin page (/admin/): what each platform sent lately, the queue, dead letters with
replay and purge, sandbox records; and a small JSON API for scripts (/admin/api/...).

Closed (404 admin_disabled) unless RELAY_ADMIN_TOKEN is set. Pages take the token as a
bearer header or a login session (relay/admin_auth.py). The JSON API takes the bearer header
only: a browser never sends that by itself, so the API needs no CSRF token. GET never
changes anything; replay, purge and logout are POSTs, and with a session they carry the
session's CSRF token.

Replay and purge mean what `relay dlq replay` and `relay dlq purge` mean.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from flask import (
    Blueprint,
    current_app,
    g,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from redis import RedisError
from werkzeug.wrappers import Response

from relay.admin_auth import (
    CSRF_FIELD,
    SESSION_COOKIE,
    SESSION_SECONDS,
    AdminSession,
    FailedLogins,
    Sessions,
    bearer_token,
)
from relay.admin_view import (
    QueueState,
    ago,
    iso,
    one_line,
    platform_rows,
    pretty,
    utc_text,
    without_credentials,
)
from relay.commerce_api import SandboxClient
from relay.deadletters import DeadLetter, DeadLetters, replay, replay_all
from relay.errors import ApiError, error_response
from relay.inbox import Inbox
from relay.redaction import redact, secrets_of
from relay.web_context import WebContext

bp = Blueprint(
    "admin",
    __name__,
    url_prefix="/admin",
    template_folder="templates",
    static_folder="static/admin",
    static_url_path="/static",  # served at /admin/static/<file>
)

COOKIE_PATH = "/admin"  # the session cookie never travels with webhooks or /metrics
DEAD_LETTERS_SHOWN = 50  # as `relay dlq list`
SANDBOX_RECORDS_SHOWN = 20  # as `relay sandbox`
API_MAX_LIMIT = 1000
_PUBLIC = {"admin.login", "admin.static"}  # reachable without credentials (when enabled)
# Pages hold customer data and action buttons: no caching, no framing (clickjacking), no
# scripts at all, forms only to this relay.
_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
_NOTICES = {
    "replayed": "Replayed {n} dead letter{s}: back on the queue, to be mapped again with "
    "today's code and delivered.",
    "purged": "Deleted {n} dead letter{s} for good.",
    "gone": "That dead letter is no longer there (replayed or purged meanwhile).",
    "logged_out": "You are logged out.",
}


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


def _ctx() -> WebContext:
    return current_app.extensions["relay"]


def _token() -> str:
    return _ctx().settings.admin_token or ""


def _is_api() -> bool:
    return (request.endpoint or "").startswith("admin.api_")


def _wants_json() -> bool:
    # Scripts get JSON errors. Only a bearer header counts: a proxy's Basic auth in front of
    # the relay puts an Authorization header on every browser request too.
    return _is_api() or bearer_token(request.headers.get("Authorization")) is not None


# --- authentication, CSRF and headers, for every admin request -----------------------------


@bp.before_request
def _guard() -> Response | None:
    if not _ctx().settings.admin_token:
        raise ApiError(
            404, "admin_disabled", "the admin page is disabled: set RELAY_ADMIN_TOKEN to open it"
        )
    if request.endpoint in _PUBLIC:
        return None
    admin = _authenticate()
    if admin is None:
        if _is_api():
            raise Refused(
                401,
                "unauthorized",
                "send the admin token as Authorization: Bearer <RELAY_ADMIN_TOKEN>",
                {"WWW-Authenticate": 'Bearer realm="relay admin"'},
            )
        return redirect(url_for("admin.login"), 303)
    # Only the cookie is sent by a browser on its own, so only a session's POSTs must prove
    # that the form came from this page.
    if (
        request.method == "POST"
        and admin.session is not None
        and not Sessions.csrf_ok(admin.session, request.form.get(CSRF_FIELD))
    ):
        raise Refused(
            403,
            "csrf_failed",
            "this form is stale or did not come from the admin page: reload and retry",
        )
    g.admin = admin
    return None


def _authenticate() -> Admin | None:
    given = bearer_token(request.headers.get("Authorization"))
    if given is not None:
        _check_token(given)
        return Admin("bearer")
    if _is_api():
        return None  # the API takes the bearer header only
    session = _current_session()
    return None if session is None else Admin("session", session)


def _client() -> str:
    # The proxy's X-Forwarded-For only with RELAY_TRUST_PROXY=yes (ProxyFix, relay/app.py);
    # otherwise the connection's address, which a client cannot choose.
    return request.remote_addr or "unknown"


def _check_token(given: str) -> None:
    check = FailedLogins(_ctx().redis).check(_client(), given, _token())
    if check.blocked:
        raise Refused(
            429,
            "too_many_attempts",
            "too many wrong admin tokens from this address: wait a minute",
            {"Retry-After": str(check.retry_after)},
        )
    if not check.ok:
        raise Refused(
            401,
            "bad_admin_token",
            "the admin token is wrong",
            {"WWW-Authenticate": 'Bearer realm="relay admin", error="invalid_token"'},
        )


def _current_session() -> AdminSession | None:
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    session = Sessions(_ctx().redis, _token()).resume(cookie)
    if session is None:
        g.drop_cookie = True  # expired, logged out or signed under an older token
    return session


def _set_session_cookie(response: Response, value: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=SESSION_SECONDS,
        path=COOKIE_PATH,
        httponly=True,
        samesite="Strict",
        # Secure only when this request came over HTTPS: tests and a first look run on
        # http://127.0.0.1, where a Secure cookie would never be sent back. Behind a proxy
        # that terminates TLS, request.is_secure is true only when the app trusts
        # X-Forwarded-Proto (werkzeug's ProxyFix).
        secure=request.is_secure,
    )


def _drop_session_cookie(response: Response) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="Strict", secure=request.is_secure
    )


@bp.after_request
def _headers(response: Response) -> Response:
    if g.get("drop_cookie"):
        _drop_session_cookie(response)
    if request.endpoint != "admin.static":
        response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = _CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


@bp.errorhandler(Refused)
def _refused(exc: Refused) -> Response:
    if _wants_json():
        return error_response(exc.status, exc.code, exc.message, exc.headers)
    page = render_template("admin/error.html", status=exc.status, message=exc.message)
    response = make_response(page, exc.status)
    response.headers.update(exc.headers)
    return response


@bp.errorhandler(RedisError)
def _redis_down(exc: RedisError) -> Response:
    current_app.logger.warning("admin: Redis unavailable (%s)", type(exc).__name__)
    return _refused(
        Refused(503, "redis_unavailable", "Redis does not answer: nothing can be read or changed")
    )


@bp.context_processor
def _template_helpers() -> dict[str, Any]:
    admin: Admin | None = g.get("admin")
    return {
        "admin": admin,
        "csrf_field": CSRF_FIELD,
        "csrf_token": admin.session.csrf_token if admin and admin.session else "",
        "sandbox": _ctx().settings.sandbox,
        "ago": ago,
        "utc": utc_text,
        "iso": iso,
        "pretty": pretty,
        "one_line": one_line,
    }


# --- login -----------------------------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | tuple[str, int]:
    if request.method == "GET":
        if _current_session() is not None:
            return redirect(url_for("admin.overview"), 303)
        return render_template("admin/login.html", notice=_notice()), 200
    # The token typed is never put back into the page.
    check = FailedLogins(_ctx().redis).check(_client(), request.form.get("token", ""), _token())
    if check.blocked:
        error = "Too many wrong tokens were tried. Wait a minute, then try again."
        page = make_response(render_template("admin/login.html", error=error), 429)
        page.headers["Retry-After"] = str(check.retry_after)
        return page
    if not check.ok:
        return render_template("admin/login.html", error="That is not the admin token."), 401
    sessions = Sessions(_ctx().redis, _token())
    old = _current_session()
    if old is not None:
        sessions.end(old)
    _, cookie = sessions.start()  # a new id at every login: no session fixation
    g.drop_cookie = False
    response = redirect(url_for("admin.overview"), 303)
    _set_session_cookie(response, cookie)
    return response


@bp.post("/logout")
def logout() -> Response:
    admin: Admin = g.admin
    if admin.session is not None:
        Sessions(_ctx().redis, _token()).end(admin.session)
    response = redirect(url_for("admin.login", notice="logged_out"), 303)
    _drop_session_cookie(response)
    return response


# --- pages -----------------------------------------------------------------------------------


def _notice() -> str | None:
    """The message of a redirect after an action: a fixed text, never the query's words."""
    template = _NOTICES.get(request.args.get("notice", ""))
    if template is None:
        return None
    n = request.args.get("n", default=0, type=int)
    return template.format(n=n, s="" if n == 1 else "s")


def _queue_state() -> QueueState:
    ctx = _ctx()
    # ZCARD, not the registry's count: that one cleans the registry up first, and a GET
    # changes nothing.
    scheduled = ctx.redis.zcard(ctx.events.queue.scheduled_job_registry.key)
    waiting = Inbox(ctx.redis).waiting()  # webhooks stored, not yet handled by a worker
    return QueueState(waiting, int(scheduled), DeadLetters(ctx.redis).count())


def _sandbox_records(limit: int) -> list[dict[str, Any]]:
    ctx = _ctx()
    return redact(SandboxClient(ctx.redis).latest(limit), secrets_of(ctx.settings))


def _letter_dict(letter: DeadLetter) -> dict[str, Any]:
    return redact(asdict(letter), secrets_of(_ctx().settings))


def _platform_arg(source: Any) -> str | None:
    return (source.get("platform") or "").strip() or None


@bp.get("/", strict_slashes=False)
def overview() -> str:
    ctx = _ctx()
    platform = _platform_arg(request.args)
    store = DeadLetters(ctx.redis)
    return render_template(
        "admin/overview.html",
        notice=_notice(),
        platforms=platform_rows(ctx.redis, ctx.registry, ctx.settings),
        queue=_queue_state(),
        letters=store.list(platform, DEAD_LETTERS_SHOWN),
        letters_total=store.count(platform),
        platform_filter=platform,
        records=_sandbox_records(SANDBOX_RECORDS_SHOWN),
        api_url=without_credentials(ctx.settings.commerce_api_url),
    )


@bp.get("/dead-letters/<event_id>")
def dead_letter(event_id: str) -> str:
    letter = DeadLetters(_ctx().redis).get(event_id)
    if letter is None:
        raise Refused(404, "not_found", "no such dead letter (replayed or purged meanwhile?)")
    return render_template("admin/dead_letter.html", letter=_letter_dict(letter))


def _back(notice: str, n: int = 0) -> Response:
    """Back to the overview (with the list filter the form came from) and a notice."""
    args: dict[str, Any] = {"notice": notice, "n": n}
    platform = _platform_arg(request.form)
    if platform:
        args["platform"] = platform
    return redirect(url_for("admin.overview", **args), 303)


@bp.post("/dead-letters/<event_id>/replay")
def replay_one(event_id: str) -> Response:
    letter = DeadLetters(_ctx().redis).get(event_id)
    if letter is None:  # a second click, or someone else was faster
        return _back("gone")
    return _back("replayed", replay(_ctx().events, [letter]))


@bp.post("/dead-letters/replay", endpoint="replay_all")  # the name the pages use
def replay_every() -> Response:
    """Every dead letter, or every one of a platform (`relay dlq replay --all [-p P]`), a
    page at a time."""
    return _back("replayed", replay_all(_ctx().events, _platform_arg(request.form)))


@bp.get("/dead-letters/<event_id>/purge")
def confirm_purge_one(event_id: str) -> str:
    letter = DeadLetters(_ctx().redis).get(event_id)
    if letter is None:
        raise Refused(404, "not_found", "no such dead letter (replayed or purged meanwhile?)")
    return render_template("admin/purge.html", letters=[letter], total=1, single=letter)


@bp.post("/dead-letters/<event_id>/purge")
def purge_one(event_id: str) -> Response:
    store = DeadLetters(_ctx().redis)
    letter = store.get(event_id)
    if letter is None:
        return _back("gone")
    store.remove([letter])
    return _back("purged", 1)


@bp.get("/dead-letters/purge")
def confirm_purge_all() -> str:
    """Purging all asks first, as `relay dlq purge --all` does."""
    platform = _platform_arg(request.args)
    store = DeadLetters(_ctx().redis)
    return render_template(
        "admin/purge.html",
        letters=store.list(platform, 20),  # the newest; the rest are counted, not loaded
        total=store.count(platform),
        platform_filter=platform,
        upto=repr(store.newest_dead_at(platform) or 0.0),
    )


@bp.post("/dead-letters/purge")
def purge_all() -> Response:
    try:
        # Only what the confirmation page counted: letters that died since are kept.
        upto = float(request.form["upto"])
    except (KeyError, ValueError):
        raise Refused(400, "bad_request", "confirm on the purge page first") from None
    purged = DeadLetters(_ctx().redis).purge(_platform_arg(request.form), upto)
    return _back("purged", purged)


# --- JSON API for scripts (bearer only) -------------------------------------------------------


def _limit_arg(default: int) -> int:
    limit = request.args.get("limit", default=default, type=int)
    if limit is None or not 1 <= limit <= API_MAX_LIMIT:
        raise Refused(400, "bad_request", f"limit: a whole number from 1 to {API_MAX_LIMIT}")
    return limit


@dataclass(frozen=True)
class Selection:
    """What a replay or purge request names: some letters, or all (of a platform)."""

    letters: list[DeadLetter]
    all: bool = False
    platform: str | None = None


def _api_selection() -> Selection:
    """{"ids": [...]} or {"all": true, "platform": P}: the CLI's `ID... | --all [-p P]`.
    Every id is checked before anything is done, as the CLI does."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise Refused(400, "bad_request", 'send JSON {"ids": [...]} or {"all": true}')
    ids, all_, platform = data.get("ids") or [], data.get("all") is True, data.get("platform")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise Refused(400, "bad_request", "ids: a list of dead letter ids")
    if platform is not None and not isinstance(platform, str):
        raise Refused(400, "bad_request", "platform: a platform name")
    if ids and all_:
        raise Refused(400, "bad_request", "give dead letter ids or all, not both")
    if all_:  # paged through by the action itself: never all loaded at once
        return Selection([], all=True, platform=platform or None)
    if not ids:
        raise Refused(400, "bad_request", "give dead letter ids, or all")
    store = DeadLetters(_ctx().redis)
    letters = []
    for event_id in ids:
        letter = store.get(event_id)
        if letter is None:
            raise Refused(404, "not_found", f"no dead letter {event_id!r}")
        letters.append(letter)
    return Selection(letters)


@bp.get("/api/status")
def api_status() -> Response:
    ctx = _ctx()
    return jsonify(
        sandbox=ctx.settings.sandbox,
        queue=_queue_state().to_dict(),
        platforms=[row.to_dict() for row in platform_rows(ctx.redis, ctx.registry, ctx.settings)],
        at=time.time(),
    )


@bp.get("/api/dead-letters")
def api_dead_letters() -> Response:
    """`relay dlq list --json`, with the total."""
    platform, limit = _platform_arg(request.args), _limit_arg(DEAD_LETTERS_SHOWN)
    store = DeadLetters(_ctx().redis)
    letters = store.list(platform, limit)
    secrets = secrets_of(_ctx().settings)
    return jsonify(
        total=store.count(platform),
        dead_letters=[redact(letter.summary(), secrets) for letter in letters],
    )


@bp.get("/api/dead-letters/<event_id>")
def api_dead_letter(event_id: str) -> Response:
    """`relay dlq show ID`."""
    letter = DeadLetters(_ctx().redis).get(event_id)
    if letter is None:
        raise Refused(404, "not_found", f"no dead letter {event_id!r}")
    return jsonify(_letter_dict(letter))


@bp.post("/api/dead-letters/<event_id>/replay")
def api_replay_one(event_id: str) -> Response:
    letter = DeadLetters(_ctx().redis).get(event_id)
    if letter is None:
        raise Refused(404, "not_found", f"no dead letter {event_id!r}")
    return jsonify(replayed=replay(_ctx().events, [letter]))


@bp.post("/api/dead-letters/replay")
def api_replay() -> Response:
    """`relay dlq replay ID... | --all [--platform P]`."""
    chosen = _api_selection()
    if chosen.all:
        return jsonify(replayed=replay_all(_ctx().events, chosen.platform))
    return jsonify(replayed=replay(_ctx().events, chosen.letters))


@bp.post("/api/dead-letters/purge")
def api_purge() -> Response:
    """`relay dlq purge ID... | --all [--platform P] --yes`."""
    chosen = _api_selection()
    store = DeadLetters(_ctx().redis)
    if chosen.all:
        return jsonify(purged=store.purge(chosen.platform))
    store.remove(chosen.letters)
    return jsonify(purged=len(chosen.letters))


@bp.get("/api/sandbox")
def api_sandbox() -> Response:
    """`relay sandbox --json`, and whether the relay is in sandbox mode now."""
    return jsonify(
        sandbox=_ctx().settings.sandbox, records=_sandbox_records(_limit_arg(SANDBOX_RECORDS_SHOWN))
    )
