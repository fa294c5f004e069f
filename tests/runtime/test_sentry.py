"""The Sentry scrubber (relay/runtime/sentry.py) on real captured events: no personal data,
no secrets, no raw events."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import sentry_sdk
from sentry_sdk.transport import Transport

from relay.app import create_app
from relay.registry import default_registry
from relay.runtime import sentry as relay_sentry

FIXTURES = Path(__file__).parents[2] / "mappers" / "woocommerce" / "fixtures"

SECRET_TOKEN = "tok-should-never-leave-1234567890"


class CapturingTransport(Transport):
    """Keeps what Sentry would have sent."""

    events: list[dict] = []

    def capture_envelope(self, envelope):
        for item in envelope.items:
            if item.type == "event":
                CapturingTransport.events.append(json.loads(item.payload.get_bytes()))


@pytest.fixture
def sentry(settings):
    CapturingTransport.events = []
    assert relay_sentry.init_sentry(
        replace(settings, sentry_dsn="https://public@sentry.invalid/1"), "test"
    )
    sentry_sdk.get_client().transport = CapturingTransport(sentry_sdk.get_client().options)
    yield CapturingTransport.events
    sentry_sdk.get_client().close()
    sentry_sdk.init(dsn=None)


def test_web_error_reaches_sentry_without_personal_data_or_secrets(sentry, settings, redis):
    app = create_app(
        replace(settings, platform_secrets={"checkoutchamp": SECRET_TOKEN}), redis=redis
    )
    platform = default_registry().get("checkoutchamp")

    def broken(request):
        raise RuntimeError("could not read postback for ada.lovelace@example.com")

    original = platform.describe
    object.__setattr__(platform, "describe", broken)  # the registry is shared: restore below
    try:
        response = app.test_client().post(
            f"/webhooks/checkoutchamp/{SECRET_TOKEN}?emailAddress=ada.lovelace%40example.com",
            data=json.dumps({"emailAddress": "ada.lovelace@example.com", "orderId": 1}),
            headers={
                "Content-Type": "application/json",
                "X-Relay-Token": SECRET_TOKEN,
                "Cookie": "session=abc",
            },
        )
    finally:
        object.__setattr__(platform, "describe", original)
    assert response.status_code == 500
    assert response.get_json()["error"]["code"] == "internal_error"
    sentry_sdk.flush()
    [event] = sentry
    text = json.dumps(event)
    assert "RuntimeError" in text  # the report is there...
    assert "ada.lovelace" not in text  # ...without the customer...
    assert SECRET_TOKEN not in text  # ...or the token, in the URL or a header
    assert "session=abc" not in text
    assert event["request"]["data"] == "[Filtered]"


def test_failed_job_reaches_sentry_without_the_raw_event(sentry, settings, redis):
    from rq import SimpleWorker
    from rq.serializers import JSONSerializer

    from relay.event_queue import make_queue

    queue = make_queue(redis)
    queue.enqueue(
        "relay.jobs.deliver_pending", {"id": "x", "body": "grace@example.com"}, [], 1, 0.0
    )
    # No worker context is installed and RELAY_REDIS_URL is unset: the job fails for real.
    SimpleWorker([queue], connection=redis, serializer=JSONSerializer).work(burst=True)
    sentry_sdk.flush()
    assert sentry, "the failure was reported"
    text = json.dumps(sentry)
    assert "grace@example.com" not in text
    assert "grace" not in text
