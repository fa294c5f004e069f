"""/healthz and /readyz against a real Redis that goes away and comes back."""

from __future__ import annotations

import time
from dataclasses import replace

from relay.app import create_app
from relay.delivery.account import refresh_if_stale
from tests.redis_server import RedisServer

GRACE = 3


def test_f8_healthz_fails_once_redis_is_gone_for_longer_than_the_grace(tmp_path, settings):
    """Review F8: /healthz (the image's HEALTHCHECK, the Kubernetes liveness probe) stayed
    200 while the relay could store nothing, so no orchestrator ever restarted it. A short
    outage must not fail it (that would restart every relay on a Redis failover)."""
    server = RedisServer(tmp_path / "redis").start()
    try:
        app = create_app(replace(settings, redis_url=server.url, healthz_grace_seconds=GRACE))
        web = app.test_client()
        assert web.get("/healthz").status_code == 200
        server.crash()
        assert web.get("/readyz").status_code == 503  # at once: stop sending webhooks here
        assert web.get("/healthz").status_code == 200  # a blip, so far
        time.sleep(GRACE + 0.5)
        gone = web.get("/healthz")
        assert gone.status_code == 503
        assert gone.get_json()["error"]["code"] == "redis_unreachable"
        server.start()  # back on the same port
        assert web.get("/healthz").status_code == 200
        assert web.get("/readyz").status_code == 200
    finally:
        server.stop()


def test_issue13_readyz_names_the_workspace_without_calling_the_api(
    settings, redis, fake_api, client
):
    """Issue 13: /readyz said only "live". It now names the workspace the data lands in, as
    a worker (or `relay check`) last found it in Redis, and when: a probe never calls the
    Commerce API. A workspace problem is shown, not failed on (webhooks are still stored)."""
    unchecked = client.get("/readyz").get_json()["workspace"]
    assert unchecked["checked_at"] is None and "not checked yet" in unchecked["note"]

    assert refresh_if_stale(settings, redis)
    asked = len(fake_api.requests)
    for _ in range(3):
        ready = client.get("/readyz")
        assert ready.status_code == 200
    assert len(fake_api.requests) == asked  # read from Redis
    shown = ready.get_json()["workspace"]
    assert (shown["id"], shown["name"], shown["key_type"]) == (
        "company-fake",
        "Fake Shop",
        "company",
    )
    assert time.time() - 60 < shown["checked_at"] <= time.time()
    assert "problem" not in shown

    fake_api.key_type = "personal"
    redis.delete("relay:workspace", "relay:workspace:checking")
    assert refresh_if_stale(settings, redis)
    personal = client.get("/readyz")
    assert personal.status_code == 200
    assert personal.get_json()["workspace"]["problem"].startswith("the API key is a personal key")

    sandbox = create_app(replace(settings, commerce_api_key=None), redis=redis).test_client()
    assert sandbox.get("/readyz").get_json()["workspace"]["mode"] == "sandbox"
