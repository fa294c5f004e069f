"""The Commerce API client: what each answer means (unit tests with `responses`)."""

from __future__ import annotations

import email.utils
import time

import pytest
import requests
import responses

from relay.delivery.commerce_api import ApiRequest, CommerceClient, parse_retry_after

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
        (409, False, True),
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
