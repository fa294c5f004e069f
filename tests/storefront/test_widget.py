"""GET /storefront/notify-me.js (relay/storefront/widget.py): a small script, cacheable,
revalidated by its ETag, with no dependencies and no inline handlers. How it behaves on a
shop page is tests/storefront/test_browser.py's business."""

from __future__ import annotations

import gzip
import re

from relay.storefront import widget

WIDGET = "/storefront/notify-me.js"


def test_it_is_served_as_a_cacheable_script(shop):
    answer = shop.get(WIDGET, headers={"Accept-Encoding": "identity"})
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["Cache-Control"] == "public, max-age=3600"
    assert "Content-Encoding" not in answer.headers
    assert answer.data == widget.source()
    assert "Set-Cookie" not in answer.headers
    # Revalidation costs no body.
    again = shop.get(WIDGET, headers={"If-None-Match": answer.headers["ETag"]})
    assert again.status_code == 304
    assert again.data == b""


def test_it_is_a_few_kilobytes_on_the_wire(shop):
    answer = shop.get(WIDGET, headers={"Accept-Encoding": "gzip, deflate, br"})
    assert answer.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in answer.headers["Vary"]
    assert len(answer.data) < 5 * 1024
    assert gzip.decompress(answer.data) == widget.source()
    plain = shop.get(WIDGET, headers={"Accept-Encoding": "identity"})
    assert answer.headers["ETag"] != plain.headers["ETag"]  # two representations
    assert len(plain.data) < 16 * 1024


def test_it_needs_nothing_else_and_writes_no_markup():
    source = widget.source().decode()
    # No imports, no other script, no markup from strings, no inline handlers or eval.
    for forbidden in (
        r"\bimport\b",
        r"\brequire\(",
        r"innerHTML",
        r"outerHTML",
        r"insertAdjacentHTML",
        r"document\.write",
        r"\beval\(",
        r"new Function",
        r"setAttribute\(\s*[\"']on",
        r"\.on[a-z]+\s*=",
    ):
        assert not re.search(forbidden, source), forbidden
    assert 'credentials: "omit"' in source
