"""The Commerce API client: what each answer means (unit tests with `responses`)."""

from __future__ import annotations

import email.utils
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
import requests
import responses

from relay.delivery.commerce_api import ApiRequest, CommerceClient, parse_retry_after
from tests.conftest import WorkerHarness, live_client, woo_headers
from tests.fakeapi import FakeCommerceApi

FIXTURES = Path(__file__).parents[2] / "mappers/woocommerce/fixtures"

BASE = "https://api.example.test"
ORDER = ApiRequest("POST", "/api/v1/orders", {"orderId": "1"}, "order:1")


@pytest.fixture
def client() -> CommerceClient:
    return CommerceClient(BASE, "sk_test_key", timeout=2.0)


@responses.activate
@pytest.mark.parametrize(
    ("status", "ok", "transient"),
    [
        (200, True, False),
        (202, True, False),
        (400, False, False),
        (401, False, False),
        (403, False, False),
        (404, False, False),
        (408, False, True),
        (409, False, False),  # a conflict that does not say it passes (issue 13)
        (422, False, False),
        (429, False, True),
        (500, False, True),
        (502, False, True),
        (503, False, True),
    ],
)
def test_status_classification(client, status, ok, transient):
    responses.post(f"{BASE}/api/v1/orders", status=status, json={})
    outcome = client.send(ORDER)
    assert (outcome.ok, outcome.transient, outcome.status) == (ok, transient, status)


@responses.activate
def test_request_carries_key_json_and_event_id(client):
    responses.post(f"{BASE}/api/v1/orders", status=202, json={"success": True})
    client.send(ORDER, event_id="evt-1")
    sent = responses.calls[0].request
    assert sent.headers["Authorization"] == "Bearer sk_test_key"
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.headers["X-Relay-Event-Id"] == "evt-1"
    assert sent.body in (b'{"orderId":"1"}', '{"orderId":"1"}')


@responses.activate
def test_delete_of_missing_product_is_done(client):
    responses.delete(f"{BASE}/api/v1/products/a%2Fb", status=404)
    from relay.delivery.commerce_api import product_path

    outcome = client.send(ApiRequest("DELETE", product_path("a/b")))
    assert outcome.ok


@responses.activate
def test_error_body_is_kept_and_summarised_in_both_shapes(client):
    responses.post(
        f"{BASE}/api/v1/orders",
        status=400,
        json={"success": False, "error": {"code": "BAD", "message": "no email"}},
    )
    responses.post(
        f"{BASE}/api/v1/checkouts",
        status=400,
        json={"success": False, "error": "Short label", "code": "STABLE_CODE"},
    )
    first = client.send(ORDER)
    second = client.send(ApiRequest("POST", "/api/v1/checkouts", {}))
    assert first.error == "HTTP 400: BAD no email"
    assert '"no email"' in first.body
    assert second.error == "HTTP 400: STABLE_CODE Short label"


@responses.activate
def test_connection_error_and_timeout_are_transient(client):
    responses.post(f"{BASE}/api/v1/orders", body=requests.ConnectionError("refused"))
    responses.post(f"{BASE}/api/v1/orders", body=requests.ReadTimeout("slow"))
    assert client.send(ORDER).transient
    assert client.send(ORDER).transient


@responses.activate
def test_redirect_is_not_followed_and_not_success(client):
    responses.post(f"{BASE}/api/v1/orders", status=302, headers={"Location": "https://evil.test/"})
    outcome = client.send(ORDER)
    assert not outcome.ok
    assert len(responses.calls) == 1


@responses.activate
def test_retry_after_header_reaches_the_outcome(client):
    responses.post(f"{BASE}/api/v1/orders", status=429, headers={"Retry-After": "7"})
    assert client.send(ORDER).retry_after == 7.0


def test_retry_after_forms():
    now = time.time()
    in_90s = email.utils.formatdate(now + 90, usegmt=True)
    assert parse_retry_after({"Retry-After": "30"}) == 30.0
    assert 88 <= parse_retry_after({"Retry-After": in_90s}, now=now) <= 90
    assert parse_retry_after({"retry-after-ms": "1500"}) == 1.5
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({}) is None
    past = email.utils.formatdate(now - 90, usegmt=True)
    assert parse_retry_after({"Retry-After": past}, now=now) == 0.0


# --- issue 13: the contract's errors, transport and workspace, through the real client ------


def _order_request(n: int = 1) -> ApiRequest:
    body = {
        "orderId": str(n),
        "status": "placed",
        "totalCents": 1000,
        "currency": "EUR",
        "customer": {"email": "ann@example.com"},
    }
    return ApiRequest("POST", "/api/v1/orders", body, f"order:{n}", key=f"order:{n}:placed")


ISSUES = [
    {"path": "customer.email", "message": "Invalid email", "allowedValues": None},
    {"path": "status", "message": "Invalid enum value", "allowedValues": ["placed", "refunded"]},
]


@pytest.mark.parametrize(
    ("status", "body", "transient"),
    [
        # The API's explicit word wins over the status, both ways.
        (503, {"success": False, "error": "Import rejected", "retryable": False}, False),
        (500, {"error": "Invalid order", "code": "INVALID", "retryable": False}, False),
        (400, {"error": "Try again shortly", "code": "BUSY", "retryable": True}, True),
        (422, {"error": {"code": "LOCKED", "message": "later"}, "retryable": True}, True),
        # 409: by what the SDK says a conflict is.
        (409, {"error": "Idempotency key reused with different request content"}, False),
        (409, {"error": "Email already taken", "code": "EMAIL_TAKEN"}, False),
        (409, {"error": "Another subscriber owns this externalId", "code": "CONFLICT"}, False),
        (409, {"error": "A request with this key is in progress", "code": "IN_PROGRESS"}, True),
        (409, {"error": "conflict", "code": "CONFLICT", "retryable": True}, True),
        (409, None, False),  # nothing to read: not retried for a day
        # The status alone, when the body says nothing about retrying.
        (429, {"error": "Slow down"}, True),
        (502, None, True),
        (400, {"error": "Invalid", "issues": ISSUES}, False),
    ],
)
def test_issue13_failures_are_classified_by_what_the_api_says(
    settings, fake_api, status, body, transient
):
    """Issue 13: an explicit `retryable` decides, and a 409 is read, not retried for ~23 h:
    the SDK documents 409 only for an idempotency key reused with another body and for an
    email or id that another subscriber owns, and resending the same bytes fixes neither."""
    fake_api.fail("/api/v1/orders", status=status, body=body)
    outcome = live_client(settings).send(_order_request())
    assert (outcome.ok, outcome.transient, outcome.status) == (False, transient, status)


def test_issue13_the_apis_code_error_and_issues_are_kept_readably(settings, fake_api):
    """Issue 13: the relay read `error` and `code` only; `issues[]` (path, message,
    allowedValues) and `retryable` were lost with the body cut at 2,000 characters."""
    body = {
        "success": False,
        "error": "Invalid order: customer.email Invalid email; status Invalid enum value",
        "code": "VALIDATION_ERROR",
        "issues": ISSUES,
        "retryable": False,
        "pad": "x" * 3000,  # the raw body is cut; what the API said is not
    }
    fake_api.fail("/api/v1/orders", status=400, body=body)
    outcome = live_client(settings).send(_order_request())
    assert outcome.error == (
        "HTTP 400: VALIDATION_ERROR Invalid order: customer.email Invalid email; status "
        "Invalid enum value (at customer.email, status)"
    )
    kept = outcome.to_dict()
    assert kept["code"] == "VALIDATION_ERROR"
    assert kept["message"].startswith("Invalid order")
    assert kept["retryable"] is False
    assert kept["issues"] == [
        {"path": "customer.email", "message": "Invalid email"},
        {
            "path": "status",
            "message": "Invalid enum value",
            "allowedValues": ["placed", "refunded"],
        },
    ]
    assert len(kept["body"]) == 2000


def test_issue13_x_ratelimit_reset_is_read_like_retry_after(settings, fake_api):
    """Issue 13: `X-RateLimit-Reset` (Unix seconds, as the SDK reads it) was ignored."""
    reset = int(time.time()) + 120
    fake_api.fail("/api/v1/orders", status=429, headers={"X-RateLimit-Reset": str(reset)})
    outcome = live_client(settings).send(_order_request())
    assert outcome.transient
    # Whole seconds on the wire, and the test's own time: generous bounds.
    assert 60 <= outcome.retry_after <= 121
    assert parse_retry_after({"X-RateLimit-Reset": "30"}) == 30.0  # seconds to wait
    assert parse_retry_after({"X-RateLimit-Reset": "1700000000"}, now=1_700_000_100) == 0.0
    assert parse_retry_after({"Retry-After": "5", "X-RateLimit-Reset": "90"}) == 5.0
    assert parse_retry_after({"X-RateLimit-Reset": "soon"}) is None


def test_issue13_the_idempotency_key_covers_the_body(settings, fake_api):
    """Issue 13: the one documented use of Idempotency-Key answers 409 to a key reused with
    another body; the relay sent `order:1:placed` whatever the body. The key now names the
    effect and the bytes: the same request again has the same key (a resend after a crash),
    another body for the same effect another key."""
    client = live_client(settings)
    first, again = _order_request(), _order_request()
    newer = ApiRequest(
        "POST",
        "/api/v1/orders",
        {**first.body, "totalCents": 1200},
        first.entity,
        key=first.key,
    )
    for request in (first, again, newer):
        assert client.send(request).ok
    keys = [r.header("idempotency-key") for r in fake_api.requests]
    assert keys[0] == keys[1] and keys[0].startswith("order:1:placed:")
    assert keys[2] != keys[0] and keys[2].startswith("order:1:placed:")
    assert (len(fake_api.applied), fake_api.resent) == (2, 1)


def test_issue13_every_request_names_the_workspace_when_a_company_id_is_set(
    settings, redis, app, fake_api
):
    """Issue 13: RELAY_COMMERCE_COMPANY_ID was not a setting, and no request carried
    x-company-id, so a personal key wrote to whichever workspace it selected at the time.
    Every request the worker sends now carries it (orders, checkouts, products, deletes),
    and so do the account reads of `relay check`."""
    company = replace(settings, commerce_company_id="comp_shop_7")
    worker = WorkerHarness(company, redis)
    for fixture, topic in (
        ("order.processing.guest.json", "order.created"),
        ("order.pending.json", "order.created"),
        ("product.simple.on-sale.json", "product.updated"),
        ("product.deleted.json", "product.deleted"),
    ):
        body = (FIXTURES / fixture).read_bytes()
        posted = app.test_client().post(
            "/webhooks/woocommerce", data=body, headers=woo_headers(body, topic)
        )
        assert posted.status_code == 202
        worker.run()
    live_client(company).probe()
    live_client(company).read("/api/v1/subscribers/me")
    sent = {f"{r.method} {r.path.split('/')[3]}" for r in fake_api.requests}
    assert {"POST orders", "POST checkouts", "POST products", "DELETE products"} <= sent
    assert {"GET account", "GET subscribers"} <= sent
    assert [r.header("x-company-id") for r in fake_api.requests] == ["comp_shop_7"] * len(
        fake_api.requests
    )
    fake_api.reset()
    live_client(settings).probe()  # unset: not sent at all (a key bound to one company)
    assert fake_api.requests[0].header("x-company-id") is None


def test_proxy_and_ca_settings_are_read_from_the_environment_once(monkeypatch, tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    client = CommerceClient("https://api.example.test", "key")
    assert client.session.proxies.get("https") == "http://proxy.internal:3128"
    assert client.session.verify == str(bundle)
    assert client.session.trust_env is False  # not read again per request


def test_no_proxy_for_the_api_host_is_honoured(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "api.example.test")
    client = CommerceClient("https://api.example.test", "key")
    assert "https" not in client.session.proxies
    assert client.session.trust_env is False


# --- the send path: the session's adapter with a request prepared once per send -------------


def test_an_http_proxy_from_the_environment_carries_every_delivery(monkeypatch):
    proxy = FakeCommerceApi().start()  # a real local server in the proxy's place
    try:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "")
        client = CommerceClient("http://api.example.test", "key", timeout=5.0)
        client.send(ORDER, "evt-1")
        [arrived] = proxy.requests
        # A proxy gets the absolute URL; api.example.test itself does not resolve.
        assert arrived.path == "http://api.example.test/api/v1/orders"
        assert arrived.header("authorization") == "Bearer key"
        assert arrived.header("x-relay-event-id") == "evt-1"
        assert arrived.body == {"orderId": "1"}
    finally:
        proxy.stop()


def test_every_answer_is_read_to_its_end_so_one_connection_serves_them_all(fake_api):
    client = CommerceClient(fake_api.url, "test-api-key", timeout=5.0, pool_size=1)
    outcomes: list = []
    # Each send needs the pool's one connection back (pool_block): an answer left unread
    # would keep it, and the second send would wait for ever.
    sender = threading.Thread(
        target=lambda: outcomes.extend(client.probe() for _ in range(3)), daemon=True
    )
    sender.start()
    sender.join(20)
    assert [o.ok for o in outcomes] == [True, True, True]


def test_an_answer_cut_off_in_its_body_is_transient():
    """The API may have applied what it was answering: sending it again later is right."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def answer_half() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"success"')
        conn.close()

    server = threading.Thread(target=answer_half, daemon=True)
    server.start()
    try:
        outcome = CommerceClient(f"http://127.0.0.1:{port}", "key", timeout=5.0).send(ORDER)
    finally:
        server.join(5)
        listener.close()
    assert (outcome.ok, outcome.transient) == (False, True)
    assert "key" not in outcome.error
