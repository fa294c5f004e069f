"""The admin page in a real headless browser, against a real `relay run`.

A webhook whose order the Commerce API refuses (422) becomes a dead letter; a person opens
/admin/, logs in with the token, sees the dead letter and its reason, clicks Replay, and the
order is delivered. Needs Debian's `chromium` (driven by Playwright's Python package with
the system browser; `playwright install` is never run): skipped where it is missing.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import requests

from tests.conftest import API_KEY, wait_until
from tests.test_e2e_relay_run import RelayProcess

pytestmark = pytest.mark.e2e

TOKEN = "browser-admin-token-5f1c9a7e2b"
RECORD = Path(__file__).parents[2] / "bench/results/admin.png"


@pytest.fixture
def relay(tmp_path, fake_api):
    relay = RelayProcess(
        tmp_path,
        RELAY_ADMIN_TOKEN=TOKEN,
        RELAY_COMMERCE_API_URL=fake_api.url,
        RELAY_COMMERCE_API_KEY=API_KEY,
    ).start()
    yield relay
    assert relay.stop() == 0, relay.log.read_text()


def dead_letters(relay: RelayProcess) -> list[dict]:
    answer = requests.get(
        f"{relay.url}/admin/api/dead-letters",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=5,
    )
    answer.raise_for_status()
    return answer.json()["dead_letters"]


def test_log_in_see_a_dead_letter_and_replay_it(browser, relay, fake_api, tmp_path):
    from playwright.sync_api import expect

    refusal = {"success": False, "error": {"code": "VALIDATION_ERROR", "message": "bad email"}}
    fake_api.fail("/api/v1/orders", status=422, body=refusal)
    assert relay.post_woo("order.processing.guest.json", "order.created").status_code == 202
    [letter] = wait_until(lambda: dead_letters(relay), timeout=20, what="the dead letter")
    assert letter["reason"] == "permanent_error"

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(15_000)
    page.goto(f"{relay.url}/admin/")
    expect(page).to_have_url(f"{relay.url}/admin/login")
    page.get_by_label("Admin token").fill(TOKEN)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{relay.url}/admin/")

    [cookie] = page.context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert TOKEN not in cookie["value"]

    row = page.locator(f"#dl-{letter['id']}")
    expect(row).to_contain_text("permanent_error")
    expect(row).to_contain_text("HTTP 422: VALIDATION_ERROR bad email")
    expect(row).to_contain_text("order.created")
    screenshot = tmp_path / "admin.png"
    page.screenshot(path=str(screenshot), full_page=True)
    if os.environ.get("RELAY_UPDATE_SCREENSHOT"):  # opt in: keeps CI's checkout clean
        RECORD.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(screenshot, RECORD)

    row.get_by_role("button", name="Replay", exact=True).click()
    expect(page.locator(".notice")).to_contain_text("Replayed 1 dead letter")
    expect(page.locator("#dead-letters")).to_contain_text("No dead letters")

    # The worker maps the raw event again and, this time, the API takes the order.
    wait_until(
        lambda: any(r.path == "/api/v1/orders" for r in fake_api.applied),
        timeout=20,
        what="the replayed order at the fake API",
    )
    orders = [r for r in fake_api.requests if r.path == "/api/v1/orders"]
    assert [r.body["orderId"] for r in orders] == ["1042", "1042"]
    page.reload()
    expect(page.locator("#dead-letters")).to_contain_text("No dead letters")
    assert dead_letters(relay) == []
    assert TOKEN not in page.content()
