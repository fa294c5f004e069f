"""The admin forms' POSTs: replay and purge, with CSRF (relay/admin/actions.py)."""

from __future__ import annotations

import re
import time
from dataclasses import replace

import pytest
from redis import Redis

from relay.app import create_app
from relay.delivery.deadletters import PAGE_SIZE, DeadLetters
from relay.inbox import Inbox
from tests.admin.conftest import (
    FIXTURES,
    TOKEN,
    add_letter,
    bearer,
    delivered_orders,
    log_in,
    nothing_queued,
)
from tests.conftest import woo_headers
from tests.redis_server import RedisServer

# --- CSRF and replay ------------------------------------------------------------------------


@pytest.mark.parametrize("data", [{}, {"csrf_token": ""}, {"csrf_token": "0" * 64}])
def test_replay_without_the_right_csrf_token_is_refused(web, redis, data):
    letter = add_letter(redis)
    log_in(web)
    response = web.post(f"/admin/dead-letters/{letter.id}/replay", data=data)
    assert response.status_code == 403
    assert "stale" in response.get_data(as_text=True)
    assert DeadLetters(redis).get(letter.id) is not None
    assert nothing_queued(redis)


def test_a_browser_behind_basic_auth_gets_pages_not_json(web, redis):
    """A proxy's Basic auth in front of the relay sends Authorization on every request."""
    letter = add_letter(redis)
    log_in(web)
    basic = {"Authorization": "Basic dXNlcjpwYXNz"}
    assert web.get("/admin/", headers=basic).status_code == 200
    refused = web.post(f"/admin/dead-letters/{letter.id}/replay", headers=basic)
    assert refused.status_code == 403
    assert refused.mimetype == "text/html"


def test_a_csrf_token_belongs_to_its_own_session(admin_app, web, redis):
    letter = add_letter(redis)
    theirs = log_in(admin_app.test_client())
    log_in(web)
    response = web.post(f"/admin/dead-letters/{letter.id}/replay", data={"csrf_token": theirs})
    assert response.status_code == 403
    assert nothing_queued(redis)


def test_replay_with_the_csrf_token_puts_the_event_back_on_the_queue(web, redis, worker, fake_api):
    letter = add_letter(redis)
    kept = add_letter(redis, fixture="order.created.wc8.0.2.json")
    csrf = log_in(web)
    response = web.post(f"/admin/dead-letters/{letter.id}/replay", data={"csrf_token": csrf})
    assert response.status_code == 303
    assert "notice=replayed" in response.headers["Location"]
    assert [letter.id for letter in DeadLetters(redis).list()] == [kept.id]
    assert Inbox(redis).depth() == 1  # back in the inbox, for the workers
    page = web.get(response.headers["Location"]).get_data(as_text=True)
    assert "Replayed 1 dead letter:" in page
    assert f'id="dl-{letter.id}"' not in page
    assert delivered_orders(worker, fake_api) == ["1042"]  # the replayed one, not the kept
    # A second click finds nothing to do, and says so.
    again = web.post(f"/admin/dead-letters/{letter.id}/replay", data={"csrf_token": csrf})
    assert "notice=gone" in again.headers["Location"]
    assert nothing_queued(redis)


def test_get_never_replays(web, redis):
    letter = add_letter(redis)
    log_in(web)
    assert web.get(f"/admin/dead-letters/{letter.id}/replay").status_code == 405
    assert web.get("/admin/dead-letters/replay").status_code == 404  # no dead letter "replay"
    assert nothing_queued(redis)


def test_bearer_posts_need_no_csrf_token(web, redis, worker, fake_api):
    letter = add_letter(redis)
    response = web.post(f"/admin/dead-letters/{letter.id}/replay", headers=bearer())
    assert response.status_code == 303
    assert DeadLetters(redis).count() == 0
    assert delivered_orders(worker, fake_api) == ["1042"]


def test_replay_all_of_one_platform(web, redis, worker, fake_api):
    add_letter(redis)
    add_letter(redis, fixture="order.created.wc8.0.2.json")
    other = add_letter(redis, platform="custom")
    csrf = log_in(web)
    response = web.post(
        "/admin/dead-letters/replay", data={"csrf_token": csrf, "platform": "woocommerce"}
    )
    assert response.status_code == 303
    assert "notice=replayed&n=2" in response.headers["Location"]
    assert DeadLetters(redis).ids() == [other.id]
    assert delivered_orders(worker, fake_api) == ["1042", "15"]
    assert DeadLetters(redis).get(other.id).dead_at == other.dead_at  # never replayed


def test_a_replayed_order_reaches_the_api(web, redis, settings, fake_api, worker):
    """The whole way: a webhook, a 422, a dead letter, a replay from the page, delivered."""
    fake_api.fail("/api/v1/orders", status=422, body={"success": False, "error": "no"})
    body = (FIXTURES / "order.processing.guest.json").read_bytes()
    posted = web.post(
        "/webhooks/woocommerce", data=body, headers=woo_headers(body, "order.created")
    )
    assert posted.status_code == 202
    worker.run()
    [letter] = DeadLetters(redis).list()
    csrf = log_in(web)
    assert "HTTP 422" in web.get("/admin/").get_data(as_text=True)
    web.post(f"/admin/dead-letters/{letter.id}/replay", data={"csrf_token": csrf})
    worker.run()
    assert DeadLetters(redis).count() == 0
    orders = [r for r in fake_api.requests if r.path == "/api/v1/orders"]
    assert [r.body["orderId"] for r in orders] == ["1042", "1042"]
    assert fake_api.applied[-1].path == "/api/v1/orders"


# --- purge ----------------------------------------------------------------------------------


def test_purge_one_asks_first_then_deletes(web, redis):
    letter = add_letter(redis)
    csrf = log_in(web)
    confirm = web.get(f"/admin/dead-letters/{letter.id}/purge")
    assert confirm.status_code == 200
    assert "for good" in confirm.get_data(as_text=True)
    assert DeadLetters(redis).count() == 1  # asking changed nothing
    assert web.post(f"/admin/dead-letters/{letter.id}/purge").status_code == 403
    response = web.post(f"/admin/dead-letters/{letter.id}/purge", data={"csrf_token": csrf})
    assert "notice=purged" in response.headers["Location"]
    assert DeadLetters(redis).count() == 0
    assert nothing_queued(redis)


def test_purge_all_of_a_platform_deletes_only_what_was_confirmed(web, redis):
    old = add_letter(redis, dead_at=time.time() - 100)
    other = add_letter(redis, platform="custom", dead_at=time.time() - 50)
    csrf = log_in(web)
    confirm = web.get("/admin/dead-letters/purge?platform=woocommerce")
    html = confirm.get_data(as_text=True)
    assert "Delete 1 dead letter of woocommerce for good?" in html
    upto = re.search(r'name="upto" value="([^"]+)"', html).group(1)
    newer = add_letter(redis)  # died while the page was open
    response = web.post(
        "/admin/dead-letters/purge",
        data={"csrf_token": csrf, "platform": "woocommerce", "upto": upto},
    )
    assert "notice=purged&n=1" in response.headers["Location"]
    assert set(DeadLetters(redis).ids()) == {other.id, newer.id}
    assert DeadLetters(redis).get(old.id) is None
    assert web.post("/admin/dead-letters/purge", data={"csrf_token": csrf}).status_code == 400


def test_f7_purge_all_and_replay_all_page_through_more_letters_than_one_page(settings, tmp_path):
    """Review F7: the purge and replay-all pages (and the API's "all") loaded every dead
    letter whole (`limit=None`), each with a raw body of up to 2 MB. Here Redis refuses to
    hand out more than a page or so of letters at once: loading them all fails."""
    server = RedisServer(tmp_path / "redis").start()
    try:
        redis = Redis.from_url(server.url)
        total, body = 2 * PAGE_SIZE + 30, b'{"pad": "' + b"x" * 30_000 + b'"}'

        def fill() -> None:
            for _ in range(total):
                add_letter(redis, body=body)

        server.cap_replies(50 * PAGE_SIZE * 1000)  # 2.5 MB: a page fits, all 130 do not
        app = create_app(replace(settings, admin_token=TOKEN), redis=redis)
        web = app.test_client()
        csrf = log_in(web)
        api = app.test_client()

        fill()
        response = web.post("/admin/dead-letters/replay", data={"csrf_token": csrf})
        assert response.status_code == 303
        assert f"notice=replayed&n={total}" in response.headers["Location"]
        assert DeadLetters(redis).count() == 0 and Inbox(redis).depth() == total

        fill()
        confirm = web.get("/admin/dead-letters/purge")
        html = confirm.get_data(as_text=True)
        assert confirm.status_code == 200 and f"Delete {total} dead letters for good?" in html
        upto = re.search(r'name="upto" value="([^"]+)"', html).group(1)
        response = web.post("/admin/dead-letters/purge", data={"csrf_token": csrf, "upto": upto})
        assert f"notice=purged&n={total}" in response.headers["Location"]
        assert DeadLetters(redis).count() == 0

        fill()
        replayed = api.post("/admin/api/dead-letters/replay", json={"all": True}, headers=bearer())
        assert replayed.get_json() == {"replayed": total}
        fill()
        purged = api.post("/admin/api/dead-letters/purge", json={"all": True}, headers=bearer())
        assert purged.get_json() == {"purged": total}
        assert DeadLetters(redis).count() == 0
        assert set(redis.keys("relay:dlq:*")) == {b"relay:dlq:platforms"}  # no entry is left
    finally:
        server.stop()


# --- the store: "Sync store" -----------------------------------------------------------------


def test_sync_store_needs_the_csrf_token_then_a_worker_syncs_and_the_page_shows_it(
    settings, redis, fake_api
):
    from relay.sync import service
    from tests.conftest import WorkerHarness
    from tests.fakestore import FakeStore
    from tests.sync.conftest import sent_products, with_store

    store = FakeStore(products=12, customers=5, orders=6).start()
    try:
        configured = with_store(replace(settings, admin_token=TOKEN), store)
        app = create_app(configured, redis=redis)
        app.testing = True
        web = app.test_client()
        csrf = log_in(web)
        page = web.get("/admin/").get_data(as_text=True)
        assert (
            "Sync store" in page and 'Last sync:</strong>\n      <span class="muted">never' in page
        )

        refused = web.post("/admin/stores/woocommerce/sync", data={})
        assert refused.status_code == 403
        assert nothing_queued(redis)
        assert web.post("/admin/stores/shopify/sync", data={"csrf_token": csrf}).status_code == 404

        queued = web.post("/admin/stores/woocommerce/sync", data={"csrf_token": csrf})
        assert queued.status_code == 303 and "notice=sync_queued" in queued.headers["Location"]
        worker = WorkerHarness(configured, redis)
        worker.run()  # the job starts the backfill in a thread of the worker
        service.background_threads()["sync-woocommerce"].join(30)
        worker.run()

        assert set(sent_products(fake_api)) == {str(p) for p in store.published()}
        page = web.get("/admin/").get_data(as_text=True)
        assert 'status-done">done' in page
        assert f"products: {len(store.published())} read" in page
        assert "Webhooks:</strong>" in page
    finally:
        store.stop()


def test_sync_store_resumes_a_stopped_command_line_sync_with_its_orders(settings, redis, fake_api):
    from relay.registry import default_registry
    from relay.sync import service
    from relay.sync.checkpoints import Checkpoints
    from tests.conftest import WorkerHarness
    from tests.fakestore import FakeStore
    from tests.sync.conftest import with_store

    store = FakeStore(products=12, customers=5, orders=6).start()
    try:
        configured = with_store(replace(settings, admin_token=TOKEN), store)
        stopped = service.open_store(configured, default_registry(), redis, "woocommerce")
        stopped.stop.set()  # as Ctrl-C before the first page
        first = service.backfill(stopped, orders_since="2020-01-01T00:00:00")
        assert first.status == "interrupted"

        app = create_app(configured, redis=redis)
        app.testing = True
        web = app.test_client()
        web.post("/admin/stores/woocommerce/sync", data={"csrf_token": log_in(web)})
        WorkerHarness(configured, redis).run()
        service.background_threads()["sync-woocommerce"].join(30)

        run = Checkpoints(redis, "woocommerce", "backfill").load()
        assert run.run_id == first.run_id and run.status == "done"
        assert [p.name for p in run.phases][-1] == "orders"
    finally:
        store.stop()
