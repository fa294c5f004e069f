"""GET /storefront/notify-me.js: the widget, read once, served with a strong ETag and
gzipped for clients that take it (about 4 KB on the wire).

Cacheable for an hour by browsers and CDNs (`public`), then revalidated with the ETag (a
304 costs no body), so an upgrade of the relay reaches shop pages within the hour.
"""

from __future__ import annotations

import gzip
import hashlib
from functools import cache
from importlib import resources

from flask import Request, Response

MAX_AGE_SECONDS = 3600
CONTENT_TYPE = "text/javascript; charset=utf-8"


@cache
def source() -> bytes:
    return resources.files("relay.storefront").joinpath("static/notify-me.js").read_bytes()


@cache
def gzipped() -> bytes:
    return gzip.compress(source(), compresslevel=9, mtime=0)


@cache
def etag() -> str:
    return hashlib.sha256(source()).hexdigest()[:32]


def response(request: Request) -> Response:
    zipped = request.accept_encodings["gzip"] > 0
    answer = Response(gzipped() if zipped else source(), 200, content_type=CONTENT_TYPE)
    if zipped:
        answer.headers["Content-Encoding"] = "gzip"
    # Each encoding is its own representation, with its own tag.
    answer.set_etag(etag() + ("-gzip" if zipped else ""))
    answer.headers["Vary"] = "Accept-Encoding"
    answer.headers["Cache-Control"] = f"public, max-age={MAX_AGE_SECONDS}"
    answer.headers["X-Content-Type-Options"] = "nosniff"
    # Shops whose pages require CORP (Cross-Origin-Embedder-Policy) may still load it.
    answer.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    return answer.make_conditional(request)
