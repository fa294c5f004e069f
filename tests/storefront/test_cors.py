"""The Origin check and CORS (relay/storefront/cors.py): only the configured shops' pages
may post, they may read every answer, and nobody else gets an ACAO header."""

from __future__ import annotations

from tests.conftest import stored_events
from tests.storefront.conftest import ENDPOINT, ORIGIN, ask, outcome_count


def preflight(client, origin: str | None, method: str = "POST"):
    headers = {
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "content-type",
    }
    if origin is not None:
        headers["Origin"] = origin
    return client.options(ENDPOINT, headers=headers)


def test_a_preflight_from_an_allowed_origin_is_answered(shop):
    for origin in (ORIGIN, "http://localhost:8080"):
        answer = preflight(shop, origin)
        assert answer.status_code == 204
        assert answer.headers["Access-Control-Allow-Origin"] == origin  # itself, never *
        assert answer.headers["Access-Control-Allow-Methods"] == "POST"
        assert answer.headers["Access-Control-Allow-Headers"] == "Content-Type"
        assert int(answer.headers["Access-Control-Max-Age"]) > 0
        assert "Origin" in answer.headers.get_all("Vary")
        assert "Access-Control-Allow-Credentials" not in answer.headers
        assert answer.data == b""


def test_a_preflight_from_another_origin_is_refused_without_cors_headers(shop):
    for origin in ("https://evil.example", "https://shop.example.com.evil.example", None):
        answer = preflight(shop, origin)
        assert answer.status_code == 403
        assert answer.get_json()["error"]["code"] == "origin_not_allowed"
        assert "Access-Control-Allow-Origin" not in answer.headers


def test_a_post_from_another_origin_or_none_is_403_and_stores_nothing(shop, redis):
    before = outcome_count(shop, "origin_not_allowed")
    for origin in (
        "https://evil.example",
        "http://shop.example.com",  # another scheme is another origin
        "https://shop.example.com:8443",
        "null",  # a sandboxed frame, or a no-referrer page's plain form post
        None,  # not a browser: curl, a script
    ):
        answer = ask(shop, origin=origin)
        assert answer.status_code == 403, origin
        assert answer.get_json()["error"]["code"] == "origin_not_allowed"
        assert "Access-Control-Allow-Origin" not in answer.headers
        assert "Origin" in answer.headers.get_all("Vary")
    assert stored_events(redis) == []
    assert outcome_count(shop, "origin_not_allowed") == before + 5


def test_every_answer_to_an_allowed_origin_is_readable_by_the_widget(shop):
    answers = [
        ask(shop),  # 202
        ask(shop),  # 200 duplicate
        ask(shop, {"email": "nope"}),  # 400
        ask(shop, data=b"x", content_type="text/plain"),  # 415
    ]
    assert [a.status_code for a in answers] == [202, 200, 400, 415]
    for answer in answers:
        assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert answer.headers["Access-Control-Expose-Headers"] == "Retry-After"
        assert "Origin" in answer.headers.get_all("Vary")
        assert "Access-Control-Allow-Credentials" not in answer.headers
