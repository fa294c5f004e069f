"""The Origin check and CORS for /storefront/back-in-stock.

Only pages of the shops in RELAY_STOREFRONT_ORIGINS may post: a request whose `Origin` is
missing or another is refused (403). Browsers send `Origin` with every cross-origin fetch
and with every form POST, so a request without one comes from a script or a bot, or from a
page whose `Referrer-Policy: no-referrer` makes a plain form post send `Origin: null`.

An allowed origin gets itself back in `Access-Control-Allow-Origin` (never `*`), on every
answer including refusals, so the widget can read why; no credentials are allowed (the
widget sends no cookies). `Vary: Origin` on every answer keeps caches from mixing shops.
"""

from __future__ import annotations

from collections.abc import Iterable

from werkzeug.datastructures import Headers

# Chromium caps a preflight's lifetime at 2 hours; the POST is checked again anyway.
PREFLIGHT_MAX_AGE_SECONDS = 7200


def allowed(origin: str | None, origins: Iterable[str]) -> bool:
    """Exact match against the configured origins (stored as browsers send them)."""
    return origin is not None and origin in origins


def add_cors_headers(headers: Headers, origin: str | None, origins: Iterable[str]) -> None:
    """What every answer to an allowed origin carries (and `Vary` for any answer)."""
    headers.add("Vary", "Origin")
    if allowed(origin, origins):
        headers["Access-Control-Allow-Origin"] = origin or ""
        # The widget reads Retry-After to say how long to wait (not safelisted by CORS).
        headers["Access-Control-Expose-Headers"] = "Retry-After"


def preflight_headers() -> dict[str, str]:
    """The preflight's own answer for an allowed origin: a POST with a JSON body (a form
    body needs no preflight). The browser itself refuses anything else it asks for."""
    return {
        "Access-Control-Allow-Methods": "POST",
        "Access-Control-Allow-Headers": "Content-Type",
        "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE_SECONDS),
    }
