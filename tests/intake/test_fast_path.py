"""The webhook fast path: stored webhooks skip Flask, everything else is answered by the
Flask view exactly as before (with the body the fast path read replayed to it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flask import request_started
from werkzeug.test import Client

from relay.intake.fast_path import ReplayedInput, route
from tests.conftest import as_body, stored_events, woo_headers

SAMPLE = Path(__file__).parents[2] / "mappers/woocommerce/fixtures/order.created.wc8.0.2.json"


@pytest.fixture
def flask_requests(app):
    """The requests Flask's own request handling saw."""
    seen: list[str] = []

    def started(sender, **extra):
        from flask import request

        seen.append(request.path)

    request_started.connect(started, app)
    yield seen
    request_started.disconnect(started, app)


def test_a_stored_webhook_is_answered_without_flask(client, redis, flask_requests):
    body = SAMPLE.read_bytes()
    response = client.post(
        "/webhooks/woocommerce", data=body, headers=woo_headers(body, "order.created")
    )
    assert response.status_code == 202
    assert response.headers["Content-Type"] == "application/json"
    assert response.get_json()["id"] == stored_events(redis)[0].id
    again = client.post(
        "/webhooks/woocommerce", data=body, headers=woo_headers(body, "order.created")
    )
    assert again.status_code == 200 and again.get_json() == {"status": "duplicate"}
    assert flask_requests == []
    assert len(list(redis.scan_iter("relay:seen:woocommerce:*"))) == 1


def _cases() -> dict[str, tuple[str, str, bytes, dict[str, str]]]:
    """Requests the fast path hands to Flask: (method, path, body, headers)."""
    body = SAMPLE.read_bytes()
    signed = woo_headers(body, "order.created")
    customer = json.dumps({"id": 5, "username": "x"}).encode()
    return {
        "bad signature": (
            "POST",
            "/webhooks/woocommerce",
            body,
            woo_headers(body, "order.created", secret="wrong"),
        ),
        "malformed json": (
            "POST",
            "/webhooks/woocommerce",
            b"{",
            woo_headers(b"{", "order.created"),
        ),
        "topic mismatch": (
            "POST",
            "/webhooks/woocommerce",
            body,
            woo_headers(body, "product.deleted"),
        ),
        "ignored topic": (
            "POST",
            "/webhooks/woocommerce",
            customer,
            woo_headers(customer, "customer.deleted"),
        ),
        "ping": (
            "POST",
            "/webhooks/woocommerce",
            b"webhook_id=12",
            {"Content-Type": "application/x-www-form-urlencoded"},
        ),
        "unknown platform": ("POST", "/webhooks/nope", body, signed),
        "token on a signed platform": ("POST", "/webhooks/woocommerce/abc", body, signed),
        "trailing slash": ("POST", "/webhooks/woocommerce/", body, signed),
        "wrong method": ("PUT", "/webhooks/woocommerce", body, signed),
        "wrong media type": (
            "POST",
            "/webhooks/woocommerce",
            body,
            {**signed, "Content-Type": "text/plain"},
        ),
    }


@pytest.mark.parametrize("case", list(_cases()))
def test_what_is_not_stored_is_answered_by_the_flask_view_as_before(
    case, app, redis, flask_requests
):
    method, path, body, headers = _cases()[case]
    through_fast_path = Client(app)  # app.wsgi_app: the fast path in front of Flask
    flask_only = Client(app.wsgi_app.flask)
    first = through_fast_path.open(path, method=method, data=body, headers=headers)
    second = flask_only.open(path, method=method, data=body, headers=headers)
    assert first.status_code == second.status_code >= 200
    assert first.get_data() == second.get_data()
    assert sorted(first.headers.items()) == sorted(second.headers.items())
    assert flask_requests == [path, path]  # both were Flask's
    assert stored_events(redis) == []


def test_a_body_too_large_is_refused_by_flask_unread(app, settings, redis):
    body = as_body({"order_key": "x" * settings.max_body_bytes})
    response = Client(app).post(
        "/webhooks/woocommerce", data=body, headers=woo_headers(body, "order.created")
    )
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "body_too_large"


def test_a_body_that_ran_out_of_time_is_replayed_as_that_failure(app, redis):
    body = SAMPLE.read_bytes()

    class TimedOut:
        def read(self, size=-1):
            raise TimeoutError("the body did not arrive within the deadline")

    response = Client(app).post(
        "/webhooks/woocommerce",
        data=body,
        headers=woo_headers(body, "order.created"),
        environ_overrides={"wsgi.input": TimedOut()},
    )
    assert response.status_code == 408
    assert response.get_json()["error"]["code"] == "body_timeout"
    assert stored_events(redis) == []


def test_a_replayed_input_gives_the_same_bytes_or_the_same_error():
    assert ReplayedInput(b"abc").read(2) + ReplayedInput(b"abc").read() == b"ababc"
    error = TimeoutError("late")
    with pytest.raises(TimeoutError) as raised:
        ReplayedInput(b"", error).read(10)
    assert raised.value is error


@pytest.mark.parametrize(
    ("path", "found"),
    [
        ("/webhooks/woocommerce", ("woocommerce", None)),
        ("/webhooks/postback/tok", ("postback", "tok")),
        ("/webhooks/", None),
        ("/webhooks/woocommerce/", None),
        ("/webhooks/a/b/c", None),
        ("/healthz", None),
    ],
)
def test_route_matches_what_the_flask_view_routes(path, found):
    assert route(path) == found
