"""The admin page and its JSON API, through Flask's test client on the real Redis."""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
from redis import Redis

from relay import stats
from relay.admin.auth import SESSION_COOKIE, FailedLogins
from relay.admin.view import SILENT_AFTER_SECONDS, ago
from relay.app import create_app
from relay.delivery.commerce_api import ApiRequest, SandboxClient
from relay.delivery.deadletters import PAGE_SIZE, DeadLetter, DeadLetters
from relay.event_queue import make_queue
from relay.events import RawEvent, new_event_id
from relay.inbox import Inbox
from relay.intake.acceptor import Acceptor
from tests.conftest import WOO_SECRET, woo_headers
from tests.redis_server import RedisServer, free_port

TOKEN = "admin-token-0123456789-abcdefghij"
FIXTURES = Path(__file__).parents[1] / "mappers/woocommerce/fixtures"
CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


@pytest.fixture
def admin_app(settings, redis):
    app = create_app(replace(settings, admin_token=TOKEN), redis=redis)
    app.testing = True
    return app


@pytest.fixture
def web(admin_app):
    return admin_app.test_client()


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def add_letter(
    redis: Redis,
    platform: str = "woocommerce",
    fixture: str = "order.processing.guest.json",
    dead_at: float | None = None,
    body: bytes | None = None,
) -> DeadLetter:
    event = RawEvent(
        id=new_event_id(),
        platform=platform,
        topic="order.created",
        received_at=time.time() - 60,
        body=body if body is not None else (FIXTURES / fixture).read_bytes(),
        content_type="application/json",
        headers={"x-wc-webhook-topic": "order.created"},
    )
    letter = DeadLetter(
        id=event.id,
        platform=platform,
        topic=event.topic,
        reason="permanent_error",
        error="HTTP 422: VALIDATION_ERROR bad email",
        event=event.to_dict(),
        attempts=1,
        first_attempt_at=time.time() - 30,
        dead_at=dead_at or time.time(),
        pending=[{"method": "POST", "path": "/api/v1/orders", "body": {"orderId": "1042"}}],
        response={"status": 422, "error": "HTTP 422", "body": '{"success": false}'},
    )
    DeadLetters(redis).add(letter)
    return letter


def log_in(web) -> str:
    """Log in through the form; returns the page's CSRF token."""
    response = web.post("/admin/login", data={"token": TOKEN})
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/admin/")
    return csrf_of(web.get("/admin/"))


def csrf_of(response) -> str:
    assert response.status_code == 200, response.data[:300]
    return CSRF.search(response.get_data(as_text=True)).group(1)


def nothing_queued(redis: Redis) -> bool:
    return make_queue(redis).get_jobs() == []


def delivered_orders(worker, fake_api) -> list[str]:
    """Run the real worker on what is queued; the order ids the fake API then took. (How a
    replay waits for the worker is the queue's business: this checks what comes out.)"""
    worker.run()
    return sorted({r.body["orderId"] for r in fake_api.applied if r.path == "/api/v1/orders"})


# --- closed, refused, allowed ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/admin/"),
        ("GET", "/admin"),
        ("GET", "/admin/login"),
        ("POST", "/admin/login"),
        ("POST", "/admin/logout"),
        ("GET", "/admin/static/admin.css"),
        ("GET", "/admin/api/dead-letters"),
        ("POST", "/admin/api/dead-letters/replay"),
    ],
)
def test_admin_is_closed_without_a_token(client, method, path):
    response = client.open(path, method=method, headers=bearer(""), data={"token": ""})
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "admin_disabled"


def test_without_credentials_pages_send_to_login_and_the_api_says_401(web, redis):
    add_letter(redis)
    page = web.get("/admin/")
    assert page.status_code == 303
    assert page.headers["Location"].endswith("/admin/login")
    assert web.post("/admin/dead-letters/replay").status_code == 303
    api = web.get("/admin/api/dead-letters")
    assert api.status_code == 401
    assert api.get_json()["error"]["code"] == "unauthorized"
    assert api.headers["WWW-Authenticate"].startswith("Bearer")
    assert DeadLetters(redis).count() == 1


@pytest.mark.parametrize("path", ["/admin/", "/admin/api/dead-letters", "/admin/api/status"])
def test_a_wrong_bearer_token_is_refused_with_json(web, path):
    response = web.get(path, headers=bearer("not-the-token"))
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "bad_admin_token"
    assert "not-the-token" not in response.get_data(as_text=True)


def test_another_scheme_is_no_credential(web):
    response = web.get("/admin/api/status", headers={"Authorization": f"Basic {TOKEN}"})
    assert response.status_code == 401


def test_the_bearer_token_opens_pages_and_the_api(web, redis):
    letter = add_letter(redis)
    assert web.get("/admin", headers=bearer()).status_code == 200  # no redirect needed
    page = web.get("/admin/", headers=bearer())
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert letter.id in html and "permanent_error" in html and "HTTP 422" in html
    listed = web.get("/admin/api/dead-letters", headers=bearer()).get_json()
    assert listed["total"] == 1
    assert listed["dead_letters"][0]["id"] == letter.id
    assert listed["dead_letters"][0]["reason"] == "permanent_error"


def test_login_form_sets_a_strict_httponly_cookie_without_the_token(web):
    form = web.get("/admin/login")
    assert form.status_code == 200
    assert 'name="token"' in form.get_data(as_text=True)
    response = web.post("/admin/login", data={"token": TOKEN})
    assert response.status_code == 303
    [cookie] = response.headers.getlist("Set-Cookie")
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    attributes = [part.strip().lower() for part in cookie.split(";")]
    assert "httponly" in attributes
    assert "samesite=strict" in attributes
    assert "path=/admin" in attributes
    assert any(a.startswith("max-age=") for a in attributes)
    assert "secure" not in attributes  # plain http here: a Secure cookie would never return
    assert TOKEN not in cookie
    assert web.get("/admin/").status_code == 200
    # Logged in already: the login page sends back to the overview.
    assert web.get("/admin/login").status_code == 303


def test_the_cookie_is_secure_over_https(web):
    response = web.post("/admin/login", data={"token": TOKEN}, base_url="https://relay.example")
    attributes = [p.strip().lower() for p in response.headers["Set-Cookie"].split(";")]
    assert "secure" in attributes


def test_a_wrong_token_on_the_login_form_shows_an_error_and_sets_nothing(web):
    response = web.post("/admin/login", data={"token": "guess-123"})
    assert response.status_code == 401
    html = response.get_data(as_text=True)
    assert "not the admin token" in html
    assert "guess-123" not in html
    assert "Set-Cookie" not in response.headers
    assert web.get("/admin/").status_code == 303


def test_a_forged_or_stale_cookie_is_no_session_and_is_dropped(web):
    web.set_cookie(SESSION_COOKIE, "eyJzaWQiOiJ4In0.forged.sig", path="/admin")
    response = web.get("/admin/")
    assert response.status_code == 303
    assert f"{SESSION_COOKIE}=;" in response.headers["Set-Cookie"]  # deleted


def test_rotating_the_token_ends_every_session(web, settings, redis):
    log_in(web)
    cookie = web.get_cookie(SESSION_COOKIE, path="/admin").value
    rotated = create_app(replace(settings, admin_token="a-brand-new-admin-token"), redis=redis)
    other = rotated.test_client()
    other.set_cookie(SESSION_COOKIE, cookie, path="/admin")
    assert other.get("/admin/").status_code == 303


def test_logout_ends_the_session_for_good(web):
    csrf = log_in(web)
    cookie = web.get_cookie(SESSION_COOKIE, path="/admin").value
    response = web.post("/admin/logout", data={"csrf_token": csrf})
    assert response.status_code == 303
    assert "/admin/login" in response.headers["Location"]
    assert web.get_cookie(SESSION_COOKIE, path="/admin") is None
    assert "logged out" in web.get("/admin/login?notice=logged_out").get_data(as_text=True)
    # The same cookie, kept by someone, no longer works.
    web.set_cookie(SESSION_COOKIE, cookie, path="/admin")
    assert web.get("/admin/").status_code == 303


def test_logout_needs_the_csrf_token(web):
    log_in(web)
    assert web.post("/admin/logout").status_code == 403
    assert web.get("/admin/").status_code == 200


def test_wrong_tokens_are_throttled_even_before_the_right_one(web):
    for _ in range(FailedLogins.LIMIT):
        assert web.get("/admin/api/status", headers=bearer("wrong")).status_code == 401
    blocked = web.get("/admin/api/status", headers=bearer())
    assert blocked.status_code == 429
    assert 1 <= int(blocked.headers["Retry-After"]) <= FailedLogins.WINDOW_SECONDS
    assert web.post("/admin/login", data={"token": TOKEN}).status_code == 429


def test_f9_wrong_tokens_lock_out_only_their_sender_and_a_burst_gets_no_more_checked(
    settings, redis, redis_server
):
    """Review F9: one global counter, checked before it was counted. 20 wrong tokens from
    anyone locked the operator out (right bearer token and login alike: 429), and 200
    concurrent wrong tokens got 88 compared against a limit of 20."""
    burst = 200
    # A connection each for the burst (redis-py's pool refuses a 101st at once).
    pool = Redis.from_url(redis_server.url, max_connections=burst + 10)
    admin_app = create_app(replace(settings, admin_token=TOKEN), redis=pool)
    stranger = admin_app.test_client()
    stranger.environ_base["REMOTE_ADDR"] = "203.0.113.7"
    operator = admin_app.test_client()
    operator.environ_base["REMOTE_ADDR"] = "198.51.100.2"
    for _ in range(FailedLogins.LIMIT):
        assert stranger.get("/admin/api/status", headers=bearer("guess")).status_code == 401
    assert stranger.get("/admin/api/status", headers=bearer()).status_code == 429
    assert operator.get("/admin/api/status", headers=bearer()).status_code == 200
    assert operator.post("/admin/login", data={"token": TOKEN}).status_code == 303
    # The operator's right tokens did not use up the operator's attempts either.
    for _ in range(FailedLogins.LIMIT + 5):
        assert operator.get("/admin/api/status", headers=bearer()).status_code == 200

    start = threading.Barrier(burst)

    def guess(_: int) -> int:
        client = admin_app.test_client()
        client.environ_base["REMOTE_ADDR"] = "192.0.2.99"
        start.wait()
        return client.get("/admin/api/status", headers=bearer("guess")).status_code

    with ThreadPoolExecutor(max_workers=burst) as pool:
        statuses = list(pool.map(guess, range(burst)))
    assert statuses.count(401) == FailedLogins.LIMIT  # compared: exactly the limit
    assert statuses.count(429) == burst - FailedLogins.LIMIT, sorted(set(statuses))


def test_pages_are_not_cached_framed_or_scripted(web):
    log_in(web)
    response = web.get("/admin/")
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert "script-src" not in response.headers["Content-Security-Policy"]  # default 'none'
    css = web.get("/admin/static/admin.css")
    assert css.status_code == 200 and css.mimetype == "text/css"


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
    assert make_queue(redis).get_jobs()
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


# --- what the pages show --------------------------------------------------------------------


def test_f7_purge_all_and_replay_all_page_through_more_letters_than_one_page(
    settings, tmp_path
):
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


def test_dead_letter_detail_shows_everything_kept_but_no_secret(web, redis):
    body = b'{"id": 7, "note": "signed with %s", "billing": {"email": "ann@example.com"}}' % (
        WOO_SECRET.encode()
    )
    letter = add_letter(redis, body=body)
    letter.error = "HTTP 422: <b>VALIDATION_ERROR</b> bad email"
    DeadLetters(redis).add(letter)
    log_in(web)
    page = web.get(f"/admin/dead-letters/{letter.id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    for shown in ("permanent_error", "&lt;b&gt;VALIDATION_ERROR&lt;/b&gt;", "ann@example.com"):
        assert shown in html
    assert "<b>VALIDATION_ERROR" not in html  # what the API answered is text, not markup
    assert "/api/v1/orders" in html  # the request not delivered
    assert WOO_SECRET not in html
    assert "[redacted]" in html
    api = web.get(f"/admin/api/dead-letters/{letter.id}", headers=bearer()).get_data(as_text=True)
    assert WOO_SECRET not in api
    assert web.get("/admin/dead-letters/nope").status_code == 404


def test_f11_dead_letter_page_shows_a_deeply_nested_body(web, redis):
    # Review: a WooCommerce body 1,015 levels deep (orjson accepts up to 1,024, the worker's
    # json.loads does not) became a dead letter whose page answered 500.
    body = b'{"id": 7, "coupon_lines": ' + b"[" * 1_015 + b"]" * 1_015 + b"}"
    letter = add_letter(redis, body=body)
    log_in(web)
    page = web.get(f"/admin/dead-letters/{letter.id}")
    assert page.status_code == 200
    assert "[" * 1_015 + "]" * 1_015 in page.get_data(as_text=True)  # the body as stored


def test_platform_last_seen_and_silence(web, redis, settings):
    now = time.time()
    stats.record(redis, "woocommerce", "duplicate")
    redis.hset("relay:stats:woocommerce", mapping={"stored": 5, "last_seen": repr(now - 120)})
    log_in(web)
    html = web.get("/admin/").get_data(as_text=True)
    woo = re.search(r'<tr id="platform-woocommerce"[^>]*>(.*?)</tr>', html, re.S)
    assert 'class="silent"' not in woo.group(0)
    assert "2 min ago" in woo.group(1) and " UTC" in woo.group(1)
    # Enabled and silent for hours: a warning. Disabled platforms never warn.
    redis.hset("relay:stats:woocommerce", "last_seen", repr(now - SILENT_AFTER_SECONDS - 60))
    html = web.get("/admin/").get_data(as_text=True)
    assert re.search(r'<tr id="platform-woocommerce" class="silent"', html)
    assert "Silent for hours" in html
    assert re.search(r'<tr id="platform-custom" class="disabled"', html)
    status = web.get("/admin/api/status", headers=bearer()).get_json()
    woo_status = next(p for p in status["platforms"] if p["name"] == "woocommerce")
    assert woo_status["silent"] is True and woo_status["duplicate"] == 1


def test_a_platform_never_seen_is_flagged(web, redis):
    log_in(web)
    html = web.get("/admin/").get_data(as_text=True)
    assert re.search(r'<tr id="platform-woocommerce" class="silent"', html)
    assert "Nothing received yet" in html


def test_relative_times_read_naturally():
    now = 1_000_000.0
    assert ago(None) == "never"
    assert ago(now - 2, now) == "just now"
    assert ago(now - 42, now) == "42 s ago"
    assert ago(now - 600, now) == "10 min ago"
    assert ago(now - 3 * 3600 - 120, now) == "3 h 2 min ago"
    assert ago(now - 3 * 86400, now) == "3 d ago"


def test_sandbox_mode_shows_a_banner_and_the_records(settings, redis):
    app = create_app(replace(settings, admin_token=TOKEN, commerce_api_key=None), redis=redis)
    web = app.test_client()
    SandboxClient(redis).send(
        ApiRequest("POST", "/api/v1/orders", {"orderId": "1042", "status": "placed"}, "order:1042"),
        "evt1",
    )
    log_in(web)
    html = web.get("/admin/").get_data(as_text=True)
    assert "Sandbox mode." in html
    assert "/api/v1/orders" in html and "order:1042" in html and "placed" in html
    records = web.get("/admin/api/sandbox", headers=bearer()).get_json()
    assert records["sandbox"] is True
    assert records["records"][0]["entity"] == "order:1042"


def test_no_sandbox_banner_with_an_api_key(web):
    log_in(web)
    html = web.get("/admin/").get_data(as_text=True)
    assert "Sandbox mode." not in html
    assert "No sandbox records" in html


def test_the_login_page_tells_nothing_about_the_relay(settings, redis):
    app = create_app(replace(settings, admin_token=TOKEN, commerce_api_key=None), redis=redis)
    html = app.test_client().get("/admin/login").get_data(as_text=True)
    assert "Sandbox" not in html


def test_notices_are_fixed_texts(web):
    log_in(web)
    html = web.get("/admin/?notice=<script>alert(1)</script>").get_data(as_text=True)
    assert "<script>" not in html


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
    from relay.events import RawEvent, new_event_id

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


# --- the token never leaves -----------------------------------------------------------------


def test_the_token_never_appears_in_a_body_or_a_cookie(web, redis, settings):
    letter = add_letter(redis, body=b'{"echo": "%s"}' % TOKEN.encode())
    responses = [
        web.get("/admin/login"),
        web.post("/admin/login", data={"token": TOKEN[:-1]}),
        web.get("/admin/", headers=bearer("x" + TOKEN)),
        web.post("/admin/login", data={"token": TOKEN}),
    ]
    csrf = csrf_of(web.get("/admin/"))
    assert TOKEN not in csrf
    responses += [
        web.get("/admin/"),
        web.get(f"/admin/dead-letters/{letter.id}"),
        web.get(f"/admin/dead-letters/{letter.id}/purge"),
        web.get("/admin/api/status", headers=bearer()),
        web.get("/admin/api/dead-letters", headers=bearer()),
        web.get(f"/admin/api/dead-letters/{letter.id}", headers=bearer()),
        web.get("/admin/api/sandbox", headers=bearer()),
        web.post(f"/admin/dead-letters/{letter.id}/replay", data={"csrf_token": csrf}),
        web.post("/admin/logout", data={"csrf_token": csrf}),
    ]
    for response in responses:
        assert TOKEN not in response.get_data(as_text=True), response.request.path
        assert TOKEN[:-1] not in response.get_data(as_text=True), response.request.path
        for cookie in response.headers.getlist("Set-Cookie"):
            assert TOKEN not in cookie
    assert not [key for key in redis.keys("relay:admin:*") if TOKEN.encode() in redis.dump(key)]
