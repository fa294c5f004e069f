"""Every admin request passes here: is the admin page open, who is asking (a script with
the bearer token, or a browser with a login session), did a session's POST come from this
page (CSRF), and the headers that keep the pages out of caches and frames. Refusals are JSON
for scripts and a small page for browsers."""

from __future__ import annotations

from typing import Any

from flask import current_app, g, make_response, redirect, render_template, request, url_for
from redis import RedisError
from werkzeug.wrappers import Response

from relay.admin.auth import (
    CSRF_FIELD,
    SESSION_COOKIE,
    SESSION_SECONDS,
    AdminSession,
    FailedLogins,
    Sessions,
    bearer_token,
)
from relay.admin.blueprint import (
    COOKIE_PATH,
    Admin,
    Refused,
    bp,
    client,
    context,
    is_api,
    token,
    wants_json,
)
from relay.admin.view import ago, iso, one_line, pretty, utc_text
from relay.delivery.letter_context import as_text as about_text
from relay.errors import ApiError, error_response

_PUBLIC = {"admin.login", "admin.static"}  # reachable without credentials (when enabled)
# Pages hold customer data and action buttons: no caching, no framing (clickjacking), no
# scripts at all, forms only to this relay.
_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


@bp.before_request
def _guard() -> Response | None:
    if not context().settings.admin_token:
        raise ApiError(
            404, "admin_disabled", "the admin page is disabled: set RELAY_ADMIN_TOKEN to open it"
        )
    if request.endpoint in _PUBLIC:
        return None
    admin = _authenticate()
    if admin is None:
        if is_api():
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
    if is_api():
        return None  # the API takes the bearer header only
    session = current_session()
    return None if session is None else Admin("session", session)


def _check_token(given: str) -> None:
    check = FailedLogins(context().redis).check(client(), given, token())
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


def current_session() -> AdminSession | None:
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    session = Sessions(context().redis, token()).resume(cookie)
    if session is None:
        g.drop_cookie = True  # expired, logged out or signed under an older token
    return session


def set_session_cookie(response: Response, value: str) -> None:
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


def drop_session_cookie(response: Response) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="Strict", secure=request.is_secure
    )


@bp.after_request
def _headers(response: Response) -> Response:
    if g.get("drop_cookie"):
        drop_session_cookie(response)
    if request.endpoint != "admin.static":
        response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = _CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


@bp.errorhandler(Refused)
def _refused(exc: Refused) -> Response:
    if wants_json():
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
        "sandbox": context().settings.sandbox,
        "ago": ago,
        "utc": utc_text,
        "iso": iso,
        "pretty": pretty,
        "one_line": one_line,
        "about_text": about_text,
    }
