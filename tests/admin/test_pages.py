"""What the admin pages show (relay/admin/pages.py, relay/admin/view.py)."""

from __future__ import annotations

import re
import time
from dataclasses import replace

from relay import stats
from relay.admin.view import SILENT_AFTER_SECONDS, ago
from relay.app import create_app
from relay.delivery.account import refresh_if_stale
from relay.delivery.commerce_api import ApiRequest, SandboxClient
from relay.delivery.deadletters import DeadLetters
from tests.admin.conftest import (
    TOKEN,
    add_letter,
    bearer,
    log_in,
)
from tests.conftest import WOO_SECRET

# --- what the pages show --------------------------------------------------------------------


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


def _workspace_section(html: str) -> str:
    return re.search(r'<section id="workspace".*?</section>', html, re.S).group(0)


def test_issue13_the_overview_names_the_workspace_and_when_it_was_checked(
    web, redis, settings, fake_api
):
    """Issue 13: the admin page did not say where the data lands. It shows the workspace a
    worker last found (from Redis, no API call), when, and a personal key's problem."""
    log_in(web)
    assert "not checked yet" in _workspace_section(web.get("/admin/").get_data(as_text=True))
    assert refresh_if_stale(settings, redis)
    asked = len(fake_api.requests)
    section = _workspace_section(web.get("/admin/").get_data(as_text=True))
    assert "Fake Shop" in section and "<code>company-fake</code>" in section
    assert "company key" in section and "just now" in section
    status = web.get("/admin/api/status", headers=bearer()).get_json()
    assert (status["workspace"]["name"], status["workspace"]["key_type"]) == (
        "Fake Shop",
        "company",
    )
    assert len(fake_api.requests) == asked

    fake_api.key_type = "personal"
    redis.delete("relay:workspace", "relay:workspace:checking")
    assert refresh_if_stale(settings, redis)
    section = _workspace_section(web.get("/admin/").get_data(as_text=True))
    assert 'class="warning"' in section and "personal key" in section
    assert "RELAY_COMMERCE_COMPANY_ID is unset" in section


def test_issue13_in_sandbox_the_overview_says_no_workspace(settings, redis):
    app = create_app(replace(settings, admin_token=TOKEN, commerce_api_key=None), redis=redis)
    web = app.test_client()
    log_in(web)
    section = _workspace_section(web.get("/admin/").get_data(as_text=True))
    assert "Sandbox mode sends nothing to any workspace" in section


def test_issue13_the_dead_letter_list_and_page_say_what_it_was_about(web, redis):
    """Issue 13: the overview's dead letters showed topic and error only. Each row now says
    what the event was about (entity, masked customer, amount), and the letter's page shows
    the API's code, message and issues as a table, all escaped and redacted."""
    letter = add_letter(redis)  # a WooCommerce order: 1042, ada@example.com, 61.38 EUR
    letter.response = {
        "status": 422,
        "error": "HTTP 422: VALIDATION_ERROR Invalid order (at customer.email)",
        "body": "{}",
        "code": "VALIDATION_ERROR",
        "message": "Invalid <order>",
        "issues": [
            {"path": "status", "message": "Invalid enum", "allowedValues": ["placed", "refunded"]}
        ],
        "retryable": False,
    }
    letter.about = None  # worked out when it is stored (add_letter stored it before)
    DeadLetters(redis).add(replace(letter, pending=None))
    log_in(web)
    html = web.get("/admin/").get_data(as_text=True)
    row = re.search(rf'<tr id="dl-{letter.id}">(.*?)</tr>', html, re.S).group(1)
    assert "order 1042 · a***@example.com · 61.38 EUR" in row
    assert "ada@example.com" not in html
    page = web.get(f"/admin/dead-letters/{letter.id}").get_data(as_text=True)
    assert "order 1042 · a***@example.com · 61.38 EUR" in page
    assert "<code>VALIDATION_ERROR</code>" in page and "Invalid &lt;order&gt;" in page
    issues = re.search(r'<table class="issues">.*?</table>', page, re.S).group(0)
    assert "<code>status</code>" in issues and "Invalid enum" in issues
    assert "<code>placed</code>, <code>refunded</code>" in issues
    assert "no, says the API" in page


def test_the_storefront_section_lists_recent_requests_with_masked_emails(settings, redis):
    shop = "https://shop.example.com"
    app = create_app(replace(settings, admin_token=TOKEN, storefront_origins=(shop,)), redis=redis)
    web = app.test_client()
    asked = {"email": "ann.lee@example.com", "productId": "42", "variantId": "44"}
    for body in (asked, asked, {**asked, "email": "bob@"}):
        web.post("/storefront/back-in-stock", json=body, headers={"Origin": shop})
    log_in(web)
    html = web.get("/admin/").get_data(as_text=True)
    section = html.split('id="storefront"', 1)[1].split("</section>", 1)[0]
    assert shop in section
    assert "1 stored, 1 repeated, 1 refused" in section
    assert section.count("a***@example.com") == 2 and "***" in section
    assert "duplicate" in section and "invalid" in section and "accepted" in section
    assert "ann.lee@example.com" not in html and "bob@" not in html


def test_the_storefront_section_says_how_to_turn_it_on(web):
    log_in(web)
    html = web.get("/admin/").get_data(as_text=True)
    section = html.split('id="storefront"', 1)[1].split("</section>", 1)[0]
    assert "RELAY_STOREFRONT_ORIGINS" in section
