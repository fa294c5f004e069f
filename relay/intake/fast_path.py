"""POST /webhooks/<platform>[/<token>] answered without Flask when the webhook is stored.

Flask's request handling (request and app contexts, routing, hooks, the response object)
cost about a fifth of the web process's time per webhook, more than everything the relay
itself checks (bench/, README "Performance"). This WSGI layer in front of the Flask app
takes a webhook POST, reads its body, and runs the same checks as the Flask view
(relay/intake/webhooks.py), none of which changes anything: known and enabled platform,
method, the auth throttle, size, handshake, signature, shape, topic. Only when every check
passes does it store the webhook (`webhooks.store`, the view's own code) and answer 202 (or
200 duplicate, 503) itself.

Anything else goes to the Flask app untouched, with the body it has read replayed as the
request's input (and a failed read replayed as the same failure): the view then checks
again, counts, logs and answers exactly as it always has. So a bad request gets the very
answer it got before, from the same code, and only stored webhooks take this path.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from werkzeug.datastructures import EnvironHeaders
from werkzeug.http import HTTP_STATUS_CODES, parse_options_header
from werkzeug.wsgi import get_content_length

from relay.errors import ApiError, error_response
from relay.intake import webhooks
from relay.intake.web_context import WebContext
from relay.mapping import IncomingRequest, Intake, Platform
from relay.runtime import metrics
from relay.settings import secret_values
from relay.verifiers import verify_any

PREFIX = "/webhooks/"
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class ReplayedInput:
    """The request body as the fast path read it, for the Flask view to read again: the
    same bytes, or the same error the read ended with."""

    def __init__(self, body: bytes, error: Exception | None = None):
        self._body = io.BytesIO(body)
        self._error = error

    def read(self, size: int | None = -1) -> bytes:
        if self._error is not None:
            raise self._error
        return self._body.read(-1 if size is None else size)

    def readline(self, size: int | None = -1) -> bytes:
        if self._error is not None:
            raise self._error
        return self._body.readline(-1 if size is None else size)


def route(path: str) -> tuple[str, str | None] | None:
    """(platform, token) for the paths the Flask view's routes match, else None."""
    if not path.startswith(PREFIX):
        return None
    name, slash, token = path[len(PREFIX) :].partition("/")
    if not name or (slash and (not token or "/" in token)):
        return None
    return name, (token if slash else None)


class WebhookFastPath:
    def __init__(self, app: Flask, wsgi_app: WsgiApp, ctx: WebContext):
        self.app = app
        self.flask = wsgi_app  # the Flask app's own WSGI callable: everything else
        self.ctx = ctx

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("REQUEST_METHOD") != "POST":
            return self.flask(environ, start_response)
        found = route(environ.get("PATH_INFO", ""))
        if found is None:
            return self.flask(environ, start_response)
        ctx, (name, token) = self.ctx, found
        platform = ctx.registry.get(name)
        secret = ctx.settings.secret_for(platform.name) if platform is not None else None
        client = environ.get("REMOTE_ADDR") or ""
        length = get_content_length(environ)
        if (
            platform is None
            or secret is None
            or (token is not None and not platform.token_in_path)
            or "POST" not in platform.methods
            or ctx.auth_throttle.retry_after(client) is not None
            or length is None  # chunked, or no length: Flask's rules apply
            or length > ctx.settings.max_body_bytes
        ):
            return self.flask(environ, start_response)
        try:
            body = environ["wsgi.input"].read(length) if length else b""
        except Exception as exc:  # a body that stopped (408), a dropped connection...
            return self._to_flask(environ, start_response, ReplayedInput(b"", exc))
        if len(body) != length:
            return self._to_flask(environ, start_response, ReplayedInput(body))
        try:
            checked = _checked(platform, secret, environ, body, token)
        except Exception:  # refused (401, 400, 415...): the view says how, and counts it
            checked = None
        if checked is None:
            return self._to_flask(environ, start_response, ReplayedInput(body))
        incoming, intake, matched, rotating = checked
        if rotating:
            metrics.SECRET_MATCHES.labels(platform.name, str(matched)).inc()
        try:
            status, answer = webhooks.store(
                ctx, platform, intake, incoming, environ.get("CONTENT_TYPE") or "", client
            )
        except ApiError as exc:  # 503: Redis could not store it
            return self._error(environ, start_response, exc)
        except Exception:
            # What the Flask app's handler does with an unexpected error (the event may be
            # stored already, so it cannot be handed over to be tried again).
            self.app.logger.exception("unhandled error")
            error = ApiError(500, "internal_error", "the relay failed to handle this request")
            return self._error(environ, start_response, error)
        start_response(
            f"{status} {HTTP_STATUS_CODES[status].upper()}",
            [("Content-Type", webhooks.JSON), ("Content-Length", str(len(answer)))],
        )
        return [answer]

    def _to_flask(
        self, environ: dict[str, Any], start_response: Callable[..., Any], body: ReplayedInput
    ) -> Any:
        environ["wsgi.input"] = body
        return self.flask(environ, start_response)

    def _error(
        self, environ: dict[str, Any], start_response: Callable[..., Any], exc: ApiError
    ) -> Any:
        with self.app.app_context():
            response = error_response(exc.status, exc.code, exc.message, exc.headers)
        return response(environ, start_response)


def _checked(
    platform: Platform, secret: str, environ: dict[str, Any], body: bytes, token: str | None
) -> tuple[IncomingRequest, Intake, int, bool] | None:
    """The view's checks, in its order, without their side effects: the request, what
    ingest learnt of it, which secret value matched and whether several are set; or None
    (or an exception) when the view must answer it."""
    incoming = IncomingRequest(
        method="POST",
        headers=EnvironHeaders(environ),
        body=body,
        # What werkzeug's request.query_string.decode("latin-1") gives.
        query=environ.get("QUERY_STRING", "").encode("latin-1").decode("latin-1"),
        content_type=parse_options_header(environ.get("CONTENT_TYPE", ""))[0].lower(),
        path_token=token,
    )
    if platform.is_handshake(incoming):
        return None
    values = secret_values(secret)
    matched = verify_any(platform.verifier, incoming, values)
    intake = platform.describe(incoming)
    if not webhooks.is_stored_topic(platform, intake):
        return None
    return incoming, intake, matched, len(values) > 1
