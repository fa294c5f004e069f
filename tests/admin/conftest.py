"""What the admin tests share: an app with the admin token set, a logged-in browser, dead
letters to look at."""

from __future__ import annotations

import re
import time
from dataclasses import replace
from pathlib import Path

import pytest
from redis import Redis

from relay.app import create_app
from relay.delivery.deadletters import DeadLetter, DeadLetters
from relay.event_queue import make_queue
from relay.events import RawEvent, new_event_id
from relay.inbox import Inbox

TOKEN = "admin-token-0123456789-abcdefghij"
FIXTURES = Path(__file__).parents[2] / "mappers/woocommerce/fixtures"
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
    """Nothing replayed: the inbox is empty, and no job waits."""
    return Inbox(redis).depth() == 0 and make_queue(redis).get_jobs() == []


def delivered_orders(worker, fake_api) -> list[str]:
    """Run the real worker on what is queued; the order ids the fake API then took. (How a
    replay waits for the worker is the queue's business: this checks what comes out.)"""
    worker.run()
    return sorted({r.body["orderId"] for r in fake_api.applied if r.path == "/api/v1/orders"})
