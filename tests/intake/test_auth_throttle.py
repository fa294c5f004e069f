"""Failed webhook authentications, counted per client through the real app and Redis."""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import urlencode

from relay.app import create_app
from relay.intake.auth_throttle import LIMIT
from relay.redis_conn import connect
from tests.conftest import stored_events
from tests.redis_server import free_port

TOKEN = "stk-0b9c1e7f3a5d48e2a6c4"
ORDER = {"type": "order", "order_id": "10452", "order_status": "1", "email": "ada@example.com"}


def postback(client, token: str, address: str, **fields):
    query = urlencode({**ORDER, **fields})
    return client.get(f"/webhooks/stickyio/{token}?{query}", environ_base={"REMOTE_ADDR": address})


def test_f14_wrong_tokens_are_answered_429_past_the_limit_without_being_checked(settings, redis):
    # Review: 1,000 wrong Sticky.io tokens in 0.7 s, each one checked and answered 401.
    sticky = replace(settings, platform_secrets={"stickyio": TOKEN})
    client = create_app(sticky, redis=redis).test_client()
    guesses = [postback(client, f"guess-{n:016d}", "10.0.0.1") for n in range(1000)]
    statuses = [r.status_code for r in guesses]
    # Every failure up to the limit is checked, and the one past it; the rest are not.
    assert statuses == [401] * (LIMIT + 1) + [429] * (1000 - LIMIT - 1)
    refused = guesses[-1]
    assert refused.get_json()["error"]["code"] == "too_many_failures"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # Unchecked means unchecked: even the right token waits out the window...
    assert postback(client, TOKEN, "10.0.0.1").status_code == 429
    # ...while every other client is served as before.
    assert postback(client, TOKEN, "10.0.0.2", order_id="10453").status_code == 202
    assert len(stored_events(redis)) == 1

    # Another web process shares the count in Redis: its next failure from the same client
    # is checked (401) and blocks it there too.
    other = create_app(sticky, redis=redis).test_client()
    assert postback(other, "guess-again-0000000", "10.0.0.1").status_code == 401
    assert postback(other, "guess-again-0000001", "10.0.0.1").status_code == 429


def test_with_redis_down_failures_are_still_401_and_uncounted(settings):
    dead = connect(f"redis://127.0.0.1:{free_port()}/0")
    sticky = replace(settings, platform_secrets={"stickyio": TOKEN})
    client = create_app(sticky, redis=dead).test_client()
    statuses = {postback(client, "guess-0000000000000", "10.0.0.1").status_code for _ in range(3)}
    assert statuses == {401}
    assert postback(client, TOKEN, "10.0.0.1").status_code == 503  # cannot store: as always
