"""POST /storefront/back-in-stock (relay/storefront/endpoint.py): what is stored, every
refusal's answer, Redis down, and the request delivered by the real worker to the fake
Commerce API like any webhook: once, however often the shopper clicks."""

from __future__ import annotations

import io
import json
import logging

from relay import stats
from relay.app import create_app
from relay.delivery.deadletters import DeadLetters, replay_all
from relay.delivery.variants import VariantMemory
from relay.event_queue import EventQueue
from relay.redis_conn import connect
from relay.storefront.recent import RecentRequests
from relay.storefront.validation import MAX_BODY_BYTES
from tests.conftest import stored_events
from tests.redis_server import RedisServer, free_port
from tests.storefront.conftest import ENDPOINT, ORIGIN, SHOPPER, ask, outcome_count


def back_in_stock_bodies(fake_api) -> list[dict]:
    return [r.body for r in fake_api.requests if r.path == "/api/v1/back-in-stock"]


# --- off until configured ------------------------------------------------------------------


def test_the_storefront_is_off_while_no_origin_is_configured(client, redis):
    for answer in (
        ask(client),
        client.options(ENDPOINT, headers={"Origin": ORIGIN}),
        client.get("/storefront/notify-me.js"),
    ):
        assert answer.status_code == 404
        assert answer.get_json()["error"]["code"] == "storefront_disabled"
    assert stored_events(redis) == []


# --- stored like a webhook ----------------------------------------------------------------


def test_a_request_is_stored_as_an_event_of_the_storefront(shop, redis):
    before = outcome_count(shop, "accepted")
    answer = ask(shop, {**SHOPPER, "email": "  Ann@Example.com ", "productId": 42})
    assert answer.status_code == 202
    assert answer.get_json() == {"status": "accepted", "id": answer.get_json()["id"]}
    [event] = stored_events(redis)
    assert (event.id, event.platform, event.topic) == (
        answer.get_json()["id"],
        "storefront",
        "back_in_stock",
    )
    # What the shopper asked for, trimmed, ids as text; the honeypot is not kept.
    assert json.loads(event.body) == {**SHOPPER, "email": "Ann@Example.com"}
    assert event.headers == {"origin": ORIGIN}
    # Counted apart from the platforms: its own stats and its own metric.
    [storefront] = stats.read(redis, ["storefront"])
    assert storefront.accepted == 1
    assert outcome_count(shop, "accepted") == before + 1


def test_a_form_body_is_taken_as_well(shop, redis):
    form = {"email": "ann@example.com", "productId": "41", "leave_this_empty": ""}
    answer = ask(shop, data=form)
    assert answer.status_code == 202
    [event] = stored_events(redis)
    assert json.loads(event.body) == {"email": "ann@example.com", "productId": "41"}


def test_field_errors_are_named_and_nothing_is_stored(shop, redis):
    before = outcome_count(shop, "invalid")
    answer = ask(shop, {"email": "ann@", "variantId": True, "productTitle": "t" * 1001})
    assert answer.status_code == 400
    error = answer.get_json()["error"]
    assert error["code"] == "invalid_request"
    assert set(error["details"]) == {"email", "productId", "variantId", "productTitle"}
    assert "ann@" not in answer.get_data(as_text=True)  # field names, never the values
    assert stored_events(redis) == []
    assert outcome_count(shop, "invalid") == before + 1


def test_a_body_that_is_not_json_or_not_an_object_is_400(shop, redis):
    for body in (b"{not json", b"[1, 2]", b'"text"'):
        answer = ask(shop, data=body, content_type="application/json")
        assert answer.status_code == 400
        assert answer.get_json()["error"]["code"] == "malformed_body"
    assert stored_events(redis) == []


def test_other_content_types_are_415(shop, redis):
    for content_type in ("text/plain", "multipart/form-data; boundary=x", None):
        answer = ask(shop, data=b"email=ann@example.com&productId=1", content_type=content_type)
        assert answer.status_code == 415, content_type
        assert answer.get_json()["error"]["code"] == "unsupported_media_type"
    assert stored_events(redis) == []


def test_the_honeypot_filled_is_refused_in_words_and_nothing_is_stored(shop, redis):
    before = outcome_count(shop, "honeypot")
    answer = ask(shop, {**SHOPPER, "leave_this_empty": "https://spam.example"})
    assert answer.status_code == 400  # never a fake 202: a person must learn it failed
    error = answer.get_json()["error"]
    assert error["code"] == "honeypot"
    assert error["details"] == {"leave_this_empty": ["Must be empty."]}
    assert stored_events(redis) == []
    assert outcome_count(shop, "honeypot") == before + 1
    assert ask(shop, {**SHOPPER, "leave_this_empty": "  "}).status_code == 202  # blank is empty


def test_a_body_over_the_limit_is_413(shop, redis):
    def padded(size: int) -> bytes:
        body = json.dumps({**SHOPPER, "pad": ""}).encode()
        return json.dumps({**SHOPPER, "pad": "x" * (size - len(body))}).encode()

    assert len(padded(MAX_BODY_BYTES)) == MAX_BODY_BYTES
    at_limit = ask(shop, data=padded(MAX_BODY_BYTES), content_type="application/json")
    assert at_limit.status_code == 202
    before = outcome_count(shop, "body_too_large")
    big = ask(shop, data=padded(MAX_BODY_BYTES + 1), content_type="application/json")
    assert big.status_code == 413
    assert big.get_json()["error"]["code"] == "body_too_large"
    assert big.headers["Access-Control-Allow-Origin"] == ORIGIN  # the widget can read it
    # Without a Content-Length (chunked), the byte past the limit shows it.
    chunked = shop.post(
        ENDPOINT,
        input_stream=io.BytesIO(padded(MAX_BODY_BYTES + 1)),
        headers={"Origin": ORIGIN, "Content-Type": "application/json"},
    )
    assert chunked.status_code == 413
    assert len(stored_events(redis)) == 1
    assert outcome_count(shop, "body_too_large") == before + 2


def test_redis_down_is_503_that_the_widget_can_read(shop_settings):
    dead = connect(f"redis://127.0.0.1:{free_port()}/0")
    app = create_app(shop_settings, redis=dead)
    answer = ask(app.test_client())
    assert answer.status_code == 503
    assert answer.get_json()["error"]["code"] == "queue_unavailable"
    assert answer.headers["Retry-After"] == "30"
    assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert outcome_count(app.test_client(), "unavailable") >= 1


def test_redis_gone_after_a_first_request_is_503_too(shop_settings, tmp_path):
    server = RedisServer(tmp_path / "short-lived").start()
    app = create_app(shop_settings, redis=connect(server.url))
    web = app.test_client()
    assert ask(web).status_code == 202
    server.stop()
    answer = ask(web, {**SHOPPER, "productId": "43"})
    assert answer.status_code == 503
    assert answer.get_json()["error"]["code"] == "queue_unavailable"


# --- known products -------------------------------------------------------------------------


def test_an_unknown_variant_of_a_known_product_is_400(shop, redis):
    VariantMemory(redis).remember_product("42", {"productId": "42"}, None, ["43", "44"])
    wrong = ask(shop, {**SHOPPER, "variantId": "45"})
    assert wrong.status_code == 400
    error = wrong.get_json()["error"]
    assert error["code"] == "unknown_variant"
    assert set(error["details"]) == {"variantId"}
    assert ask(shop, SHOPPER).status_code == 202  # 44 is one of its variants
    # A product the relay never saw is passed on: the API knows the catalog better.
    assert ask(shop, {**SHOPPER, "productId": "99", "variantId": "100"}).status_code == 202
    assert ask(shop, {**SHOPPER, "variantId": None}).status_code == 202  # the product itself
    assert len(stored_events(redis)) == 3


# --- delivered like any webhook -------------------------------------------------------------


def test_delivered_by_the_worker_once_however_often_the_shopper_clicks(
    shop, redis, worker, fake_api
):
    assert ask(shop).status_code == 202
    again = ask(shop, {**SHOPPER, "email": "ANN@example.com", "variantTitle": "sand"})
    assert (again.status_code, again.get_json()) == (200, {"status": "duplicate"})
    worker.run()
    assert back_in_stock_bodies(fake_api) == [
        {
            "productId": "42",
            "variantId": "44",
            "productTitle": "Linen shirt",
            "variantTitle": "Sand",
            "customer": {"email": "ann@example.com"},
        }
    ]
    # Another variant, or another shopper, is another request.
    assert ask(shop, {**SHOPPER, "variantId": "43", "variantTitle": "Blue"}).status_code == 202
    assert ask(shop, {**SHOPPER, "email": "bob@example.com"}).status_code == 202
    worker.run()
    assert len(back_in_stock_bodies(fake_api)) == 3


def test_after_the_dedup_window_the_entity_rule_still_sends_it_once(shop, redis, worker, fake_api):
    assert ask(shop).status_code == 202
    worker.run()
    for mark in redis.keys("relay:seen:storefront:*"):  # the window has passed
        redis.delete(mark)
    assert ask(shop).status_code == 202  # stored again...
    worker.run()
    assert len(back_in_stock_bodies(fake_api)) == 1  # ...but "once": not sent again


def test_a_refused_request_is_a_dead_letter_and_replays(shop, redis, worker, fake_api):
    refusal = {"success": False, "error": {"code": "VALIDATION_ERROR", "message": "no"}}
    fake_api.fail("/api/v1/back-in-stock", status=400, body=refusal)  # the next one only
    assert ask(shop).status_code == 202
    worker.run()
    [letter] = DeadLetters(redis).list("storefront", 10)
    assert (letter.platform, letter.reason) == ("storefront", "permanent_error")
    # Replay maps the stored request again (mappers/storefront/) and delivers it.
    assert replay_all(EventQueue(redis), "storefront") == 1
    worker.run()
    assert len(back_in_stock_bodies(fake_api)) == 2  # refused once, then taken
    assert DeadLetters(redis).list("storefront", 10) == []


# --- what is kept and said about it ---------------------------------------------------------


def test_logs_and_the_recent_list_never_hold_a_full_email(shop, redis, caplog):
    with caplog.at_level(logging.DEBUG):
        ask(shop)
        ask(shop, {**SHOPPER, "email": "ann@"})
        ask(shop, {**SHOPPER, "leave_this_empty": "x"})
    logged = [str(v) for record in caplog.records for v in vars(record).values()]
    assert not any("ann@example.com" in value for value in logged)
    recent = RecentRequests(redis).latest()
    assert [(r.outcome, r.email, r.product_id) for r in recent] == [
        ("honeypot", "a***@example.com", "42"),
        ("invalid", "***", "42"),
        ("accepted", "a***@example.com", "42"),
    ]
    assert b"ann@example.com" not in b"".join(redis.lrange("relay:storefront:recent", 0, -1))
