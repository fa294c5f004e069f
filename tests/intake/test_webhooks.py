"""POST /webhooks/woocommerce against a real Redis: every answer the platform can get."""

from __future__ import annotations

import base64
import io
import json
from dataclasses import replace
from pathlib import Path

import pytest
from redis import Redis
from werkzeug.test import EnvironBuilder, run_wsgi_app

from relay.app import create_app
from relay.events import RawEvent
from relay.fixtures import fixtures
from relay.redis_conn import connect
from relay.registry import default_registry
from relay.sender import build_request
from relay.verifiers import check_standard_webhooks_secret
from tests.conftest import WOO_SECRET, as_body, stored_events, woo_headers
from tests.redis_server import free_port

SAMPLE = Path(__file__).parents[2] / "mappers/woocommerce/fixtures/order.created.wc8.0.2.json"


def post(client, payload, topic="order.created", **headers):
    body = as_body(payload)
    return client.post(
        "/webhooks/woocommerce", data=body, headers=woo_headers(body, topic, **headers)
    )


def queued_events(redis: Redis) -> list[RawEvent]:
    return stored_events(redis)


def test_signed_webhook_is_stored_byte_for_byte_and_answered_202(client, redis):
    body = SAMPLE.read_bytes()
    response = post(client, body)
    assert response.status_code == 202
    answer = response.get_json()
    assert answer["status"] == "accepted"
    [event] = queued_events(redis)
    assert event.id == answer["id"]
    assert event.body == body  # the raw bytes, not a re-serialization
    assert event.platform == "woocommerce"
    assert event.topic == "order.created"
    assert event.header("x-wc-webhook-source") == "https://shop.example.com/"
    assert "x-wc-webhook-signature" not in event.headers


def test_bad_signature_is_refused_and_nothing_is_stored(client, redis):
    body = SAMPLE.read_bytes()
    headers = woo_headers(body, "order.created", secret="not-the-secret")
    response = client.post("/webhooks/woocommerce", data=body, headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "bad_signature"
    assert queued_events(redis) == []


def test_signature_over_other_bytes_is_refused(client, redis):
    # Same JSON, different bytes (re-serialized): the signature is over the raw body.
    original = SAMPLE.read_bytes()
    reserialized = json.dumps(json.loads(original)).encode()
    headers = woo_headers(original, "order.created")
    response = client.post("/webhooks/woocommerce", data=reserialized, headers=headers)
    assert response.status_code == 401
    assert queued_events(redis) == []


def test_missing_signature_is_refused(client, redis):
    body = SAMPLE.read_bytes()
    headers = woo_headers(body, "order.created")
    del headers["X-WC-Webhook-Signature"]
    response = client.post("/webhooks/woocommerce", data=body, headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "missing_signature"
    assert queued_events(redis) == []


def test_garbage_signature_is_refused_without_echoing_it(client):
    body = SAMPLE.read_bytes()
    headers = woo_headers(body, "order.created", **{"X-WC-Webhook-Signature": "%%%not-base64"})
    response = client.post("/webhooks/woocommerce", data=body, headers=headers)
    assert response.status_code == 401
    assert b"not-base64" not in response.data
    assert WOO_SECRET.encode() not in response.data


def test_activation_ping_gets_exactly_200_and_stores_nothing(client, redis):
    response = client.post(
        "/webhooks/woocommerce",
        data="webhook_id=42",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert queued_events(redis) == []


def test_signed_form_body_is_not_a_ping(client, redis):
    body = b"webhook_id=42"
    headers = woo_headers(body, "order.created", secret="wrong")
    response = client.post("/webhooks/woocommerce", data=body, headers=headers)
    assert response.status_code == 401


def test_malformed_json_is_400(client, redis):
    response = post(client, b'{"id": 15, "status": ')
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "malformed_json"
    assert queued_events(redis) == []


def test_json_that_is_not_an_object_is_400(client, redis):
    response = post(client, b"[1, 2, 3]")
    assert response.status_code == 400
    assert queued_events(redis) == []


def test_wrong_content_type_is_415(client, redis):
    body = SAMPLE.read_bytes()
    headers = woo_headers(body, "order.created", **{"Content-Type": "text/xml"})
    response = client.post("/webhooks/woocommerce", data=body, headers=headers)
    assert response.status_code == 415
    assert queued_events(redis) == []


def test_missing_topic_is_400(client, redis):
    body = SAMPLE.read_bytes()
    headers = woo_headers(body, "order.created")
    del headers["X-WC-Webhook-Topic"]
    response = client.post("/webhooks/woocommerce", data=body, headers=headers)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "missing_topic"


def test_oversized_body_is_413_before_anything_else(client, redis, settings):
    body = b'{"pad": "' + b"x" * settings.max_body_bytes + b'"}'
    response = post(client, body)
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "body_too_large"
    assert queued_events(redis) == []


def test_f10_a_chunked_body_over_the_limit_is_413_never_a_stored_prefix(app, redis, settings):
    # Review: werkzeug stops quietly at the limit of a body without Content-Length, so a
    # chunked body of MAX + 270 bytes signed over its first MAX bytes was stored (202), and
    # one signed over all of it got 401 instead of 413.
    limit = settings.max_body_bytes
    order = SAMPLE.read_bytes().strip()
    prefix = order[:-1] + b', "pad": "' + b"x" * (limit - len(order) - 11) + b'"}'
    assert len(prefix) == limit and json.loads(prefix)
    body = prefix + b" " * 270  # still one JSON value, past the limit

    def chunked(signed_over: bytes):
        headers = {**woo_headers(signed_over, "order.created"), "Transfer-Encoding": "chunked"}
        environ = EnvironBuilder(
            path="/webhooks/woocommerce",
            method="POST",
            headers=headers,
            input_stream=io.BytesIO(body),
        ).get_environ()
        # As gunicorn hands over a chunked body (Flask's test client would add a length).
        del environ["CONTENT_LENGTH"]
        environ["wsgi.input_terminated"] = True
        answer, status, _ = run_wsgi_app(app, environ, buffered=True)
        return status, json.loads(b"".join(answer))

    for signed_over in (prefix, body):
        status, answer = chunked(signed_over)
        assert status.startswith("413")
        assert answer["error"]["code"] == "body_too_large"
    assert queued_events(redis) == []


def test_duplicate_delivery_is_200_duplicate_and_stored_once(client, redis):
    body = SAMPLE.read_bytes()
    first = post(client, body)
    second = post(client, body, **{"X-WC-Webhook-Delivery-ID": "another-delivery-attempt"})
    assert first.status_code == 202
    assert second.status_code == 200
    assert second.get_json() == {"status": "duplicate"}
    # The queue may hold the loser of a race; the dedup mark names the one event that counts.
    marks = [key for key in redis.scan_iter("relay:seen:woocommerce:*")]
    assert len(marks) == 1
    assert redis.get(marks[0]).decode() == first.get_json()["id"]


def test_same_delivery_id_with_different_bodies_are_two_events(client, redis):
    # WooCommerce derives X-WC-Webhook-Delivery-ID from the webhook id and the current
    # second: two orders in one second share it. Neither may be dropped.
    order = json.loads(SAMPLE.read_bytes())
    other = {**order, "id": 16, "number": "16"}
    same_id = {"X-WC-Webhook-Delivery-ID": "9e1e0c6f2b9a4c1d8e7f6a5b4c3d2e1f"}
    assert post(client, order, **same_id).status_code == 202
    assert post(client, other, **same_id).status_code == 202
    assert len(queued_events(redis)) == 2


def test_unused_topic_is_200_ignored(client, redis):
    response = post(client, {"id": 3, "code": "SPRING10"}, topic="coupon.created")
    assert response.status_code == 200
    assert response.get_json()["status"] == "ignored"
    assert queued_events(redis) == []


def test_unknown_platform_is_404(client):
    response = client.post("/webhooks/shopify", data=b"{}")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "unknown_platform"


def test_disabled_platform_is_404(settings, redis):
    from dataclasses import replace

    app = create_app(replace(settings, platform_secrets={}), redis=redis)
    response = app.test_client().post("/webhooks/woocommerce", data=SAMPLE.read_bytes())
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "platform_disabled"


def test_wrong_method_is_405_with_allow(client):
    response = client.get("/webhooks/woocommerce")
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert response.get_json()["error"]["code"] == "method_not_allowed"


def test_redis_down_is_503_never_2xx(settings):
    dead = connect(f"redis://127.0.0.1:{free_port()}/0")
    app = create_app(settings, redis=dead)
    response = post(app.test_client(), SAMPLE.read_bytes())
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "queue_unavailable"


def test_readyz_follows_redis(client, settings):
    assert client.get("/readyz").status_code == 200
    dead = connect(f"redis://127.0.0.1:{free_port()}/0")
    down = create_app(settings, redis=dead).test_client()
    assert down.get("/readyz").status_code == 503
    assert down.get("/healthz").status_code == 200


def test_unknown_url_is_json_404(client):
    response = client.get("/nothing-here")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


# --- the unsigned topic header (security review F3, F4) ----------------------------------


def test_f3_an_overlong_topic_header_is_400_and_never_logged(client, redis, caplog):
    # The review replayed a captured genuine body with an 8,000-character topic: answered
    # "ignored", logged, and 0.44 s of the web process's CPU each time.
    body = SAMPLE.read_bytes()
    topic = "a" * 8000
    with caplog.at_level("DEBUG"):
        response = post(client, body, topic=topic)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "topic_too_long"
    assert topic.encode() not in response.data
    logged = [str(value) for record in caplog.records for value in vars(record).values()]
    assert not any("a" * 200 in value for value in logged)
    assert queued_events(redis) == []


def test_f4_a_captured_order_replayed_under_another_topic_is_refused(
    client, redis, fake_api, worker
):
    # Review: a genuine order.created body for order 41, re-posted with its signature and
    # `X-WC-Webhook-Topic: product.deleted`, was accepted and DELETE /api/v1/products/41 sent.
    order = json.loads(SAMPLE.read_bytes())
    order["id"] = 41
    body = json.dumps(order).encode()
    assert post(client, body, topic="order.created").status_code == 202
    worker.run()
    fake_api.reset()

    replayed = post(client, body, topic="product.deleted")
    assert replayed.status_code == 400
    assert replayed.get_json()["error"]["code"] == "topic_mismatch"
    as_product = post(client, body, topic="product.updated")
    assert as_product.get_json()["error"]["code"] == "topic_mismatch"
    product = (SAMPLE.parent / "product.simple.on-sale.json").read_bytes()
    assert post(client, product, topic="order.updated").status_code == 400
    # The topic must agree with WooCommerce's other two headers when they are there.
    headers = {"X-WC-Webhook-Resource": "order", "X-WC-Webhook-Event": "created"}
    forged = post(client, b'{"id": 41}', topic="product.deleted", **headers)
    assert forged.get_json()["error"]["code"] == "topic_mismatch"
    # A deleted product's body is exactly {"id": N}: nothing more, nothing else.
    assert post(client, {"id": 41, "type": "simple"}, topic="product.deleted").status_code == 400
    assert post(client, {"id": "x"}, topic="product.deleted").status_code == 400
    worker.run()
    assert fake_api.requests == []

    # What WooCommerce really sends still goes through.
    genuine = post(
        client,
        b'{"id": 41}',
        topic="product.deleted",
        **{"X-WC-Webhook-Resource": "product", "X-WC-Webhook-Event": "deleted"},
    )
    assert genuine.status_code == 202
    worker.run()
    assert fake_api.paths() == ["DELETE /api/v1/products/41"]


def test_customer_webhooks_are_taken_and_a_body_of_another_kind_is_refused(client, redis):
    customer = (SAMPLE.parent / "customer.created.json").read_bytes()
    assert post(client, customer, topic="customer.created").status_code == 202
    assert post(client, customer, topic="customer.updated").status_code == 202
    # Bodies replayed under a customer topic, and a customer's under another one: refused.
    order = SAMPLE.read_bytes()
    product = (SAMPLE.parent / "product.simple.on-sale.json").read_bytes()
    for body, topic in (
        (order, "customer.updated"),
        (product, "customer.created"),
        (customer, "product.updated"),
        (customer, "order.updated"),
    ):
        refused = post(client, body, topic=topic)
        assert refused.status_code == 400, topic
        assert refused.get_json()["error"]["code"] == "topic_mismatch"
    # A deleted account is answered, not stored (README: it is not an unsubscribe).
    deleted = post(client, b'{"id": 7}', topic="customer.deleted")
    assert deleted.status_code == 200
    assert deleted.get_json() == {
        "status": "ignored",
        "reason": "a deleted store account is not an unsubscribe: the subscriber stays",
    }
    assert [e.topic for e in queued_events(redis)] == ["customer.created", "customer.updated"]


# --- rotation: several values in every platform's secret or token -------------------------


def _rotation_values(platform, *names: str) -> list[str]:
    """Distinct values the platform's own check accepts (a whsec_ secret for Standard
    Webhooks, a long URL-safe token for postbacks)."""
    if platform.check_secret is check_standard_webhooks_secret:
        return [
            "whsec_" + base64.b64encode(f"{platform.name}-{n}-rotation-secret".encode()).decode()
            for n in names
        ]
    return [f"{platform.name}-{n}-0123456789abcdef" for n in names]


def _sendable_fixture(platform) -> Path:
    """A fixture the platform stores (not an ignored topic, nor a handshake)."""
    for fixture in fixtures(platform):
        expected = fixture.expected()
        if expected.get("records") and fixture.body.suffix in (".json", ".form"):
            return fixture.body
    raise AssertionError(f"no sendable fixture for {platform.name}")


def _matches(client, platform: str, position: str) -> float:
    text = client.get("/metrics").get_data(as_text=True)
    line = f'relay_webhook_secret_matches_total{{platform="{platform}",secret="{position}"}} '
    found = [row for row in text.splitlines() if row.startswith(line)]
    return float(found[0].rsplit(" ", 1)[1]) if found else 0.0


@pytest.mark.parametrize("platform", list(default_registry()), ids=lambda p: p.name)
def test_issue13_every_platform_accepts_each_of_two_secrets_and_counts_which(
    settings, redis, platform
):
    """Issue 13: only the custom platform took several secrets. WooCommerce gives each
    webhook its own secret, and rotating a postback token must not refuse the postbacks
    still in flight: each value is accepted, a third is not, and /metrics says by position
    (never by value) which one senders use, so the operator knows when the old one can go."""
    old, new, stranger = _rotation_values(platform, "old", "new", "odd")
    app = create_app(
        replace(settings, platform_secrets={platform.name: f"{old} {new}"}), redis=redis
    )
    client = app.test_client()
    file = _sendable_fixture(platform)
    before = [_matches(client, platform.name, p) for p in ("1", "2")]
    for value in (old, new):
        outgoing = build_request(platform, value, file, None)
        path = outgoing.path
        if platform.token_in_path:  # the way postbacks send it: in the URL path
            path = f"{path}/{outgoing.headers.pop('X-Relay-Token')}"
        answer = client.open(
            path, method=outgoing.method, data=outgoing.body, headers=outgoing.headers
        )
        # The same body twice may be answered as a duplicate: genuine either way.
        assert answer.status_code in (200, 202), answer.get_data(as_text=True)
        assert answer.get_json()["status"] in ("accepted", "duplicate")
    after = [_matches(client, platform.name, p) for p in ("1", "2")]
    assert [b - a for a, b in zip(before, after, strict=True)] == [1.0, 1.0]
    outgoing = build_request(platform, stranger, file, None)
    path = outgoing.path
    if platform.token_in_path:
        path = f"{path}/{outgoing.headers.pop('X-Relay-Token')}"
    refused = client.open(
        path, method=outgoing.method, data=outgoing.body, headers=outgoing.headers
    )
    assert refused.status_code == 401
    metrics_text = client.get("/metrics").get_data(as_text=True)
    assert old not in metrics_text and new not in metrics_text
