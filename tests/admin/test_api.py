"""The admin's JSON API for scripts (relay/admin/api.py)."""

from __future__ import annotations

from dataclasses import replace

from redis import Redis

from relay.app import create_app
from relay.delivery.deadletters import DeadLetters
from relay.events import RawEvent, new_event_id
from relay.intake.acceptor import Acceptor
from tests.admin.conftest import (
    TOKEN,
    add_letter,
    bearer,
    delivered_orders,
    log_in,
    nothing_queued,
)
from tests.redis_server import free_port

# --- the JSON API ---------------------------------------------------------------------------


def test_api_mirrors_the_dlq_commands(web, redis, worker, fake_api):
    a, b = add_letter(redis), add_letter(redis, platform="custom")
    shown = web.get(f"/admin/api/dead-letters/{a.id}", headers=bearer()).get_json()
    assert shown["event"] == a.event and shown["response"]["status"] == 422
    only = web.get("/admin/api/dead-letters?platform=custom", headers=bearer()).get_json()
    assert [x["id"] for x in only["dead_letters"]] == [b.id]

    def post(path: str, payload: object):
        return web.post(path, json=payload, headers=bearer())

    # Like the CLI: ids or all, not both; an unknown id stops everything.
    assert post("/admin/api/dead-letters/replay", {"ids": [a.id], "all": True}).status_code == 400
    assert post("/admin/api/dead-letters/replay", {}).status_code == 400
    missing = post("/admin/api/dead-letters/replay", {"ids": [a.id, "nope"]})
    assert missing.status_code == 404
    assert nothing_queued(redis)
    assert post(f"/admin/api/dead-letters/{a.id}/replay", None).get_json() == {"replayed": 1}
    assert post(f"/admin/api/dead-letters/{a.id}/replay", None).status_code == 404
    assert post(
        "/admin/api/dead-letters/purge", {"all": True, "platform": "custom"}
    ).get_json() == {"purged": 1}
    assert DeadLetters(redis).count() == 0
    assert delivered_orders(worker, fake_api) == ["1042"]  # only the replayed one
    assert web.get("/admin/api/dead-letters?limit=0", headers=bearer()).status_code == 400


def test_api_ignores_the_session_cookie(web, redis):
    add_letter(redis)
    log_in(web)
    assert web.get("/admin/api/dead-letters").status_code == 401
    assert web.post("/admin/api/dead-letters/replay", json={"all": True}).status_code == 401
    assert nothing_queued(redis)


def test_api_status(web, redis):
    add_letter(redis)
    status = web.get("/admin/api/status", headers=bearer()).get_json()
    assert status["queue"] == {"waiting": 0, "scheduled": 0, "dead_letters": 1}
    assert status["sandbox"] is False


def test_waiting_counts_stored_webhooks_not_worker_jobs(web, redis):
    from relay.event_queue import EventQueue

    queue = Acceptor(EventQueue(redis))
    for n in range(3):  # three webhooks, one drain job for them
        event = RawEvent(new_event_id(), "woocommerce", "order.created", 0.0, b"{}")
        queue.accept(event, f"k{n}")
    status = web.get("/admin/api/status", headers=bearer()).get_json()
    assert status["queue"]["waiting"] == 3


def test_redis_down_is_a_503(settings):
    gone = Redis(port=free_port(), socket_connect_timeout=0.5)
    app = create_app(replace(settings, admin_token=TOKEN), redis=gone)
    response = app.test_client().get("/admin/api/status", headers=bearer())
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "redis_unavailable"
